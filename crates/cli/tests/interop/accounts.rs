//! Staff accounts under dual control, on the console: once the installation
//! has two administrators the operator's `staff add` is refused; an account
//! one administrator proposes cannot sign in, cannot be approved by them,
//! and works once a second administrator approves it with the initial
//! password and TOTP secret shown to them once; disabling it ends its
//! session at once. Officers do not see the page.

use super::*;

on_both!(accounts_are_proposed_approved_by_a_second_administrator_and_disabled);

fn accounts_are_proposed_approved_by_a_second_administrator_and_disabled(b: Backend) {
    let hm = setup!(b);
    let olive = hm.staff("olive", "officer", "Kowloon");
    let ada = hm.staff("ada", "administrator", "HQ");
    let abe = hm.staff("abe", "administrator", "HQ");
    // Two administrators: the operator adds no more accounts.
    let o = hm
        .command()
        .env("HALLMARK_STAFF_PASSWORD", common::ra::STAFF_PASSWORD)
        .args([
            "staff",
            "add",
            "--username",
            "carl",
            "--name",
            "Carl",
            "--role",
            "officer",
            "--centre",
            "Kowloon",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("Dual control"), "{}", text(&o));
    let srv = hm.serve();

    // Officers do not manage accounts.
    let mut officer = Client::new(&srv, "olive-browser");
    assert_eq!(officer.sign_in("olive", &olive).status, 303);
    assert_eq!(officer.get("/ra/staff/accounts").status, 403);

    // Ada proposes; bad input is refused and names its field.
    let mut a = Client::new(&srv, "ada-browser");
    assert_eq!(a.sign_in("ada", &ada).status, 303);
    let queue = a.get("/ra/staff/queue");
    assert_eq!(queue.status, 303);
    assert_eq!(
        queue.header("location").as_deref(),
        Some("/ra/staff/accounts")
    );
    let propose = |c: &mut Client, fields: &[(&str, &str)]| {
        c.submit("/ra/staff/accounts", "/ra/staff/accounts", fields)
    };
    let bad = propose(
        &mut a,
        &[
            ("username", "Owen Lee"),
            ("display_name", "Owen"),
            ("role", "officer"),
            ("centre", "Kowloon"),
        ],
    );
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert!(bad.text().contains("用戶名稱須為"), "{}", bad.text());
    let bad = propose(
        &mut a,
        &[
            ("username", "owen"),
            ("display_name", "Owen"),
            ("role", "officer"),
            ("centre", ""),
        ],
    );
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(
        count(&hm, "SELECT COUNT(*) FROM ra_staff WHERE username = 'owen'"),
        0
    );
    let ok = propose(
        &mut a,
        &[
            ("username", "owen"),
            ("display_name", "李奧雲 Owen Lee"),
            ("role", "officer"),
            ("centre", "Kowloon"),
        ],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        ok.text()
            .contains("data-account=\"owen\" data-state=\"proposed\""),
        "{}",
        ok.text()
    );
    // Proposed: no way to sign in.
    let mut owen = Client::new(&srv, "owen-browser");
    let refused = owen.submit(
        "/ra/staff/sign-in",
        "/ra/staff/sign-in",
        &[("username", "owen"), ("password", ""), ("code", "000000")],
    );
    assert_eq!(refused.status, 401, "{}", refused.text());
    // Ada cannot approve her own proposal; the page does not offer it.
    assert!(!ok.text().contains("id=\"approve-owen\""));
    let own = a.submit("/ra/staff/accounts", "/ra/staff/accounts/owen/approve", &[]);
    assert_eq!(own.status, 403, "{}", own.text());
    assert!(own.text().contains("雙重控制"), "{}", own.text());
    assert_eq!(
        count(
            &hm,
            "SELECT COUNT(*) FROM ra_staff WHERE username = 'owen' AND state = 'proposed'"
        ),
        1
    );

    // Abe approves: the credentials are shown once.
    let mut b2 = Client::new(&srv, "abe-browser");
    assert_eq!(b2.sign_in("abe", &abe).status, 303);
    let page = b2.get("/ra/staff/accounts");
    assert!(
        page.text().contains("id=\"approve-owen\""),
        "{}",
        page.text()
    );
    let approved = b2.submit("/ra/staff/accounts", "/ra/staff/accounts/owen/approve", &[]);
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(
        approved.header("cache-control").as_deref(),
        Some("no-store")
    );
    let password = approved.by_id("initial-password");
    let secret = approved.by_id("totp-secret");
    assert!(password.len() >= 20, "{password}");
    // (minijinja escapes the slashes for HTML.)
    let uri = approved.by_id("totp-uri");
    assert!(
        uri.starts_with("otpauth:") && uri.contains("Hallmark:owen?secret="),
        "{uri}"
    );
    let again = b2.submit("/ra/staff/accounts", "/ra/staff/accounts/owen/approve", &[]);
    assert_eq!(again.status, 409, "{}", again.text());

    // Owen signs in with them, and works.
    let code = hallmark_testkit::judges::totp_now(&secret);
    let signed = owen.submit(
        "/ra/staff/sign-in",
        "/ra/staff/sign-in",
        &[
            ("username", "owen"),
            ("password", &password),
            ("code", &code),
        ],
    );
    assert_eq!(signed.status, 303, "{}", signed.text());
    assert_eq!(owen.get("/ra/staff/queue").status, 200);

    // Abe disables Owen: his session ends at once.
    let off = b2.submit("/ra/staff/accounts", "/ra/staff/accounts/owen/disable", &[]);
    assert_eq!(off.status, 200, "{}", off.text());
    assert!(
        off.text()
            .contains("data-account=\"owen\" data-state=\"disabled\"")
    );
    let gone = owen.get("/ra/staff/queue");
    assert_eq!(gone.status, 303);
    assert_eq!(
        gone.header("location").as_deref(),
        Some("/ra/staff/sign-in")
    );
    // Nor can an administrator disable themselves.
    let me = b2.submit("/ra/staff/accounts", "/ra/staff/accounts/abe/disable", &[]);
    assert_eq!(me.status, 403, "{}", me.text());
    drop(srv);

    assert!(hm.ok(&["audit", "verify"]).contains("OK"));
    for (action, actor) in [
        ("ra.staff.propose", "staff:ada"),
        ("ra.staff.approve", "staff:abe"),
        ("ra.staff.disable", "staff:abe"),
    ] {
        assert_eq!(
            count(
                &hm,
                &format!(
                    "SELECT COUNT(*) FROM audit_log WHERE action = '{action}' AND actor = '{actor}' AND details LIKE '%owen%'"
                )
            ),
            1,
            "{action}"
        );
    }
}
