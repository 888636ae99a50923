//! The registration authority through its pages: an application from the
//! form to the collected certificate, judged by OpenSSL (PKCS#12, OCSP),
//! pdftotext (the PIN mailer), PyOTP (staff codes); dual control, roles,
//! lockouts, CSRF, session binding and expiry; bad input; personal data
//! absent from a raw dump of the database.

use super::*;
use common::ra::print_mailer;
use hallmark_testkit::judges::{pdffonts, pdftotext};

on_both!(
    online_application_is_approved_mailed_and_collected,
    dual_control_roles_and_partners_are_enforced,
    sign_in_locks_replays_fail_sessions_bind_and_expire,
    bad_input_is_explained_in_both_languages_and_nothing_is_saved,
    wrong_pins_spend_the_pin_and_a_new_mailer_restores_it,
    registry_mismatches_wait_and_bad_csv_names_its_line,
);

fn reference_of(p: &Page) -> String {
    p.by_id("reference")
}

fn online_application_is_approved_mailed_and_collected(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(20);
    let amy = hm.staff("amy", "officer", "Central");
    let srv = hm.serve();
    let r = &people[3];

    // The applicant applies online, in Chinese (the default).
    let mut applicant = Client::new(&srv, "applicant-browser");
    let home = applicant.get("/ra");
    assert_eq!(home.status, 200);
    assert!(home.text().contains("電子證書服務"), "{}", home.text());
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(home.header("x-frame-options").as_deref(), Some("DENY"));
    let done = applicant.apply("/ra/apply", r, "holder@example.hk");
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.data_status(), "awaiting-approval");
    let reference = reference_of(&done);

    // The applicant follows it with the date of birth; a wrong date tells nothing.
    let mut tracker = Client::new(&srv, "applicant-browser");
    let seen = tracker.submit(
        "/ra/track",
        "/ra/track",
        &[
            ("reference", &reference),
            ("date_of_birth", &r.date_of_birth),
        ],
    );
    assert_eq!(seen.data_status(), "awaiting-approval");
    let wrong = tracker.submit(
        "/ra/track",
        "/ra/track",
        &[("reference", &reference), ("date_of_birth", "1901-01-01")],
    );
    assert_eq!(wrong.status, 404);

    // An officer signs in, finds it in the queue, approves, prints the mailer.
    let mut officer = Client::new(&srv, "officer-browser");
    let s = officer.sign_in("amy", &amy);
    assert_eq!(s.status, 303, "{}", s.text());
    let queue = officer.get("/ra/staff/queue");
    assert_eq!(queue.status, 200);
    assert!(
        queue.text().contains(&reference) && queue.text().contains(&r.name_zh),
        "{}",
        queue.text()
    );
    let approved = officer.act(&reference, "approve");
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(approved.data_status(), "approved");
    let (pdf, pin) = print_mailer(&hm, &mut officer, &reference, "mailer");
    let text = pdftotext(&pdf);
    for must in [
        r.name_zh.as_str(),
        r.name_en.as_str(),
        reference.as_str(),
        "個人密碼",
        "PIN",
    ] {
        assert!(text.contains(must), "mailer lacks {must:?}:\n{text}");
    }
    // The ID number is masked; the CJK font is embedded (a subset).
    assert!(!text.contains(&r.id_number[..7]), "{text}");
    let fonts = pdffonts(&pdf);
    assert!(
        fonts.contains("NotoSansCJK")
            && fonts
                .lines()
                .any(|l| l.contains("CJK") && l.contains(" yes yes ")),
        "{fonts}"
    );

    // The holder collects the PKCS#12 with the PIN; OpenSSL opens it with it.
    let mut holder = Client::new(&srv, "holder-browser");
    let p12 = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &reference.to_lowercase()), ("pin", &pin)],
    );
    assert_eq!(p12.status, 200, "{}", p12.text());
    assert_eq!(
        p12.header("content-type").as_deref(),
        Some("application/x-pkcs12")
    );
    let p12_file = hm.p("holder.p12");
    std::fs::write(&p12_file, &p12.body).unwrap();
    let pass = format!("pass:{}", pin.replace('-', ""));
    let cert = openssl_ok(&[
        "pkcs12", "-in", &p12_file, "-passin", &pass, "-nokeys", "-clcerts",
    ]);
    std::fs::write(hm.path("holder.pem"), &cert).unwrap();
    let subject = openssl_ok(&["x509", "-in", &hm.p("holder.pem"), "-noout", "-subject"]);
    assert!(
        subject.contains(&format!("CN = {}", r.name_en)),
        "{subject}"
    );
    openssl_ok(&[
        "pkcs12",
        "-in",
        &p12_file,
        "-passin",
        &pass,
        "-nocerts",
        "-nodes",
        "-out",
        &hm.p("holder.key"),
    ]);
    // Once only.
    let again = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &reference), ("pin", &pin)],
    );
    assert_eq!(again.status, 401);

    // The certificate chains, OCSP knows it, and the officer's page shows it.
    hm.fetch_ca_files(&srv);
    assert!(verify_chain(&hm, &hm.p("holder.pem")).contains(": OK"));
    let ocsp = ocsp_ask(
        &hm,
        &srv,
        "issuing.pem",
        &["-cert", &hm.p("holder.pem")],
        &[],
    );
    assert!(ocsp.contains(": good"), "{ocsp}");
    let page = officer.get(&format!("/ra/staff/applications/{reference}"));
    assert_eq!(page.data_status(), "activated");

    // English on request, through the switch.
    let en = applicant.get("/ra/lang?to=en&back=/ra/apply");
    assert_eq!(en.status, 303);
    assert!(
        applicant
            .get("/ra/apply")
            .text()
            .contains("Apply for a personal e-Cert")
    );

    // Audit: who did what, chain intact.
    drop(srv);
    let log = hm.sql_ok("SELECT actor || ' ' || action FROM audit_log ORDER BY seq");
    for must in [
        "applicant ra.application.submit",
        "staff:amy ra.staff.sign-in",
        "staff:amy ra.application.approve",
        "staff:amy ra.mailer.print",
        "holder ra.certificate.collect",
    ] {
        assert!(log.contains(must), "audit lacks {must}:\n{log}");
    }
    let v = hm.ok(&["audit", "verify"]);
    assert!(v.contains("OK"), "{v}");

    // A dump of the database holds none of the person's particulars in the
    // clear, outside the issued certificate itself (which names its
    // holder, as a certificate must, in `certificates`).
    let dump: Vec<u8> = match hm.db_url() {
        None => std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor l in c.iterdump():\n  if not l.startswith('INSERT INTO \"certificates\"'): print(l)",
                &hm.p("hallmark.db"),
            ])
            .output()
            .unwrap()
            .stdout,
        Some(url) => std::process::Command::new("pg_dump")
            .args(["--exclude-table-data=certificates", url])
            .output()
            .unwrap()
            .stdout,
    };
    let dump = String::from_utf8_lossy(&dump);
    assert!(
        dump.contains("ra_applications") && dump.contains("ra_residents") && dump.len() > 10_000,
        "the dump is real ({} bytes)",
        dump.len()
    );
    for secret in [
        r.id_number.as_str(),
        r.name_zh.as_str(),
        r.name_en.as_str(),
        "holder@example.hk",
        "91234567",
        r.date_of_birth.as_str(),
    ] {
        assert!(
            !dump.contains(secret),
            "{secret:?} is in the clear in the database"
        );
    }
    // The certificate itself names the holder, as certificates do.
    assert!(
        hm.sql_ok("SELECT COUNT(*) FROM ra_applications WHERE status = 'activated'")
            .trim()
            == "1"
    );
}

