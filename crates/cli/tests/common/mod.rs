//! Test harness: a Hallmark data directory on SQLite or PostgreSQL, the real
//! `hallmark` binary, a server on port 0, and the questions the tests put
//! to OpenSSL about what it serves. What is not about Hallmark (throwaway
//! databases and tokens, the judges, waiting) comes from `hallmark-testkit`.

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::disallowed_methods
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub use hallmark_testkit::SoftHsmToken;
pub use hallmark_testkit::judges::{openssl, openssl_ok, openssl_text, pkilint_clean};
use hallmark_testkit::postgres::TempDatabase;
pub use hallmark_testkit::postgres::server_url as postgres_base;
use hallmark_testkit::temp::unique_tag;
pub use hallmark_testkit::wait::{eventually, eventually_within};

pub mod mail;
pub mod ra;
pub use ra::{Client, Page, Resident, as_staff, count, text};

pub const PASSPHRASE: &str = "integration test passphrase";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Hm {
    pub dir: PathBuf,
    /// The PostgreSQL database of its own (dropped after the directory);
    /// None on SQLite.
    pg: Option<TempDatabase>,
    pub token: String,
}

impl Hm {
    /// A fresh installation (None when the backend is not available).
    pub fn new(backend: Backend) -> Option<Hm> {
        Self::with_args(backend, &[])
    }

