//! Bulk campaigns: a batch imported by an officer, checked against the
//! registry, approved by a supervisor of its centre (and refused to anyone
//! else), issued with centrally generated keys, its PIN mailers printed,
//! and a holder collecting a PKCS#12 that OpenSSL opens, verifies and asks
//! the responder about. A bad file leaves nothing behind, and an issuance
//! killed again and again leaves no certificate without its application,
//! no application without its certificate, and no one with two.

use super::*;

on_both!(
    a_batch_is_checked_approved_issued_and_collected,
    an_interrupted_issue_leaves_nothing_half_done
);

/// Imports `csv` as officer `who`; returns the batch id.
fn import(hm: &Hm, who: &str, secret: &str, csv: &str) -> String {
    let o = as_staff(hm, who, secret, &["campaign", "import", csv]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let id = out.trim().lines().last().unwrap().to_string();
    assert!(id.starts_with("CB-"), "{out}");
    id
}

fn a_batch_is_checked_approved_issued_and_collected(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(30);
    let olive = hm.staff("olive", "officer", "Kowloon");
    let otto = hm.staff("otto", "officer", "Kowloon");
    let mia = hm.staff("mia", "officer", "Kowloon");
    let ned = hm.staff("ned", "officer", "Kowloon");
    let sue = hm.staff("sue", "supervisor", "Kowloon");
    let fay = hm.staff("fay", "supervisor", "Island");

    // The registry's 30 people and two it does not know; one of the 30
    // with another name than the registry's.
    let csv = hm.p("campaign.csv");
    hm.ok(&[
        "campaign", "synth", "--count", "32", "--seed", "11", "--out", &csv,
    ]);
    let original = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = original.lines().map(String::from).collect();
    let mut fields: Vec<String> = lines[3].split(',').map(String::from).collect();
    assert_eq!(fields[0], people[2].id_number);
    fields[2] = "CHAN SOMEONE ELSE".into();
    lines[3] = fields.join(",");
    let edited = lines.join("\n") + "\n";
    std::fs::write(&csv, &edited).unwrap();

    // A bad check digit on line 6: refused with its line, nothing kept.
    let mut lines: Vec<String> = edited.lines().map(String::from).collect();
    let id6 = lines[5].split(',').next().unwrap().to_string();
    let digit = id6.chars().last().unwrap();
    let other = if digit == '0' { '1' } else { '0' };
    lines[5] = lines[5].replacen(&id6, &format!("{}{other}", &id6[..id6.len() - 1]), 1);
    let bad = hm.p("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let o = as_staff(&hm, "otto", &otto, &["campaign", "import", &bad]);
    assert!(!o.status.success());
    assert!(text(&o).contains("line 6"), "{}", text(&o));
    assert_eq!(count(&hm, "SELECT COUNT(*) FROM ra_applications"), 0);
    assert_eq!(count(&hm, "SELECT COUNT(*) FROM ra_batches"), 0);

    let batch = import(&hm, "olive", &olive, &csv);
    let out = hm.ok(&["campaign", "check", &batch]);
    assert!(
        out.contains("29 confirmed, 1 not matching the registry, 2 unknown to it"),
        "{out}"
    );

    // Dual control and roles: an officer, and a supervisor of another
    // centre, are refused; nothing moves.
    let o = as_staff(&hm, "ned", &ned, &["campaign", "approve", &batch]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("approved by a supervisor"),
        "{}",
        text(&o)
    );
    let o = as_staff(&hm, "fay", &fay, &["campaign", "approve", &batch]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("another registration centre"),
        "{}",
        text(&o)
    );
    let o = as_staff(
        &hm,
        "sue",
        &"A".repeat(32),
        &["campaign", "approve", &batch],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("wrong"), "{}", text(&o));
    assert_eq!(
        count(
            &hm,
            "SELECT COUNT(*) FROM ra_applications WHERE status = 'approved'"
        ),
        0
    );
    let o = as_staff(&hm, "sue", &sue, &["campaign", "approve", &batch]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("29 approved by sue"), "{}", text(&o));

    let out = hm.ok(&["campaign", "issue", &batch]);
    assert!(out.contains("29 certificates issued"), "{out}");
    // Run again: nothing more.
    let out = hm.ok(&["campaign", "issue", &batch]);
    assert!(out.contains(": 0 certificates issued"), "{out}");
    let status = hm.ok(&["campaign", "status", &batch]);
    assert!(
        status.contains("29  approved (registry confirmed, certificate issued)"),
        "{status}"
    );
    assert!(status.contains("approved by staff:sue"), "{status}");
    // The keys wait sealed: no private key in the clear in the database.
    assert_eq!(
        count(
            &hm,
            "SELECT COUNT(*) FROM ra_applications WHERE key_sealed IS NOT NULL AND serial IS NOT NULL"
        ),
        29
    );

    // The print run: mailers for two, by an officer.
    let dir = hm.p("mailers");
    let o = as_staff(
        &hm,
        "mia",
        &mia,
        &["campaign", "mailers", &batch, "--out", &dir, "--limit", "2"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut pdfs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pdfs.sort();
    assert_eq!(pdfs.len(), 2, "{pdfs:?}");
    // Line 2 of the file is the first person.
    let first = &pdfs[0];
    let name = first.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("0000002-HM-"), "{name}");
    let reference = name.trim_start_matches("0000002-").trim_end_matches(".pdf");
    let mailer = hallmark_testkit::judges::pdftotext(first);
    assert!(mailer.contains(&people[0].name_zh), "{mailer}");
    assert!(mailer.contains(reference), "{mailer}");
    let pin = mailer
        .split_whitespace()
        .find(|w| w.len() == 14 && w.matches('-').count() == 2 && *w != reference)
        .unwrap_or_else(|| panic!("no PIN in the mailer:\n{mailer}"))
        .to_string();

    // The holder collects; OpenSSL opens, verifies and asks.
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let mut holder = Client::new(&srv, "holder-browser");
    let p12 = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", reference), ("pin", &pin)],
    );
    assert_eq!(p12.status, 200, "{}", p12.text());
    std::fs::write(hm.path("holder.p12"), &p12.body).unwrap();
    let pass = format!("pass:{}", pin.replace('-', ""));
    let pem = openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("holder.p12"),
        "-passin",
        &pass,
        "-nokeys",
        "-clcerts",
    ]);
    std::fs::write(hm.path("holder.pem"), &pem).unwrap();
    let key = openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("holder.p12"),
        "-passin",
        &pass,
        "-nocerts",
        "-nodes",
    ]);
    assert!(key.contains("PRIVATE KEY"), "{key}");
    assert!(verify_chain(&hm, &hm.p("holder.pem")).contains(": OK"));
    let subject = openssl_ok(&["x509", "-in", &hm.p("holder.pem"), "-noout", "-subject"]);
    assert!(
        subject.contains(&format!("CN = {}", people[0].name_en)),
        "{subject}"
    );
    // The key in the PKCS#12 is the certificate's.
    std::fs::write(hm.path("holder.key"), &key).unwrap();
    let from_key = openssl_ok(&["pkey", "-in", &hm.p("holder.key"), "-pubout"]);
    let from_cert = openssl_ok(&["x509", "-in", &hm.p("holder.pem"), "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
    let said = ocsp_ask(
        &hm,
        &srv,
        "issuing.pem",
        &["-cert", &hm.p("holder.pem")],
        &[],
    );
    assert!(said.contains(": good"), "{said}");
    // pkilint reads the certificate alone (without the PKCS#12's bag
    // attributes).
    openssl_ok(&[
        "x509",
        "-in",
        &hm.p("holder.pem"),
        "-out",
        &hm.p("holder.crt"),
    ]);
    pkilint_clean("lint_pkix_cert", &[], &hm.path("holder.crt"));

    // Delivered once: the PIN is spent and the key is gone.
    let again = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", reference), ("pin", &pin)],
    );
    assert_eq!(again.status, 401, "{}", again.text());
    assert_eq!(
        count(
            &hm,
            &format!(
                "SELECT COUNT(*) FROM ra_applications WHERE reference = '{reference}' AND key_sealed IS NULL AND status = 'activated'"
            )
        ),
        1
    );
    drop(srv);
    let audit = hm.ok(&["audit", "verify"]);
    assert!(audit.contains("OK"), "{audit}");
    for action in [
        "ra.campaign.import",
        "ra.campaign.check",
        "ra.campaign.approve",
        "ra.campaign.issue",
    ] {
        assert!(
            count(
                &hm,
                &format!("SELECT COUNT(*) FROM audit_log WHERE action = '{action}'")
            ) >= 1,
            "{action}"
        );
    }
    assert_eq!(
        count(
            &hm,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'certificate.issue' AND actor LIKE 'ra:HM-%'"
        ),
        29
    );
}

