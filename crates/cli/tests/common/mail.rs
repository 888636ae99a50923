//! A real SMTP server for the tests (aiosmtpd, `tests/mail/smtp_sink.py`)
//! and what it received.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Hm;

pub struct Smtp {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

/// One message as the server accepted it.
#[derive(Clone, Debug)]
pub struct Received {
    pub message_id: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

impl Smtp {
    /// Starts the server; `delay_ms` slows each message before its data.
    pub fn start(hm: &Hm, delay_ms: u64) -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = hm.path(&format!("smtp-{port}.jsonl"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mail/smtp_sink.py");
        let mut child = Command::new("python3")
            .args([
                script,
                &port.to_string(),
                log.to_str().unwrap(),
                &delay_ms.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test.sh installs it) is needed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP server did not start (is aiosmtpd installed?)"
        );
        Smtp { child, port, log }
    }

    /// `[mail]` of hallmark.toml pointing at this server.
    pub fn configure(&self, hm: &Hm) {
        hm.set_config(
            "mail",
            &format!("smtp = \"smtp://127.0.0.1:{}\"", self.port),
        );
        hm.set_config("mail", "from = \"Hallmark e-Cert <ecert@hallmark.test>\"");
    }

    pub fn received(&self) -> Vec<Received> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                Received {
                    message_id: v["message_id"].as_str().unwrap().to_string(),
                    to: v["to"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string())
                        .collect(),
                    subject: v["subject"].as_str().unwrap().to_string(),
                    text: v["text"].as_str().unwrap().to_string(),
                }
            })
            .collect()
    }

    /// Waits until `n` messages arrived; returns them.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let r = self.received();
            if r.len() >= n {
                return r;
            }
            assert!(
                start.elapsed() < within,
                "{} of {n} messages arrived within {within:?}: {r:?}",
                r.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
