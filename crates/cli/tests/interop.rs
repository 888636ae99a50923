//! End-to-end tests of the `hallmark` binary, judged by OpenSSL and pkilint,
//! on SQLite and (when HALLMARK_TEST_DATABASE_URL is set) PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
        }
    };
}

on_both!(
    profiles_verify_and_lint,
    ocsp_and_crl_after_revocation,
    central_keygen_pkcs12,
    bad_input_changes_nothing,
    crash_between_sign_and_store,
    audit_detects_tampering,
    revocation_is_final,
    api_issue_and_problems,
    api_matches_its_openapi_document,
    https_with_own_certificate,
    admin_api_over_mutual_tls,
    admin_token_rotation,
    offline_root_signs_issuing_ca,
    rsa_hierarchy,
    rsa_pss_hierarchy,
    rsa_pss_on_a_pkcs11_token,
    keys_on_a_pkcs11_token,
    m_of_n_custodians,
    backup_and_restore,
    issuing_ca_rollover,
    root_rekey_with_cross_certificates,
    issuing_ca_revocation,
    pkcs11_pin_quorum,
    crls_owed_by_a_stopped_process,
);

macro_rules! setup {
    ($b:expr) => {
        match Hm::new($b) {
            Some(h) => h,
            None => {
                eprintln!("PostgreSQL not configured (HALLMARK_TEST_DATABASE_URL); SQLite only");
                return;
            }
        }
    };
}

#[path = "interop/ca_lifecycle.rs"]
mod ca_lifecycle;
use ca_lifecycle::*;
#[path = "interop/revocation.rs"]
mod revocation;
use revocation::*;
#[path = "interop/admin.rs"]
mod admin;
use admin::*;

#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls `ok` for up to 15 s (a running server reads its config every 5 s).
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "waited 15 s for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Waits until the CRL served at `path` lists `serial` (hex): the API
/// answers a revocation once the certificate's partition CRL is out, and
/// the full CRL follows (its bytes are searched for the serial's; the
/// callers then judge the CRL with OpenSSL).
fn wait_for_crl_listing(srv: &Server, path: &str, serial: &str) {
    let bytes = hallmark_pki::unhex(serial).unwrap();
    eventually(&format!("{path} to list {serial}"), || {
        let (st, der) = srv.get(path);
        st == 200 && der.windows(bytes.len()).any(|w| w == bytes)
    });
}

fn verify_chain(hm: &Hm, leaf: &str) -> String {
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
fn ocsp_ask(hm: &Hm, srv: &Server, issuer: &str, what: &[&str], extra: &[&str]) -> String {
    let (issuer, root, url) = (hm.p(issuer), hm.p("root.pem"), srv.url("/ocsp"));
    let mut args = vec!["ocsp", "-issuer", &issuer, "-CAfile", &root, "-url", &url];
    args.extend_from_slice(what);
    args.extend_from_slice(extra);
    openssl_text(&args)
}

/// The responder certificate embedded in an OCSP response, as PEM.
fn responder_cert(resp: &str) -> String {
    let o = openssl_ok(&["ocsp", "-respin", resp, "-resp_text", "-noverify"]);
    let start = o.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = o.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    format!("{}\n", &o[start..end])
}

fn profiles_verify_and_lint(b: Backend) {
    let hm = setup!(b);
    let leaves = [
        hm.issue(
            "personal",
            "personal",
            "CN=CHAN Tai Man,CN=陳大文,C=HK",
            &["--email", "chan.taiman@example.hk"],
        ),
        hm.issue(
            "org",
            "organisational",
            "CN=LEE Siu Ming,O=Example Trading Ltd,organizationIdentifier=NTRHK-12345678,C=HK",
            &[],
        ),
        hm.issue(
            "enc",
            "encipherment",
            "CN=CHAN Tai Man,C=HK",
            &["--email", "chan.taiman@example.hk"],
        ),
        hm.issue(
            "server",
            "server",
            "CN=www.example.hk",
            &["--dns", "www.example.hk", "--dns", "example.hk"],
        ),
    ];
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);

    // The CSR's subject is never used.
    for (_, pem) in &leaves {
        let text = openssl_ok(&["x509", "-in", pem, "-noout", "-subject"]);
        assert!(!text.contains("from-the-csr"), "{text}");
    }
    let personal = openssl_ok(&[
        "x509",
        "-in",
        &leaves[0].1,
        "-noout",
        "-text",
        "-nameopt",
        "utf8",
    ]);
    assert!(personal.contains("陳大文"), "{personal}");
    assert!(personal.contains("email:chan.taiman@example.hk"));
    assert!(personal.contains("Digital Signature, Non Repudiation"));
    let enc = openssl_ok(&["x509", "-in", &leaves[2].1, "-noout", "-text"]);
    assert!(
        enc.contains("Key Agreement") && !enc.contains("Digital Signature"),
        "{enc}"
    );
    let server = openssl_ok(&["x509", "-in", &leaves[3].1, "-noout", "-text"]);
    assert!(server.contains("DNS:www.example.hk, DNS:example.hk"));

    // Root and issuing CA: the root is P-384 with a Chinese UTF8String name.
    let root = openssl_ok(&["x509", "-in", &hm.p("root.pem"), "-noout", "-text"]);
    assert!(
        root.contains("NIST CURVE: P-384") && root.contains("CA:TRUE"),
        "{root}"
    );
    let asn1 = openssl_ok(&["asn1parse", "-in", &hm.p("root.pem")]);
    assert!(asn1.contains("UTF8STRING") && asn1.contains("PRINTABLESTRING"));

    for (_, pem) in &leaves {
        assert!(
            verify_chain(&hm, pem).contains(": OK"),
            "{}",
            verify_chain(&hm, pem)
        );
        pkilint_clean("lint_pkix_cert", &[], pem.as_ref());
        pkilint_clean(
            "lint_pkix_signer_signee_cert_chain",
            &[&hm.p("issuing.pem")],
            pem.as_ref(),
        );
    }
    for ca in ["root.pem", "issuing.pem"] {
        pkilint_clean("lint_pkix_cert", &[], &hm.path(ca));
    }
    pkilint_clean(
        "lint_pkix_signer_signee_cert_chain",
        &[&hm.p("root.pem")],
        &hm.path("issuing.pem"),
    );

    // The delegated OCSP signer, taken from a live response.
    let resp = hm.p("resp.der");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &hm.p("issuing.pem"),
        "-cert",
        &leaves[0].1,
        "-url",
        &srv.url("/ocsp"),
        "-respout",
        &resp,
        "-noverify",
    ]);
    std::fs::write(hm.path("ocsp-signer.pem"), responder_cert(&resp)).unwrap();
    let signer = openssl_ok(&["x509", "-in", &hm.p("ocsp-signer.pem"), "-noout", "-text"]);
    assert!(
        signer.contains("OCSP Signing") && signer.contains("OCSP No Check"),
        "{signer}"
    );
    pkilint_clean("lint_pkix_cert", &[], &hm.path("ocsp-signer.pem"));
    pkilint_clean(
        "lint_pkix_signer_signee_cert_chain",
        &[&hm.p("issuing.pem")],
        &hm.path("ocsp-signer.pem"),
    );
    pkilint_clean("lint_ocsp_response", &[], resp.as_ref());
}