/// Applications with a certificate, certificates of the campaign, and
/// their audit entries: always the same number, whatever was killed.
fn consistent(hm: &Hm, batch: &str) -> i64 {
    let apps = count(
        hm,
        &format!(
            "SELECT COUNT(*) FROM ra_applications WHERE batch = '{batch}' AND serial IS NOT NULL"
        ),
    );
    let with_key = count(
        hm,
        &format!(
            "SELECT COUNT(*) FROM ra_applications WHERE batch = '{batch}' AND serial IS NOT NULL AND key_sealed IS NOT NULL"
        ),
    );
    let joined = count(
        hm,
        &format!(
            "SELECT COUNT(*) FROM ra_applications a JOIN certificates c ON c.issuer = a.issuer AND c.serial = a.serial WHERE a.batch = '{batch}' AND c.status = 'issued' AND c.cert IS NOT NULL"
        ),
    );
    let certs = count(
        hm,
        "SELECT COUNT(*) FROM certificates WHERE profile = 'personal' AND status = 'issued'",
    );
    let audited = count(
        hm,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'certificate.issue' AND actor LIKE 'ra:HM-%'",
    );
    assert_eq!(
        (with_key, joined, certs, audited),
        (apps, apps, apps, apps),
        "applications with a certificate: {apps}"
    );
    apps
}