fn dual_control_roles_and_partners_are_enforced(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(10);
    let amy = hm.staff("amy", "officer", "Central");
    let ben = hm.staff("ben", "supervisor", "Central");
    let aud = hm.staff("audrey", "auditor", "Central");
    let bank_a = hm.staff("bank-a", "officer", "partner:bank-a");
    let bank_b = hm.staff("bank-b", "officer", "partner:bank-b");
    let srv = hm.serve();

    // Amy enters an application at the counter: she cannot approve it.
    let mut a = Client::new(&srv, "amy-browser");
    assert_eq!(a.sign_in("amy", &amy).status, 303);
    let entered = a.apply("/ra/staff/counter", &people[0], "");
    // No e-mail: a postal address is needed instead, named in the message.
    assert_eq!(entered.status, 422, "{}", entered.text());
    assert!(entered.text().contains("郵寄地址"), "{}", entered.text());
    let entered = a.apply("/ra/staff/counter", &people[0], "c@example.hk");
    assert_eq!(entered.status, 303, "{}", entered.text());
    let reference = entered
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let refused = a.act(&reference, "approve");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("雙重控制"), "{}", refused.text());
    assert_eq!(refused.data_status(), "awaiting-approval");
    assert_eq!(
        hm.sql_ok(&format!(
            "SELECT entered_by FROM ra_applications WHERE reference = '{reference}'"
        ))
        .trim(),
        "staff:amy"
    );

    // An auditor sees but cannot approve.
    let mut au = Client::new(&srv, "audrey-browser");
    assert_eq!(au.sign_in("audrey", &aud).status, 303);
    assert_eq!(au.get("/ra/staff/queue").status, 200);
    assert_eq!(au.act(&reference, "approve").status, 403);

    // Ben, a second person, approves.
    let mut bn = Client::new(&srv, "ben-browser");
    assert_eq!(bn.sign_in("ben", &ben).status, 303);
    let ok = bn.act(&reference, "approve");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.data_status(), "approved");
    // Approving twice does not move it again.
    assert_eq!(bn.act(&reference, "approve").status, 409);

    // A partner bank's application: another bank's officer cannot approve
    // it, Central's cannot either, the entering officer cannot; a second
    // officer of the same bank could (none here), so it stays waiting.
    let mut ba = Client::new(&srv, "bank-a-browser");
    assert_eq!(ba.sign_in("bank-a", &bank_a).status, 303);
    let e = ba.apply("/ra/staff/counter", &people[1], "p@example.hk");
    assert_eq!(e.status, 303, "{}", e.text());
    let pref = e
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        hm.sql_ok(&format!(
            "SELECT channel || ' ' || centre FROM ra_applications WHERE reference = '{pref}'"
        ))
        .trim(),
        "partner partner:bank-a"
    );
    let mut bb = Client::new(&srv, "bank-b-browser");
    assert_eq!(bb.sign_in("bank-b", &bank_b).status, 303);
    let other_bank = bb.act(&pref, "approve");
    assert_eq!(other_bank.status, 403, "{}", other_bank.text());
    assert_eq!(bn.act(&pref, "approve").status, 403);
    assert_eq!(ba.act(&pref, "approve").status, 403);
    assert_eq!(
        hm.sql_ok(&format!(
            "SELECT status FROM ra_applications WHERE reference = '{pref}'"
        ))
        .trim(),
        "awaiting-approval"
    );
}

