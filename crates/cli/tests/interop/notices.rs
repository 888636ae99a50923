//! Notices to people, received by a real SMTP server (aiosmtpd): the link
//! that proves an e-mail address before it goes into a certificate (S/MIME
//! Baseline Requirements 3.2.2.2), judged by OpenSSL reading the issued
//! certificate; reminders before expiry by e-mail and, for holders with
//! only a postal address, as PDF letters (pdftotext), each delivered once
//! although the sender is killed mid-run and two senders run at once.

use std::time::Duration;

use super::*;
use common::mail::Smtp;
use common::ra::print_mailer;
use hallmark_testkit::judges::pdftotext;

on_both!(
    email_is_proven_before_it_goes_into_the_certificate,
    reminders_arrive_once_across_kills_and_two_senders,
);

/// The path and query of the confirmation link in a message.
fn link_in(text: &str) -> String {
    let at = text
        .find("/ra/email?")
        .unwrap_or_else(|| panic!("no link in:\n{text}"));
    text[at..].split_whitespace().next().unwrap().to_string()
}

fn query_param(link: &str, name: &str) -> String {
    link.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_string()
}

fn email_is_proven_before_it_goes_into_the_certificate(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(5);
    let amy = hm.staff("amy", "officer", "Central");
    let smtp = Smtp::start(&hm, 0);
    smtp.configure(&hm);
    let srv = hm.serve();
    let r = &people[2];
    let address = "chan.holder@example.hk";

    let mut applicant = Client::new(&srv, "applicant-browser");
    let done = applicant.submit(
        "/ra/apply",
        "/ra/apply",
        &[
            ("id_number", &r.id_number),
            ("name_zh", &r.name_zh),
            ("name_en", &r.name_en),
            ("date_of_birth", &r.date_of_birth),
            ("phone", "9123 4567"),
            ("email", address),
            ("email_in_certificate", "on"),
            ("profile", "personal"),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.text());
    let reference = done.by_id("reference");
    assert!(
        done.text().contains("data-email=\"pending\""),
        "{}",
        done.text()
    );

    // The officer cannot approve before the mailbox is proven.
    let mut officer = Client::new(&srv, "officer-browser");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);
    let page = officer.get(&format!("/ra/staff/applications/{reference}"));
    assert!(
        page.text().contains("data-email=\"pending\""),
        "{}",
        page.text()
    );
    let early = officer.act(&reference, "approve");
    assert_eq!(early.status, 409, "{}", early.text());
    assert!(
        early.text().contains("尚未透過寄往該地址的連結確認"),
        "{}",
        early.text()
    );

    // The confirmation arrives at the address, through SMTP.
    let first = smtp.wait_for(1, Duration::from_secs(30)).remove(0);
    assert_eq!(first.to, vec![address.to_string()]);
    assert!(
        first.subject.contains("Confirm your e-mail address"),
        "{first:?}"
    );
    assert!(
        first.text.contains(&r.name_zh) && first.text.contains(&reference),
        "{first:?}"
    );
    assert!(
        first.message_id.ends_with(".hallmark@hallmark.test>"),
        "{first:?}"
    );
    let link1 = link_in(&first.text);
    let token1 = query_param(&link1, "t");
    assert!(
        token1.len() >= 26,
        "{link1}: a random value of at least 112 bits"
    );

    // Opening the link confirms nothing by itself; a wrong value is refused.
    let mut mailbox = Client::new(&srv, "mail-client");
    let opened = mailbox.get(&link1);
    assert_eq!(opened.status, 200, "{}", opened.text());
    assert_eq!(
        hm.sql_ok(&format!("SELECT COUNT(*) FROM ra_applications WHERE reference = '{reference}' AND email_confirmed_at IS NOT NULL")).trim(),
        "0"
    );
    let wrong = mailbox.submit(
        &link1,
        "/ra/email",
        &[("r", &reference), ("t", "ABCDEFGHJKLMNPQRSTUVWXYZ23")],
    );
    assert_eq!(wrong.status, 401, "{}", wrong.text());

    // The applicant asks for a new link on the status page: the first one
    // stops working.
    let mut tracker = Client::new(&srv, "applicant-browser");
    let seen = tracker.submit(
        "/ra/track",
        "/ra/track",
        &[
            ("reference", &reference),
            ("date_of_birth", &r.date_of_birth),
        ],
    );
    assert!(seen.text().contains("id=\"resend\""), "{}", seen.text());
    let resent = tracker.post(
        "/ra/email/resend",
        &[
            ("csrf", &seen.csrf()),
            ("reference", &reference),
            ("date_of_birth", &r.date_of_birth),
        ],
    );
    assert_eq!(resent.status, 200, "{}", resent.text());
    assert!(
        resent.text().contains("新的連結已寄出"),
        "{}",
        resent.text()
    );
    let got = smtp.wait_for(2, Duration::from_secs(30));
    let link2 = link_in(&got[1].text);
    assert_ne!(got[0].message_id, got[1].message_id);
    let stale = mailbox.submit(&link1, "/ra/email", &[("r", &reference), ("t", &token1)]);
    assert_eq!(stale.status, 401, "{}", stale.text());
    let token2 = query_param(&link2, "t");
    let ok = mailbox.submit(&link2, "/ra/email", &[("r", &reference), ("t", &token2)]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        ok.text().contains("data-email=\"confirmed\""),
        "{}",
        ok.text()
    );
    // Spent.
    let again = mailbox.submit(&link2, "/ra/email", &[("r", &reference), ("t", &token2)]);
    assert_eq!(again.status, 401);

    // Now it is approved, mailed and collected, and the address is in the
    // certificate, as OpenSSL reads it.
    let approved = officer.act(&reference, "approve");
    assert_eq!(approved.status, 200, "{}", approved.text());
    let (_, pin) = print_mailer(&hm, &mut officer, &reference, "mailer");
    let mut holder = Client::new(&srv, "holder-browser");
    let p12 = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &reference), ("pin", &pin)],
    );
    assert_eq!(p12.status, 200, "{}", p12.text());
    std::fs::write(hm.path("holder.p12"), &p12.body).unwrap();
    let pass = format!("pass:{}", pin.replace('-', ""));
    let cert = openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("holder.p12"),
        "-passin",
        &pass,
        "-nokeys",
        "-clcerts",
    ]);
    std::fs::write(hm.path("holder.pem"), &cert).unwrap();
    let san = openssl_ok(&[
        "x509",
        "-in",
        &hm.p("holder.pem"),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(san.contains(&format!("email:{address}")), "{san}");

    drop(srv);
    let log = hm.sql_ok("SELECT actor || ' ' || action FROM audit_log ORDER BY seq");
    for must in ["applicant ra.email.resend", "applicant ra.email.confirm"] {
        assert!(log.contains(must), "audit lacks {must}:\n{log}");
    }
    // Delivered notices keep no recipient or text.
    assert_eq!(
        hm.sql_ok("SELECT COUNT(*) FROM outbox WHERE sealed IS NOT NULL OR status <> 'sent'")
            .trim(),
        "0"
    );
}

/// A random number below `max` (no RNG crate in the tests).
fn jitter(max: u64) -> u64 {
    let mut b = [0u8; 8];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut b).unwrap();
    u64::from_le_bytes(b) % max
}

