//! Counter appointments: ten applicants race for a slot of three and
//! exactly three get it; a change moves the seat, a cancel frees it; the
//! day before, the reminder reaches a real SMTP server (aiosmtpd) once.

use std::time::Duration;

use super::*;
use common::mail::Smtp;

on_both!(appointments_never_overfill_and_remind_the_day_before);

use common::hk_time as hk;

fn appointments_never_overfill_and_remind_the_day_before(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(12);
    let smtp = Smtp::start(&hm, 0);
    smtp.configure(&hm);
    let now = unix_now() / 60 * 60;
    let (soon, later) = (now + 20 * 3600, now + 3 * 86_400);
    let out = hm.ok(&[
        "appointments",
        "open",
        "--centre",
        "Central",
        "--start",
        &hk(soon),
        "--capacity",
        "3",
    ]);
    assert!(out.contains("1 slots of 3 opened"), "{out}");
    hm.ok(&[
        "appointments",
        "open",
        "--centre",
        "Mong Kok",
        "--start",
        &hk(later),
        "--capacity",
        "2",
    ]);
    let bad = hm.fails(&[
        "appointments",
        "open",
        "--centre",
        "Central",
        "--start",
        "tomorrow 9am",
    ]);
    assert!(bad.contains("YYYY-MM-DDTHH:MM"), "{bad}");
    let srv = hm.serve();

    // Ten applicants, each on the status page with the slots offered.
    let mut refs = Vec::new();
    for (i, r) in people.iter().take(10).enumerate() {
        let mut c = Client::new(&srv, &format!("applicant-{i}"));
        let done = c.apply("/ra/apply", r, &format!("applicant{i}@example.hk"));
        assert_eq!(done.status, 200, "{}", done.text());
        refs.push(done.by_id("reference"));
    }
    let slot_a = format!("Central|{soon}");
    // Every racer has the page with the slot before any books it.
    let ready = std::sync::Barrier::new(10);
    let results: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = people
            .iter()
            .zip(&refs)
            .enumerate()
            .map(|(i, (r, reference))| {
                let srv = &srv;
                let slot_a = &slot_a;
                let ready = &ready;
                s.spawn(move || {
                    let mut c = Client::new(srv, &format!("racer-{i}"));
                    let page = c.submit(
                        "/ra/track",
                        "/ra/track",
                        &[
                            ("reference", reference),
                            ("date_of_birth", &r.date_of_birth),
                        ],
                    );
                    assert!(
                        page.text().contains(&format!("value=\"{slot_a}\"")),
                        "{}",
                        page.text()
                    );
                    let csrf = page.csrf();
                    ready.wait();
                    let p = c.post(
                        "/ra/appointment",
                        &[
                            ("csrf", &csrf),
                            ("reference", reference),
                            ("date_of_birth", &r.date_of_birth),
                            ("action", "book"),
                            ("slot", slot_a),
                        ],
                    );
                    (p.status, p.text())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<usize> = (0..10).filter(|i| results[*i].0 == 200).collect();
    assert_eq!(
        won.len(),
        3,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for (status, text) in &results {
        assert!(
            *status == 200 || (*status == 409 && text.contains("額滿")),
            "{status}: {text}"
        );
    }
    let seats = |centre: &str, at: u64| {
        hm.sql_ok(&format!(
            "SELECT booked FROM ra_slots WHERE centre = '{centre}' AND starts_at = {at}"
        ))
        .trim()
        .to_string()
    };
    assert_eq!(seats("Central", soon), "3");
    assert_eq!(
        hm.sql_ok("SELECT COUNT(*) FROM ra_bookings WHERE status = 'booked'")
            .trim(),
        "3"
    );

    // One moves to the later slot, one cancels: the seats follow.
    let track = |i: usize, c: &mut Client| {
        c.submit(
            "/ra/track",
            "/ra/track",
            &[
                ("reference", &refs[i]),
                ("date_of_birth", &people[i].date_of_birth),
            ],
        )
    };
    let (mover, leaver, stayer) = (won[0], won[1], won[2]);
    let mut c = Client::new(&srv, "mover");
    let page = track(mover, &mut c);
    assert!(page.text().contains("id=\"booking\""), "{}", page.text());
    let moved = c.post(
        "/ra/appointment",
        &[
            ("csrf", &page.csrf()),
            ("reference", &refs[mover]),
            ("date_of_birth", &people[mover].date_of_birth),
            ("action", "book"),
            ("slot", &format!("Mong Kok|{later}")),
        ],
    );
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert!(
        moved.by_id("booking-when").contains("Mong Kok"),
        "{}",
        moved.text()
    );
    let mut c = Client::new(&srv, "leaver");
    let page = track(leaver, &mut c);
    let left = c.post(
        "/ra/appointment",
        &[
            ("csrf", &page.csrf()),
            ("reference", &refs[leaver]),
            ("date_of_birth", &people[leaver].date_of_birth),
            ("action", "cancel"),
        ],
    );
    assert_eq!(left.status, 200, "{}", left.text());
    assert!(!left.text().contains("id=\"booking\""), "{}", left.text());
    assert_eq!(seats("Central", soon), "1");
    assert_eq!(seats("Mong Kok", later), "1");
    // A wrong date of birth books nothing.
    let mut c = Client::new(&srv, "stranger");
    let page = c.get("/ra/track");
    let refused = c.post(
        "/ra/appointment",
        &[
            ("csrf", &page.csrf()),
            ("reference", &refs[5]),
            ("date_of_birth", "1901-01-01"),
            ("action", "book"),
            ("slot", &slot_a),
        ],
    );
    assert_eq!(refused.status, 404, "{}", refused.text());
    assert_eq!(seats("Central", soon), "1");

    // The reminder: tomorrow's appointment only, once, though two
    // processes (the server and this run) deliver.
    let out = hm.ok(&["notices", "run"]);
    assert!(out.contains("1 reminders queued"), "{out}");
    let got = smtp.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0].to, vec![format!("applicant{stayer}@example.hk")]);
    assert!(
        got[0].subject.contains("appointment tomorrow") && got[0].text.contains(&refs[stayer]),
        "{:?}",
        got[0]
    );
    assert!(
        got[0].text.contains(&hk(soon).replace('T', " ")),
        "{:?}",
        got[0]
    );
    let again = hm.ok(&["notices", "run"]);
    assert!(again.contains("0 reminders queued"), "{again}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.received().len(), 1);

    drop(srv);
    let log = hm.sql_ok("SELECT action FROM audit_log ORDER BY seq");
    for must in [
        "ra.slots.open",
        "ra.booking.book",
        "ra.booking.change",
        "ra.booking.cancel",
        "ra.reminder.queue",
    ] {
        assert!(log.contains(must), "audit lacks {must}");
    }
}