fn sign_in_locks_replays_fail_sessions_bind_and_expire(b: Backend) {
    let hm = setup!(b);
    let amy = hm.staff("amy", "officer", "Central");
    let ben = hm.staff("ben", "officer", "Central");
    let srv = hm.serve();

    // Not signed in: the staff pages send to the sign-in page.
    let mut anon = Client::new(&srv, "anon");
    let r = anon.get("/ra/staff/queue");
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/ra/staff/sign-in"))
    );

    // Five wrong passwords lock the account; then even the right one fails.
    let mut c = Client::new(&srv, "amy-browser");
    for _ in 0..5 {
        let code = hallmark_testkit::judges::totp_now(&amy);
        let p = c.submit(
            "/ra/staff/sign-in",
            "/ra/staff/sign-in",
            &[
                ("username", "amy"),
                ("password", "not the password"),
                ("code", &code),
            ],
        );
        assert_eq!(p.status, 401);
        assert!(p.text().contains("不正確"), "{}", p.text());
    }
    let locked = c.sign_in("amy", &amy);
    assert_eq!(locked.status, 401);
    assert!(locked.text().contains("鎖定"), "{}", locked.text());
    assert!(
        hm.sql_ok("SELECT locked_until FROM ra_staff WHERE username = 'amy'")
            .trim()
            .parse::<i64>()
            .unwrap()
            > 0
    );

    // A wrong TOTP code with the right password fails too.
    let wrong_code = c.submit(
        "/ra/staff/sign-in",
        "/ra/staff/sign-in",
        &[
            ("username", "ben"),
            ("password", ra::STAFF_PASSWORD),
            ("code", "000000"),
        ],
    );
    assert_eq!(wrong_code.status, 401);

    // Ben signs in; the same code cannot be used again (replay).
    let code = hallmark_testkit::judges::totp_now(&ben);
    let mut bn = Client::new(&srv, "ben-browser");
    let ok = bn.submit(
        "/ra/staff/sign-in",
        "/ra/staff/sign-in",
        &[
            ("username", "ben"),
            ("password", ra::STAFF_PASSWORD),
            ("code", &code),
        ],
    );
    assert_eq!(ok.status, 303, "{}", ok.text());
    let cookie = ok.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let mut thief = Client::new(&srv, "ben-browser");
    let replay = thief.submit(
        "/ra/staff/sign-in",
        "/ra/staff/sign-in",
        &[
            ("username", "ben"),
            ("password", ra::STAFF_PASSWORD),
            ("code", &code),
        ],
    );
    assert_eq!(replay.status, 401);
    assert_eq!(bn.get("/ra/staff/queue").status, 200);

    // The session cookie works only in the browser it was made for.
    let mut other = Client::new(&srv, "another-browser");
    other.jar = bn.jar.clone();
    assert_eq!(other.get("/ra/staff/queue").status, 303);

    // A form without the session's CSRF token is refused.
    let no_csrf = bn.post("/ra/staff/counter", &[("id_number", "A123456(3)")]);
    assert_eq!(no_csrf.status, 403);
    let bad_csrf = bn.post(
        "/ra/staff/sign-out",
        &[("csrf", "00000000000000000000000000000000")],
    );
    assert_eq!(bad_csrf.status, 403);
    assert_eq!(bn.get("/ra/staff/queue").status, 200);

    // A session past its expiry is over.
    hm.sql_ok("UPDATE ra_sessions SET expires_at = 1");
    assert_eq!(bn.get("/ra/staff/queue").status, 303);

    // Sign-out ends a session for good.
    let mut b2 = Client::new(&srv, "ben-browser-2");
    std::thread::sleep(std::time::Duration::from_secs(31)); // the next TOTP step
    assert_eq!(b2.sign_in("ben", &ben).status, 303);
    let csrf = b2.get("/ra/staff/queue").csrf();
    assert_eq!(
        b2.post("/ra/staff/sign-out", &[("csrf", &csrf)]).status,
        303
    );
    let mut b3 = Client::new(&srv, "ben-browser-2");
    b3.jar.insert(
        "hm_session".into(),
        bn.jar.get("hm_session").cloned().unwrap_or_default(),
    );
    assert_eq!(b3.get("/ra/staff/queue").status, 303);
    let log = hm.sql_ok("SELECT action FROM audit_log WHERE actor = 'staff:amy'");
    // Five failures, audited; attempts while locked are refused unread.
    assert_eq!(log.matches("ra.staff.sign-in-failed").count(), 5, "{log}");
}

