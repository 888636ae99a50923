//! The population registry as a remote HTTPS service
//! (`tests/registry/registry_service.py`, the protocol of
//! docs/registry-api.md): while it is down, slow or refuses Hallmark's
//! token, applications are kept in awaiting-registry and the operator is
//! told what went wrong; once it answers, `registry recheck` and the
//! server's own rounds move them on. Nothing is lost.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use super::*;

on_both!(a_registry_service_that_is_down_slow_or_refusing_keeps_applications_waiting);

struct RegistryService {
    child: Child,
    port: u16,
    mode: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl RegistryService {
    fn start(hm: &Hm, residents: &str, token: &str) -> Self {
        // A CA and the service's certificate for 127.0.0.1.
        for args in [
            vec![
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "reg-ca.key",
                "-out",
                "reg-ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Registry test CA",
            ],
            vec![
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "reg.key",
                "-out",
                "reg.pem",
                "-days",
                "2",
                "-subj",
                "/CN=registry.test",
                "-CA",
                "reg-ca.pem",
                "-CAkey",
                "reg-ca.key",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
        ] {
            let o = std::process::Command::new("openssl")
                .args(&args)
                .current_dir(&hm.dir)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mode = hm.path("registry.mode");
        std::fs::write(&mode, "down").unwrap();
        let log = hm.path("registry.log");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/registry/registry_service.py"
        );
        let mut child = std::process::Command::new("python3")
            .args([
                script,
                &port.to_string(),
                residents,
                token,
                mode.to_str().unwrap(),
                log.to_str().unwrap(),
                &hm.p("reg.pem"),
                &hm.p("reg.key"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Self {
            child,
            port,
            mode,
            log,
        }
    }

    fn set(&self, mode: &str) {
        std::fs::write(&self.mode, mode).unwrap();
    }

    /// The modes of the requests it received, in order.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["people"], 1, "{l}");
                v["mode"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

impl Drop for RegistryService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn apply(srv: &Server, r: &Resident, name_en: &str) -> String {
    let mut applicant = Client::new(srv, "applicant-browser");
    let done = applicant.submit(
        "/ra/apply",
        "/ra/apply",
        &[
            ("id_number", &r.id_number),
            ("name_zh", &r.name_zh),
            ("name_en", name_en),
            ("date_of_birth", &r.date_of_birth),
            ("phone", "9123 4567"),
            ("email", ""),
            ("address", "香港中環皇后大道中1號10樓"),
            ("profile", "personal"),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.data_status(), "awaiting-registry");
    done.by_id("reference")
}

fn state(hm: &Hm, reference: &str) -> String {
    hm.sql_ok(&format!(
        "SELECT status || '/' || registry FROM ra_applications WHERE reference = '{reference}'"
    ))
    .trim()
    .to_string()
}

fn a_registry_service_that_is_down_slow_or_refusing_keeps_applications_waiting(b: Backend) {
    let hm = setup!(b);
    // The residents live in the service, not in Hallmark's own registry.
    let residents = hm.p("residents.csv");
    hm.ok(&[
        "registry", "synth", "--count", "3", "--seed", "11", "--out", &residents,
    ]);
    let people: Vec<Resident> = std::fs::read_to_string(&residents)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Resident {
                id_number: f[0].into(),
                name_zh: f[1].into(),
                name_en: f[2].into(),
                date_of_birth: f[3].into(),
            }
        })
        .collect();
    let service = RegistryService::start(&hm, &residents, "right-token");
    let token = hm.path("registry.token");
    std::fs::write(&token, "wrong-token\n").unwrap();
    let section = "ra.registry";
    hm.set_config(
        section,
        &format!("url = \"https://127.0.0.1:{}/v1/check\"", service.port),
    );
    hm.set_config(section, "timeout_ms = 1000");
    hm.set_config(section, "attempts = 2");
    hm.set_config(section, &format!("token_file = \"{}\"", token.display()));
    hm.set_config(section, &format!("ca_file = \"{}\"", hm.p("reg-ca.pem")));
    let srv = hm.serve();

    // Down: the application is kept, and waits.
    let first = apply(&srv, &people[0], &people[0].name_en);
    assert_eq!(state(&hm, &first), "awaiting-registry/pending");
    assert_eq!(service.requests(), ["down", "down"]);
    // (Stopped, so that its own rounds do not ask while the operator does.)
    drop(srv);
    let down = hm.fails(&["registry", "recheck"]);
    assert!(
        down.contains("503") && down.contains("2 attempt(s)"),
        "{down}"
    );
    // Slow: each attempt has its deadline.
    service.set("slow");
    let slow = hm.fails(&["registry", "recheck"]);
    assert!(slow.contains("no answer within 1000 ms"), "{slow}");
    // Answering, but refusing Hallmark's token: said, not tried again.
    service.set("ok");
    let before = service.requests().len();
    let refused = hm.fails(&["registry", "recheck"]);
    assert!(refused.contains("401"), "{refused}");
    assert_eq!(service.requests().len(), before + 1);
    assert_eq!(state(&hm, &first), "awaiting-registry/pending");

    // The right token: the waiting application moves on.
    std::fs::write(&token, "right-token\n").unwrap();
    let out = hm.ok(&["registry", "recheck"]);
    assert!(out.contains("1 confirmed, 0 not matching"), "{out}");
    assert_eq!(state(&hm, &first), "awaiting-approval/confirmed");

    // A server with the right token: a mismatch is answered at once, and
    // an application made while the service is down moves on by itself.
    let srv = hm.serve();
    let wrong_name = apply(&srv, &people[1], "SOMEONE Else");
    assert_eq!(state(&hm, &wrong_name), "awaiting-registry/mismatch");
    service.set("down");
    let later = apply(&srv, &people[2], &people[2].name_en);
    assert_eq!(state(&hm, &later), "awaiting-registry/pending");
    service.set("ok");
    eventually_within(
        std::time::Duration::from_secs(60),
        "the server to ask the registry again",
        || state(&hm, &later) == "awaiting-approval/confirmed",
    );
    drop(srv);
    assert!(hm.ok(&["audit", "verify"]).contains("OK"));
    assert!(
        count(
            &hm,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'ra.registry.recheck'"
        ) >= 2
    );
}
