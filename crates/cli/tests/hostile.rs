//! Hostile clients against a running `hallmark serve`: two attackers
//! trying to hold 10,000 slow connections each (slowloris, reopening what
//! the server closes) while wrk drives OCSP, an unfinished header and
//! an idle keep-alive connection closed on time, a body that never ends.
//!
//! A test binary of its own: cargo runs test binaries one after another,
//! so no other test shares the two cores while OCSP's rate is compared
//! with and without the attack. The OCSP path under attack reads no
//! database (pre-signed answers), so it runs on SQLite only.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// wrk's Requests/sec over `secs` seconds of POSTing `body` to `url` with 8
/// connections, and how many answers were not a 200 OCSP response.
fn wrk_ocsp(hm: &Hm, url: &str, body: &str, secs: u64) -> (f64, u64) {
    let script = hm.p("post.lua");
    std::fs::write(
        &script,
        r#"local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/ocsp-request"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or #body < 100 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("lua_bad %d\n", b))
end
"#,
    )
    .unwrap();
    let out = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{secs}s"), "-s", &script, url])
        .env("BODY", body)
        .output()
        .expect("wrk is needed (Debian: apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk said: {text}{}", String::from_utf8_lossy(&out.stderr)));
    let bad = text
        .lines()
        .find_map(|l| l.strip_prefix("lua_bad "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let errors: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|e| {
            e.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    (rate, bad + errors)
}

/// A GET over a new connection, answered within `limit`.
fn get_within(port: u16, path: &str, limit: Duration) -> Option<u16> {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line).ok()?;
    (start.elapsed() < limit).then_some(())?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn slow_connections_do_not_take_ocsp_down() {
    let hm = Hm::new(Backend::Sqlite).unwrap();
    hm.set_config("server", "header_read_timeout_secs = 4");
    hm.set_config("server", "request_timeout_secs = 4");
    let max = 4096;
    hm.set_config("server", &format!("max_connections = {max}"));
    let (_, good) = hm.issue("a", "personal", "CN=Relying On OCSP,C=HK", &[]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let body = hm.p("ocsp.req");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &hm.p("issuing.pem"),
        "-cert",
        &good,
        "-no_nonce",
        "-reqout",
        &body,
    ]);
    let url = srv.url("/ocsp");
    // Warm: the answer is pre-signed and cached.
    wrk_ocsp(&hm, &url, &body, 1);

    // An unfinished header and an idle keep-alive connection are closed
    // after the header-read timeout (4 s here).
    let mut half = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let closed_after = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => continue,
            }
        }
    };
    let half_closed = closed_after(&mut half);
    let idle_closed = closed_after(&mut idle);
    assert!(
        half_closed >= Duration::from_secs(3) && half_closed < Duration::from_secs(8),
        "an unfinished header was held {half_closed:?}"
    );
    assert!(
        idle_closed < Duration::from_secs(9),
        "an idle keep-alive connection was held {idle_closed:?}"
    );
    // A body that never ends gets 408 once the request deadline passes.
    let mut slow = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    slow.write_all(
        b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n0",
    )
    .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = BufReader::new(&mut slow).read_line(&mut answer);
    assert!(answer.contains(" 408 "), "{answer:?}");

    // Unattacked.
    let (before, bad) = wrk_ocsp(&hm, &url, &body, 4);
    assert_eq!(bad, 0);
    let fds_idle = open_fds(srv.pid());

    // 20,000 slow connections from two processes (each within its own
    // open-files limit), reopened as the server closes them.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/slowloris.py");
    let attackers: Vec<_> = (0..2)
        .map(|_| {
            Command::new("python3")
                .arg(script)
                .args(["127.0.0.1", &srv.port.to_string(), "10000", "30", "1500"])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    // Until the server is at its limit.
    let full = Instant::now();
    let mut peak = 0;
    while full.elapsed() < Duration::from_secs(15) {
        peak = peak.max(open_fds(srv.pid()));
        if peak >= max {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        peak >= max,
        "the attack never filled the server ({peak} descriptors)"
    );
    // Meanwhile: health answers over a new connection, OCSP keeps its rate,
    // and the descriptors stay within the limit.
    let health = get_within(srv.port, "/healthz", Duration::from_secs(2));
    assert_eq!(health, Some(200), "/healthz under attack");
    let watcher = {
        let pid = srv.pid();
        std::thread::spawn(move || {
            let mut most = 0;
            let until = Instant::now() + Duration::from_secs(6);
            while Instant::now() < until {
                most = most.max(open_fds(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            most
        })
    };
    let (during, bad_during) = wrk_ocsp(&hm, &url, &body, 5);
    let most = watcher.join().unwrap();
    let health_after = get_within(srv.port, "/healthz", Duration::from_secs(2));
    let (mut held, mut reopened) = (0, 0);
    for mut a in attackers {
        let _ = a.kill();
        let mut out = String::new();
        a.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let _ = a.wait();
        let field = |l: &str, name: &str| -> u64 {
            l.split_whitespace()
                .skip_while(|w| *w != name)
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        held += out.lines().map(|l| field(l, "held")).max().unwrap_or(0);
        reopened += out.lines().map(|l| field(l, "reopened")).max().unwrap_or(0);
    }
    let said = format!(
        "at most {held} connections open at once on the attackers' side, {reopened} reopened after the server closed them"
    );
    eprintln!(
        "hostile: OCSP {before:.0}/s unattacked, {during:.0}/s under slowloris from 20,000 \
         connections tried ({:.0} %), server descriptors {fds_idle} idle, at most {most} (limit {max} connections); \
         attackers: {said}",
        100.0 * during / before
    );
    assert_eq!(health_after, Some(200));
    assert!(
        most <= max + 64,
        "{most} descriptors open for a limit of {max} connections"
    );
    assert!(
        bad_during * 100 <= (during as u64 * 5).max(1),
        "{bad_during} failed OCSP answers under attack"
    );
    assert!(
        during >= 0.8 * before,
        "OCSP fell to {during:.0}/s from {before:.0}/s under attack"
    );
}
