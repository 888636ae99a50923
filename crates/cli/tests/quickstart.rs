//! The README's first command: `hallmark quickstart` sets up a demo CA and
//! serves it, with nothing but a fresh directory.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

#[test]
fn quickstart_serves_a_demo_ca() {
    let tmp = hallmark_testkit::temp::TempDir::new("quickstart");
    let dir = tmp.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .current_dir(dir)
        .args(["quickstart", "--listen", "127.0.0.1:0"])
        .env_remove("HALLMARK_PASSPHRASE")
        .env_remove("HALLMARK_DATA_DIR")
        .env_remove("HALLMARK_DATABASE_URL")
        .env_remove("HALLMARK_PASSPHRASE_FILE")
        .env("HALLMARK_DANGER_INSECURE_KDF", "1")
        .env("HALLMARK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let port: u16 = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "quickstart exited:\n{printed}"
        );
        printed.push_str(&line);
        if let Some(addr) = line.trim().strip_prefix("listening on http://") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    assert!(
        printed.contains("/ca/root.crt") && printed.contains("/ocsp"),
        "{printed}"
    );
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = Vec::new();
        s.read_to_end(&mut r).unwrap();
        r
    };
    assert!(String::from_utf8_lossy(&get("/healthz")).starts_with("HTTP/1.1 200"));
    let root = get("/ca/root.pem");
    let text = String::from_utf8_lossy(&root);
    let pem = &text[text.find("-----BEGIN").unwrap()..];
    std::fs::write(dir.join("root.pem"), pem).unwrap();
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "utf8", "-in"])
        .arg(dir.join("root.pem"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("示範根憑證"));
    // The demo keeps its passphrase in the data directory, owner-only.
    let demo = dir.join("hallmark-data/passphrase.demo");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&demo).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