fn reminders_arrive_once_across_kills_and_two_senders(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(14);
    let amy = hm.staff("amy", "officer", "Central");
    let srv = hm.serve();
    let mut officer = Client::new(&srv, "officer-browser");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);
    let (emails, letters) = (10, 2);
    for (i, r) in people.iter().take(emails + letters).enumerate() {
        let email = if i < emails {
            format!("holder{i}@example.hk")
        } else {
            String::new()
        };
        hm.collected(&srv, &mut officer, r, &email);
    }
    drop(srv);

    // Certificates last three years: a reminder 2000 days before expiry is
    // due for each now. A slow SMTP server (250 ms a message) gives the
    // kills something to interrupt; a short lease lets a killed sender's
    // notices go again soon.
    let smtp = Smtp::start(&hm, 250);
    smtp.configure(&hm);
    hm.set_config("mail", "lease_secs = 6");
    hm.set_config("ra", "remind_before_expiry_days = [2000]");
    let mut kills = 0;
    for _ in 0..3 {
        let mut child = hm.command().args(["notices", "run"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300 + jitter(1500)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 1, "no run was killed mid-way");
    // Two senders at once, until everything is out (the killed runs'
    // notices come back when their lease runs out).
    let start = std::time::Instant::now();
    loop {
        let a = hm.command().args(["notices", "run"]).spawn().unwrap();
        let b = hm.command().args(["notices", "run"]).output().unwrap();
        assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
        assert!(a.wait_with_output().unwrap().status.success());
        let status = hm.ok(&["notices", "status"]);
        if status.contains(&format!("queued 0, sending 0, sent {}", emails + letters)) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{status}");
        std::thread::sleep(Duration::from_secs(1));
    }

    // Each holder got one reminder: one message per Message-ID, and a copy
    // of the same Message-ID only where a kill fell between the server's
    // acceptance and the sender's record of it.
    let got = smtp.received();
    let mut ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort_unstable();
    let all = ids.len();
    ids.dedup();
    eprintln!(
        "{all} messages received for {} reminders across {kills} kills",
        ids.len()
    );
    assert_eq!(ids.len(), emails, "{got:?}");
    assert!(
        all - ids.len() <= kills,
        "{all} messages for {} reminders and {kills} kills",
        ids.len()
    );
    let mut to: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), emails);
    for m in &got {
        assert!(
            m.subject.contains("expires soon") && m.text.contains("到期"),
            "{m:?}"
        );
    }
    // Holders with only a postal address get a letter each, to print.
    let letters_dir = hm.path("letters");
    let pdfs: Vec<_> = std::fs::read_dir(&letters_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .collect();
    assert_eq!(pdfs.len(), letters, "{pdfs:?}");
    let text = pdftotext(&pdfs[0]);
    assert!(
        text.contains("到期") && text.contains("expires on") && text.contains("皇后大道中"),
        "{text}"
    );

    // Nothing more is due, and a later run queues nothing again.
    let out = hm.ok(&["notices", "run"]);
    assert!(
        out.contains("0 reminders queued; 0 notices delivered"),
        "{out}"
    );
    assert_eq!(smtp.received().len(), all);
    let queued = hm.sql_ok("SELECT COUNT(*) FROM audit_log WHERE action = 'ra.reminder.queue'");
    assert!(queued.trim().parse::<u32>().unwrap() >= 1);
    let v = hm.ok(&["audit", "verify"]);
    assert!(v.contains("OK"), "{v}");
}