fn central_keygen_pkcs12(b: Backend) {
    let hm = setup!(b);
    let issue = |profile: &str, name: &str| hm.issue_p12(name, profile, "CN=陳大文,C=HK");
    let (p12, pin, serial) = issue("personal", "p");
    assert_eq!(pin.len(), 12);
    let pass = format!("pass:{pin}");
    let info = openssl_ok(&["pkcs12", "-info", "-in", &p12, "-passin", &pass, "-noout"]);
    assert!(info.contains("MAC: sha256"), "{info}");
    assert!(info.contains("PBES2, PBKDF2, AES-256-CBC"), "{info}");
    assert!(
        !info.contains("RC2") && !info.contains("3DES") && !info.contains("TripleDES"),
        "{info}"
    );
    openssl_ok(&[
        "pkcs12",
        "-in",
        &p12,
        "-passin",
        &pass,
        "-nodes",
        "-out",
        &hm.p("all.pem"),
    ]);
    let key_pub = openssl_ok(&["pkey", "-in", &hm.p("all.pem"), "-pubout"]);
    let cert_pub = openssl_ok(&["x509", "-in", &hm.p("p.pem"), "-noout", "-pubkey"]);
    assert_eq!(
        key_pub, cert_pub,
        "the PKCS#12 key belongs to the certificate"
    );
    let wrong = openssl(&[
        "pkcs12",
        "-info",
        "-in",
        &p12,
        "-passin",
        "pass:WRONGPIN1234",
        "-noout",
    ]);
    assert!(!wrong.status.success());
    // Not escrowed for personal certificates; escrowed (sealed) for encipherment.
    let escrow = hm.sql_ok(&format!(
        "SELECT escrow IS NULL FROM certificates WHERE serial = '{serial}'"
    ));
    assert!(matches!(escrow.trim(), "1" | "t" | "True"), "{escrow}");
    let (_, _, enc_serial) = issue("encipherment", "e");
    let escrow = hm.sql_ok(&format!(
        "SELECT length(escrow) > 0 FROM certificates WHERE serial = '{enc_serial}'"
    ));
    assert!(matches!(escrow.trim(), "1" | "t" | "True"), "{escrow}");
    // The data directory holds no private key in clear.
    for entry in std::fs::read_dir(&hm.dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "p12")
            || p.file_name().is_some_and(|n| n == "all.pem")
        {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&p) {
            assert!(
                !text.contains("PRIVATE KEY") || p.extension().is_some_and(|e| e == "key"),
                "{}",
                p.display()
            );
        }
    }
}

fn count_certs(hm: &Hm) -> usize {
    hm.ok(&["cert", "list", "--limit", "1000"]).lines().count()
}

