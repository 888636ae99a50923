//! The registration pages in a real browser: headless Chromium driven over
//! WebDriver (chromedriver), typing into the forms and clicking the buttons
//! as a person would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::*;

on_both!(a_person_applies_and_officers_approve_in_chromium);

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

fn http_json(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    // chromedriver may keep the connection open: read the head, then
    // exactly Content-Length bytes.
    let mut resp = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).unwrap();
        resp.extend_from_slice(&buf[..n]);
        if let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if resp.len() >= split + 4 + len || n == 0 {
                return serde_json::from_slice(
                    &resp[split + 4..split + 4 + len.min(resp.len() - split - 4)],
                )
                .unwrap_or(Value::Null);
            }
        }
        if n == 0 {
            return Value::Null;
        }
    }
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed (Debian: apt-get install chromium chromium-driver)");
        eventually("chromedriver listens", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--window-size=1100,900"]
        }}}});
        let v = http_json(port, "POST", "/session", Some(&caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Driver {
            child,
            port,
            session,
        }
    }

    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (method == "POST").then_some(body);
        let v = http_json(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        assert!(
            v["value"]["error"].is_null(),
            "WebDriver {method} {path}: {v}"
        );
        v["value"].clone()
    }

    #[track_caller]
    fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Waits until the element `css` exists and its text contains `needle`
    /// (a click's navigation finishes after the click returns).
    #[track_caller]
    fn wait_for(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        eventually(&format!("{css} contains {needle:?}"), || {
            let v = http_json(
                self.port,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(&json!({"using": "css selector", "value": css})),
            );
            let Some(e) = v["value"][ELEMENT].as_str() else {
                return false;
            };
            let t = http_json(
                self.port,
                "GET",
                &format!("/session/{}/element/{e}/text", self.session),
                None,
            );
            last = t["value"].as_str().unwrap_or("").to_string();
            last.contains(needle)
        });
        last
    }

    #[track_caller]
    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT].as_str().unwrap().to_string()
    }

    #[track_caller]
    fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/clear"), json!({}));
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        );
    }

    #[track_caller]
    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), json!({}));
    }

    #[track_caller]
    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/text"), Value::Null)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A PNG of the page, into `dir` as NAME.png; with
    /// `HALLMARK_SCREENSHOTS=DIR` (e.g. docs/screenshots) also there, to
    /// refresh the documentation's screenshots from this test.
    fn screenshot(&self, dir: &std::path::Path, name: &str) {
        use base64ct::Encoding;
        let b64 = self.call("GET", "/screenshot", Value::Null);
        let png = base64ct::Base64::decode_vec(b64.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        if let Some(docs) = std::env::var_os("HALLMARK_SCREENSHOTS") {
            std::fs::write(
                std::path::Path::new(&docs).join(format!("{name}.png")),
                &png,
            )
            .unwrap();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http_json(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn a_person_applies_and_officers_approve_in_chromium(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(5);
    let amy = hm.staff("amy", "officer", "Central");
    let ben = hm.staff("ben", "supervisor", "Central");
    let cleo = hm.staff("cleo", "officer", "Central");
    let at = hk_time(unix_now() / 3600 * 3600 + 2 * 86_400);
    hm.ok(&[
        "appointments",
        "open",
        "--centre",
        "Central",
        "--start",
        &at,
        "--count",
        "3",
        "--capacity",
        "2",
    ]);
    // A campaign batch of the same five people, imported by an officer of
    // the centre and checked; its approval waits for a supervisor.
    let dan = hm.staff("dan", "officer", "Central");
    let csv = hm.p("campaign.csv");
    hm.ok(&[
        "campaign", "synth", "--count", "5", "--seed", "11", "--out", &csv,
    ]);
    let imported = hm
        .command()
        .env("HALLMARK_STAFF_PASSWORD", ra::STAFF_PASSWORD)
        .args(["campaign", "import", &csv, "--as", "dan", "--code"])
        .arg(hallmark_testkit::judges::totp_now(&dan))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let batch = String::from_utf8_lossy(&imported.stdout).trim().to_string();
    assert!(
        hm.ok(&["campaign", "check", &batch])
            .contains("5 confirmed")
    );
    // Key recovery and staff accounts, further down.
    let eve = hm.staff("eve", "officer", "Central");
    let fred = hm.staff("fred", "supervisor", "Central");
    let ada = hm.staff("ada", "administrator", "HQ");
    let srv = hm.serve();
    let r = &people[4];
    let d = Driver::start();

    // The applicant, in Chinese: a wrong check digit is named, then fixed.
    d.go(&srv.url("/ra/lang?to=zh&back=/ra/apply"));
    let (head, check) = r.id_number.split_at(r.id_number.len() - 1);
    let wrong_check = format!("{head}{}", if check == "0" { "1" } else { "0" });
    d.type_in("#id_number", &wrong_check);
    d.type_in("#name_zh", &r.name_zh);
    d.type_in("#name_en", &r.name_en);
    d.type_in("#date_of_birth", &r.date_of_birth);
    d.type_in("#phone", "9123 4567");
    d.type_in("#email", "browser@example.hk");
    d.click("#submit");
    d.wait_for("#error", "身份證");
    d.screenshot(&hm.dir, "apply-error-zh");
    // What was typed is still there.
    let kept = d.find("#name_zh");
    assert_eq!(
        d.call(
            "GET",
            &format!("/element/{kept}/property/value"),
            Value::Null
        ),
        json!(r.name_zh)
    );
    d.type_in("#id_number", &r.id_number);
    d.click("#submit");
    d.wait_for("#status", "等待登記主任批核");
    let reference = d.text("#reference");
    d.screenshot(&hm.dir, "applied-zh");
    // The switch goes to the same page in English.
    d.click("#lang");
    d.wait_for("h1", "Apply for a personal e-Cert");
    d.screenshot(&hm.dir, "apply-en");

    // The applicant follows the application and books a counter appointment.
    d.go(&srv.url("/ra/track"));
    d.wait_for("h1", "");
    d.screenshot(&hm.dir, "track-en");
    d.type_in("#reference", &reference);
    d.type_in("#date_of_birth", &r.date_of_birth);
    d.click("#submit");
    d.wait_for("#book", "Book this time");
    d.click("#book");
    d.wait_for("#notice", "Your appointment is booked.");
    d.wait_for("#booking-when", "Central");
    d.screenshot(&hm.dir, "appointment-en");
    d.go(&srv.url("/ra/lost"));
    d.wait_for("h1", "Report a lost certificate");
    d.screenshot(&hm.dir, "lost-en");
    for page in ["collect", "renew"] {
        d.go(&srv.url(&format!("/ra/{page}")));
        d.wait_for("h1", "");
        d.screenshot(&hm.dir, &format!("{page}-en"));
    }

    // An officer at the counter enters a second person; she may not approve it.
    let sign_in = |user: &str, secret: &str| {
        d.go(&srv.url("/ra/staff/sign-in"));
        if user == "amy" {
            d.screenshot(&hm.dir, "sign-in-en");
        }
        d.type_in("#username", user);
        d.type_in("#password", ra::STAFF_PASSWORD);
        d.type_in("#code", &hallmark_testkit::judges::totp_now(secret));
        d.click("#submit");
        d.wait_for("h1", "awaiting approval");
    };
    sign_in("amy", &amy);
    d.wait_for("#queue", &reference);
    d.screenshot(&hm.dir, "queue-en");
    d.go(&srv.url("/ra/staff/counter"));
    let other = &people[0];
    d.type_in("#id_number", &other.id_number);
    d.type_in("#name_zh", &other.name_zh);
    d.type_in("#name_en", &other.name_en);
    d.type_in("#date_of_birth", &other.date_of_birth);
    d.type_in("#phone", "61234567");
    d.type_in("#email", "counter@example.hk");
    d.click("#submit");
    let counter_ref = d.wait_for("h1", "HM-");
    assert!(counter_ref.starts_with("HM-"), "{counter_ref}");
    d.click("#approve");
    d.wait_for("#error", "Dual control");
    d.screenshot(&hm.dir, "dual-control-en");
    // She approves the online application.
    d.go(&srv.url(&format!("/ra/staff/applications/{reference}")));
    d.click("#approve");
    d.wait_for("#notice", "Approved");
    d.wait_for("#status", "Approved; your PIN mailer is on its way.");
    d.screenshot(&hm.dir, "approved-en");

    // A supervisor signs in (after Amy signs out) and approves the counter one.
    d.click("button.link");
    sign_in("ben", &ben);
    d.go(&srv.url(&format!("/ra/staff/applications/{counter_ref}")));
    d.wait_for("#entered_by", "staff:amy");
    d.click("#approve");
    d.wait_for("#notice", "Approved");
    // He approves the campaign batch with one action.
    d.go(&srv.url("/ra/staff/batches"));
    d.wait_for("#batches", &batch);
    d.screenshot(&hm.dir, "batches-en");
    d.click(&format!("#approve-{batch}"));
    d.wait_for("#notice", "Applications approved 5");
    d.click("#lang");
    d.wait_for("h1", "批次申請");
    d.screenshot(&hm.dir, "batches-zh");
    d.click("#lang");
    d.wait_for("h1", "Campaign batches");
    // Two certificates collected (through the form client), then the
    // statistics page counts them.
    let mut officer = ra::Client::new(&srv, "officer-client");
    assert_eq!(officer.sign_in("cleo", &cleo).status, 303);
    hm.collected(&srv, &mut officer, &people[1], "one@example.hk");
    hm.collected(&srv, &mut officer, &people[2], "");
    d.go(&srv.url("/ra/staff/statistics"));
    d.wait_for("#issued-total", "2");
    d.wait_for("#channels", "counter");
    d.screenshot(&hm.dir, "statistics-en");

    // A holder lost an encipherment key: Eve requests its recovery on the
    // console, Fred (another person, a supervisor) approves and prints the
    // mailer, and the holder downloads the key again.
    let enc = hm.collected_as(&srv, &mut officer, &people[3], "", "encipherment");
    d.click("button.link");
    sign_in("eve", &eve);
    d.go(&srv.url("/ra/staff/recoveries"));
    d.type_in("#reference", &enc.reference);
    d.click("#request");
    let note = d.wait_for("#notice", "requested");
    let id = note.split(':').next().unwrap().trim().to_string();
    assert!(id.starts_with("KR-"), "{note}");
    d.wait_for(
        &format!("tr[data-recovery=\"{id}\"]"),
        "Waiting for a supervisor",
    );
    d.screenshot(&hm.dir, "recoveries-en");
    let mut supervisor = ra::Client::new(&srv, "fred-client");
    assert_eq!(supervisor.sign_in("fred", &fred).status, 303);
    let list = supervisor.get("/ra/staff/recoveries");
    assert!(
        list.text().contains(&format!("id=\"approve-{id}\"")),
        "{}",
        list.text()
    );
    let pdf = supervisor.submit(
        "/ra/staff/recoveries",
        &format!("/ra/staff/recoveries/{id}/approve"),
        &[],
    );
    assert_eq!(pdf.status, 200, "{}", pdf.text());
    assert_eq!(
        pdf.header("content-type").as_deref(),
        Some("application/pdf")
    );
    std::fs::write(hm.path("recovery.pdf"), &pdf.body).unwrap();
    let letter = hallmark_testkit::judges::pdftotext(&hm.path("recovery.pdf"));
    assert!(letter.contains(&id), "{letter}");
    let pin = letter
        .split_whitespace()
        .find(|w| w.len() == 14 && w.matches('-').count() == 2 && !w.starts_with("KR"))
        .unwrap_or_else(|| panic!("{letter}"))
        .to_string();
    let mut holder = ra::Client::new(&srv, "holder-again");
    let p12 = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &id), ("pin", &pin)],
    );
    assert_eq!(p12.status, 200, "{}", p12.text());
    d.go(&srv.url("/ra/staff/recoveries"));
    d.wait_for(&format!("tr[data-recovery=\"{id}\"]"), "Collected");
    d.click("#lang");
    d.wait_for("h1", "密碼匙恢復");
    d.screenshot(&hm.dir, "recoveries-zh");
    d.click("#lang");
    d.wait_for("h1", "Key recovery");

    // An administrator proposes an account; it waits for a second one.
    d.click("button.link");
    d.go(&srv.url("/ra/staff/sign-in"));
    d.type_in("#username", "ada");
    d.type_in("#password", ra::STAFF_PASSWORD);
    d.type_in("#code", &hallmark_testkit::judges::totp_now(&ada));
    d.click("#submit");
    d.wait_for("h1", "Staff accounts");
    d.type_in("#username", "gina");
    d.type_in("#display_name", "王芷晴 Gina Wong");
    d.type_in("#centre", "Central");
    d.click("#propose");
    d.wait_for("#notice", "gina: proposed");
    d.wait_for(
        "tr[data-account=\"gina\"]",
        "Waiting for a second administrator",
    );
    d.screenshot(&hm.dir, "accounts-en");
    drop(d);
    drop(srv);
    let rows = hm.sql_ok("SELECT approved_by FROM ra_applications WHERE approved_by <> 'staff:cleo' AND batch IS NULL ORDER BY approved_by");
    assert_eq!(
        hm.sql_ok(&format!("SELECT COUNT(*) FROM ra_applications WHERE batch = '{batch}' AND approved_by = 'staff:ben'")).trim(),
        "5"
    );
    assert_eq!(
        rows.split_whitespace().collect::<Vec<_>>(),
        ["staff:amy", "staff:ben"]
    );
}
