//! The life of CAs: an offline root signing the online issuing CA and
//! publishing its CRL, rollover to a new issuing CA, a new root with
//! cross-certificates, and revoking an issuing CA.

use super::*;

on_both!(
    offline_root_signs_issuing_ca,
    issuing_ca_rollover,
    root_rekey_with_cross_certificates,
    issuing_ca_revocation,
    long_chinese_common_name,
    ca_ids_and_imports_checked,
);

/// An issuing CA whose CN is 64 Chinese characters with a `+` in it: the
/// installation starts, its OCSP responder's name is built within the
/// 64-character bound (not by pasting strings into RFC 4514), and OpenSSL
/// verifies the responder's answers.
fn long_chinese_common_name(b: Backend) {
    let cn = format!("{}甲\\+乙丙", "電子核證".repeat(15));
    let subject = format!("CN={cn},O=香港郵政\\\\署,C=HK");
    let Some(hm) = Hm::with_args(b, &["--issuing-subject", &subject]) else {
        return;
    };
    let (_, leaf) = hm.issue("a", "personal", "CN=Long Name Holder,C=HK", &[]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let issuing = openssl_ok(&[
        "x509",
        "-in",
        &hm.p("issuing.pem"),
        "-noout",
        "-subject",
        "-nameopt",
        "utf8,sep_multiline",
    ]);
    assert!(issuing.contains("甲+乙丙"), "{issuing}");
    let resp = hm.p("resp.der");
    let o = ocsp_ask(
        &hm,
        &srv,
        "issuing.pem",
        &["-cert", &leaf],
        &["-respout", &resp],
    );
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    std::fs::write(hm.path("responder.pem"), responder_cert(&resp)).unwrap();
    let name = openssl_ok(&[
        "x509",
        "-in",
        &hm.p("responder.pem"),
        "-noout",
        "-subject",
        "-nameopt",
        "utf8,sep_multiline",
    ]);
    let cn_line = name
        .lines()
        .find_map(|l| l.trim().strip_prefix("CN="))
        .unwrap_or_else(|| panic!("{name}"));
    assert!(cn_line.ends_with(" OCSP Responder"), "{name}");
    assert!(
        cn_line.chars().count() <= 64,
        "{} characters: {cn_line}",
        cn_line.chars().count()
    );
    assert!(cn_line.starts_with(&"電子核證".repeat(12)), "{cn_line}");
    assert!(name.contains("O=香港郵政\\署"), "{name}");
    pkilint_clean("lint_pkix_cert", &[], hm.path("responder.pem").as_ref());
}

/// `init` refuses CA ids that would make bad URLs, key labels or settings
/// keys; `ca import` refuses a certificate signed by the root for our key
/// that is not fit to be a CA (not a CA, or outliving the root).
fn ca_ids_and_imports_checked(b: Backend) {
    for bad in ["../x", "a/b", "root", "", "x y"] {
        let tag = hallmark_testkit::temp::unique_tag();
        let dir = std::env::temp_dir().join(format!("hallmark-test-{tag}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hallmark"))
            .env("HALLMARK_DATA_DIR", &dir)
            .env("HALLMARK_PASSPHRASE", PASSPHRASE)
            .env("HALLMARK_DANGER_INSECURE_KDF", "1")
            .env_remove("HALLMARK_DATABASE_URL")
            .args(["init", "--issuing-id", bad])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "init --issuing-id {bad:?} succeeded");
        assert!(e.contains("CA id"), "{bad:?}: {e}");
        assert!(!dir.join("keystore.json").exists() && !dir.join("hallmark.toml").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
    // A root made by OpenSSL signs what it is given.
    let scratch = setup!(b);
    let (rk, rc) = (scratch.p("ossl-root.key"), scratch.p("ossl-root.pem"));
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &rk,
        "-out",
        &rc,
        "-subj",
        "/CN=OpenSSL Root/C=HK",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let csr = scratch.p("online.csr");
    let Some(online) = Hm::with_args(b, &["--root-cert", &rc, "--issuing-csr-out", &csr]) else {
        return;
    };
    let sign = |name: &str, days: &str, ext: &str| {
        let extfile = scratch.p(&format!("{name}.ext"));
        std::fs::write(&extfile, ext).unwrap();
        let out = scratch.p(&format!("{name}.pem"));
        openssl_ok(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &rc,
            "-CAkey",
            &rk,
            "-days",
            days,
            "-set_serial",
            "0x4a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "-extfile",
            &extfile,
            "-out",
            &out,
        ]);
        out
    };
    let ca_ext = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
    let not_ca = sign(
        "not-ca",
        "365",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
    );
    let e = online.fails(&["ca", "import", "--id", "issuing", "--cert", &not_ca]);
    assert!(e.contains("cA"), "{e}");
    let no_sign = sign(
        "no-sign",
        "365",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature\n",
    );
    let e = online.fails(&["ca", "import", "--id", "issuing", "--cert", &no_sign]);
    assert!(e.contains("keyCertSign"), "{e}");
    let too_long = sign("too-long", "9000", ca_ext);
    let e = online.fails(&["ca", "import", "--id", "issuing", "--cert", &too_long]);
    assert!(e.contains("root"), "{e}");
    let good = sign("good", "365", ca_ext);
    online.ok(&["ca", "import", "--id", "issuing", "--cert", &good]);
    let (_, leaf) = online.issue("leaf", "personal", "CN=Under OpenSSL Root,C=HK", &[]);
    let o = openssl_text(&["verify", "-CAfile", &rc, "-untrusted", &good, &leaf]);
    assert!(o.contains(": OK"), "{o}");
}

fn offline_root_signs_issuing_ca(b: Backend) {
    // The offline root machine.
    let Some(root) = Hm::with_args(b, &["--root-only"]) else {
        return;
    };
    std::fs::write(root.path("root.pem"), root.ok(&["ca", "show", "root"])).unwrap();
    let e = root.fails(&[
        "cert",
        "issue",
        "--profile",
        "personal",
        "--subject",
        "CN=X",
        "--generate-key",
        "--p12-out",
        &root.p("x.p12"),
    ]);
    assert!(e.contains("root only"), "{e}");

    // The online machine: trusts the root, makes its issuing key and a CSR.
    let csr = root.p("issuing.csr");
    let online = Hm::with_args(
        b,
        &[
            "--root-cert",
            &root.p("root.pem"),
            "--issuing-csr-out",
            &csr,
        ],
    )
    .unwrap();
    let e = online.fails(&["cert", "list"]);
    assert!(e.contains("hallmark ca import"), "{e}");
    let csr_text = openssl_ok(&["req", "-in", &csr, "-verify", "-noout"]);
    assert!(csr_text.contains("verify OK"), "{csr_text}");

    // The root signs; a forged or foreign certificate is refused on import.
    let issuing = root.p("issuing.pem");
    let signed = root.run(&[
        "ca",
        "sign-request",
        "--id",
        "issuing",
        "--subject",
        "CN=Hallmark Online CA 2,O=Hallmark,C=HK",
        "--csr",
        &csr,
        "--out",
        &issuing,
        "--days",
        "99999",
    ]);
    let said = String::from_utf8_lossy(&signed.stderr);
    assert!(signed.status.success(), "{said}");
    // Longer than the root: capped, and the operator is told.
    assert!(said.contains("note: valid until"), "{said}");
    let e = online.fails(&[
        "ca",
        "import",
        "--id",
        "issuing",
        "--cert",
        &root.p("root.pem"),
    ]);
    assert!(
        e.contains("does not match") || e.contains("not signed"),
        "{e}"
    );
    online.ok(&["ca", "import", "--id", "issuing", "--cert", &issuing]);

    // The online CA issues; the chain verifies; the root's CRL comes from the root.
    let (_, leaf) = online.issue("leaf", "personal", "CN=Online Subscriber,C=HK", &[]);
    let o = openssl(&[
        "verify",
        "-CAfile",
        &root.p("root.pem"),
        "-untrusted",
        &issuing,
        &leaf,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    pkilint_clean(
        "lint_pkix_signer_signee_cert_chain",
        &[&root.p("root.pem")],
        issuing.as_ref(),
    );
    // The root's CRL: made on the root machine, carried over, checked and
    // published by the online one.
    let srv = online.serve();
    let (st, resp) = srv.get("/crl/root.crl");
    let said = String::from_utf8_lossy(&resp);
    assert!(st == 404 && said.contains("crl import"), "{st} {said}");
    let crl = root.p("root.crl");
    root.ok(&[
        "crl",
        "generate",
        "--issuer",
        "root",
        "--full-only",
        "--out",
        &crl,
    ]);
    let mut forged = std::fs::read(&crl).unwrap();
    let n = forged.len();
    forged[n - 3] ^= 1;
    std::fs::write(root.path("forged.crl"), forged).unwrap();
    let e = online.fails(&["crl", "import", "--issuer", "root", &root.p("forged.crl")]);
    assert!(e.contains("does not verify"), "{e}");
    let e = online.fails(&["crl", "import", "--issuer", "issuing", &crl]);
    assert!(e.contains("signs its CRLs here"), "{e}");
    let published = online.ok(&["crl", "import", "--issuer", "root", &crl]);
    assert!(published.contains("CRL number"), "{published}");
    let e = online.fails(&["crl", "import", "--issuer", "root", &crl]);
    assert!(e.contains("not newer"), "{e}");
    let (st, served) = srv.get("/crl/root.crl");
    assert_eq!(st, 200);
    assert_eq!(served, std::fs::read(&crl).unwrap());
    let (st, issuing_crl) = srv.get("/crl/issuing.crl");
    assert_eq!(st, 200);
    let (root_crl, issuing_crl) = (
        online.crl_pem(&served, "root"),
        online.crl_pem(&issuing_crl, "issuing"),
    );
    let checked = openssl_text(&[
        "verify",
        "-crl_check_all",
        "-CAfile",
        &root.p("root.pem"),
        "-untrusted",
        &issuing,
        "-CRLfile",
        &root_crl,
        "-CRLfile",
        &issuing_crl,
        &leaf,
    ]);
    assert!(checked.contains(": OK"), "{checked}");
    drop(srv);

    // The root revokes the online CA; once its next CRL is imported, the
    // online machine issues nothing more under it.
    root.ok(&["ca", "revoke", "issuing", "--reason", "cACompromise"]);
    let crl2 = root.p("root-2.crl");
    root.ok(&[
        "crl",
        "generate",
        "--issuer",
        "root",
        "--full-only",
        "--out",
        &crl2,
    ]);
    online.ok(&["crl", "import", "--issuer", "root", &crl2]);
    refused_under_a_revoked_ca(&online, &online.p("leaf.csr"));
    assert!(root.ok(&["audit", "verify"]).contains("audit log OK"));
    assert!(online.ok(&["audit", "verify"]).contains("audit log OK"));
    let list = root.ok(&["ca", "list"]);
    assert!(
        list.contains("issuing") && list.contains("Online CA 2"),
        "{list}"
    );
}

fn issuing_ca_rollover(b: Backend) {
    let hm = setup!(b);
    let (old_serial, old_leaf) = hm.issue("old", "personal", "CN=Before Rollover,C=HK", &[]);
    hm.ok(&[
        "ca",
        "rollover",
        "--new-id",
        "issuing-2",
        "--subject",
        "CN=Hallmark Issuing CA 2,O=Hallmark,C=HK",
    ]);
    let (_, new_leaf) = hm.issue("new", "personal", "CN=After Rollover,C=HK", &[]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let (st, pem) = srv.get("/ca/issuing-2.pem");
    assert_eq!(st, 200);
    std::fs::write(hm.path("issuing-2.pem"), pem).unwrap();
    let issuer_of = |leaf: &str| openssl_ok(&["x509", "-in", leaf, "-noout", "-issuer"]);
    assert!(issuer_of(&new_leaf).contains("Issuing CA 2"));
    assert!(!issuer_of(&old_leaf).contains("Issuing CA 2"));
    let o = openssl(&[
        "verify",
        "-CAfile",
        &hm.p("root.pem"),
        "-untrusted",
        &hm.p("issuing-2.pem"),
        &new_leaf,
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(": OK"));

    // Both CAs answer OCSP for their own certificates; the old one still
    // records revocations.
    let auth = format!("Bearer {}", hm.token);
    let (st, _) = srv.request(
        "POST",
        &format!("/api/v1/certificates/{old_serial}/revoke"),
        &[("Authorization", &auth)],
        br#"{"reason":"superseded"}"#,
    );
    assert_eq!(st, 200);
    let ocsp = |issuer: &str, cert: &str| ocsp_ask(&hm, &srv, issuer, &["-cert", cert], &[]);
    let o = ocsp("issuing.pem", &old_leaf);
    assert!(
        o.contains("Response verify OK") && o.contains(": revoked"),
        "{o}"
    );
    let o = ocsp("issuing-2.pem", &new_leaf);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );

    // Each CA's CRL covers its own certificates.
    wait_for_crl_listing(&srv, "/crl/issuing.crl", &old_serial);
    for (id, leaf, ca, expect) in [
        ("issuing", &old_leaf, "issuing.pem", "certificate revoked"),
        ("issuing-2", &new_leaf, "issuing-2.pem", ": OK"),
    ] {
        let (st, der) = srv.get(&format!("/crl/{id}.crl"));
        assert_eq!(st, 200);
        std::fs::write(hm.path(&format!("{id}.der")), der).unwrap();
        openssl_ok(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &hm.p(&format!("{id}.der")),
            "-out",
            &hm.p(&format!("{id}.crl")),
        ]);
        let text = verify_with_crls(&hm, ca, &[&hm.p(&format!("{id}.crl"))], leaf, false);
        assert!(text.contains(expect), "{id}: {text}");
    }
    let audit = hm.sql_ok("SELECT COUNT(*) FROM audit_log WHERE action = 'ca.rollover'");
    assert_eq!(audit.trim(), "1");
}

fn root_rekey_with_cross_certificates(b: Backend) {
    let hm = setup!(b);
    let (_, old_leaf) = hm.issue("old", "personal", "CN=Under Old Root,C=HK", &[]);
    let out = hm.p("rekey");
    hm.ok(&[
        "ca",
        "rekey-root",
        "--new-id",
        "root-2",
        "--subject",
        "CN=Hallmark Root CA 2,O=Hallmark,C=HK",
        "--out-dir",
        &out,
    ]);
    hm.ok(&[
        "ca",
        "add",
        "--id",
        "issuing-3",
        "--parent",
        "root-2",
        "--subject",
        "CN=Issuing under Root 2,O=Hallmark,C=HK",
    ]);
    let (_, new_leaf) = hm.issue(
        "new",
        "personal",
        "CN=Under New Root,C=HK",
        &["--issuer", "issuing-3"],
    );
    for id in ["root", "issuing", "issuing-3"] {
        std::fs::write(hm.path(&format!("{id}.pem")), hm.ok(&["ca", "show", id])).unwrap();
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    let new_root = format!("{out}/root-2.pem");
    let new_by_old = format!("{out}/cross-root-2-by-old.pem");
    let old_by_new = format!("{out}/cross-old-by-root-2.pem");
    // Both cross-certificates are published, the same as the files.
    {
        let srv = hm.serve();
        for (path, file) in [
            ("/ca/root-2/cross/root.pem", &new_by_old),
            ("/ca/root/cross/root-2.pem", &old_by_new),
        ] {
            let (st, body) = srv.get(path);
            assert_eq!(st, 200, "{path}");
            assert_eq!(String::from_utf8(body).unwrap(), read(file), "{path}");
        }
        let (st, der) = srv.get("/ca/root-2/cross/root.crt");
        assert_eq!(st, 200);
        let pem = read(&new_by_old);
        assert_eq!(
            hallmark_pki::pem::decode("CERTIFICATE", pem.as_bytes()).ok(),
            Some(der)
        );
        let (st, _) = srv.get("/ca/root-2/cross/nobody.crt");
        assert_eq!(st, 404);
        let (_, index) = srv.get("/");
        assert!(
            String::from_utf8_lossy(&index).contains("/ca/root-2/cross/root.crt"),
            "the index lists the cross-certificates"
        );
    }

    // A relying party that trusts only the old root validates the new chain
    // through the cross-certificate …
    std::fs::write(
        hm.path("up-new.pem"),
        read(&hm.p("issuing-3.pem")) + &read(&new_by_old),
    )
    .unwrap();
    let o = openssl(&[
        "verify",
        "-CAfile",
        &hm.p("root.pem"),
        "-untrusted",
        &hm.p("up-new.pem"),
        &new_leaf,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // … and one that trusts only the new root validates the old chain.
    std::fs::write(
        hm.path("up-old.pem"),
        read(&hm.p("issuing.pem")) + &read(&old_by_new),
    )
    .unwrap();
    let o = openssl(&[
        "verify",
        "-CAfile",
        &new_root,
        "-untrusted",
        &hm.p("up-old.pem"),
        &old_leaf,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Without the cross-certificate the old root does not reach the new chain.
    let o = openssl(&[
        "verify",
        "-CAfile",
        &hm.p("root.pem"),
        "-untrusted",
        &hm.p("issuing-3.pem"),
        &new_leaf,
    ]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains(": OK"));
    for c in [&new_root, &new_by_old, &old_by_new] {
        pkilint_clean("lint_pkix_cert", &[], c.as_ref());
    }

    // A cross-certificate is a certificate of the root that signed it:
    // revoked, it is on that root's CRL, and OpenSSL checking every CRL of
    // the chain no longer reaches the new root through it.
    let crls = || -> Vec<String> {
        ["root", "root-2", "issuing-3"]
            .iter()
            .map(|id| {
                let f = hm.p(&format!("{id}-full.der"));
                hm.ok(&[
                    "crl",
                    "generate",
                    "--issuer",
                    id,
                    "--full-only",
                    "--out",
                    &f,
                ]);
                hm.crl_pem(&std::fs::read(&f).unwrap(), &format!("{id}-full"))
            })
            .collect()
    };
    let verify_through_cross = |crls: &[String]| {
        let mut args = vec![
            "verify".to_string(),
            "-crl_check_all".into(),
            "-CAfile".into(),
            hm.p("root.pem"),
            "-untrusted".into(),
            hm.p("up-new.pem"),
        ];
        for c in crls {
            args.extend(["-CRLfile".to_string(), c.clone()]);
        }
        args.push(new_leaf.clone());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl_text(&a)
    };
    let o = verify_through_cross(&crls());
    assert!(o.contains(": OK"), "{o}");
    let serial = openssl_ok(&["x509", "-in", &new_by_old, "-noout", "-serial"]);
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let shown = hm.ok(&["cert", "show", &serial, "--issuer", "root"]);
    assert!(shown.contains("cross"), "{shown}");
    hm.ok(&[
        "cert",
        "revoke",
        &serial,
        "--issuer",
        "root",
        "--reason",
        "cessationOfOperation",
    ]);
    let o = verify_through_cross(&crls());
    assert!(o.contains("certificate revoked"), "{o}");
    pkilint_clean(
        "lint_pkix_signer_signee_cert_chain",
        &[&hm.p("root.pem")],
        new_by_old.as_ref(),
    );
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
}

/// An issuing CA revoked (say its key was compromised): it goes on the
/// root's CRL, so OpenSSL refuses its certificates with -crl_check_all, and
/// it issues nothing more, also through a server that was already running.
fn issuing_ca_revocation(b: Backend) {
    let hm = setup!(b);
    let (_, leaf) = hm.issue("a", "personal", "CN=Under A Doomed CA,C=HK", &[]);
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let e = hm.fails(&["ca", "revoke", "root", "--reason", "keyCompromise"]);
    assert!(e.contains("is a root"), "{e}");
    let e = hm.fails(&["ca", "revoke", "issuing", "--reason", "certificateHold"]);
    assert!(e.contains("not offered"), "{e}");
    let e = hm.fails(&["ca", "revoke", "nobody", "--reason", "keyCompromise"]);
    assert!(e.contains("no CA named"), "{e}");
    let out = hm.ok(&["ca", "revoke", "issuing", "--reason", "keyCompromise"]);
    assert!(out.contains("revoked CA \"issuing\""), "{out}");
    let e = hm.fails(&["ca", "revoke", "issuing", "--reason", "superseded"]);
    assert!(e.contains("already revoked"), "{e}");

    // The root's CRL, as the running server publishes it, lists the CA.
    let crl = |path: &str, name: &str| {
        let (st, der) = srv.get(path);
        assert_eq!(st, 200, "{path}");
        hm.crl_pem(&der, name)
    };
    let (root_crl, issuing_crl) = (
        crl("/crl/root.crl", "root"),
        crl("/crl/issuing.crl", "issuing"),
    );
    let serial = openssl_ok(&["x509", "-in", &hm.p("issuing.pem"), "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=");
    let listed = openssl_ok(&["crl", "-in", &root_crl, "-noout", "-text"]);
    assert!(
        listed.contains(serial) && listed.contains("Key Compromise"),
        "{serial}\n{listed}"
    );
    let checked = verify_with_crls(&hm, "issuing.pem", &[&root_crl, &issuing_crl], &leaf, true);
    assert!(checked.contains("certificate revoked"), "{checked}");
    pkilint_clean("lint_crl", &["-t", "ARL", "-p", "PKIX"], root_crl.as_ref());

    // Nothing more is issued under it: here at once, and by the server
    // that was running once it has polled (every 5 s).
    refused_under_a_revoked_ca(&hm, &hm.p("a.csr"));
    let csr = std::fs::read_to_string(hm.path("a.csr")).unwrap();
    let body =
        serde_json::json!({"profile": "personal", "subject": "CN=Too Late,C=HK", "csr": csr});
    let auth = format!("Bearer {}", hm.token);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (st, resp) = srv.request(
            "POST",
            "/api/v1/certificates",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        if st != 201 {
            assert!(
                String::from_utf8_lossy(&resp).contains("is revoked"),
                "{st}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server kept issuing under a revoked CA"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
}

/// Issuing from `csr` under the default CA fails because that CA is revoked.
fn refused_under_a_revoked_ca(hm: &Hm, csr: &str) {
    let e = hm.fails(&[
        "cert",
        "issue",
        "--profile",
        "personal",
        "--subject",
        "CN=Too Late,C=HK",
        "--csr",
        csr,
    ]);
    assert!(e.contains("is revoked"), "{e}");
}
