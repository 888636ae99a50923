//! Revocation as relying parties see it: OCSP answers and CRLs after a
//! revocation, revocations that cannot be undone, and CRLs owed by a
//! process that stopped before publishing them.

use super::*;

on_both!(
    ocsp_and_crl_after_revocation,
    revocation_is_final,
    crls_owed_by_a_stopped_process,
    ocsp_flood_within_the_live_budget,
    crl_requests_never_make_crls,
    ambiguous_serial_needs_its_issuer,
);

/// A serial stored under two CAs is not revoked (or shown) by serial
/// alone, from the command line or the API: the answer names both CAs and
/// nothing changes; naming the issuer revokes that one only.
fn ambiguous_serial_needs_its_issuer(b: Backend) {
    let hm = setup!(b);
    let (serial, _) = hm.issue("a", "personal", "CN=Twin Serial,C=HK", &[]);
    hm.sql_ok(&format!(
        "INSERT INTO certificates (issuer, serial, status, profile, subject, cert, not_before, not_after, shard, created_at, changed_at) \
         SELECT 'root', serial, status, profile, subject, cert, not_before, not_after, shard, created_at - 10, changed_at FROM certificates WHERE serial = '{serial}'"
    ));
    let revoked = || {
        hm.sql_ok(&format!(
            "SELECT issuer, CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END FROM certificates WHERE serial = '{serial}' ORDER BY issuer"
        ))
    };
    let none = revoked();
    let e = hm.fails(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert!(
        e.contains("several CAs (issuing, root)") && e.contains("issuer"),
        "{e}"
    );
    let e = hm.fails(&["cert", "show", &serial]);
    assert!(e.contains("several CAs"), "{e}");
    let srv = hm.serve();
    let auth = format!("Bearer {}", hm.token);
    let (st, body) = srv.request(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"reason":"keyCompromise"}"#,
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("several CAs"), "{body}");
    assert_eq!(revoked(), none, "an ambiguous revocation changed something");
    let (st, body) = srv.request(
        "GET",
        &format!("/api/v1/certificates/{serial}?issuer=issuing"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let (st, body) = srv.request(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"reason":"keyCompromise","issuer":"issuing"}"#,
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let after = revoked();
    assert!(
        after.contains("issuing|1") && after.contains("root|0"),
        "{after}"
    );
}

/// The DER of the nonce extension's OID (id-pkix-ocsp-nonce,
/// 1.3.6.1.5.5.7.48.1.2): in a response, its nonce was echoed.
const NONCE_OID: &[u8] = &[
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
];

/// A flood of what only a live signature answers (nonces, serials never
/// issued, several CertIDs) gets at most the configured live signatures a
/// second; the rest get the answers that cost none (the cached response
/// without the nonce, `unauthorized`, `tryLater`), and meanwhile cached
/// OCSP answers, /healthz and the admin API keep answering.
fn ocsp_flood_within_the_live_budget(b: Backend) {
    const RATE: u64 = 20;
    let hm = setup!(b);
    hm.set_config("ca", &format!("ocsp_live_signatures_per_second = {RATE}"));
    let (_, good) = hm.issue("a", "personal", "CN=Good Holder,C=HK", &[]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let issuer = hm.p("issuing.pem");
    let request = |name: &str, what: &[&str]| {
        let out = hm.p(&format!("{name}.req"));
        let mut args = vec!["ocsp", "-issuer", issuer.as_str()];
        args.extend_from_slice(what);
        args.extend(["-reqout", &out]);
        openssl_ok(&args);
        std::fs::read(&out).unwrap()
    };
    let nonce = request("nonce", &["-cert", &good]);
    assert!(nonce.windows(NONCE_OID.len()).any(|w| w == NONCE_OID));
    let plain = request("plain", &["-cert", &good, "-no_nonce"]);
    let unknown: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            request(
                &format!("unknown{i}"),
                &["-serial", &format!("0x7e57{i:028x}"), "-no_nonce"],
            )
        })
        .collect();
    let several = request(
        "several",
        &["-cert", &good, "-serial", "0x0123456789abcdef", "-no_nonce"],
    );
    let post = |body: &[u8]| {
        srv.request(
            "POST",
            "/ocsp",
            &[("Content-Type", "application/ocsp-request")],
            body,
        )
    };
    // Warm: the cached answer exists.
    let (st, cached) = post(&plain);
    assert_eq!(st, 200);
    assert!(cached.len() > 100, "{cached:?}");

    #[derive(Default, Debug)]
    struct Seen {
        nonce_echoed: u64,
        nonce_ignored: u64,
        unknown_signed: u64,
        unknown_unauthorized: u64,
        several_signed: u64,
        several_try_later: u64,
        other: Vec<String>,
        ignored_sample: Vec<u8>,
    }
    let seen = std::sync::Mutex::new(Seen::default());
    let unauthorized: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x06];
    let try_later: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x03];
    let flood = std::time::Duration::from_secs(3);
    let start = std::time::Instant::now();
    let mut latencies = Vec::new();
    let mut last_unauthorized = Vec::new();
    std::thread::scope(|sc| {
        for t in 0..6usize {
            let (seen, nonce, unknown, several) = (&seen, &nonce, &unknown, &several);
            let post = &post;
            sc.spawn(move || {
                let mut i = t;
                while start.elapsed() < flood {
                    i += 1;
                    let kind = i % 3;
                    let body = match kind {
                        0 => nonce.clone(),
                        1 => unknown[i % unknown.len()].clone(),
                        _ => several.clone(),
                    };
                    let (st, resp) = post(&body);
                    let mut s = seen.lock().unwrap();
                    let echoed = resp.windows(NONCE_OID.len()).any(|w| w == NONCE_OID);
                    match (st, kind) {
                        (200, 0) if echoed => s.nonce_echoed += 1,
                        (200, 0) if resp.len() > 100 => {
                            s.nonce_ignored += 1;
                            s.ignored_sample = resp;
                        }
                        (200, 1) if resp == unauthorized => s.unknown_unauthorized += 1,
                        (200, 1) if resp.len() > 100 => s.unknown_signed += 1,
                        (200, 2) if resp == try_later => s.several_try_later += 1,
                        (200, 2) if resp.len() > 100 => s.several_signed += 1,
                        _ => s.other.push(format!("{kind}: {st} {resp:02x?}")),
                    }
                }
            });
        }
        // Meanwhile: the cached answer, health, and the API.
        let auth = format!("Bearer {}", hm.token);
        while start.elapsed() < flood {
            let t = std::time::Instant::now();
            let (st, resp) = post(&plain);
            assert_eq!((st, resp.as_slice()), (200, cached.as_slice()));
            let (st, _) = srv.get("/healthz");
            assert_eq!(st, 200);
            let (st, body) = srv.request(
                "GET",
                "/api/v1/certificates?limit=1",
                &[("Authorization", &auth)],
                b"",
            );
            assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
            latencies.push(t.elapsed());
            let (_, r) = post(&unknown[0]);
            if r == unauthorized {
                last_unauthorized = r;
            }
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut s = seen.into_inner().unwrap();
    let ignored_sample = std::mem::take(&mut s.ignored_sample);
    assert!(s.other.is_empty(), "unexpected answers: {:?}", s.other);
    // A bucket of a second's worth, refilled at RATE a second (the main
    // thread's unknown serials count too, so they are bounded by it also).
    let live = s.nonce_echoed + s.unknown_signed + s.several_signed;
    let bound = RATE + (RATE as f64 * elapsed).ceil() as u64 + 2;
    assert!(
        live <= bound,
        "{live} live signatures in {elapsed:.1} s (bound {bound}): {s:?}"
    );
    assert!(
        s.nonce_ignored > 0 && s.unknown_unauthorized > 0 && s.several_try_later > 0,
        "the flood never went past the budget: {s:?}"
    );
    latencies.sort();
    let worst = latencies.last().copied().unwrap_or_default();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < std::time::Duration::from_millis(250) && worst < std::time::Duration::from_secs(2),
        "cached OCSP + /healthz + API under the flood: median {median:?}, worst {worst:?} over {} rounds",
        latencies.len()
    );
    eprintln!(
        "flood: {s:?}; {} rounds of cached OCSP + healthz + API, median {median:?}, worst {worst:?}",
        latencies.len()
    );
    // OpenSSL reads the answers that cost no signature for what they are.
    let f = hm.p("unauthorized.der");
    std::fs::write(
        &f,
        if last_unauthorized.is_empty() {
            unauthorized
        } else {
            &last_unauthorized
        },
    )
    .unwrap();
    let text = openssl_text(&["ocsp", "-respin", &f, "-resp_text", "-noverify"]);
    assert!(text.contains("unauthorized (6)"), "{text}");
    // An answer whose nonce was ignored: the cached response, as OpenSSL
    // verifies it.
    let f = hm.p("nonce.der");
    std::fs::write(&f, &ignored_sample).unwrap();
    let text = openssl_text(&[
        "ocsp",
        "-respin",
        &f,
        "-issuer",
        &hm.p("issuing.pem"),
        "-cert",
        &good,
        "-CAfile",
        &hm.p("root.pem"),
        "-no_nonce",
    ]);
    assert!(
        text.contains("Response verify OK") && text.contains(": good"),
        "{text}"
    );
}

/// Requests for CRLs never make the CA sign one: a burst of GETs for
/// partitions nobody's certificate names (of the root, of the issuing CA,
/// out of range) and for unknown CAs gets 404s and leaves every stored CRL
/// as it was; a new certificate's distribution point answers at once.
fn crl_requests_never_make_crls(b: Backend) {
    let hm = setup!(b);
    let srv = hm.serve();
    let crls = || hm.sql_ok("SELECT issuer, shard, number FROM crls ORDER BY issuer, shard");
    let before = crls();
    let shard = unix_now() / (90 * 86_400);
    let paths = [
        format!("/crl/root/{shard}.crl"),
        format!("/crl/root/{}.crl", shard + 3),
        format!("/crl/issuing/{}.crl", shard + 500),
        "/crl/nosuch.crl".to_string(),
        format!("/crl/nosuch/{shard}.crl"),
    ];
    std::thread::scope(|sc| {
        for t in 0..8 {
            let (srv, paths) = (&srv, &paths);
            sc.spawn(move || {
                for i in 0..25 {
                    let p = &paths[(t + i) % paths.len()];
                    let (st, body) = srv.get(p);
                    assert_eq!(st, 404, "{p}: {}", String::from_utf8_lossy(&body));
                    assert!(String::from_utf8_lossy(&body).contains("\"detail\""));
                }
            });
        }
    });
    assert_eq!(crls(), before, "a GET made or replaced a CRL");
    // A certificate issued by another process: its CDP answers at once.
    let (serial, pem) = hm.issue("n", "personal", "CN=New Holder,C=HK", &["--days", "30"]);
    let text = openssl_ok(&[
        "x509",
        "-in",
        &pem,
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("URI:"))
        .unwrap()
        .to_string();
    let path = &url[url.find("/crl/").unwrap()..];
    let (st, der) = srv.get(path);
    assert_eq!(st, 200, "{path}");
    hm.fetch_ca_files(&srv);
    let crl = hm.crl_pem(&der, "new");
    let out = verify_with_crls(&hm, "issuing.pem", &[&crl], &pem, false);
    assert!(out.contains(": OK"), "{serial}: {out}");
}

fn ocsp_and_crl_after_revocation(b: Backend) {
    let hm = setup!(b);
    let (_, good) = hm.issue("a", "personal", "CN=Good Holder,C=HK", &[]);
    let (bad_serial, bad) = hm.issue("b", "personal", "CN=Lost Card,C=HK", &[]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let ocsp = |cert: &str| ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", cert], &[]);
    let o = ocsp(&bad);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    // Responses for certificates issued before the server started were
    // pre-signed at start, not when first asked.
    let started = unix_now();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Without a nonce (RFC 5019), so that a cached response may answer.
    let o = ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &good], &["-no_nonce"]);
    // The cached response is served as kept (its part before the responder
    // certificate) plus the certificate: OpenSSL must still verify it.
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    let this_update = o
        .lines()
        .find_map(|l| l.trim().strip_prefix("This Update: "))
        .map(|d| {
            let out = std::process::Command::new("date")
                .args(["-u", "-d", d, "+%s"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .unwrap();
    assert!(
        this_update <= started + 1,
        "thisUpdate {this_update} is not from the start ({started}): {o}"
    );

    // Revoke through the API: the server refreshes its answers at once.
    let auth = format!("Bearer {}", hm.token);
    let (st, body) = srv.request(
        "POST",
        &format!("/api/v1/certificates/{bad_serial}/revoke"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"reason":"keyCompromise"}"#,
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));

    let o = ocsp(&bad);
    assert!(
        o.contains("Response verify OK")
            && o.contains(": revoked")
            && o.contains("Reason: keyCompromise"),
        "{o}"
    );
    let o = ocsp(&good);
    assert!(o.contains(": good"), "{o}");

    // A serial the CA never issued.
    let text = ocsp_ask(
        &hm,
        &srv,
        "issuing.pem",
        &["-serial", "0x0123456789abcdef0123456789abcdef"],
        &[],
    );
    assert!(
        text.contains("Response verify OK")
            && text.contains("0x0123456789abcdef0123456789abcdef: unknown"),
        "{text}"
    );

    // RFC 5019 GET.
    let req = hm.p("req.der");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &hm.p("issuing.pem"),
        "-cert",
        &good,
        "-no_nonce",
        "-reqout",
        &req,
    ]);
    let b64 = openssl_ok(&["base64", "-A", "-in", &req]);
    let enc: String = b64
        .trim()
        .chars()
        .map(|c| match c {
            '+' => "%2B".into(),
            '/' => "%2F".into(),
            '=' => "%3D".into(),
            c => c.to_string(),
        })
        .collect();
    let (st, body) = srv.get(&format!("/ocsp/{enc}"));
    assert_eq!(st, 200);
    std::fs::write(hm.path("get.der"), body).unwrap();
    let o = openssl_ok(&[
        "ocsp",
        "-respin",
        &hm.p("get.der"),
        "-issuer",
        &hm.p("issuing.pem"),
        "-cert",
        &good,
        "-CAfile",
        &hm.p("root.pem"),
    ]);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );

    // Malformed requests and foreign issuers.
    let (st, body) = srv.request(
        "POST",
        "/ocsp",
        &[("Content-Type", "application/ocsp-request")],
        b"not DER",
    );
    assert_eq!(
        (st, body.as_slice()),
        (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..])
    );
    let (_, body) = srv.request(
        "POST",
        "/ocsp",
        &[("Content-Type", "application/ocsp-request")],
        &vec![0x30; 8000],
    );
    assert_eq!(body, [0x30, 0x03, 0x0a, 0x01, 0x01]);
    let text = ocsp_ask(&hm, &srv, "root.pem", &["-serial", "0x01"], &[]);
    assert!(text.contains("unauthorized"), "{text}");

    // CRLs: full, shard (the URL in the certificate), root.
    let crl_of = |path: &str, name: &str| {
        let (st, der) = srv.get(path);
        assert_eq!(st, 200, "{path}");
        hm.crl_pem(&der, name)
    };
    wait_for_crl_listing(&srv, "/crl/issuing.crl", &bad_serial);
    let full = crl_of("/crl/issuing.crl", "full");
    let text = openssl_ok(&[
        "x509",
        "-in",
        &bad,
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("URI:"))
        .unwrap()
        .to_string();
    let path = url
        .split_once("/crl/")
        .map(|(_, p)| format!("/crl/{p}"))
        .unwrap();
    let shard = crl_of(&path, "shard");
    let root_crl = crl_of("/crl/root.crl", "root");
    // Partitions nobody can name are not generated on request.
    let crls_before = hm.sql_ok("SELECT COUNT(*) FROM crls");
    let (st, _) = srv.get("/crl/issuing/99999999.crl");
    assert_eq!(st, 404);
    assert_eq!(hm.sql_ok("SELECT COUNT(*) FROM crls"), crls_before);
    let shard_text = openssl_ok(&["crl", "-in", &shard, "-noout", "-text"]);
    assert!(
        shard_text.contains("Issuing Distribution Point") && shard_text.contains(&url),
        "{shard_text}"
    );

    let check = |cert: &str, crls: &[&str], all: bool| {
        verify_with_crls(&hm, "issuing.pem", crls, cert, all)
    };
    assert!(check(&good, &[&full], false).contains(": OK"));
    assert!(check(&bad, &[&full], false).contains("certificate revoked"));
    assert!(
        check(&good, &[&shard, &root_crl], true).contains(": OK"),
        "{}",
        check(&good, &[&shard, &root_crl], true)
    );
    assert!(check(&bad, &[&shard, &root_crl], true).contains("certificate revoked"));
    pkilint_clean("lint_crl", &["-t", "CRL", "-p", "PKIX"], full.as_ref());
    pkilint_clean("lint_crl", &["-t", "CRL", "-p", "PKIX"], shard.as_ref());
    pkilint_clean("lint_crl", &["-t", "ARL", "-p", "PKIX"], root_crl.as_ref());
    let o = openssl_ok(&[
        "crl",
        "-in",
        &full,
        "-noout",
        "-CAfile",
        &hm.p("issuing.pem"),
    ]);
    assert!(o.contains("verify OK"), "{o}");
}

fn revocation_is_final(b: Backend) {
    let hm = setup!(b);
    let (serial, _) = hm.issue("a", "personal", "CN=Final,C=HK", &[]);
    let e = hm.fails(&["cert", "revoke", &serial, "--reason", "certificateHold"]);
    assert!(e.contains("is not offered"), "{e}");
    // Any spelling of the serial names the certificate.
    let spelled = format!("000{}", serial.trim_start_matches('0').to_uppercase());
    hm.ok(&["cert", "revoke", &spelled, "--reason", "affiliationChanged"]);
    let e = hm.fails(&["cert", "revoke", &serial, "--reason", "superseded"]);
    assert!(e.contains("already revoked"), "{e}");
    let un = hm.sql(&format!(
        "UPDATE certificates SET revoked_at = NULL, reason = NULL WHERE serial = '{serial}'"
    ));
    assert!(
        !un.status.success()
            && String::from_utf8_lossy(&un.stderr).contains("cannot be un-revoked"),
        "the database must refuse to un-revoke: {}",
        String::from_utf8_lossy(&un.stderr)
    );
    let re = hm.sql(&format!(
        "UPDATE certificates SET reason = 1 WHERE serial = '{serial}'"
    ));
    assert!(
        !re.status.success()
            && String::from_utf8_lossy(&re.stderr).contains("cannot be un-revoked"),
        "the database must refuse to change a revocation's reason: {}",
        String::from_utf8_lossy(&re.stderr)
    );
    let show = hm.ok(&["cert", "show", &serial]);
    assert!(
        show.contains("revoked") && show.contains("affiliationChanged"),
        "{show}"
    );
}

/// A revocation stored by a process that stopped before publishing its
/// CRLs (injected here: the revocation and its CRL debts, the partition's
/// and the full CRL's, written straight into the database, as a CLI
/// command that crashed after its commit leaves them) is put on the CRLs
/// by the running server, and the debts are paid.
fn crls_owed_by_a_stopped_process(b: Backend) {
    let hm = setup!(b);
    let (serial, cert) = hm.issue("lost", "personal", "CN=Lost Card,C=HK", &[]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let at = unix_now() - 11;
    hm.sql_ok(&format!(
        "UPDATE certificates SET revoked_at = {at}, reason = 1, changed_at = {at} WHERE serial = '{serial}'"
    ));
    hm.sql_ok(&format!(
        "INSERT INTO crls_due (issuer, shard, version, changed_at) \
         SELECT issuer, shard, 1, {at} FROM certificates WHERE serial = '{serial}' \
         UNION ALL SELECT issuer, -1, 1, {at} FROM certificates WHERE serial = '{serial}'"
    ));
    // The certificate's partition (its CRL distribution point) and the
    // full CRL.
    let cdp = openssl_ok(&[
        "x509",
        "-in",
        &cert,
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    let partition = cdp
        .split("URI:")
        .nth(1)
        .and_then(|u| u.find("/crl/").map(|i| u[i..].trim().to_string()))
        .unwrap();
    let verdict = |path: &str| {
        let (st, der) = srv.get(path);
        assert_eq!(st, 200);
        let crl = hm.crl_pem(&der, "owed");
        verify_with_crls(&hm, "issuing.pem", &[&crl], &cert, false)
    };
    for path in [partition.as_str(), "/crl/issuing.crl"] {
        eventually(&format!("the owed CRL {path}"), || {
            verdict(path).contains("certificate revoked")
        });
    }
    eventually("the debt to be paid", || {
        hm.sql_ok("SELECT COUNT(*) FROM crls_due WHERE version > paid")
            .trim()
            == "0"
    });
}