fn bad_input_changes_nothing(b: Backend) {
    let hm = setup!(b);
    hm.issue("ok", "personal", "CN=Someone,C=HK", &[]);
    let before = count_certs(&hm);
    let audit_before = hm.sql_ok("SELECT COUNT(*) FROM audit_log");
    let csr = hm.p("ok.csr");

    std::fs::write(hm.path("garbage.csr"), b"this is not a CSR").unwrap();
    std::fs::write(hm.path("big.csr"), vec![b'A'; 40_000]).unwrap();
    // Flip one bit of the CSR's signature.
    openssl_ok(&[
        "req",
        "-in",
        &csr,
        "-outform",
        "DER",
        "-out",
        &hm.p("ok.der"),
    ]);
    let mut der = std::fs::read(hm.path("ok.der")).unwrap();
    let n = der.len();
    der[n - 5] ^= 0x01;
    std::fs::write(hm.path("badsig.der"), der).unwrap();
    openssl_ok(&["genrsa", "-out", &hm.p("weak.key"), "1024"]);
    let weak = ["-key", &hm.p("weak.key"), "-subj", "/CN=weak"];
    openssl_ok(&[&["req", "-new"][..], &weak, &["-out", &hm.p("weak.csr")]].concat());

    // (CSR, profile, subject, further arguments, what the error must say)
    let refused: &[(&str, &str, &str, &[&str], &str)] = &[
        ("garbage.csr", "personal", "CN=X", &[], "malformed CSR"),
        ("big.csr", "personal", "CN=X", &[], "too large"),
        (
            "badsig.der",
            "personal",
            "CN=X",
            &[],
            "CSR signature does not verify",
        ),
        ("weak.csr", "personal", "CN=X", &[], "at least 2048 bits"),
        ("ok.csr", "gold", "CN=X", &[], "unknown profile \"gold\""),
        ("ok.csr", "personal", "C=Hong Kong,CN=X", &[], "two-letter"),
        ("ok.csr", "server", "CN=x", &[], "requires a DNS name"),
        (
            "ok.csr",
            "personal",
            "CN=X,O=Org",
            &[],
            "subject attribute O is not allowed",
        ),
        (
            "ok.csr",
            "server",
            "CN=x",
            &["--dns", "bad_name!"],
            "not a valid DNS name",
        ),
        (
            "ok.csr",
            "personal",
            "CN=X",
            &["--days", "4000"],
            "outside 1..=1095",
        ),
        (
            "ok.csr",
            "server",
            "CN=10.0.0.1",
            &["--dns", "10.0.0.1"],
            "not a valid DNS name",
        ),
        (
            "ok.csr",
            "server",
            "CN=www.example.hk",
            &["--dns", "other.example.hk"],
            "is not one of the certificate's DNS names",
        ),
        (
            "ok.csr",
            "server",
            "CN=a.example.hk",
            &["--dns", "a.example.hk", "--dns", "A.Example.HK"],
            "twice",
        ),
        (
            "ok.csr",
            "server",
            "CN=xn--fsqu00a.xn--j6w193g",
            &["--dns", "例子.香港"],
            "punycode",
        ),
        ("ok.csr", "personal", "CN=a+SN=b", &[], "multi-valued"),
        ("ok.csr", "personal", "CN=x\\00y", &[], "control character"),
    ];
    for &(file, profile, subject, more, expected) in refused {
        let csr = hm.p(file);
        let args = [
            &["cert", "issue", "--profile", profile, "--subject", subject][..],
            more,
            &["--csr", &csr],
        ]
        .concat();
        let e = hm.fails(&args);
        assert!(e.contains(expected), "{args:?}: {e}");
    }

    let e = hm.fails(&["cert", "revoke", "00aabbccdd", "--reason", "keyCompromise"]);
    assert!(e.contains("no certificate with serial 00aabbccdd"), "{e}");
    let e = hm.fails(&["cert", "revoke", "zz", "--reason", "keyCompromise"]);
    assert!(e.contains("is not a serial number"), "{e}");
    // A centrally generated key with nowhere to go is not generated.
    let e = hm.fails(&[
        "cert",
        "issue",
        "--profile",
        "personal",
        "--subject",
        "CN=Nowhere,C=HK",
        "--generate-key",
        "--p12-out",
        &hm.p("no/such/dir/x.p12"),
    ]);
    assert!(e.contains("cannot create"), "{e}");
    let e = hm.fails(&["cert", "revoke", "00aabbccdd", "--reason", "bored"]);
    assert!(e.contains("unknown reason"), "{e}");

    assert_eq!(
        count_certs(&hm),
        before,
        "bad input must not create certificates"
    );
    assert_eq!(
        hm.sql_ok("SELECT COUNT(*) FROM audit_log"),
        audit_before,
        "bad input must not be recorded as a change"
    );
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
}

