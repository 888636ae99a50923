//! Hallmark's cryptographic provider: key generation, signing, signature
//! verification, hashing and randomness, all backed by aws-lc-rs.
//!
//! Everything that signs goes through the [`Signer`] trait, so that key custody
//! (the software key store today, PKCS#11 tokens later) can hand out signers
//! without ever handing out key bytes.
//! Public keys are classified and signatures verified in [`verify`].

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use der::asn1::{AnyRef, BitStringRef, UintRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

/// What went wrong in a cryptographic operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    #[error("key is too weak: {0}")]
    WeakKey(String),
    #[error("malformed key: {0}")]
    MalformedKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("unsupported signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(ObjectIdentifier),
    #[error("signing failed")]
    SigningFailed,
    #[error("random number generator failed")]
    Rng,
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
}

/// Key algorithms Hallmark generates and signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 5] = [
        Self::EcP256,
        Self::EcP384,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::EcP256 => "p256",
            Self::EcP384 => "p384",
            Self::Rsa2048 => "rsa2048",
            Self::Rsa3072 => "rsa3072",
            Self::Rsa4096 => "rsa4096",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    /// The signature algorithm used when this key signs: ECDSA with the hash
    /// matching the curve (RFC 5758 §3.2), RSA PKCS#1 v1.5 with SHA-256
    /// (RFC 4055 §5).
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        self.signature_algorithm_with(RsaPadding::Pkcs1)
    }

    /// [`Self::signature_algorithm`] for RSA keys signing with `padding`.
    pub fn signature_algorithm_with(self, padding: RsaPadding) -> AlgorithmIdentifierOwned {
        if self.is_rsa() && padding == RsaPadding::Pss {
            return AlgorithmIdentifierOwned {
                oid: ID_RSASSA_PSS,
                parameters: der::Any::from_der(PSS_PARAMS[0].0).ok(),
            };
        }
        match self {
            Self::EcP256 => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
            Self::EcP384 => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_384,
                parameters: None,
            },
            _ => AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(der::Any::null()),
            },
        }
    }
}

/// How RSA keys sign: PKCS#1 v1.5 (the default) or RSASSA-PSS (RFC 4055),
/// both with SHA-256. EC keys ignore it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RsaPadding {
    #[default]
    Pkcs1,
    Pss,
}

impl RsaPadding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pkcs1 => "pkcs1",
            Self::Pss => "pss",
        }
    }
}

impl FromStr for RsaPadding {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pkcs1" | "pkcs1v15" => Ok(Self::Pkcs1),
            "pss" => Ok(Self::Pss),
            _ => Err(CryptoError::UnsupportedKey(format!(
                "unknown RSA padding {s:?}; use pkcs1 or pss"
            ))),
        }
    }
}

/// id-RSASSA-PSS (RFC 4055 §3.1).
pub const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// RSASSA-PSS-params as the CA/Browser Forum's baseline requirements
/// (§7.1.3.2.1) spell them byte for byte, and as OpenSSL writes them: hash
/// and MGF1 hash with NULL parameters, salt as long as the hash, trailer
/// field absent.
static PSS_PARAMS: [(&[u8], &(dyn sig::VerificationAlgorithm + Sync)); 3] = [
    (
        &[
            0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
            0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48,
            0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
            0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
        ],
        &sig::RSA_PSS_2048_8192_SHA256,
    ),
    (
        &[
            0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
            0x04, 0x02, 0x02, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48,
            0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
            0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30,
        ],
        &sig::RSA_PSS_2048_8192_SHA384,
    ),
    (
        &[
            0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
            0x04, 0x02, 0x03, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48,
            0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
            0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x40,
        ],
        &sig::RSA_PSS_2048_8192_SHA512,
    ),
];

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                CryptoError::UnsupportedKey(format!(
                    "unknown key algorithm {s:?}; use one of p256, p384, rsa2048, rsa3072, rsa4096"
                ))
            })
    }
}

/// Something that signs with a private key it never reveals.
pub trait Signer: Send + Sync {
    fn key_algorithm(&self) -> KeyAlgorithm;
    /// DER of the SubjectPublicKeyInfo.
    fn spki_der(&self) -> &[u8];
    /// Signs `msg` and returns the signature as it goes in a certificate's
    /// signatureValue BIT STRING (DER ECDSA-Sig-Value or raw RSA bytes).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// How an RSA key signs (ignored for EC keys).
    fn rsa_padding(&self) -> RsaPadding {
        RsaPadding::Pkcs1
    }

    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.key_algorithm()
            .signature_algorithm_with(self.rsa_padding())
    }
}

