//! Key custody: every key on a PKCS#11 token (SoftHSM2), the key-store
//! passphrase split among M-of-N custodians, and a token PIN that only a
//! quorum of custodians can unlock.

use super::*;

on_both!(
    keys_on_a_pkcs11_token,
    m_of_n_custodians,
    pkcs11_pin_quorum,
    weak_or_crafted_key_stores_refused,
);

/// A key store sealed with a KDF below the minimum (the tests' own, or a
/// tampered file's) opens only with the test switch, which only test builds
/// have; one whose parameters would exhaust the machine is refused at once.
fn weak_or_crafted_key_stores_refused(b: Backend) {
    let hm = setup!(b);
    let out = hm
        .command()
        .env_remove("HALLMARK_DANGER_INSECURE_KDF")
        .args(["cert", "list"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("below the minimum"),
        "{e}"
    );
    hm.ok(&["cert", "list"]);
    let path = hm.path("keystore.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["kdf"]["m_kib"] = serde_json::json!(u32::MAX);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let e = hm.fails(&["cert", "list"]);
    assert!(e.contains("out of range"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    std::fs::write(&path, original).unwrap();
    hm.ok(&["cert", "list"]);
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
    let o = verify_with_crls(&hm, "issuing.pem", &[&hm.p("full.crl")], &leaf, false);
    assert!(o.contains("certificate revoked"), "{o}");
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
