//! Lost certificates: the holder reports online with the revocation code
//! from the PIN mailer, and `openssl ocsp` says revoked (keyCompromise) at
//! once; a paper report entered by an officer is refused to the same
//! officer and to another officer, and revokes only when a supervisor
//! confirms it.

use super::*;

on_both!(lost_reports_revoke_at_once_and_paper_ones_need_a_supervisor);

/// The revocation code printed on a mailer (five groups of five).
fn revocation_code(mailer: &str) -> String {
    mailer
        .split_whitespace()
        .find(|w| w.len() == 29 && w.split('-').count() == 5 && w.split('-').all(|g| g.len() == 5))
        .unwrap_or_else(|| panic!("no revocation code in the mailer:\n{mailer}"))
        .to_string()
}

/// The holder's certificate from the PKCS#12, as PEM in `name`.
fn certificate(hm: &Hm, c: &common::ra::Collected, name: &str) -> String {
    let p12 = hm.p(&format!("{name}.p12"));
    std::fs::write(&p12, &c.pkcs12).unwrap();
    let pass = format!("pass:{}", c.pin.replace('-', ""));
    let pem = openssl_ok(&[
        "pkcs12", "-in", &p12, "-passin", &pass, "-nokeys", "-clcerts",
    ]);
    let file = hm.p(&format!("{name}.pem"));
    std::fs::write(&file, pem).unwrap();
    file
}

fn lost_reports_revoke_at_once_and_paper_ones_need_a_supervisor(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(6);
    let amy = hm.staff("amy", "officer", "Central");
    let bob = hm.staff("bob", "officer", "Central");
    let sam = hm.staff("sam", "supervisor", "Central");
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let mut officer = Client::new(&srv, "amy-browser");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);

    // Online, with the mailer's revocation code.
    let one = hm.collected(&srv, &mut officer, &people[0], "one@example.hk");
    let code = revocation_code(&one.mailer);
    assert!(
        one.mailer.contains("掛失密碼") && one.mailer.contains("Revocation code"),
        "{}",
        one.mailer
    );
    let pem = certificate(&hm, &one, "one");
    assert!(ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &pem], &[]).contains(": good"));
    let mut holder = Client::new(&srv, "holder-browser");
    let wrong = holder.submit(
        "/ra/lost",
        "/ra/lost",
        &[
            ("reference", &one.reference),
            ("code", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"),
        ],
    );
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert!(wrong.text().contains("掛失密碼不正確"), "{}", wrong.text());
    // The PIN is not the revocation code.
    let pin = holder.submit(
        "/ra/lost",
        "/ra/lost",
        &[("reference", &one.reference), ("code", &one.pin)],
    );
    assert_eq!(pin.status, 401);
    assert!(ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &pem], &[]).contains(": good"));
    let done = holder.submit(
        "/ra/lost",
        "/ra/lost",
        &[
            ("reference", &one.reference.to_lowercase()),
            ("code", &code.to_lowercase().replace('-', " ")),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(
        done.text().contains("data-status=\"revoked\""),
        "{}",
        done.text()
    );
    let ocsp = ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &pem], &[]);
    assert!(
        ocsp.contains(": revoked") && ocsp.contains("Reason: keyCompromise"),
        "{ocsp}"
    );
    // Once.
    let again = holder.submit(
        "/ra/lost",
        "/ra/lost",
        &[("reference", &one.reference), ("code", &code)],
    );
    assert_eq!(again.status, 409, "{}", again.text());

    // On paper: Amy enters it; neither she nor another officer can
    // confirm; the supervisor does.
    let two = hm.collected(&srv, &mut officer, &people[1], "two@example.hk");
    let pem2 = certificate(&hm, &two, "two");
    let page = format!("/ra/staff/applications/{}", two.reference);
    let entered = officer.submit(&page, &format!("{page}/lost"), &[]);
    assert_eq!(entered.status, 200, "{}", entered.text());
    assert!(
        entered.text().contains("id=\"lost-requested\""),
        "{}",
        entered.text()
    );
    let own = officer.submit(&page, &format!("{page}/lost/confirm"), &[]);
    assert_eq!(own.status, 403, "{}", own.text());
    assert!(own.text().contains("雙重控制"), "{}", own.text());
    let mut b2 = Client::new(&srv, "bob-browser");
    assert_eq!(b2.sign_in("bob", &bob).status, 303);
    let other = b2.submit(&page, &format!("{page}/lost/confirm"), &[]);
    assert_eq!(other.status, 403, "{}", other.text());
    assert!(ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &pem2], &[]).contains(": good"));
    let mut s = Client::new(&srv, "sam-browser");
    assert_eq!(s.sign_in("sam", &sam).status, 303);
    let confirmed = s.submit(&page, &format!("{page}/lost/confirm"), &[]);
    assert_eq!(confirmed.status, 200, "{}", confirmed.text());
    assert!(
        confirmed.text().contains("id=\"lost\""),
        "{}",
        confirmed.text()
    );
    let ocsp = ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &pem2], &[]);
    assert!(
        ocsp.contains(": revoked") && ocsp.contains("Reason: keyCompromise"),
        "{ocsp}"
    );

    // The statistics page counts what happened, for an auditor too.
    let aud = hm.staff("audrey", "auditor", "Central");
    let mut au = Client::new(&srv, "audrey-browser");
    assert_eq!(au.sign_in("audrey", &aud).status, 303);
    let st = au.get("/ra/staff/statistics");
    assert_eq!(st.status, 200, "{}", st.text());
    let text = st.text();
    assert_eq!(st.by_id("issued-total"), "2", "{text}");
    for must in [
        "<svg",
        "keyCompromise",
        "data-total=\"2\"",
        "personal",
        "online",
    ] {
        assert!(text.contains(must), "statistics lack {must}:\n{text}");
    }

    drop(srv);
    let log = hm.sql_ok("SELECT actor || ' ' || action FROM audit_log ORDER BY seq");
    for must in [
        "holder certificate.revoke",
        "staff:amy ra.lost.request",
        "staff:sam certificate.revoke",
    ] {
        assert!(log.contains(must), "audit lacks {must}:\n{log}");
    }
    let v = hm.ok(&["audit", "verify"]);
    assert!(v.contains("OK"), "{v}");
}