fn bad_input_is_explained_in_both_languages_and_nothing_is_saved(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(3);
    let srv = hm.serve();
    let r = &people[0];
    let mut zh = Client::new(&srv, "zh");
    let mut en = Client::new(&srv, "en");
    en.get("/ra/lang?to=en&back=/ra");
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        ("id_number", "A123456(4)", "核對數字", "check digit"),
        ("id_number", "123", "身份證號碼", "identity card number"),
        ("name_en", "陳大文", "英文姓名", "English name"),
        ("date_of_birth", "2099-01-01", "出生日期", "date of birth"),
        ("date_of_birth", "1990-02-30", "出生日期", "date of birth"),
        ("phone", "12", "聯絡電話", "phone"),
        ("email", "not-an-address", "電郵地址", "e-mail address"),
    ];
    for (field, value, want_zh, want_en) in cases {
        for (c, want) in [(&mut zh, want_zh), (&mut en, want_en)] {
            let mut fields = vec![
                ("id_number", r.id_number.as_str()),
                ("name_zh", r.name_zh.as_str()),
                ("name_en", r.name_en.as_str()),
                ("date_of_birth", r.date_of_birth.as_str()),
                ("phone", "91234567"),
                ("email", "x@example.hk"),
            ];
            for f in fields.iter_mut() {
                if f.0 == field {
                    f.1 = value;
                }
            }
            let p = c.submit("/ra/apply", "/ra/apply", &fields);
            assert_eq!(p.status, 422, "{field}={value}: {}", p.text());
            let t = p.text();
            let alert = &t[t.find("role=\"alert\"").unwrap()..];
            assert!(alert.contains(want), "{field}={value}: {alert}");
            // The field is marked, and what was typed is kept.
            assert!(
                t.contains(&format!("id=\"{field}\" name=\"{field}\"")),
                "{t}"
            );
            assert!(t.contains("aria-invalid=\"true\""), "{t}");
            assert!(t.contains(&format!("value=\"{}\"", r.name_zh)), "{t}");
        }
    }
    // A hostile value is escaped, never markup.
    let p = zh.submit(
        "/ra/apply",
        "/ra/apply",
        &[("id_number", "<script>alert(1)</script>")],
    );
    assert_eq!(p.status, 422);
    assert!(!p.text().contains("<script>") && p.text().contains("&lt;script&gt;"));
    // A body over the limit is refused before parsing.
    let big = "x".repeat(64 * 1024);
    let csrf = zh.get("/ra/apply").csrf();
    assert_eq!(
        zh.post("/ra/apply", &[("csrf", &csrf), ("name_zh", &big)])
            .status,
        413
    );
    // No CSRF token (another site's form): refused.
    let mut fresh = Client::new(&srv, "elsewhere");
    assert_eq!(
        fresh
            .post("/ra/apply", &[("id_number", &r.id_number)])
            .status,
        403
    );
    // The language switch goes back only to this site's pages.
    let away = zh.get("/ra/lang?to=en&back=//evil.example/");
    assert_eq!(away.header("location").as_deref(), Some("/ra"));
    drop(srv);
    assert_eq!(
        hm.sql_ok("SELECT COUNT(*) FROM ra_applications").trim(),
        "0"
    );
}