    pub fn with_args(backend: Backend, extra: &[&str]) -> Option<Hm> {
        let tag = unique_tag();
        let dir = std::env::temp_dir().join(format!("hallmark-test-{tag}"));
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TempDatabase::create(&tag)?),
        };
        let mut hm = Hm {
            dir,
            pg,
            token: String::new(),
        };
        let mut args = vec![
            "init",
            "--root-subject",
            "CN=香港郵政電子核證機關 Root,O=Hongkong Post,C=HK",
        ];
        args.extend_from_slice(extra);
        let out = hm.run(&args);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        hm.token = err
            .lines()
            .find_map(|l| l.split("): ").nth(1).filter(|t| t.starts_with("hm_")))
            .expect("init prints the admin token")
            .trim()
            .to_string();
        Some(hm)
    }

    /// The URL of its PostgreSQL database; None on SQLite.
    pub fn db_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|d| d.url.as_str())
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hallmark"));
        c.env("HALLMARK_DATA_DIR", &self.dir)
            .env("HALLMARK_PASSPHRASE", PASSPHRASE)
            .env("HALLMARK_DANGER_INSECURE_KDF", "1")
            .env("HALLMARK_LOG", "warn")
            .env_remove("HALLMARK_PASSPHRASE_FILE")
            .env_remove("HALLMARK_DATABASE_URL")
            .stdin(Stdio::null());
        if let Some(u) = self.db_url() {
            c.env("HALLMARK_DATABASE_URL", u);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hallmark {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs, asserts failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "hallmark {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// Starts `hallmark serve` on port 0 (plus `extra` arguments) and reads
    /// the ports it prints.
    pub fn serve_with(&self, extra: &[&str]) -> Server {
        self.serve_in(&self.dir, extra)
    }

    /// As [`serve_with`](Self::serve_with), for another data directory.
    pub fn serve_in(&self, dir: &Path, extra: &[&str]) -> Server {
        let mut child = self
            .command()
            .env("HALLMARK_DATA_DIR", dir)
            .arg("serve")
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let port_of = |line: &str| -> u16 {
            line.trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("serve printed {line:?}"))
        };
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = port_of(&line);
        let mut https_port = None;
        if extra.contains(&"--https-listen") {
            let mut l2 = String::new();
            out.read_line(&mut l2).unwrap();
            assert!(l2.starts_with("listening on https://"), "{l2}");
            https_port = Some(port_of(&l2));
        }
        let mut admin_port = None;
        if extra.contains(&"--admin-https-listen") {
            let mut l3 = String::new();
            out.read_line(&mut l3).unwrap();
            assert!(l3.contains("(admin API, mutual TLS)"), "{l3}");
            admin_port = Some(port_of(l3.split_whitespace().nth(2).unwrap()));
        }
        Server {
            child,
            port,
            https_port,
            admin_port,
        }
    }

    /// Makes `{name}.key` (P-256) and `{name}.csr` for `subj` with OpenSSL;
    /// returns the CSR's path.
    pub fn p256_csr(&self, name: &str, subj: &str) -> String {
        let key = self.p(&format!("{name}.key"));
        let csr = self.p(&format!("{name}.csr"));
        openssl_ok(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ]);
        openssl_ok(&["req", "-new", "-key", &key, "-subj", subj, "-out", &csr]);
        csr
    }

    /// Issues from a fresh openssl-made P-256 CSR; returns (serial, PEM path).
    pub fn issue(
        &self,
        name: &str,
        profile: &str,
        subject: &str,
        extra: &[&str],
    ) -> (String, String) {
        let csr = self.p256_csr(name, "/CN=from-the-csr");
        let out = self.p(&format!("{name}.pem"));
        let mut args = vec![
            "cert",
            "issue",
            "--profile",
            profile,
            "--subject",
            subject,
            "--csr",
            &csr,
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        let o = self.run(&args);
        assert!(
            o.status.success(),
            "issue {profile}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (issued_serial(&String::from_utf8_lossy(&o.stderr)), out)
    }

    /// Issues with a centrally generated key: (PKCS#12 path, one-time PIN,
    /// serial); the certificate goes to `{name}.pem`.
    pub fn issue_p12(&self, name: &str, profile: &str, subject: &str) -> (String, String, String) {
        let p12 = self.p(&format!("{name}.p12"));
        let o = self.run(&[
            "cert",
            "issue",
            "--profile",
            profile,
            "--subject",
            subject,
            "--generate-key",
            "--p12-out",
            &p12,
            "--out",
            &self.p(&format!("{name}.pem")),
        ]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{err}");
        let pin = err
            .lines()
            .find_map(|l| l.split("one-time PIN: ").nth(1))
            .unwrap()
            .trim()
            .to_string();
        (p12, pin, issued_serial(&err))
    }

    /// Writes a DER CRL as `{name}.crl.pem` (what `openssl verify -CRLfile`
    /// reads) and returns its path.
    pub fn crl_pem(&self, der: &[u8], name: &str) -> String {
        let der_path = self.p(&format!("{name}.crl.der"));
        std::fs::write(&der_path, der).unwrap();
        let pem = self.p(&format!("{name}.crl.pem"));
        openssl_ok(&["crl", "-inform", "DER", "-in", &der_path, "-out", &pem]);
        pem
    }

    /// Writes root.pem and issuing.pem from `ca list`-independent sources:
    /// the server's publication endpoints.
    pub fn fetch_ca_files(&self, srv: &Server) {
        for id in ["root", "issuing"] {
            let (st, body) = srv.get(&format!("/ca/{id}.pem"));
            assert_eq!(st, 200);
            std::fs::write(self.path(&format!("{id}.pem")), body).unwrap();
        }
    }

    /// Rows of an SQL query run directly against the backing database.
    pub fn sql(&self, sql: &str) -> Output {
        match self.db_url() {
            Some(u) => Command::new("psql").arg(u).args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]).output().unwrap(),
            None => Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor r in c.execute(sys.argv[2]): print('|'.join(map(str,r)))\nc.commit()",
                    &self.p("hallmark.db"),
                    sql,
                ])
                .output()
                .unwrap(),
        }
    }

    /// Sets `line` (e.g. `admin_api = "admin-tls"`) in the `[section]` of
    /// hallmark.toml: in place of the key's line if there is one.
    pub fn set_config(&self, section: &str, line: &str) {
        let path = self.path("hallmark.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let key = line.split('=').next().unwrap().trim();
        let (mut out, mut current, mut done) = (Vec::new(), String::new(), false);
        for l in text.lines() {
            if l.starts_with('[') {
                if current == section && !done {
                    out.push(line.to_string());
                    done = true;
                }
                current = l.trim_matches(['[', ']']).to_string();
                out.push(l.to_string());
                continue;
            }
            if current == section && l.split('=').next().is_some_and(|k| k.trim() == key) {
                if !done {
                    out.push(line.to_string());
                    done = true;
                }
                continue;
            }
            out.push(l.to_string());
        }
        if !done {
            // The section is last, or absent (a default one is not written).
            if current != section {
                out.push(format!("[{section}]"));
            }
            out.push(line.to_string());
        }
        std::fs::write(&path, out.join("\n") + "\n").unwrap();
    }

    pub fn sql_ok(&self, sql: &str) -> String {
        let o = self.sql(sql);
        assert!(
            o.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
}

impl Drop for Hm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Then `pg` drops its database.
    }
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub https_port: Option<u16>,
    /// The admin listener (mutual TLS), when asked for.
    pub admin_port: Option<u16>,
}