enum SoftKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A signer over a private key held in process memory (decrypted from the
/// software key store).
pub struct SoftwareSigner {
    alg: KeyAlgorithm,
    key: SoftKey,
    spki: Vec<u8>,
    padding: RsaPadding,
}

impl fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    /// Loads a PKCS#8 private key.
    pub fn from_pkcs8(alg: KeyAlgorithm, pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let bad = |e: aws_lc_rs::error::KeyRejected| CryptoError::MalformedKey(e.to_string());
        let (key, spki) = match alg {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let a = if alg == KeyAlgorithm::EcP256 {
                    &sig::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &sig::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let kp = EcdsaKeyPair::from_pkcs8(a, pkcs8).map_err(bad)?;
                let spki = ec_spki(&kp)?;
                (SoftKey::Ec(kp), spki)
            }
            _ => {
                let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                let spki = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| CryptoError::MalformedKey("public key".into()))?
                    .as_ref()
                    .to_vec();
                (SoftKey::Rsa(kp), spki)
            }
        };
        Ok(Self {
            alg,
            key,
            spki,
            padding: RsaPadding::Pkcs1,
        })
    }

    /// Signs with `padding` if the key is RSA.
    pub fn with_rsa_padding(mut self, padding: RsaPadding) -> Self {
        self.padding = padding;
        self
    }
}

impl Signer for SoftwareSigner {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn rsa_padding(&self) -> RsaPadding {
        self.padding
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.key {
            SoftKey::Ec(kp) => Ok(kp
                .sign(&rng, msg)
                .map_err(|_| CryptoError::SigningFailed)?
                .as_ref()
                .to_vec()),
            SoftKey::Rsa(kp) => {
                let mut out = vec![0u8; kp.public_modulus_len()];
                let padding: &'static dyn sig::RsaEncoding = match self.padding {
                    RsaPadding::Pkcs1 => &sig::RSA_PKCS1_SHA256,
                    RsaPadding::Pss => &sig::RSA_PSS_SHA256,
                };
                kp.sign(padding, &rng, msg, &mut out)
                    .map_err(|_| CryptoError::SigningFailed)?;
                Ok(out)
            }
        }
    }
}

/// Generates a new private key and returns it as PKCS#8 DER (wiped on drop).
pub fn generate_pkcs8(alg: KeyAlgorithm) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let doc = match alg {
        KeyAlgorithm::EcP256 => EcdsaKeyPair::generate_pkcs8(
            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map_err(|_| CryptoError::Rng)?
        .as_ref()
        .to_vec(),
        KeyAlgorithm::EcP384 => EcdsaKeyPair::generate_pkcs8(
            &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map_err(|_| CryptoError::Rng)?
        .as_ref()
        .to_vec(),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let size = match alg {
                KeyAlgorithm::Rsa2048 => KeySize::Rsa2048,
                KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let kp = RsaKeyPair::generate(size).map_err(|_| CryptoError::Rng)?;
            let der: Pkcs8V1Der<'_> = kp.as_der().map_err(|_| CryptoError::Rng)?;
            der.as_ref().to_vec()
        }
    };
    Ok(Zeroizing::new(doc))
}

/// Generates a new private key: PKCS#8 DER (wiped on drop) and its
/// SubjectPublicKeyInfo, from one key generation (no parse back).
pub fn generate_key(alg: KeyAlgorithm) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CryptoError> {
    let ec = match alg {
        KeyAlgorithm::EcP256 => Some(&sig::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeyAlgorithm::EcP384 => Some(&sig::ECDSA_P384_SHA384_ASN1_SIGNING),
        _ => None,
    };
    let Some(a) = ec else {
        let pkcs8 = generate_pkcs8(alg)?;
        let spki = SoftwareSigner::from_pkcs8(alg, &pkcs8)?.spki_der().to_vec();
        return Ok((pkcs8, spki));
    };
    let kp = EcdsaKeyPair::generate(a).map_err(|_| CryptoError::Rng)?;
    let pkcs8 = Zeroizing::new(
        kp.to_pkcs8v1()
            .map_err(|_| CryptoError::Rng)?
            .as_ref()
            .to_vec(),
    );
    let spki = ec_spki(&kp)?;
    Ok((pkcs8, spki))
}

/// The SubjectPublicKeyInfo of an EC key pair.
fn ec_spki(kp: &EcdsaKeyPair) -> Result<Vec<u8>, CryptoError> {
    Ok(kp
        .public_key()
        .as_der()
        .map_err(|_| CryptoError::MalformedKey("public key".into()))?
        .as_ref()
        .to_vec())
}

pub fn sha1(data: &[u8]) -> [u8; 20] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    let mut out = [0u8; 20];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn sha384(data: &[u8]) -> [u8; 48] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, data);
    let mut out = [0u8; 48];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA-256 (RFC 2104): keyed hashes of identifiers kept for lookup,
/// one-time PINs kept only as a MAC.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::hmac::sign(&k, data).as_ref());
    out
}