fn wrong_pins_spend_the_pin_and_a_new_mailer_restores_it(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(5);
    let amy = hm.staff("amy", "officer", "Central");
    let srv = hm.serve();
    let mut applicant = Client::new(&srv, "a");
    let reference = reference_of(&applicant.apply("/ra/apply", &people[2], "p@example.hk"));
    let mut officer = Client::new(&srv, "o");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);
    // No PIN before approval.
    let early = applicant.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &reference), ("pin", "AAAA-BBBB-CCCC")],
    );
    assert_eq!(early.status, 401);
    assert_eq!(officer.act(&reference, "approve").status, 200);
    let (_, first) = print_mailer(&hm, &mut officer, &reference, "first");
    let mut holder = Client::new(&srv, "h");
    for i in 1..=5 {
        let p = holder.submit(
            "/ra/collect",
            "/ra/collect",
            &[("reference", &reference), ("pin", "AAAA-BBBB-CCCC")],
        );
        assert_eq!(p.status, 401, "try {i}");
        if i == 5 {
            assert!(p.text().contains("已失效"), "{}", p.text());
        }
    }
    // The right PIN no longer works.
    assert_eq!(
        holder
            .submit(
                "/ra/collect",
                "/ra/collect",
                &[("reference", &reference), ("pin", &first)]
            )
            .status,
        401
    );
    // A new mailer (audited) gives a new PIN; the first stays dead.
    let (_, second) = print_mailer(&hm, &mut officer, &reference, "second");
    assert_ne!(first, second);
    assert_eq!(
        holder
            .submit(
                "/ra/collect",
                "/ra/collect",
                &[("reference", &reference), ("pin", &first)]
            )
            .status,
        401
    );
    let ok = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &reference), ("pin", &second)],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    drop(srv);
    let prints =
        hm.sql_ok("SELECT details FROM audit_log WHERE action = 'ra.mailer.print' ORDER BY seq");
    assert_eq!(prints.lines().count(), 2, "{prints}");
    assert!(
        !prints.contains(&second) && !prints.contains(&second.replace('-', "")),
        "no PIN in the audit log"
    );
}

fn registry_mismatches_wait_and_bad_csv_names_its_line(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(5);
    // A bad row stops the import with its line number.
    std::fs::write(hm.path("bad.csv"), "id_number,name_zh,name_en,date_of_birth\nA123456(3),陳大文,CHAN TAI MAN,1980-01-01\nA123456(4),李小明,LEE SIU MING,1981-01-01\n").unwrap();
    let err = hm.fails(&["registry", "import", &hm.p("bad.csv")]);
    assert!(
        err.contains("line 3") && err.contains("check digit"),
        "{err}"
    );
    let srv = hm.serve();
    // A wrong date of birth, and a person the registry does not know,
    // wait for the registry and stay out of the approval queue.
    let mut wrong = people[1].clone();
    wrong.date_of_birth = "1999-09-09".into();
    let mut c = Client::new(&srv, "a");
    let p = c.apply("/ra/apply", &wrong, "w@example.hk");
    assert_eq!(p.data_status(), "awaiting-registry");
    let stranger = Resident {
        id_number: "A123456(3)".into(),
        name_zh: "陳大文".into(),
        name_en: "CHAN TAI MAN".into(),
        date_of_birth: "1980-01-01".into(),
    };
    let q = c.apply("/ra/apply", &stranger, "s@example.hk");
    assert_eq!(q.data_status(), "awaiting-registry");
    drop(srv);
    let rows = hm.sql_ok("SELECT registry FROM ra_applications ORDER BY registry");
    assert_eq!(
        rows.split_whitespace().collect::<Vec<_>>(),
        ["mismatch", "unknown"]
    );
}
