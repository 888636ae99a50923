//! Revocation as relying parties see it: OCSP answers and CRLs after a
//! revocation, revocations that cannot be undone, and CRLs owed by a
//! process that stopped before publishing them.

use super::*;

on_both!(
    ocsp_and_crl_after_revocation,
    revocation_is_final,
    crls_owed_by_a_stopped_process,
);

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
