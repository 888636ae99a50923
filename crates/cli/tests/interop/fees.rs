//! Fees: a holder pays through the built-in test provider (a checkout
//! page, then its signed webhook), a declined attempt charges nothing, the
//! receipt PDF (pdftotext) names the holder and the amount; webhooks that
//! arrive twice or late change nothing, a forged one is refused, a refund
//! makes the fee due again.

use super::*;
use hallmark_testkit::judges::pdftotext;

on_both!(
    a_fee_is_paid_once_through_the_provider_with_a_receipt,
    unpaid_certificates_are_reminded_then_revoked,
);

const SECRET: &str = "webhook-secret-for-the-tests";

fn hmac_hex(body: &str) -> String {
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            SECRET,
            body,
        ])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn a_fee_is_paid_once_through_the_provider_with_a_receipt(b: Backend) {
    let hm = setup!(b);
    std::fs::write(hm.path("webhook.secret"), SECRET).unwrap();
    hm.set_config(
        "ra",
        &format!(
            "payment_webhook_secret_file = \"{}\"",
            hm.p("webhook.secret")
        ),
    );
    let people = hm.registry(3);
    let amy = hm.staff("amy", "officer", "Central");
    let srv = hm.serve();
    let mut officer = Client::new(&srv, "amy");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);
    let r = &people[0];
    let c = hm.collected(&srv, &mut officer, r, "payer@example.hk");

    let mut holder = Client::new(&srv, "holder");
    let track = |holder: &mut Client| {
        holder.submit(
            "/ra/track",
            "/ra/track",
            &[
                ("reference", &c.reference),
                ("date_of_birth", &r.date_of_birth),
            ],
        )
    };
    let page = track(&mut holder);
    assert!(
        page.text().contains("data-fee=\"due\"") && page.text().contains("HK$100.00"),
        "{}",
        page.text()
    );
    let start = |holder: &mut Client, page: &Page| -> String {
        let go = holder.post(
            "/ra/pay",
            &[
                ("csrf", &page.csrf()),
                ("reference", &c.reference),
                ("date_of_birth", &r.date_of_birth),
            ],
        );
        assert_eq!(go.status, 303, "{}", go.text());
        let to = go.header("location").unwrap();
        to[to.find("/ra/pay/test/").unwrap()..].to_string()
    };

    // Declined at the provider: nothing is paid.
    let checkout = start(&mut holder, &page);
    let declined = holder.submit(&checkout, &checkout, &[("outcome", "decline")]);
    assert!(
        declined.text().contains("data-paid=\"false\""),
        "{}",
        declined.text()
    );
    assert!(track(&mut holder).text().contains("data-fee=\"due\""));

    // Paid.
    let page = track(&mut holder);
    let checkout = start(&mut holder, &page);
    let shown = holder.get(&checkout);
    assert!(shown.text().contains("HK$100.00"), "{}", shown.text());
    let paid = holder.submit(&checkout, &checkout, &[("outcome", "pay")]);
    assert!(
        paid.text().contains("data-paid=\"true\""),
        "{}",
        paid.text()
    );
    let page = track(&mut holder);
    assert!(page.text().contains("data-fee=\"paid\""), "{}", page.text());
    let pdf = holder.post(
        "/ra/receipt",
        &[
            ("csrf", &page.csrf()),
            ("reference", &c.reference),
            ("date_of_birth", &r.date_of_birth),
        ],
    );
    assert_eq!(
        pdf.header("content-type").as_deref(),
        Some("application/pdf")
    );
    std::fs::write(hm.path("receipt.pdf"), &pdf.body).unwrap();
    let text = pdftotext(&hm.path("receipt.pdf"));
    for must in [
        "HK$100.00",
        r.name_zh.as_str(),
        r.name_en.as_str(),
        "Receipt No. 00000001",
        c.reference.as_str(),
    ] {
        assert!(text.contains(must), "receipt lacks {must:?}:\n{text}");
    }
    // Paying again is refused.
    let again = holder.post(
        "/ra/pay",
        &[
            ("csrf", &page.csrf()),
            ("reference", &c.reference),
            ("date_of_birth", &r.date_of_birth),
        ],
    );
    assert_eq!(again.status, 409, "{}", again.text());

    // The provider's webhook again (a retry), late, forged, then a refund.
    let id = checkout.rsplit('/').next().unwrap().to_string();
    let hook = |body: &str, sig: &str| {
        let (status, body) = srv.request(
            "POST",
            "/ra/payments/webhook",
            &[
                ("hallmark-signature", sig),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        );
        (status, String::from_utf8_lossy(&body).to_string())
    };
    let captured =
        format!("{{\"event\":\"captured\",\"payment\":\"{id}\",\"amount_cents\":10000}}");
    assert_eq!(
        hook(&captured, &hmac_hex(&captured)),
        (200, "{\"applied\":false}".to_string())
    );
    let late = format!("{{\"event\":\"declined\",\"payment\":\"{id}\",\"amount_cents\":10000}}");
    assert_eq!(
        hook(&late, &hmac_hex(&late)),
        (200, "{\"applied\":false}".to_string())
    );
    let (status, _) = hook(&captured, &hmac_hex("something else"));
    assert_eq!(status, 401);
    let refund = format!("{{\"event\":\"refunded\",\"payment\":\"{id}\",\"amount_cents\":10000}}");
    assert_eq!(
        hook(&refund, &hmac_hex(&refund)),
        (200, "{\"applied\":true}".to_string())
    );
    assert!(track(&mut holder).text().contains("data-fee=\"due\""));

    drop(srv);
    let log =
        hm.sql_ok("SELECT action FROM audit_log WHERE action LIKE 'ra.payment.%' ORDER BY seq");
    assert_eq!(
        log.split_whitespace().collect::<Vec<_>>(),
        [
            "ra.payment.start",
            "ra.payment.declined",
            "ra.payment.start",
            "ra.payment.captured",
            "ra.payment.refunded"
        ]
    );
    let v = hm.ok(&["audit", "verify"]);
    assert!(v.contains("OK"), "{v}");
}

