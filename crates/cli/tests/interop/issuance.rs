//! Issuing certificates from the command line: every profile verified by
//! OpenSSL and clean in pkilint, centrally generated keys in PKCS#12, bad
//! input that changes nothing, and a crash between signing and storing.

use super::*;

on_both!(
    profiles_verify_and_lint,
    central_keygen_pkcs12,
    bad_input_changes_nothing,
    crash_between_sign_and_store,
    csr_budgets,
);

/// A CSR over a budget (RDNs in its subject, requested extensions, DER
/// nesting) is refused naming what was over, and nothing is issued.
fn csr_budgets(b: Backend) {
    let hm = setup!(b);
    let key = hm.p("k.key");
    openssl_ok(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &key,
    ]);
    let csr = |name: &str, subj: &str, exts: &[String]| {
        let out = hm.p(&format!("{name}.csr"));
        let mut args = vec!["req", "-new", "-key", &key, "-subj", subj, "-out", &out];
        for e in exts {
            args.extend(["-addext", e.as_str()]);
        }
        openssl_ok(&args);
        out
    };
    let many_rdns: String = (0..40).map(|i| format!("/OU=u{i}")).collect::<String>() + "/CN=x";
    let many_exts: Vec<String> = (0..40)
        .map(|i| format!("1.3.6.1.4.1.59999.9.{i}=ASN1:NULL"))
        .collect();
    let before = hm.ok(&["cert", "list"]);
    for (name, file, expect) in [
        (
            "rdns",
            csr("rdns", &many_rdns, &[]),
            "41 subject RDNs, more than the 32 accepted",
        ),
        (
            "exts",
            csr("exts", "/CN=x", &many_exts),
            "40 requested extensions, more than the 32 accepted",
        ),
    ] {
        let e = hm.fails(&[
            "cert",
            "issue",
            "--profile",
            "personal",
            "--subject",
            "CN=Budget,C=HK",
            "--csr",
            &file,
        ]);
        assert!(e.contains(expect), "{name}: {e}");
    }
    // Nesting alone: a CSR-shaped SEQUENCE nested 40 deep.
    let mut der = vec![0x05, 0x00];
    for _ in 0..40 {
        let mut outer = vec![0x30];
        hallmark_pki::cert::push_len(&mut outer, der.len());
        outer.extend_from_slice(&der);
        der = outer;
    }
    std::fs::write(hm.path("deep.der"), &der).unwrap();
    let e = hm.fails(&[
        "cert",
        "issue",
        "--profile",
        "personal",
        "--subject",
        "CN=Budget,C=HK",
        "--csr",
        &hm.p("deep.der"),
    ]);
    assert!(e.contains("deeper than 16"), "{e}");
    assert_eq!(hm.ok(&["cert", "list"]), before);
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