/// HMAC-SHA-1, for TOTP (RFC 6238 §1.2 names it the default and every
/// authenticator app computes it); not for anything else.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut out = [0u8; 20];
    out.copy_from_slice(aws_lc_rs::hmac::sign(&k, data).as_ref());
    out
}

/// Incremental SHA-256.
pub struct Sha256(aws_lc_rs::digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Self(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }
}

impl Sha256 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Rng)
}

/// Constant-time equality for secrets (tokens, MACs).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

pub mod aead;
pub mod pbe;
mod verify;
pub use verify::{PublicKeyInfo, classify_spki, verify_bitstring, verify_sha256, verify_signature};

/// DER encoding helper that never fails for in-memory values of bounded size.
pub fn to_der<T: Encode>(v: &T) -> Result<Vec<u8>, CryptoError> {
    Ok(v.to_der()?)
}

/// Converts a raw ECDSA signature r ‖ s (as PKCS#11 tokens return it) into
/// the DER ECDSA-Sig-Value used in certificates (RFC 5480 §2.2.3 / RFC 3279).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 132 {
        return Err(CryptoError::SigningFailed);
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let int = |v: &[u8]| -> Vec<u8> {
        let skip = v.iter().take_while(|b| **b == 0).count().min(v.len() - 1);
        let v = &v[skip..];
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + pad as usize) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let (ri, si) = (int(r), int(s));
    let body = ri.len() + si.len();
    let mut out = vec![0x30];
    if body >= 0x80 {
        out.push(0x81);
    }
    out.push(body as u8);
    out.extend(ri);
    out.extend(si);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmacs_match_the_rfc_vectors() {
        // RFC 4231 test case 2 and RFC 2202 test case 2.
        let (k, d) = (b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&hmac_sha256(k, d)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha1(k, d)),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn rsa_pss_signs_and_verifies_only_with_its_parameters() {
        let pkcs8 = generate_pkcs8(KeyAlgorithm::Rsa2048).unwrap();
        let pss = SoftwareSigner::from_pkcs8(KeyAlgorithm::Rsa2048, &pkcs8)
            .unwrap()
            .with_rsa_padding(RsaPadding::Pss);
        let alg = pss.signature_algorithm();
        assert_eq!(alg.oid, ID_RSASSA_PSS);
        let params = alg.parameters.as_ref().map(|p| p.to_der().unwrap());
        assert_eq!(params.as_deref(), Some(PSS_PARAMS[0].0));
        let sig = pss.sign(b"message").unwrap();
        let params = alg.parameters.as_ref().map(|p| p.into());
        verify_signature(pss.spki_der(), alg.oid, params, b"message", &sig).unwrap();
        // A PSS signature is not a PKCS#1 v1.5 one, and other PSS
        // parameters (here SHA-384's) do not verify it either.
        assert!(
            verify_signature(
                pss.spki_der(),
                rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                None,
                b"message",
                &sig
            )
            .is_err()
        );
        let sha384 = der::Any::from_der(PSS_PARAMS[1].0).unwrap();
        assert!(
            verify_signature(
                pss.spki_der(),
                ID_RSASSA_PSS,
                Some((&sha384).into()),
                b"message",
                &sig
            )
            .is_err()
        );
        // Absent parameters are refused outright.
        assert!(matches!(
            verify_signature(pss.spki_der(), ID_RSASSA_PSS, None, b"message", &sig),
            Err(CryptoError::UnsupportedSignatureAlgorithm(_))
        ));
        // The same key signs PKCS#1 v1.5 by default.
        let v15 = SoftwareSigner::from_pkcs8(KeyAlgorithm::Rsa2048, &pkcs8).unwrap();
        let sig = v15.sign(b"message").unwrap();
        let alg = v15.signature_algorithm();
        assert_eq!(alg.oid, rfc5912::SHA_256_WITH_RSA_ENCRYPTION);
        verify_signature(v15.spki_der(), alg.oid, None, b"message", &sig).unwrap();
    }
}
