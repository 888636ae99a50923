//! PKCS#12 (RFC 7292) for centrally generated keys: the private key in a
//! pkcs8ShroudedKeyBag and the certificate chain in an encrypted SafeContents,
//! both with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC; RFC 8018), and an
//! HMAC-SHA256 integrity MAC. Nothing uses RC2 or 3DES.
//!
//! Why this is written here and not taken from a crate (decided in the
//! architecture review, issue 15): RustCrypto's `pkcs12` crate parses but
//! has no builder; `p12-keystore` builds, but 0.3 pins `cms =0.3.0-pre.1`
//! through `pkcs12 0.2.0-pre.0`, which would bring about 35 crates and a
//! second RustCrypto stack beside ours for one file format. What we write
//! is small (bags, two PBES2 envelopes, a MAC) on the DER writer in
//! `derw.rs` and the PBES2 primitives in `hallmark-crypto`, and the judge
//! is OpenSSL: the end-to-end tests open every PKCS#12 we issue with
//! `openssl pkcs12` and use the key inside.

use const_oid::ObjectIdentifier;
use hallmark_crypto::pbe;

use crate::Result;
use crate::derw::{NULL, explicit, octets, oid, seq, set, tlv, uint};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");
const HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
const AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// PBKDF2 iterations. OpenSSL 3 defaults to 2048; NIST SP 800-132 asks for
/// as many as is practical. 600,000 would make `openssl pkcs12` slow for
/// every subscriber; 100,000 is a compromise for a PIN-protected file.
pub const ITERATIONS: u32 = 100_000;

fn pbes2_encrypt(password: &str, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    hallmark_crypto::fill_random(&mut salt)?;
    hallmark_crypto::fill_random(&mut iv)?;
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    pbe::pbkdf2_sha256(password.as_bytes(), &salt, ITERATIONS, &mut key[..]);
    let ct = pbe::aes256_cbc_encrypt(&key, &iv, plaintext)?;
    let prf = seq(&[&oid(&HMAC_SHA256), &NULL]);
    let kdf_params = seq(&[&octets(&salt), &uint(ITERATIONS as u64), &prf]);
    let kdf = seq(&[&oid(&PBKDF2), &kdf_params]);
    let enc = seq(&[&oid(&AES256_CBC), &octets(&iv)]);
    let alg = seq(&[&oid(&PBES2), &seq(&[&kdf, &enc])]);
    Ok((alg, ct))
}

fn bmp_string(s: &str) -> Vec<u8> {
    let b: Vec<u8> = s.encode_utf16().flat_map(|c| c.to_be_bytes()).collect();
    tlv(0x1e, &b)
}

/// Builds a PFX holding `pkcs8_key` (for `certs[0]`) and the chain `certs`,
/// protected by `password` (the one-time PIN).
pub fn build(
    pkcs8_key: &[u8],
    certs: &[&[u8]],
    friendly_name: &str,
    password: &str,
) -> Result<Vec<u8>> {
    let local_key_id = hallmark_crypto::sha1(certs.first().copied().unwrap_or_default());
    // DER orders the elements of a SET OF by their encodings (X.690 §11.6).
    let mut attrs = [
        seq(&[&oid(&FRIENDLY_NAME), &set(&[&bmp_string(friendly_name)])]),
        seq(&[&oid(&LOCAL_KEY_ID), &set(&[&octets(&local_key_id)])]),
    ];
    attrs.sort();
    let key_attrs = set(&[&attrs[0], &attrs[1]]);

    // Certificate bags, encrypted together.
    let mut bags = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        let cert_bag = seq(&[&oid(&X509_CERTIFICATE), &explicit(0, &octets(c))]);
        let mut parts: Vec<Vec<u8>> = vec![oid(&CERT_BAG), explicit(0, &cert_bag)];
        if i == 0 {
            parts.push(key_attrs.clone());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        bags.push(seq(&refs));
    }
    let refs: Vec<&[u8]> = bags.iter().map(Vec::as_slice).collect();
    let cert_contents = seq(&refs);
    let (alg, ct) = pbes2_encrypt(password, &cert_contents)?;
    let enc_content_info = seq(&[&oid(&ID_DATA), &alg, &tlv(0x80, &ct)]);
    let encrypted_data = seq(&[&uint(0), &enc_content_info]);
    let ci_certs = seq(&[&oid(&ID_ENCRYPTED_DATA), &explicit(0, &encrypted_data)]);

    // Shrouded key bag in a plain data SafeContents.
    let (kalg, kct) = pbes2_encrypt(password, pkcs8_key)?;
    let epki = seq(&[&kalg, &octets(&kct)]);
    let key_bag = seq(&[&oid(&SHROUDED_KEY_BAG), &explicit(0, &epki), &key_attrs]);
    let key_contents = seq(&[&key_bag]);
    let ci_key = seq(&[&oid(&ID_DATA), &explicit(0, &octets(&key_contents))]);

    let auth_safe = seq(&[&ci_certs, &ci_key]);
    let auth_safe_ci = seq(&[&oid(&ID_DATA), &explicit(0, &octets(&auth_safe))]);

    // MAC over the AuthenticatedSafe octets (RFC 7292 §5, Appendix B).
    let mut mac_salt = [0u8; 16];
    hallmark_crypto::fill_random(&mut mac_salt)?;
    let mac_key = pbe::pkcs12_kdf_sha256(password, &mac_salt, 3, ITERATIONS, 32);
    let mac = pbe::hmac_sha256(&mac_key, &auth_safe);
    let digest_info = seq(&[&seq(&[&oid(&SHA256), &NULL]), &octets(&mac)]);
    let mac_data = seq(&[&digest_info, &octets(&mac_salt), &uint(ITERATIONS as u64)]);

    Ok(seq(&[&uint(3), &auth_safe_ci, &mac_data]))
}