fn an_interrupted_issue_leaves_nothing_half_done(b: Backend) {
    let hm = setup!(b);
    const N: i64 = 12_000;
    hm.registry(N as u32);
    let olive = hm.staff("olive", "officer", "Kowloon");
    let sue = hm.staff("sue", "supervisor", "Kowloon");
    let csv = hm.p("campaign.csv");
    hm.ok(&[
        "campaign",
        "synth",
        "--count",
        &N.to_string(),
        "--seed",
        "11",
        "--out",
        &csv,
    ]);
    let batch = import(&hm, "olive", &olive, &csv);
    let out = hm.ok(&["campaign", "check", &batch]);
    assert!(out.contains(&format!("{N} confirmed")), "{out}");
    let o = as_staff(&hm, "sue", &sue, &["campaign", "approve", &batch]);
    assert!(o.status.success(), "{}", text(&o));

    // Killed three times, each as soon as a page more is stored (so during
    // the next one's work); each time every page is all or nothing.
    let issued = format!(
        "SELECT COUNT(*) FROM ra_applications WHERE batch = '{batch}' AND serial IS NOT NULL"
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let before = count(&hm, &issued);
        let mut child = hm
            .command()
            .args(["campaign", "issue", &batch, "--page", "500"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while count(&hm, &issued) == before && started.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        seen.push(consistent(&hm, &batch));
    }
    eprintln!("issued after each kill: {seen:?}");
    // Each kill came after progress and before the end.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(seen[0] > 0 && seen[2] < N, "{seen:?}");
    let out = hm.ok(&["campaign", "issue", &batch]);
    assert!(out.contains("certificates issued"), "{out}");
    assert_eq!(consistent(&hm, &batch), N);
    // Everyone once: as many certificates as people, no serial twice.
    assert_eq!(
        count(
            &hm,
            &format!("SELECT COUNT(DISTINCT serial) FROM ra_applications WHERE batch = '{batch}'")
        ),
        N
    );
    let audit = hm.ok(&["audit", "verify"]);
    assert!(audit.contains("OK"), "{audit}");
}