fn crash_between_sign_and_store(b: Backend) {
    let hm = setup!(b);
    let (first, _) = hm.issue("first", "personal", "CN=Before Crash,C=HK", &[]);
    let csr = hm.p("first.csr");
    let out = hm
        .command()
        .env("HALLMARK_DANGER_ABORT_AFTER_SIGN", "1")
        .args([
            "cert",
            "issue",
            "--profile",
            "personal",
            "--subject",
            "CN=Crash,C=HK",
            "--csr",
            &csr,
            "--out",
            &hm.p("crash.pem"),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the injected crash must kill the process"
    );
    assert!(
        !hm.path("crash.pem").exists(),
        "no certificate left the process"
    );
    // The serial and the linted TBS were recorded before signing.
    let rows = hm.sql_ok("SELECT serial, status, length(tbs) > 0, cert IS NULL FROM certificates WHERE status <> 'issued'");
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let fields: Vec<&str> = rows[0].split('|').collect();
    let pending = fields[0].to_string();
    assert_eq!(fields[1], "pending");
    assert!(
        matches!(fields[2], "1" | "t" | "True") && matches!(fields[3], "1" | "t" | "True"),
        "{fields:?}"
    );
    assert_ne!(pending, first);

    // After a restart, an old pending row is abandoned, never reused.
    hm.sql_ok(&format!(
        "UPDATE certificates SET created_at = created_at - 3600 WHERE serial = '{pending}'"
    ));
    let (next, _) = hm.issue("next", "personal", "CN=After Crash,C=HK", &[]);
    assert_ne!(next, pending);
    let status = hm.sql_ok(&format!(
        "SELECT status FROM certificates WHERE serial = '{pending}'"
    ));
    assert_eq!(status.trim(), "abandoned");
    // Serials are unique per issuer in the database itself.
    let dup = hm.sql(&format!(
        "INSERT INTO certificates (issuer, serial, status, profile, subject, tbs, not_before, not_after, shard, created_at, changed_at) \
         SELECT issuer, serial, 'pending', profile, subject, tbs, not_before, not_after, shard, created_at, changed_at FROM certificates WHERE serial = '{next}'"
    ));
    assert!(!dup.status.success(), "a duplicate serial must be refused");
    // The abandoned serial is unknown to OCSP; the issued ones are good.
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let o = ocsp_ask(
        &hm,
        &srv,
        "issuing.pem",
        &["-serial", &format!("0x{pending}")],
        &[],
    );
    assert!(
        o.contains("Response verify OK") && o.contains(": unknown"),
        "{o}"
    );
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
}

fn audit_detects_tampering(b: Backend) {
    let hm = setup!(b);
    let (serial, _) = hm.issue("a", "personal", "CN=Audit Me,C=HK", &[]);
    hm.ok(&["cert", "revoke", &serial, "--reason", "superseded"]);
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
    let issue_seq = hm
        .sql_ok("SELECT seq FROM audit_log WHERE action = 'certificate.issue'")
        .trim()
        .to_string();
    let original = hm
        .sql_ok(&format!(
            "SELECT details FROM audit_log WHERE seq = {issue_seq}"
        ))
        .trim()
        .to_string();

    // Edited entry.
    hm.sql_ok(&format!("UPDATE audit_log SET details = replace(details, 'personal', 'server') WHERE seq = {issue_seq}"));
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains(&format!("entry {issue_seq} was edited")),
        "{text}"
    );
    hm.sql_ok(&format!(
        "UPDATE audit_log SET details = '{}' WHERE seq = {issue_seq}",
        original.replace('\'', "''")
    ));
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));

    // Deleted entry in the middle.
    let saved = hm.sql_ok("SELECT seq, ts, actor, action, details FROM audit_log WHERE seq = 2");
    assert!(!saved.is_empty());
    hm.sql_ok("CREATE TABLE audit_backup AS SELECT * FROM audit_log");
    hm.sql_ok("DELETE FROM audit_log WHERE seq = 2");
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("entries 2..2 are missing"),
        "{text}"
    );
    hm.sql_ok("INSERT INTO audit_log SELECT * FROM audit_backup WHERE seq = 2");
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));

    // Truncated tail: the signed checkpoint still names it.
    let head = hm
        .sql_ok("SELECT MAX(seq) FROM audit_log")
        .trim()
        .parse::<i64>()
        .unwrap();
    hm.sql_ok(&format!("DELETE FROM audit_log WHERE seq = {head}"));
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("were deleted"),
        "{text}"
    );
    hm.sql_ok(&format!(
        "INSERT INTO audit_log SELECT * FROM audit_backup WHERE seq = {head}"
    ));

    // Rewriting history and recomputing the chain is caught by signatures:
    // an inserted entry with a forged link.
    hm.sql_ok(&format!(
        "INSERT INTO audit_log (seq, ts, actor, action, details, prev_hash, hash) SELECT seq + 1000, ts, actor, action, details, hash, hash FROM audit_log WHERE seq = {head}"
    ));
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("missing"), "{text}");
}

