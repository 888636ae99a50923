//! A CA hierarchy whose keys live on a PKCS#11 token (SoftHSM2), judged by
//! OpenSSL and pkilint: issuance code is the same as with software keys.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use hallmark_ca::{IssuerKey, Settings, hierarchy};
use hallmark_crypto::KeyAlgorithm;
use hallmark_keys::pkcs11::Token;
use hallmark_testkit::SoftHsmToken;

#[test]
fn root_and_issuing_ca_signed_on_the_token() {
    let t = SoftHsmToken::new(&format!("hm-ca-{}", std::process::id()));
    let dir = std::env::temp_dir().join(format!("hm-hsm-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let token = Token::open(SoftHsmToken::module(), &t.label, &t.pin).unwrap();
    let root_key = token.generate("ca-root", KeyAlgorithm::EcP384).unwrap();
    let now = 1_800_000_000;
    let root_cert = hierarchy::root_certificate(
        root_key.as_ref(),
        "CN=HSM 根憑證,O=Hallmark,C=HK",
        now,
        3650,
    )
    .unwrap();
    let root = IssuerKey::new("root", root_cert.clone(), root_key, true).unwrap();
    let issuing_key = token.generate("ca-issuing", KeyAlgorithm::EcP256).unwrap();
    let settings = Settings::example("http://ca.example");
    let issuing_cert = hierarchy::issuing_certificate(
        &root,
        issuing_key.spki_der(),
        "CN=HSM Issuing CA,O=Hallmark,C=HK",
        now,
        1825,
        &settings,
    )
    .unwrap();

    let pem = |name: &str, der: &[u8]| {
        let p = dir.join(name);
        let b64 = Command::new("openssl")
            .args(["x509", "-inform", "DER", "-out"])
            .arg(&p)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut b64 = b64;
        b64.stdin.take().unwrap().write_all(der).unwrap();
        assert!(b64.wait().unwrap().success());
        p
    };
    let root_pem = pem("root.pem", &root_cert);
    let issuing_pem = pem("issuing.pem", &issuing_cert);
    // -attime: the certificates are dated in 2027.
    let o = Command::new("openssl")
        .args(["verify", "-attime", "1800000100", "-CAfile"])
        .arg(&root_pem)
        .arg(&issuing_pem)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for p in [&root_pem, &issuing_pem] {
        let o = Command::new("lint_pkix_cert")
            .args(["lint", "-s", "WARNING"])
            .arg(p)
            .output()
            .expect("pkilint is needed (scripts/test.sh installs it)");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.trim().is_empty(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(!token.private_value_readable("ca-root").unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