impl Server {
    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A minimal HTTP/1.1 client (one request per connection).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let (status, _, body) = self.request_full(method, path, headers, body);
        (status, body)
    }

    /// [`Self::request`] that also returns the response head (status line
    /// and headers) as text.
    pub fn request_full(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        self.request_via("127.0.0.1", method, path, headers, body)
    }

    /// [`Self::request_full`] to the HTTP port at another address of this
    /// machine (the server listening on it).
    pub fn request_via(
        &self,
        ip: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect((ip, self.port)).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&resp[..split]).to_string();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut body = resp[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (status, head, body)
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.request("GET", path, &[], b"")
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 4 + n..];
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The serial `cert issue` reports on stderr ("issued serial S by ISSUER").
pub fn issued_serial(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("issued serial "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no serial in {stderr}"))
        .to_string()
}

/// An address of this machine that is not a loopback address (where a
/// client on the network would connect).
pub fn non_loopback_ip() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("this machine has no non-loopback IPv4 address (hostname -I)")
        .to_string()
}

#[allow(clippy::disallowed_methods)]
/// A Unix time as Hong Kong local `YYYY-MM-DDTHH:MM` (by date(1)).
pub fn hk_time(t: u64) -> String {
    let o = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", t + 8 * 3600), "+%Y-%m-%dT%H:%M"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until the CRL served at `path` lists `serial` (hex): the API
/// answers a revocation once the certificate's partition CRL is out, and
/// the full CRL follows (its bytes are searched for the serial's; the
/// callers then judge the CRL with OpenSSL).
pub fn wait_for_crl_listing(srv: &Server, path: &str, serial: &str) {
    let bytes = hallmark_pki::unhex(serial).unwrap();
    eventually(&format!("{path} to list {serial}"), || {
        let (st, der) = srv.get(path);
        st == 200 && der.windows(bytes.len()).any(|w| w == bytes)
    });
}

pub fn verify_chain(hm: &Hm, leaf: &str) -> String {
    openssl_text(&[
        "verify",
        "-CAfile",
        &hm.p("root.pem"),
        "-untrusted",
        &hm.p("issuing.pem"),
        leaf,
    ])
}

/// Asks the server's responder with `openssl ocsp` about `what` (`-cert
/// FILE` or `-serial 0x…`) of the CA whose certificate is `issuer` (a file
/// of the test directory), checking the answer against the root; OpenSSL's
/// output and errors.
pub fn ocsp_ask(hm: &Hm, srv: &Server, issuer: &str, what: &[&str], extra: &[&str]) -> String {
    let (issuer, root, url) = (hm.p(issuer), hm.p("root.pem"), srv.url("/ocsp"));
    let mut args = vec!["ocsp", "-issuer", &issuer, "-CAfile", &root, "-url", &url];
    args.extend_from_slice(what);
    args.extend_from_slice(extra);
    openssl_text(&args)
}

/// The responder certificate embedded in an OCSP response, as PEM.
pub fn responder_cert(resp: &str) -> String {
    let o = openssl_ok(&["ocsp", "-respin", resp, "-resp_text", "-noverify"]);
    let start = o.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = o.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    format!("{}\n", &o[start..end])
}

/// `openssl verify` of `leaf` against root.pem with the CA certificate
/// file `ca` untrusted and the given CRL files, checking the leaf's CRL
/// (`-crl_check`) or, with `all`, every CRL of the chain; OpenSSL's output
/// and errors.
pub fn verify_with_crls(hm: &Hm, ca: &str, crls: &[&str], leaf: &str, all: bool) -> String {
    let (root, ca) = (hm.p("root.pem"), hm.p(ca));
    let check = if all { "-crl_check_all" } else { "-crl_check" };
    let mut args = vec!["verify", check, "-CAfile", &root, "-untrusted", &ca];
    for c in crls {
        args.extend(["-CRLfile", c]);
    }
    args.push(leaf);
    openssl_text(&args)
}
