//! RSA hierarchies beside the default P-256: PKCS#1 v1.5 and RSASSA-PSS
//! CA keys, in files and on a PKCS#11 token, with certificates, OCSP
//! answers and CRLs judged by OpenSSL.

use super::*;

on_both!(rsa_hierarchy, rsa_pss_hierarchy, rsa_pss_on_a_pkcs11_token);

/// `init` arguments for an RSA-3072 root and an RSA-2048 issuing CA that
/// sign with RSASSA-PSS.
const RSA_PSS: [&str; 6] = [
    "--root-key",
    "rsa3072",
    "--issuing-key",
    "rsa2048",
    "--rsa-padding",
    "pss",
];

fn rsa_hierarchy(b: Backend) {
    let Some(hm) = Hm::with_args(b, &["--root-key", "rsa3072", "--issuing-key", "rsa2048"]) else {
        return;
    };
    rsa_judged(&hm, "sha256WithRSAEncryption");
}

/// RSA CA keys signing with RSASSA-PSS: certificates, OCSP responses and
/// CRLs carry the CA/Browser Forum's PSS parameters and verify in OpenSSL.
fn rsa_pss_hierarchy(b: Backend) {
    let Some(hm) = Hm::with_args(b, &RSA_PSS) else {
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
    args.extend(RSA_PSS.map(String::from));
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
