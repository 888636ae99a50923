//! PKCS#10 certification requests (RFC 2986): parsed, size-limited and
//! signature-checked. The subject of an issued certificate never comes from
//! the CSR; only its public key does.

use der::{Decode, Encode};
use hallmark_crypto::PublicKeyInfo;
use x509_cert::request::CertReq;

use crate::{PkiError, Result, pem};

/// Largest CSR accepted. An RSA-8192 CSR with a long subject is about 2 KiB;
/// 16 KiB leaves room for attributes while bounding attacker-driven parsing.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    pub spki_der: Vec<u8>,
    pub key: PublicKeyInfo,
    /// The subject the applicant asked for (informational only).
    pub requested_subject: String,
}

/// Parses a PEM or DER CSR and checks its self-signature (proof of possession).
pub fn verify(input: &[u8]) -> Result<VerifiedCsr> {
    if input.len() > MAX_CSR_BYTES * 2 {
        return Err(PkiError::TooLarge {
            what: "CSR",
            size: input.len(),
            limit: MAX_CSR_BYTES,
        });
    }
    let trimmed = input.trim_ascii_start();
    if !trimmed.starts_with(b"-----BEGIN") && trimmed.first() != Some(&0x30) {
        return Err(PkiError::malformed(
            "CSR",
            "expected a PEM CERTIFICATE REQUEST block or DER",
        ));
    }
    // A PEM error names what it expected (a CSR) already.
    let der = pem::decode("CERTIFICATE REQUEST", input).map_err(|e| match e {
        PkiError::Malformed { what: "CSR", .. } => e,
        e => PkiError::malformed("CSR", e),
    })?;
    if der.len() > MAX_CSR_BYTES {
        return Err(PkiError::TooLarge {
            what: "CSR",
            size: der.len(),
            limit: MAX_CSR_BYTES,
        });
    }
    crate::budget::check_der_depth("CSR", &der)?;
    let req = CertReq::from_der(&der).map_err(|e| PkiError::malformed("CSR", e))?;
    use crate::budget::{MAX_CSR_ATTRIBUTES, MAX_CSR_EXTENSIONS, MAX_SUBJECT_RDNS, check_count};
    check_count(
        "CSR",
        "subject RDNs",
        req.info.subject.len(),
        MAX_SUBJECT_RDNS,
    )?;
    check_count(
        "CSR",
        "attributes",
        req.info.attributes.len(),
        MAX_CSR_ATTRIBUTES,
    )?;
    for attr in req.info.attributes.iter() {
        for v in attr.values.iter() {
            // An extensionRequest's Extensions (SEQUENCE OF Extension).
            if attr.oid == const_oid::db::rfc5912::ID_EXTENSION_REQ
                && let Ok(exts) = v.decode_as::<Vec<x509_cert::ext::Extension>>()
            {
                check_count(
                    "CSR",
                    "requested extensions",
                    exts.len(),
                    MAX_CSR_EXTENSIONS,
                )?;
            }
        }
    }
    let info_der = req.info.to_der()?;
    let spki_der = req.info.public_key.to_der()?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| PkiError::malformed("CSR", "signature BIT STRING has unused bits"))?;
    let key = hallmark_crypto::verify_signature(
        &spki_der,
        req.algorithm.oid,
        req.algorithm.parameters.as_ref().map(|p| p.into()),
        &info_der,
        sig,
    )
    .map_err(|e| match e {
        hallmark_crypto::CryptoError::BadSignature => PkiError::CsrSignature,
        hallmark_crypto::CryptoError::UnsupportedSignatureAlgorithm(o) => {
            PkiError::Key(format!("CSR signature algorithm {o} is not accepted"))
        }
        other => PkiError::Key(other.to_string()),
    })?;
    Ok(VerifiedCsr {
        spki_der,
        key,
        requested_subject: crate::subject::display(&req.info.subject),
    })
}

/// Builds a PKCS#10 request for a key in custody (e.g. an issuing CA's key,
/// to be signed by an offline root), signed by that key.
pub fn build(
    subject: &x509_cert::name::Name,
    signer: &dyn hallmark_crypto::Signer,
) -> Result<Vec<u8>> {
    use x509_cert::request::{CertReqInfo, Version};
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: spki::SubjectPublicKeyInfoOwned::from_der(signer.spki_der())?,
        attributes: Default::default(),
    };
    let tbs = info.to_der()?;
    let sig = signer.sign(&tbs)?;
    crate::cert::signed_sequence(&tbs, &signer.signature_algorithm(), &sig)
}