fn unpaid_certificates_are_reminded_then_revoked(b: Backend) {
    let hm = setup!(b);
    std::fs::write(hm.path("webhook.secret"), SECRET).unwrap();
    hm.set_config(
        "ra",
        &format!(
            "payment_webhook_secret_file = \"{}\"",
            hm.p("webhook.secret")
        ),
    );
    let people = hm.registry(3);
    let amy = hm.staff("amy", "officer", "Central");
    let srv = hm.serve();
    let mut officer = Client::new(&srv, "amy");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);
    let payer = hm.collected(&srv, &mut officer, &people[0], "payer@example.hk");
    let late = hm.collected(&srv, &mut officer, &people[1], "late@example.hk");
    // The payer pays through the provider.
    let mut holder = Client::new(&srv, "payer");
    let page = holder.submit(
        "/ra/track",
        "/ra/track",
        &[
            ("reference", &payer.reference),
            ("date_of_birth", &people[0].date_of_birth),
        ],
    );
    let go = holder.post(
        "/ra/pay",
        &[
            ("csrf", &page.csrf()),
            ("reference", &payer.reference),
            ("date_of_birth", &people[0].date_of_birth),
        ],
    );
    let to = go.header("location").unwrap();
    let checkout = to[to.find("/ra/pay/test/").unwrap()..].to_string();
    let paid = holder.submit(&checkout, &checkout, &[("outcome", "pay")]);
    assert!(
        paid.text().contains("data-paid=\"true\""),
        "{}",
        paid.text()
    );
    drop(srv);

    // The free period ends in ten days: only the one who has not paid is
    // reminded, once.
    let smtp = common::mail::Smtp::start(&hm, 0);
    smtp.configure(&hm);
    hm.set_config("ra.fees.personal", "amount_cents = 10000");
    hm.set_config("ra.fees.personal", "free_days = 10");
    let out = hm.ok(&["notices", "run"]);
    assert!(out.contains("1 reminders queued"), "{out}");
    let got = smtp.wait_for(1, std::time::Duration::from_secs(20));
    assert_eq!(got[0].to, vec!["late@example.hk".to_string()]);
    assert!(
        got[0].subject.contains("Your e-Cert fee") && got[0].text.contains("HK$100.00"),
        "{:?}",
        got[0]
    );
    assert!(hm.ok(&["notices", "run"]).contains("0 reminders queued"));

    // Past the free period and the grace: revoked, and told.
    hm.set_config("ra.fees.personal", "free_days = 0");
    hm.set_config("ra", "unpaid_grace_days = 0");
    let out = hm.ok(&["notices", "run"]);
    assert!(out.contains("1 unpaid certificates revoked"), "{out}");
    let got = smtp.wait_for(2, std::time::Duration::from_secs(20));
    assert!(
        got[1].subject.contains("revoked") && got[1].to == vec!["late@example.hk".to_string()],
        "{:?}",
        got[1]
    );
    let reasons = hm.sql_ok(&format!(
        "SELECT COALESCE(c.reason, -1) FROM certificates c JOIN ra_applications a ON a.issuer = c.issuer AND a.serial = c.serial WHERE a.reference IN ('{}', '{}') ORDER BY a.reference = '{}'",
        payer.reference, late.reference, late.reference
    ));
    // The payer's is not revoked; the other's with cessationOfOperation (5).
    assert_eq!(
        reasons.split_whitespace().collect::<Vec<_>>(),
        ["-1", "5"],
        "{reasons}"
    );
    assert!(!hm.ok(&["notices", "run"]).contains("revoked"));
    let v = hm.ok(&["audit", "verify"]);
    assert!(v.contains("OK"), "{v}");
}
