//! The applicant's rights: marketing only by opt-in, shown and withdrawn
//! at once; everything held about an application downloadable as JSON;
//! applications that never complete deleted after the retention period
//! (with their bookings, freeing the seats), collected ones kept.

use super::*;

on_both!(consent_is_opt_in_data_is_exported_and_incomplete_ones_purged);

fn apply(srv: &Server, r: &common::ra::Resident, marketing: bool) -> String {
    let mut c = Client::new(srv, "applicant");
    let mut fields = vec![
        ("id_number", r.id_number.as_str()),
        ("name_zh", r.name_zh.as_str()),
        ("name_en", r.name_en.as_str()),
        ("date_of_birth", r.date_of_birth.as_str()),
        ("phone", "9123 4567"),
        ("email", "private@example.hk"),
        ("profile", "personal"),
    ];
    if marketing {
        fields.push(("marketing_consent", "yes"));
    }
    let done = c.submit("/ra/apply", "/ra/apply", &fields);
    assert_eq!(done.status, 200, "{}", done.text());
    done.by_id("reference")
}

fn consent_is_opt_in_data_is_exported_and_incomplete_ones_purged(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(5);
    let amy = hm.staff("amy", "officer", "Central");
    let soon = unix_now() / 3600 * 3600 + 2 * 86_400;
    hm.ok(&[
        "appointments",
        "open",
        "--centre",
        "Central",
        "--start",
        &hk_time(soon),
        "--capacity",
        "2",
    ]);
    let srv = hm.serve();
    let (a, b2) = (&people[0], &people[1]);
    let ra = apply(&srv, a, true);
    let rb = apply(&srv, b2, false);

    let mut c = Client::new(&srv, "applicant-a");
    let page = c.submit(
        "/ra/track",
        "/ra/track",
        &[("reference", &ra), ("date_of_birth", &a.date_of_birth)],
    );
    assert!(page.text().contains("id=\"marketing\""), "{}", page.text());
    let csrf = page.csrf();
    let form = |action: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("reference", ra.clone()),
            ("date_of_birth", a.date_of_birth.clone()),
            ("action", action.to_string()),
        ]
    };
    let post = |c: &mut Client, path: &str, f: Vec<(&str, String)>| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.post(path, &f)
    };
    // Book a seat (the purge must give it back).
    let mut booking = form("book");
    booking.push(("slot", format!("Central|{soon}")));
    assert_eq!(post(&mut c, "/ra/appointment", booking).status, 200);

    // The download holds the particulars as given.
    let export = post(&mut c, "/ra/my-data", form("export"));
    assert_eq!(export.status, 200, "{}", export.text());
    assert_eq!(
        export.header("content-type").as_deref(),
        Some("application/json")
    );
    let v: serde_json::Value = serde_json::from_slice(&export.body).unwrap();
    assert_eq!(v["particulars"]["id_number"], a.id_number.as_str());
    assert_eq!(v["particulars"]["name_zh"], a.name_zh.as_str());
    assert_eq!(v["application"]["status"], "awaiting-approval");
    assert!(v["marketing_consent_since"].is_string(), "{v}");
    assert_eq!(v["appointment"]["centre"], "Central");
    // A wrong date of birth downloads nothing.
    let mut wrong = form("export");
    wrong[2].1 = "1901-01-01".into();
    assert_eq!(post(&mut c, "/ra/my-data", wrong).status, 404);

    // Withdrawn at once; the next download says so.
    let w = post(&mut c, "/ra/my-data", form("withdraw"));
    assert_eq!(w.status, 200, "{}", w.text());
    assert!(
        !w.text().contains("id=\"marketing\"") && w.text().contains("同意已撤回"),
        "{}",
        w.text()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&post(&mut c, "/ra/my-data", form("export")).body).unwrap();
    assert!(v["marketing_consent_since"].is_null(), "{v}");
    // Never given: nothing to show or withdraw.
    let mut cb = Client::new(&srv, "applicant-b");
    let pb = cb.submit(
        "/ra/track",
        "/ra/track",
        &[("reference", &rb), ("date_of_birth", &b2.date_of_birth)],
    );
    assert!(!pb.text().contains("id=\"marketing\""), "{}", pb.text());

    // A third is collected; then all three are aged past the retention.
    let mut officer = Client::new(&srv, "officer");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);
    let done = hm.collected(&srv, &mut officer, &people[2], "kept@example.hk");
    drop(srv);
    hm.sql_ok(&format!(
        "UPDATE ra_applications SET updated_at = updated_at - {}",
        200 * 86_400
    ));
    let out = hm.ok(&["applications", "purge"]);
    assert!(
        out.contains("2 incomplete applications older than 180 days deleted"),
        "{out}"
    );
    assert_eq!(
        hm.sql_ok("SELECT reference FROM ra_applications").trim(),
        done.reference
    );
    assert_eq!(hm.sql_ok("SELECT COUNT(*) FROM ra_bookings").trim(), "0");
    assert_eq!(
        hm.sql_ok(&format!(
            "SELECT booked FROM ra_slots WHERE starts_at = {soon}"
        ))
        .trim(),
        "0"
    );
    let again = hm.ok(&["applications", "purge"]);
    assert!(again.contains("0 incomplete"), "{again}");
    let log = hm.sql_ok("SELECT action FROM audit_log ORDER BY seq");
    for must in ["ra.data.export", "ra.marketing.withdraw", "ra.purge"] {
        assert!(log.contains(must), "audit lacks {must}");
    }
    let v = hm.ok(&["audit", "verify"]);
    assert!(v.contains("OK"), "{v}");
}
