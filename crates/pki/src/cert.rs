//! Certificate construction: a to-be-signed certificate is built from a
//! template, linted (see [`crate::lint`]), then signed and assembled.

use der::asn1::BitString;
use der::referenced::OwnedToRef;
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use crate::{PkiError, Result, time};

/// TBSCertificate (RFC 5280 §4.1) with public fields, so that Hallmark
/// decides every byte that gets signed. Components are x509-cert's types.
#[derive(Clone, Debug, Sequence)]
pub struct TbsCertificate {
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        default = "Default::default"
    )]
    pub version: Version,
    pub serial_number: SerialNumber,
    pub signature: AlgorithmIdentifierOwned,
    pub issuer: Name,
    pub validity: Validity,
    pub subject: Name,
    pub subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

/// Everything a certificate says, before encoding.
pub struct Template {
    pub serial: Vec<u8>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub issuer: Name,
    pub not_before: u64,
    pub not_after: u64,
    pub subject: Name,
    pub spki_der: Vec<u8>,
    pub extensions: Vec<Extension>,
}

impl Template {
    pub fn to_tbs_der(&self) -> Result<Vec<u8>> {
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&self.serial)?,
            signature: self.signature_algorithm.clone(),
            issuer: self.issuer.clone(),
            validity: Validity::new(
                time::x509_time(self.not_before)?,
                time::x509_time(self.not_after)?,
            ),
            subject: self.subject.clone(),
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&self.spki_der)
                .map_err(|e| PkiError::malformed("public key", e))?,
            extensions: if self.extensions.is_empty() {
                None
            } else {
                Some(self.extensions.clone())
            },
        };
        Ok(tbs.to_der()?)
    }
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }.
/// `tbs_der` is embedded byte for byte, so what was linted is what is signed.
pub fn assemble(
    tbs_der: &[u8],
    alg: &AlgorithmIdentifierOwned,
    signature: &[u8],
) -> Result<Vec<u8>> {
    signed_sequence(tbs_der, alg, signature)
}

/// SEQUENCE { tbs (raw), AlgorithmIdentifier, BIT STRING } — the shape of
/// certificates, CRLs and BasicOCSPResponse's first three fields.
pub fn signed_sequence(
    tbs_der: &[u8],
    alg: &AlgorithmIdentifierOwned,
    signature: &[u8],
) -> Result<Vec<u8>> {
    let alg_der = alg.to_der()?;
    let sig_der = BitString::from_bytes(signature)?.to_der()?;
    let body_len = tbs_der.len() + alg_der.len() + sig_der.len();
    let mut out = Vec::with_capacity(body_len + 6);
    out.push(0x30);
    push_len(&mut out, body_len);
    out.extend_from_slice(tbs_der);
    out.extend_from_slice(&alg_der);
    out.extend_from_slice(&sig_der);
    Ok(out)
}

/// Appends a DER definite length.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Parses a certificate (DER).
pub fn parse(der: &[u8]) -> Result<x509_cert::Certificate> {
    x509_cert::Certificate::from_der(der).map_err(|e| PkiError::malformed("certificate", e))
}

/// Whether `cert` allows the extended key usage `eku` (RFC 5280 §4.2.1.12:
/// without the extension, any use is allowed). anyExtendedKeyUsage does not
/// count: TLS stacks (rustls-webpki among them) want the usage itself.
pub fn has_eku(cert: &x509_cert::Certificate, eku: &const_oid::ObjectIdentifier) -> Result<bool> {
    let Some(ext) = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| {
            e.extn_id == <x509_cert::ext::pkix::ExtendedKeyUsage as const_oid::AssociatedOid>::OID
        })
    else {
        return Ok(true);
    };
    let ekus = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
        .map_err(|e| PkiError::malformed("extended key usage", e))?;
    Ok(ekus.0.iter().any(|o| o == eku))
}

/// Whether `cert` is a CA certificate (basicConstraints cA true).
pub fn is_ca(cert: &x509_cert::Certificate) -> Result<bool> {
    use x509_cert::ext::pkix::BasicConstraints;
    let Some(ext) = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == <BasicConstraints as const_oid::AssociatedOid>::OID)
    else {
        return Ok(false);
    };
    let bc = BasicConstraints::from_der(ext.extn_value.as_bytes())
        .map_err(|e| PkiError::malformed("basic constraints", e))?;
    Ok(bc.ca)
}

/// Checks that `cert` is signed by the key in `issuer_spki_der`.
pub fn verify_signed_by(cert_der: &[u8], issuer_spki_der: &[u8]) -> Result<()> {
    let cert = parse(cert_der)?;
    let tbs = cert.tbs_certificate().to_der()?;
    hallmark_crypto::verify_bitstring(
        issuer_spki_der,
        &cert.signature_algorithm().owned_to_ref(),
        &tbs,
        cert.signature().owned_to_ref(),
    )?;
    Ok(())
}

/// Raw TBS bytes of a DER certificate (the first element of the outer SEQUENCE).
pub fn tbs_bytes(cert_der: &[u8]) -> Result<&[u8]> {
    let (_, body) = split_tlv(cert_der)
        .ok_or_else(|| PkiError::malformed("certificate", "bad outer SEQUENCE"))?;
    let (first, _) =
        split_first_tlv(body).ok_or_else(|| PkiError::malformed("certificate", "bad TBS"))?;
    Ok(first)
}

/// Splits one TLV: returns (header length, contents).
pub(crate) fn split_tlv(data: &[u8]) -> Option<(usize, &[u8])> {
    let (hdr, len) = tlv_header(data)?;
    Some((hdr, data.get(hdr..hdr + len)?))
}

/// Returns the first complete TLV in `data` and the rest.
pub(crate) fn split_first_tlv(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (hdr, len) = tlv_header(data)?;
    let end = hdr.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    Some(data.split_at(end))
}

fn tlv_header(data: &[u8]) -> Option<(usize, usize)> {
    let first = *data.get(1)?;
    if first < 0x80 {
        return Some((2, first as usize));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *data.get(2 + i)? as usize;
    }
    Some((2 + n, len))
}
