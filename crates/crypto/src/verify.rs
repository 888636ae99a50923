//! Public keys classified (the algorithms and sizes Hallmark accepts) and
//! signatures verified.

use super::*;

/// A public key checked to be one Hallmark accepts (RFC 5480 / RFC 3279).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyInfo {
    pub algorithm: KeyAlgorithm,
    /// The subjectPublicKey BIT STRING contents.
    pub key_bytes: Vec<u8>,
}

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// Classifies a SubjectPublicKeyInfo, refusing curves and sizes we do not
/// accept (RSA under 2048 bits, EC curves other than P-256/P-384).
pub fn classify_spki(spki_der: &[u8]) -> Result<PublicKeyInfo, CryptoError> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)?;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CryptoError::MalformedKey("public key BIT STRING has unused bits".into()))?
        .to_vec();
    let algorithm = match spki.algorithm.oid {
        rfc5912::ID_EC_PUBLIC_KEY => {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .ok_or_else(|| CryptoError::MalformedKey("EC key without curve".into()))?
                .decode_as()?;
            let (alg, len) = match curve {
                rfc5912::SECP_256_R_1 => (KeyAlgorithm::EcP256, 65),
                rfc5912::SECP_384_R_1 => (KeyAlgorithm::EcP384, 97),
                other => {
                    return Err(CryptoError::UnsupportedKey(format!(
                        "EC curve {other} is not accepted; use P-256 or P-384"
                    )));
                }
            };
            if key_bytes.len() != len || key_bytes[0] != 4 {
                return Err(CryptoError::MalformedKey(
                    "EC point must be uncompressed and on the named curve".into(),
                ));
            }
            alg
        }
        rfc5912::RSA_ENCRYPTION => {
            let bits = rsa_modulus_bits(&key_bytes)?;
            if bits < MIN_RSA_BITS {
                return Err(CryptoError::WeakKey(format!(
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} bits are required"
                )));
            }
            if bits > MAX_RSA_BITS {
                return Err(CryptoError::UnsupportedKey(format!(
                    "RSA key of {bits} bits; at most {MAX_RSA_BITS} bits are accepted"
                )));
            }
            if bits <= 2048 {
                KeyAlgorithm::Rsa2048
            } else if bits <= 3072 {
                KeyAlgorithm::Rsa3072
            } else {
                KeyAlgorithm::Rsa4096
            }
        }
        other => {
            return Err(CryptoError::UnsupportedKey(format!(
                "public key algorithm {other} is not accepted; use EC P-256/P-384 or RSA"
            )));
        }
    };
    Ok(PublicKeyInfo {
        algorithm,
        key_bytes,
    })
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, CryptoError> {
    let k = RsaPublicKey::from_der(pkcs1)?;
    let m = k.modulus.as_bytes();
    let lead = m.first().copied().unwrap_or(0);
    Ok(m.len() * 8 - lead.leading_zeros() as usize)
}

/// Verifies `signature` over `msg` made by the key in `spki_der` with the
/// signature algorithm `sig_alg` (as found in a CSR, certificate or OCSP
/// response).
pub fn verify_signature(
    spki_der: &[u8],
    sig_alg: ObjectIdentifier,
    sig_params: Option<AnyRef<'_>>,
    msg: &[u8],
    signature: &[u8],
) -> Result<PublicKeyInfo, CryptoError> {
    let key = classify_spki(spki_der)?;
    if sig_alg == ID_RSASSA_PSS && key.algorithm.is_rsa() {
        // Only the parameter sets the CA/Browser Forum allows.
        let params = sig_params
            .map(|p| p.to_der())
            .transpose()?
            .unwrap_or_default();
        let alg = PSS_PARAMS
            .iter()
            .find(|(der, _)| *der == params.as_slice())
            .map(|(_, alg)| *alg)
            .ok_or(CryptoError::UnsupportedSignatureAlgorithm(sig_alg))?;
        return verify_with(alg, key, msg, signature);
    }
    let params_ok = match sig_params {
        None => true,
        Some(p) => p.is_null(),
    };
    if !params_ok {
        return Err(CryptoError::UnsupportedSignatureAlgorithm(sig_alg));
    }
    let alg: &'static dyn sig::VerificationAlgorithm = match (key.algorithm, sig_alg) {
        (KeyAlgorithm::EcP256, rfc5912::ECDSA_WITH_SHA_256) => &sig::ECDSA_P256_SHA256_ASN1,
        (KeyAlgorithm::EcP256, rfc5912::ECDSA_WITH_SHA_384) => &sig::ECDSA_P256_SHA384_ASN1,
        (KeyAlgorithm::EcP384, rfc5912::ECDSA_WITH_SHA_384) => &sig::ECDSA_P384_SHA384_ASN1,
        (KeyAlgorithm::EcP384, rfc5912::ECDSA_WITH_SHA_256) => &sig::ECDSA_P384_SHA256_ASN1,
        (a, rfc5912::SHA_256_WITH_RSA_ENCRYPTION) if a.is_rsa() => &sig::RSA_PKCS1_2048_8192_SHA256,
        (a, rfc5912::SHA_384_WITH_RSA_ENCRYPTION) if a.is_rsa() => &sig::RSA_PKCS1_2048_8192_SHA384,
        (a, rfc5912::SHA_512_WITH_RSA_ENCRYPTION) if a.is_rsa() => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return Err(CryptoError::UnsupportedSignatureAlgorithm(sig_alg)),
    };
    verify_with(alg, key, msg, signature)
}

/// Verifies a SHA-256 signature as `openssl dgst -sha256 -sign KEY` makes
/// it: ECDSA (DER) for an EC key, RSASSA-PKCS1-v1_5 for an RSA key.
pub fn verify_sha256(
    spki_der: &[u8],
    msg: &[u8],
    signature: &[u8],
) -> Result<PublicKeyInfo, CryptoError> {
    let key = classify_spki(spki_der)?;
    let oid = if key.algorithm.is_rsa() {
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION
    } else {
        rfc5912::ECDSA_WITH_SHA_256
    };
    verify_signature(spki_der, oid, None, msg, signature)
}

fn verify_with(
    alg: &'static dyn sig::VerificationAlgorithm,
    key: PublicKeyInfo,
    msg: &[u8],
    signature: &[u8],
) -> Result<PublicKeyInfo, CryptoError> {
    sig::UnparsedPublicKey::new(alg, &key.key_bytes)
        .verify(msg, signature)
        .map_err(|_| CryptoError::BadSignature)?;
    Ok(key)
}

/// Verifies a signature given as a BIT STRING.
pub fn verify_bitstring(
    spki_der: &[u8],
    sig_alg: &spki::AlgorithmIdentifierRef<'_>,
    msg: &[u8],
    signature: BitStringRef<'_>,
) -> Result<PublicKeyInfo, CryptoError> {
    let sig = signature
        .as_bytes()
        .ok_or_else(|| CryptoError::MalformedKey("signature BIT STRING has unused bits".into()))?;
    verify_signature(spki_der, sig_alg.oid, sig_alg.parameters, msg, sig)
}
