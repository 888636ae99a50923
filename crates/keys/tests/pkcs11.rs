//! Keys on a PKCS#11 token (SoftHSM2): generated on the token, never
//! extractable, signatures checked by OpenSSL.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use hallmark_crypto::{KeyAlgorithm, Signer};
use hallmark_keys::pkcs11::Token;

use hallmark_testkit::SoftHsmToken;

fn test_token(tag: &str) -> SoftHsmToken {
    SoftHsmToken::new(&format!("hm-{tag}-{}", std::process::id()))
}

fn openssl_verifies(dir: &Path, signer: &dyn Signer, msg: &[u8], sig: &[u8]) -> bool {
    let spki = dir.join("pub.der");
    std::fs::write(&spki, signer.spki_der()).unwrap();
    std::fs::write(dir.join("msg"), msg).unwrap();
    std::fs::write(dir.join("sig"), sig).unwrap();
    let digest = if signer.key_algorithm() == KeyAlgorithm::EcP384 {
        "-sha384"
    } else {
        "-sha256"
    };
    let o = Command::new("openssl")
        .args(["dgst", digest, "-keyform", "DER", "-verify"])
        .arg(&spki)
        .arg("-signature")
        .arg(dir.join("sig"))
        .arg(dir.join("msg"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).contains("Verified OK")
}

/// SoftHSM2 sees only the tokens that exist when the library is initialised
/// (once per process), so every token is made before the first is opened
/// and the scenarios run in one test.
#[test]
fn token_scenarios() {
    let tokens = ["sign", "pool", "reconnect", "ids", "swap"].map(test_token);
    keys_generated_on_the_token_sign_and_never_leave_it(&tokens[0]);
    signing_from_many_threads_uses_the_session_pool(&tokens[1]);
    signers_reconnect_when_the_token_drops_the_login(&tokens[2]);
    pairs_matched_by_id_not_label(&tokens[3]);
    a_replaced_key_does_not_sign(&tokens[4]);
}

/// A key pair imported by someone else under the label of ours (another
/// CKA_ID) is not mistaken for ours: the signer is ours, its signatures
/// verify under our public key.
fn pairs_matched_by_id_not_label(t: &SoftHsmToken) {
    let dir = std::env::temp_dir().join(format!("hm-p11-ids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = Token::open(SoftHsmToken::module(), &t.label, &t.pin).unwrap();
    let ours = token.generate("ca-dup", KeyAlgorithm::EcP256).unwrap();
    let key = dir.join("decoy.pem");
    let o = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = Command::new("softhsm2-util")
        .arg("--import")
        .arg(&key)
        .args([
            "--token", &t.label, "--label", "ca-dup", "--id", "ff01", "--pin", &t.pin,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for _ in 0..3 {
        let again = token.signer("ca-dup", KeyAlgorithm::EcP256).unwrap();
        assert_eq!(again.spki_der(), ours.spki_der());
        let sig = again.sign(b"which key?").unwrap();
        assert!(openssl_verifies(&dir, ours.as_ref(), b"which key?", &sig));
    }
    // CA keys are fixed on the token: not modifiable, copyable or
    // destroyable; renewed keys can be retired.
    assert_eq!(
        token.private_key_flags("ca-dup").unwrap(),
        (false, false, false)
    );
    token.generate("ocsp-x-1-aa", KeyAlgorithm::EcP256).unwrap();
    assert_eq!(
        token.private_key_flags("ocsp-x-1-aa").unwrap(),
        (false, false, true)
    );
    token.remove("ocsp-x-1-aa").unwrap();
    assert!(token.remove("ca-dup").is_err(), "a CA key was destroyed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A key replaced on the token under the same label and CKA_ID (removed
/// and made again) does not sign for a signer made for the old one, which
/// refuses after reconnecting instead of signing with the wrong key.
fn a_replaced_key_does_not_sign(t: &SoftHsmToken) {
    let token = Token::open(SoftHsmToken::module(), &t.label, &t.pin).unwrap();
    let signer = token.generate("tls-1-swap", KeyAlgorithm::EcP256).unwrap();
    sign_and_check(signer.as_ref(), "before");
    token.remove("tls-1-swap").unwrap();
    let other = token.generate("tls-1-swap", KeyAlgorithm::EcP256).unwrap();
    assert_ne!(other.spki_der(), signer.spki_der());
    token.logout().unwrap();
    assert!(signer.sign(b"after the swap").is_err());
    sign_and_check(other.as_ref(), "the new key signs for itself");
}

fn keys_generated_on_the_token_sign_and_never_leave_it(t: &SoftHsmToken) {
    let dir = std::env::temp_dir().join(format!("hm-p11-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = Token::open(SoftHsmToken::module(), &t.label, &t.pin).unwrap();
    for (label, alg) in [
        ("ca-root", KeyAlgorithm::EcP384),
        ("ca-issuing", KeyAlgorithm::EcP256),
        ("rsa", KeyAlgorithm::Rsa2048),
    ] {
        let signer = token.generate(label, alg).unwrap();
        assert_eq!(
            hallmark_crypto::classify_spki(signer.spki_der())
                .unwrap()
                .algorithm,
            alg
        );
        let msg = format!("to be signed by {label}");
        let sig = signer.sign(msg.as_bytes()).unwrap();
        assert!(
            openssl_verifies(&dir, signer.as_ref(), msg.as_bytes(), &sig),
            "{label}"
        );
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!openssl_verifies(
            &dir,
            signer.as_ref(),
            msg.as_bytes(),
            &bad
        ));
        // CKA_VALUE of the private key is refused.
        assert!(
            !token.private_value_readable(label).unwrap(),
            "{label} is extractable"
        );
        // Found again by label after a restart of our side.
        let again = token.signer(label, alg).unwrap();
        assert_eq!(again.spki_der(), signer.spki_der());
    }
    assert!(matches!(
        token.generate("ca-root", KeyAlgorithm::EcP256),
        Err(hallmark_keys::KeyError::Exists(_))
    ));
    let e = Token::open(SoftHsmToken::module(), &t.label, "000000").unwrap_err();
    assert!(e.to_string().contains("wrong PKCS#11 user PIN"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Signs `msg` with a P-256 signer and checks the signature; a lost
/// signature fails the test with its message.
fn sign_and_check(s: &dyn Signer, msg: &str) {
    let sig = s
        .sign(msg.as_bytes())
        .unwrap_or_else(|e| panic!("signature {msg} lost: {e}"));
    hallmark_crypto::verify_signature(
        s.spki_der(),
        KeyAlgorithm::EcP256.signature_algorithm().oid,
        None,
        msg.as_bytes(),
        &sig,
    )
    .unwrap();
}

fn signing_from_many_threads_uses_the_session_pool(t: &SoftHsmToken) {
    let token = Token::open(SoftHsmToken::module(), &t.label, &t.pin).unwrap();
    let signer: Arc<dyn Signer> = token.generate("k", KeyAlgorithm::EcP256).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = signer.clone();
            std::thread::spawn(move || {
                for j in 0..50 {
                    sign_and_check(s.as_ref(), &format!("{i}-{j}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// The token drops our login (as a token reset does) again and again while
/// four threads sign: every signature is still made, none is lost, and each
/// verifies.
fn signers_reconnect_when_the_token_drops_the_login(t: &SoftHsmToken) {
    let token = Token::open(SoftHsmToken::module(), &t.label, &t.pin).unwrap();
    let signer: Arc<dyn Signer> = token.generate("k", KeyAlgorithm::EcP256).unwrap();
    signer.sign(b"warm").unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = signer.clone();
            std::thread::spawn(move || {
                let mut made = 0;
                for j in 0..150 {
                    sign_and_check(s.as_ref(), &format!("{i}-{j}"));
                    made += 1;
                }
                made
            })
        })
        .collect();
    let dropper = {
        let (token, done) = (token.clone(), done.clone());
        std::thread::spawn(move || {
            let mut drops = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && drops < 20 {
                token.logout().unwrap();
                drops += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drops
        })
    };
    let made: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let drops = dropper.join().unwrap();
    assert_eq!(made, 600);
    assert!(drops >= 2, "the login was dropped only {drops} times");
    // And after the last drop the signer still signs.
    token.logout().unwrap();
    signer.sign(b"after").unwrap();
}