fn api_issue_and_problems(b: Backend) {
    let hm = setup!(b);
    let srv = hm.serve();
    let auth = format!("Bearer {}", hm.token);
    openssl_ok(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &hm.p("k.pem"),
    ]);
    openssl_ok(&[
        "req",
        "-new",
        "-key",
        &hm.p("k.pem"),
        "-subj",
        "/CN=ignored",
        "-out",
        &hm.p("r.csr"),
    ]);
    let csr = std::fs::read_to_string(hm.path("r.csr")).unwrap();
    let body = serde_json::json!({"profile": "server", "subject": "CN=api.example.hk", "csr": csr, "dns_names": ["api.example.hk"]});
    let post = |path: &str, body: &[u8], auth: &str| {
        srv.request(
            "POST",
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let (st, resp) = post("/api/v1/certificates", body.to_string().as_bytes(), &auth);
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&resp));
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    std::fs::write(hm.path("api.pem"), v["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(hm.path("chain.pem"), v["chain"][0].as_str().unwrap()).unwrap();
    hm.fetch_ca_files(&srv);
    assert!(verify_chain(&hm, &hm.p("api.pem")).contains(": OK"));
    let serial = v["serial"].as_str().unwrap();
    let (st, resp) = srv.request(
        "GET",
        &format!("/api/v1/certificates/{serial}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(st, 200);
    let got: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(got["status"], "issued");

    let problem = |st: u16, resp: &[u8], kind: &str| {
        let v: serde_json::Value = serde_json::from_slice(resp)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(resp)));
        assert_eq!(v["status"], st);
        assert_eq!(v["type"], format!("urn:hallmark:problem:{kind}"), "{v}");
        assert!(!v["detail"].as_str().unwrap().is_empty());
    };
    let (st, resp) = post(
        "/api/v1/certificates",
        body.to_string().as_bytes(),
        "Bearer hm_wrong",
    );
    assert_eq!(st, 401);
    problem(401, &resp, "unauthorized");
    let (st, head, _) = srv.request_full("GET", "/api/v1/certificates", &[], b"");
    assert_eq!(st, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    // Methods a route does not take: 405 problems that say what it takes.
    for (method, path, allowed) in [
        ("DELETE", "/api/v1/certificates/00ff", "get"),
        ("GET", "/ocsp", "post"),
        ("PUT", "/crl/issuing.crl", "get"),
    ] {
        let (st, head, resp) = srv.request_full(method, path, &[("Authorization", &auth)], b"");
        assert_eq!(st, 405, "{method} {path}");
        problem(405, &resp, "method-not-allowed");
        let allow = head
            .to_ascii_lowercase()
            .lines()
            .find(|l| l.starts_with("allow:"))
            .unwrap_or_default()
            .to_string();
        assert!(allow.contains(allowed), "{method} {path}: {head}");
    }
    // A bad limit, and cursors that no page gave (a NUL byte, which
    // PostgreSQL refuses in text, must not reach it).
    for query in [
        "limit=abc",
        "before=10:%00",
        "before=-1:00ff",
        "before=10:00FF",
        "before=10:",
        "before=10",
    ] {
        let (st, resp) = srv.request(
            "GET",
            &format!("/api/v1/certificates?{query}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(st, 400, "{query}");
        problem(400, &resp, "invalid");
    }
    let (st, resp) = post("/api/v1/certificates", b"{not json", &auth);
    assert_eq!(st, 400);
    problem(400, &resp, "malformed-json");
    let mut bad = body.clone();
    bad["profile"] = "gold".into();
    let (st, resp) = post("/api/v1/certificates", bad.to_string().as_bytes(), &auth);
    problem(st, &resp, "unknown-profile");
    let mut bad = body.clone();
    bad["csr"] = csr.replace('M', "N").into();
    let (st, resp) = post("/api/v1/certificates", bad.to_string().as_bytes(), &auth);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&resp));
    let (st, resp) = post("/api/v1/certificates", &vec![b'x'; 200_000], &auth);
    assert_eq!(st, 413);
    problem(413, &resp, "too-large");
    let (st, resp) = post(
        "/api/v1/certificates/00ff/revoke",
        br#"{"reason":"keyCompromise"}"#,
        &auth,
    );
    problem(st, &resp, "not-found");
    let (st, resp) = srv.get("/api/v1/openapi.json");
    assert_eq!(st, 200);
    let doc: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (st, _) = srv.get("/api/v1/certificates");
    assert_eq!(st, 401);
    let listed = hm.ok(&["cert", "list"]);
    assert_eq!(
        listed.lines().count(),
        1,
        "only the one good request issued a certificate"
    );
    // Listing into a pipe closed early (`hallmark cert list | head`) ends
    // quietly, as a process killed by SIGPIPE does, without a panic.
    let mut child = hm
        .command()
        .args(["cert", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Every kind of answer the API gives, success and problem alike, matches
/// the OpenAPI document it publishes, as openapi-core judges it.
fn api_matches_its_openapi_document(b: Backend) {
    let hm = setup!(b);
    let srv = hm.serve();
    // A CSR to send (the seed certificate itself is not used).
    hm.issue("seed", "personal", "CN=Seed,C=HK", &[]);
    let csr = std::fs::read_to_string(hm.path("seed.csr")).unwrap();
    let auth = format!("Bearer {}", hm.token);
    let mut exchanges = Vec::new();
    let mut call = |method: &str, path: &str, body: Option<serde_json::Value>, token: &str| {
        let raw = body.as_ref().map(|b| b.to_string()).unwrap_or_default();
        let (status, head, resp) = srv.request_full(
            method,
            &format!("/api/v1{path}"),
            &[
                ("Authorization", token),
                ("Content-Type", "application/json"),
            ],
            raw.as_bytes(),
        );
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
        let query: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let body_text = String::from_utf8_lossy(&resp).to_string();
        exchanges.push(serde_json::json!({
            "method": method, "path": path_only, "query": query, "request_body": raw,
            "status": status, "content_type": content_type, "body": body_text,
        }));
        (status, body_text)
    };
    let issue =
        serde_json::json!({"profile": "personal", "subject": "CN=Contract,C=HK", "csr": csr});
    let (st, created) = call("POST", "/certificates", Some(issue.clone()), &auth);
    assert_eq!(st, 201, "{created}");
    let serial = serde_json::from_str::<serde_json::Value>(&created).unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let expected: &[(&str, String, Option<serde_json::Value>, &str, u16)] = &[
        ("GET", "/certificates?limit=2".into(), None, &auth, 200),
        ("GET", format!("/certificates/{serial}"), None, &auth, 200),
        ("GET", "/certificates/00ff".into(), None, &auth, 404),
        ("GET", "/certificates?limit=0".into(), None, &auth, 400),
        ("GET", "/certificates".into(), None, "Bearer wrong", 401),
        (
            "POST",
            "/certificates".into(),
            Some(serde_json::json!({"profile": "gold", "subject": "CN=X", "csr": csr})),
            &auth,
            400,
        ),
        (
            "POST",
            "/certificates".into(),
            Some(
                serde_json::json!({"profile": "server", "subject": "CN=x.example.hk", "csr": csr}),
            ),
            &auth,
            422,
        ),
        (
            "POST",
            format!("/certificates/{serial}/revoke"),
            Some(serde_json::json!({"reason": "keyCompromise"})),
            &auth,
            200,
        ),
        (
            "POST",
            format!("/certificates/{serial}/revoke"),
            Some(serde_json::json!({"reason": "superseded"})),
            &auth,
            409,
        ),
        ("POST", "/crls".into(), None, &auth, 200),
    ];
    for (method, path, body, token, status) in expected {
        let (st, text) = call(method, path, body.clone(), token);
        assert_eq!(st, *status, "{method} {path}: {text}");
    }
    std::fs::write(
        hm.path("exchanges.json"),
        serde_json::to_vec(&exchanges).unwrap(),
    )
    .unwrap();
    let (st, doc) = srv.get("/api/v1/openapi.json");
    assert_eq!(st, 200);
    std::fs::write(hm.path("openapi.json"), doc).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi_check.py");
    let out = std::process::Command::new("python3")
        .args([script, &hm.p("openapi.json"), &hm.p("exchanges.json")])
        .output()
        .expect("python from the test venv (scripts/test.sh installs openapi-core)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rsa_hierarchy(b: Backend) {
    let Some(hm) = Hm::with_args(b, &["--root-key", "rsa3072", "--issuing-key", "rsa2048"]) else {
        return;
    };
    rsa_judged(&hm, "sha256WithRSAEncryption");
}

/// RSA CA keys signing with RSASSA-PSS: certificates, OCSP responses and
/// CRLs carry the CA/Browser Forum's PSS parameters and verify in OpenSSL.
fn rsa_pss_hierarchy(b: Backend) {
    let Some(hm) = Hm::with_args(
        b,
        &[
            "--root-key",
            "rsa3072",
            "--issuing-key",
            "rsa2048",
            "--rsa-padding",
            "pss",
        ],
    ) else {
        return;
    };
    rsa_judged(&hm, "rsassaPss");
}

/// The same with every key on a PKCS#11 token, which signs with
/// CKM_SHA256_RSA_PKCS_PSS.
fn rsa_pss_on_a_pkcs11_token(b: Backend) {
    if b == Backend::Postgres && postgres_base().is_none() {
        return;
    }
    let token = SoftHsmToken::new(&format!("hm-pss-{}-{:?}", std::process::id(), b));
    let mut args = token.init_args();
    args.extend(
        [
            "--root-key",
            "rsa3072",
            "--issuing-key",
            "rsa2048",
            "--rsa-padding",
            "pss",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let hm = Hm::with_args(b, &args).unwrap();
    let keys = hm.ok(&["keys", "list"]);
    assert!(
        keys.lines()
            .any(|l| l.starts_with("ca-issuing") && l.contains("(PKCS#11)")),
        "{keys}"
    );
    rsa_judged(&hm, "rsassaPss");
}

/// Issues an RSA certificate, serves, and has OpenSSL and pkilint judge the
/// chain, an OCSP answer and the CRL; `sig` is OpenSSL's name of the CA
/// signature algorithm.
fn rsa_judged(hm: &Hm, sig: &str) {
    // Every key signs and its signature verifies with its own parameters.
    let tested = hm.ok(&["keys", "test"]);
    assert!(
        !tested.contains("FAILED") && tested.lines().count() >= 4,
        "{tested}"
    );
    let key = hm.p("rsa.key");
    openssl_ok(&["genrsa", "-out", &key, "2048"]);
    openssl_ok(&[
        "req",
        "-new",
        "-key",
        &key,
        "-subj",
        "/CN=x",
        "-out",
        &hm.p("rsa.csr"),
    ]);
    let out = hm.p("rsa.pem");
    hm.ok(&[
        "cert",
        "issue",
        "--profile",
        "encipherment",
        "--subject",
        "CN=RSA Holder,C=HK",
        "--csr",
        &hm.p("rsa.csr"),
        "--out",
        &out,
    ]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    assert!(verify_chain(hm, &out).contains(": OK"));
    let text = openssl_ok(&["x509", "-in", &out, "-noout", "-text"]);
    assert!(
        text.contains(&format!("Signature Algorithm: {sig}")) && text.contains("Key Encipherment"),
        "{text}"
    );
    if sig == "rsassaPss" {
        // The parameters the CA/Browser Forum requires for PSS with SHA-256.
        assert!(
            text.contains("Hash Algorithm: sha256")
                && text.contains("Mask Algorithm: mgf1 with sha256")
                && text.contains("Salt Length: 0x20"),
            "{text}"
        );
    }
    assert!(
        !text.contains("Key Agreement"),
        "RSA keys do not agree keys: {text}"
    );
    let root = openssl_ok(&["x509", "-in", &hm.p("root.pem"), "-noout", "-text"]);
    assert!(root.contains("Public-Key: (3072 bit)"), "{root}");
    for f in ["root.pem", "issuing.pem", "rsa.pem"] {
        pkilint_clean("lint_pkix_cert", &[], &hm.path(f));
    }
    let text = ocsp_ask(hm, &srv, "issuing.pem", &["-cert", &out], &[]);
    assert!(
        text.contains("Response verify OK") && text.contains(": good"),
        "{text}"
    );
    let (st, der) = srv.get("/crl/issuing.crl");
    assert_eq!(st, 200);
    std::fs::write(hm.path("rsa-crl.der"), der).unwrap();
    let crl = openssl_ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &hm.p("rsa-crl.der"),
        "-CAfile",
        &hm.p("issuing.pem"),
        "-noout",
        "-text",
    ]);
    assert!(
        crl.contains(&format!("Signature Algorithm: {sig}")),
        "{crl}"
    );
    pkilint_clean(
        "lint_crl",
        &["-t", "CRL", "-p", "PKIX"],
        &hm.path("rsa-crl.der"),
    );
}

fn keys_on_a_pkcs11_token(b: Backend) {
    if b == Backend::Postgres && postgres_base().is_none() {
        return;
    }
    let token = SoftHsmToken::new(&format!("hm-e2e-{}-{:?}", std::process::id(), b));
    let args = token.init_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let hm = Hm::with_args(b, &args).unwrap();
    let (serial, leaf) = hm.issue(
        "leaf",
        "personal",
        "CN=HSM Subscriber,C=HK",
        &["--email", "hsm@example.hk"],
    );
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    // Every signing key is on the token, and each one signs.
    let keys = hm.ok(&["keys", "list"]);
    assert!(keys.contains("key store: pkcs11"), "{keys}");
    for k in ["ca-root", "ca-issuing", "audit", "ocsp-issuing"] {
        assert!(
            keys.lines()
                .any(|l| l.starts_with(k) && l.contains("(PKCS#11)")),
            "{k}: {keys}"
        );
    }
    let tested = hm.ok(&["keys", "test"]);
    assert!(
        !tested.contains("FAILED") && tested.lines().count() >= 4,
        "{tested}"
    );
    // The keystore file holds no private key at all.
    let ks = std::fs::read_to_string(hm.path("keystore.json")).unwrap();
    assert!(
        !ks.contains("ca-root") && !ks.contains("ca-issuing"),
        "{ks}"
    );

    assert!(verify_chain(&hm, &leaf).contains(": OK"));
    for f in ["root.pem", "issuing.pem"] {
        pkilint_clean("lint_pkix_cert", &[], &hm.path(f));
    }
    pkilint_clean("lint_pkix_cert", &[], leaf.as_ref());
    let ocsp = |cert: &str| ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", cert], &[]);
    let o = ocsp(&leaf);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    let auth = format!("Bearer {}", hm.token);
    let (st, _) = srv.request(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        &[("Authorization", &auth)],
        br#"{"reason":"keyCompromise"}"#,
    );
    assert_eq!(st, 200);
    let o = ocsp(&leaf);
    assert!(o.contains(": revoked"), "{o}");
    wait_for_crl_listing(&srv, "/crl/issuing.crl", &serial);
    let (st, der) = srv.get("/crl/issuing.crl");
    assert_eq!(st, 200);
    std::fs::write(hm.path("full.der"), der).unwrap();
    openssl_ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &hm.p("full.der"),
        "-out",
        &hm.p("full.crl"),
    ]);
    let o = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &hm.p("root.pem"),
        "-untrusted",
        &hm.p("issuing.pem"),
        "-CRLfile",
        &hm.p("full.crl"),
        &leaf,
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("certificate revoked"));
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
    drop(srv);
    drop(hm);
}

fn m_of_n_custodians(b: Backend) {
    let hm = setup!(b);
    let dir = hm.p("shares");
    hm.ok(&["keys", "split", "--m", "2", "--n", "3", "--out-dir", &dir]);
    let share = |i: u8| hm.p(&format!("shares/share-{i}.txt"));
    let run = |shares: &[u8]| {
        let mut c = hm.command();
        c.env_remove("HALLMARK_PASSPHRASE");
        for i in shares {
            c.arg("--share").arg(share(*i));
        }
        c.args(["cert", "list"]).output().unwrap()
    };
    // M - 1 shares cannot start the CA …
    for i in 1..=3 {
        let o = run(&[i]);
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("2 custodians' shares are needed, 1 given"),
            "{e}"
        );
    }
    // … any M can.
    for pair in [[1, 2], [1, 3], [2, 3]] {
        let o = run(&pair);
        assert!(
            o.status.success(),
            "{pair:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // A share of another split does not combine.
    let other = hm.p("other");
    hm.ok(&["keys", "split", "--m", "2", "--n", "2", "--out-dir", &other]);
    let mut c = hm.command();
    c.env_remove("HALLMARK_PASSPHRASE")
        .arg("--share")
        .arg(share(1))
        .arg("--share")
        .arg(hm.p("other/share-2.txt"))
        .args(["cert", "list"]);
    assert!(!c.output().unwrap().status.success());
    // Each quorum is on the audit record, and the log verifies.
    let rows =
        hm.sql_ok("SELECT details FROM audit_log WHERE action = 'custody.quorum' ORDER BY seq");
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0].contains(r#"["share 1","share 2"]"#)
            && rows[2].contains(r#"["share 2","share 3"]"#),
        "{rows:?}"
    );
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(share(1)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Shares sealed to their custodians: each under the custodian's own
    // passphrase, useless to whoever else holds the file.
    let words = |name: &str| format!("{name}'s own long passphrase");
    let custodians = ["alice", "bob", "carol"];
    let sealed = hm.p("sealed");
    let mut c = hm.command();
    for n in custodians {
        c.env(
            format!("HALLMARK_CUSTODIAN_PASSPHRASE_{}", n.to_uppercase()),
            words(n),
        );
    }
    c.args([
        "keys",
        "split",
        "--m",
        "2",
        "--n",
        "3",
        "--out-dir",
        &sealed,
    ]);
    for n in custodians {
        c.args(["--custodian", n]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = |n: &str| hm.p(&format!("sealed/share-{n}.sealed"));
    let text = std::fs::read_to_string(file("alice")).unwrap();
    assert!(
        text.starts_with("hallmark-sealed-share:v1:alice:") && !text.contains("hallmark-share:v1"),
        "{text}"
    );
    let run = |present: &[(&str, String)]| {
        let mut c = hm.command();
        c.env_remove("HALLMARK_PASSPHRASE");
        for (n, pass) in present {
            c.env(
                format!("HALLMARK_CUSTODIAN_PASSPHRASE_{}", n.to_uppercase()),
                pass,
            );
            c.arg("--share").arg(file(n));
        }
        c.args(["cert", "list"]).output().unwrap()
    };
    // Two custodians with their own passphrases start the CA …
    let o = run(&[("alice", words("alice")), ("carol", words("carol"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // … one is not enough, and bob's file with a wrong passphrase is refused.
    let o = run(&[("bob", words("bob"))]);
    assert!(!o.status.success());
    let o = run(&[("alice", words("alice")), ("bob", words("mallory"))]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("custodian bob: wrong passphrase"),
        "{e}"
    );
    // Without a passphrase in a non-interactive run, the error says how to give it.
    let o = hm
        .command()
        .env_remove("HALLMARK_PASSPHRASE")
        .arg("--share")
        .arg(file("alice"))
        .args(["cert", "list"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("HALLMARK_CUSTODIAN_PASSPHRASE_ALICE"), "{e}");
    // The custodians present are named on the record.
    let rows =
        hm.sql_ok("SELECT details FROM audit_log WHERE action = 'custody.quorum' ORDER BY seq");
    assert!(
        rows.lines()
            .last()
            .unwrap()
            .contains(r#"["alice","carol"]"#),
        "{rows}"
    );
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
}

fn backup_and_restore(b: Backend) {
    let hm = setup!(b);
    let (_, good) = hm.issue("g", "personal", "CN=Backup Good,C=HK", &[]);
    let (bad_serial, bad) = hm.issue("r", "personal", "CN=Backup Revoked,C=HK", &[]);
    hm.ok(&[
        "cert",
        "revoke",
        &bad_serial,
        "--reason",
        "cessationOfOperation",
    ]);
    let archive = hm.p("backup.hmbk");
    let e = hm.fails(&["backup", "--out", &hm.p("no/such/dir/b.hmbk")]);
    assert!(
        e.contains("directory") && e.contains("does not exist"),
        "{e}"
    );
    // Two backups to one name at once: one is written, the other refused
    // (never one over the other).
    let racers: Vec<_> = (0..3)
        .map(|_| {
            hm.command()
                .args(["backup", "--out", &archive])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<_> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("refusing to overwrite"), "{e}");
    }
    std::fs::remove_file(&archive).unwrap();
    let out = hm.run(&["backup", "--out", &archive]);
    assert!(out.status.success());
    // On PostgreSQL the archive holds the rest, and says how to back up
    // the database (the restore below finds the same database).
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.contains("pg_dump"), b == Backend::Postgres, "{said}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the archive is the operator's only");
    }
    let bytes = std::fs::read(&archive).unwrap();
    for clear in [
        &b"Backup Good"[..],
        b"PRIVATE KEY",
        PASSPHRASE.as_bytes(),
        b"CREATE TABLE",
    ] {
        assert!(
            !bytes.windows(clear.len()).any(|w| w == clear),
            "backup holds {:?} in clear",
            String::from_utf8_lossy(clear)
        );
    }
    // A restore must find the database it goes with: refused before
    // anything is written (no directory, no schema in the wrong database).
    let elsewhere = hm.path("restored-elsewhere");
    let restore_beside = |url: &str| {
        hm.command()
            .env("HALLMARK_DATA_DIR", &elsewhere)
            .env("HALLMARK_DATABASE_URL", url)
            .args(["restore", "--in", &archive])
            .output()
            .unwrap()
    };
    let (o, expect) = match &hm.db_url {
        Some(url) => {
            let (prefix, db) = url.rsplit_once('/').unwrap();
            let empty = format!("{db}_empty");
            hm.sql_ok(&format!("CREATE DATABASE {empty}"));
            let o = restore_beside(&format!("{prefix}/{empty}"));
            let tables = std::process::Command::new("psql")
                .arg(format!("{prefix}/{empty}"))
                .args([
                    "-qAt",
                    "-c",
                    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
                ])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&tables.stdout).trim(), "0");
            hm.sql_ok(&format!("DROP DATABASE {empty} WITH (FORCE)"));
            (o, "holds no Hallmark installation")
        }
        None => (
            restore_beside(&format!("sqlite://{}", hm.p("other.db"))),
            "without --database-url",
        ),
    };
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains(expect), "{e}");
    assert!(!elsewhere.exists());
    // Restore onto a "fresh machine": a new data directory.
    let fresh = hm.path("restored");
    let mut wrong = hm.command();
    wrong
        .env("HALLMARK_DATA_DIR", &fresh)
        .env("HALLMARK_PASSPHRASE", "not the right passphrase")
        .args(["restore", "--in", &archive]);
    let o = wrong.output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    let o = hm
        .command()
        .env("HALLMARK_DATA_DIR", &fresh)
        .args(["restore", "--in", &archive])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let srv = hm.serve_in(&fresh, &[]);
    hm.fetch_ca_files(&srv);
    let ocsp = |cert: &str| ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", cert], &[]);
    let o = ocsp(&good);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    let o = ocsp(&bad);
    assert!(
        o.contains("Response verify OK")
            && o.contains(": revoked")
            && o.contains("cessationOfOperation"),
        "{o}"
    );
    let v = hm
        .command()
        .env("HALLMARK_DATA_DIR", &fresh)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("audit log OK"));
}

fn pkcs11_pin_quorum(b: Backend) {
    if b == Backend::Postgres && postgres_base().is_none() {
        return;
    }
    let token = SoftHsmToken::new(&format!("hm-pinq-{}-{:?}", std::process::id(), b));
    let args = token.init_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let hm = Hm::with_args(b, &args).unwrap();
    let dir = hm.p("pin-shares");
    hm.ok(&[
        "keys",
        "split-pin",
        "--m",
        "2",
        "--n",
        "3",
        "--out-dir",
        &dir,
    ]);
    // The PIN is gone from the machine: only custodians' shares open the token.
    std::fs::remove_file(&token.pin_file).unwrap();
    let run = |shares: &[u8]| {
        let mut c = hm.command();
        for i in shares {
            c.arg("--pin-share").arg(format!("{dir}/pin-share-{i}.txt"));
        }
        c.args(["keys", "test"]).output().unwrap()
    };
    let o = run(&[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--pin-share"));
    let o = run(&[3]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("2 custodians' shares are needed, 1 given"),
        "{e}"
    );
    for pair in [[1, 2], [2, 3], [1, 3]] {
        let o = run(&pair);
        assert!(
            o.status.success(),
            "{pair:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!String::from_utf8_lossy(&o.stdout).contains("FAILED"));
    }
    drop(hm);
}
