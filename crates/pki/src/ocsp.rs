//! OCSP (RFC 6960) request parsing and response encoding, for the lightweight
//! profile of RFC 5019 as well as full RFC 6960 requests with nonces.
//!
//! Requests are decoded with `der`'s derived decoders (strict DER); responses
//! are assembled from pre-encoded parts so that a pre-signed response is a
//! byte string that costs nothing to serve.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use der::asn1::{Any, Int, OctetString};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;

use crate::cert::{push_len, signed_sequence};
use crate::crl::{Reason, push_uint};
use crate::derw::wrap;
use crate::{PkiError, Result};

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
pub const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-pkix-ocsp-basic.
pub const BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Largest request accepted. RFC 5019 requests are about 80 bytes; with a
/// nonce and a few CertIDs well under 1 KiB.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Most CertIDs answered in one request (attacker-driven signing work).
pub const MAX_CERT_IDS: usize = 8;
/// RFC 8954 §2.1: nonces are 1 to 32 octets.
pub const MAX_NONCE_BYTES: usize = 32;

/// OCSPResponseStatus (RFC 6960 §4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseStatus {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    Unauthorized = 6,
}

/// A response that carries only an error status: `SEQUENCE { ENUMERATED n }`.
pub fn error_response(status: ResponseStatus) -> [u8; 5] {
    [0x30, 0x03, 0x0a, 0x01, status as u8]
}

#[derive(Sequence)]
struct OcspRequest {
    tbs_request: TbsRequest,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    _optional_signature: Option<Any>,
}

#[derive(Sequence)]
struct TbsRequest {
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        default = "Default::default"
    )]
    _version: Version,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    _requestor_name: Option<Any>,
    request_list: Vec<Request>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    request_extensions: Option<Vec<Extension>>,
}

#[derive(Sequence)]
struct Request {
    req_cert: CertIdAsn1,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    _single_request_extensions: Option<Vec<Extension>>,
}

#[derive(Sequence)]
struct CertIdAsn1 {
    hash_algorithm: AlgorithmIdentifierOwned,
    issuer_name_hash: OctetString,
    issuer_key_hash: OctetString,
    serial_number: Int,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

impl HashAlg {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => hallmark_crypto::sha1(data).to_vec(),
            Self::Sha256 => hallmark_crypto::sha256(data).to_vec(),
        }
    }
    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => SHA1,
            Self::Sha256 => SHA256,
        }
    }
}

/// One CertID of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertId {
    pub hash: HashAlg,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// INTEGER contents (two's complement, as encoded).
    pub serial: Vec<u8>,
}

impl CertId {
    /// DER of the CertID. The hash algorithm carries NULL parameters, as
    /// OpenSSL and most clients send them.
    pub fn to_der(&self) -> Vec<u8> {
        let mut alg = Vec::with_capacity(16);
        let oid = self.hash.oid();
        let oid_bytes = oid.as_bytes();
        let mut alg_body = vec![0x06, oid_bytes.len() as u8];
        alg_body.extend_from_slice(oid_bytes);
        alg_body.extend_from_slice(&[0x05, 0x00]);
        alg.push(0x30);
        push_len(&mut alg, alg_body.len());
        alg.extend_from_slice(&alg_body);
        let mut body = alg;
        for h in [&self.issuer_name_hash, &self.issuer_key_hash] {
            body.push(0x04);
            push_len(&mut body, h.len());
            body.extend_from_slice(h);
        }
        body.push(0x02);
        push_len(&mut body, self.serial.len());
        body.extend_from_slice(&self.serial);
        let mut out = Vec::with_capacity(body.len() + 2);
        out.push(0x30);
        push_len(&mut out, body.len());
        out.extend_from_slice(&body);
        out
    }
}

#[derive(Clone, Debug)]
pub struct ParsedRequest {
    pub cert_ids: Vec<CertId>,
    /// The nonce extension exactly as received, to be echoed.
    pub nonce: Option<Extension>,
}

/// Why a request is refused; every variant maps to malformedRequest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("OCSP request is not valid DER: {0}")]
    Der(der::Error),
    #[error("OCSP request is larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error(
        "OCSP request is nested deeper than {} levels",
        crate::budget::MAX_DER_DEPTH
    )]
    TooDeep,
    #[error("OCSP request lists no certificates")]
    Empty,
    #[error("OCSP request lists more than {MAX_CERT_IDS} certificates")]
    TooMany,
    #[error("unsupported CertID hash algorithm {0}; use SHA-1 or SHA-256")]
    HashAlgorithm(ObjectIdentifier),
    #[error("nonce must be an OCTET STRING of 1 to 32 octets (RFC 8954)")]
    Nonce,
    #[error("CertID serial number is not a positive INTEGER")]
    Serial,
}

/// The DER request of an RFC 6960 Appendix A.1 GET: the path after
/// `/ocsp/` is the URL encoding of the base64 of the DER. None if it is not
/// base64 once percent-decoded.
pub fn decode_get_path(path: &str) -> Option<Vec<u8>> {
    use base64ct::{Base64, Encoding};
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    let text = String::from_utf8(out).ok()?;
    Base64::decode_vec(text.trim()).ok()
}

pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, RequestError> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge);
    }
    if crate::budget::check_der_depth("OCSP request", der).is_err() {
        return Err(RequestError::TooDeep);
    }
    let req = OcspRequest::from_der(der).map_err(RequestError::Der)?;
    let list = req.tbs_request.request_list;
    if list.is_empty() {
        return Err(RequestError::Empty);
    }
    if list.len() > MAX_CERT_IDS {
        return Err(RequestError::TooMany);
    }
    let mut cert_ids = Vec::with_capacity(list.len());
    for r in list {
        let c = r.req_cert;
        let hash = match c.hash_algorithm.oid {
            SHA1 => HashAlg::Sha1,
            SHA256 => HashAlg::Sha256,
            other => return Err(RequestError::HashAlgorithm(other)),
        };
        let serial = c.serial_number.as_bytes().to_vec();
        if serial.is_empty() || serial[0] & 0x80 != 0 {
            return Err(RequestError::Serial);
        }
        cert_ids.push(CertId {
            hash,
            issuer_name_hash: c.issuer_name_hash.as_bytes().to_vec(),
            issuer_key_hash: c.issuer_key_hash.as_bytes().to_vec(),
            serial,
        });
    }
    let nonce = req
        .tbs_request
        .request_extensions
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.extn_id == NONCE);
    if let Some(n) = &nonce {
        let inner =
            OctetString::from_der(n.extn_value.as_bytes()).map_err(|_| RequestError::Nonce)?;
        if inner.as_bytes().is_empty() || inner.as_bytes().len() > MAX_NONCE_BYTES {
            return Err(RequestError::Nonce);
        }
    }
    Ok(ParsedRequest { cert_ids, nonce })
}

/// The status reported for one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked { at: u64, reason: Reason },
    Unknown,
}

pub struct SingleResponse<'a> {
    pub cert_id: &'a CertId,
    pub status: CertStatus,
    pub this_update: u64,
    pub next_update: u64,
}

fn push_generalized(out: &mut Vec<u8>, unix: u64) -> Result<()> {
    let t = crate::time::generalized(unix)?;
    out.extend_from_slice(&t.to_der()?);
    Ok(())
}

/// ResponseData (RFC 6960 §4.2.1) with a byKey responder ID.
pub fn response_data(
    responder_key_hash: &[u8],
    produced_at: u64,
    responses: &[SingleResponse<'_>],
    nonce: Option<&Extension>,
) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(256);
    // responderID byKey [2] EXPLICIT KeyHash (OCTET STRING).
    let mut kh = Vec::with_capacity(24);
    wrap(0x04, responder_key_hash, &mut kh);
    wrap(0xa2, &kh, &mut body);
    push_generalized(&mut body, produced_at)?;
    let mut list = Vec::with_capacity(128 * responses.len());
    for r in responses {
        let mut s = r.cert_id.to_der();
        match r.status {
            CertStatus::Good => s.extend_from_slice(&[0x80, 0x00]),
            CertStatus::Unknown => s.extend_from_slice(&[0x82, 0x00]),
            CertStatus::Revoked { at, reason } => {
                let mut info = Vec::with_capacity(24);
                push_generalized(&mut info, at)?;
                if reason != Reason::Unspecified {
                    info.extend_from_slice(&[0xa0, 0x03, 0x0a, 0x01, reason as u8]);
                }
                wrap(0xa1, &info, &mut s);
            }
        }
        push_generalized(&mut s, r.this_update)?;
        let mut nu = Vec::with_capacity(20);
        push_generalized(&mut nu, r.next_update)?;
        wrap(0xa0, &nu, &mut s);
        wrap(0x30, &s, &mut list);
    }
    wrap(0x30, &list, &mut body);
    if let Some(n) = nonce {
        let exts = vec![n.clone()].to_der()?;
        wrap(0xa1, &exts, &mut body);
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    wrap(0x30, &body, &mut out);
    Ok(out)
}

/// OCSPResponse with status successful around a signed BasicOCSPResponse
/// that includes the responder's certificate.
pub fn successful_response(
    response_data: &[u8],
    alg: &AlgorithmIdentifierOwned,
    signature: &[u8],
    responder_cert_der: &[u8],
) -> Result<Vec<u8>> {
    let basic_unwrapped = signed_sequence(response_data, alg, signature)?;
    // Append certs [0] EXPLICIT SEQUENCE OF Certificate inside the outer SEQUENCE.
    let (hdr, body) = crate::cert::split_tlv(&basic_unwrapped)
        .ok_or_else(|| PkiError::malformed("OCSP response", "encoding"))?;
    let _ = hdr;
    let certs = certs_field(responder_cert_der);
    let mut basic_body = Vec::with_capacity(body.len() + certs.len());
    basic_body.extend_from_slice(body);
    basic_body.extend_from_slice(&certs);
    let mut basic = Vec::with_capacity(basic_body.len() + 4);
    wrap(0x30, &basic_body, &mut basic);

    let mut rb = Vec::with_capacity(basic.len() + 24);
    rb.extend_from_slice(&BASIC.to_der()?);
    wrap(0x04, &basic, &mut rb);
    let mut rb_seq = Vec::with_capacity(rb.len() + 4);
    wrap(0x30, &rb, &mut rb_seq);
    let mut body = vec![0x0a, 0x01, 0x00];
    wrap(0xa0, &rb_seq, &mut body);
    let mut out = Vec::with_capacity(body.len() + 4);
    wrap(0x30, &body, &mut out);
    Ok(out)
}

/// The `certs [0] EXPLICIT SEQUENCE OF Certificate` field holding the
/// responder's certificate: the last bytes of every response
/// [`successful_response`] builds with it.
pub fn certs_field(responder_cert_der: &[u8]) -> Vec<u8> {
    let mut seq = Vec::with_capacity(responder_cert_der.len() + 4);
    wrap(0x30, responder_cert_der, &mut seq);
    let mut certs = Vec::with_capacity(seq.len() + 4);
    wrap(0xa0, &seq, &mut certs);
    certs
}

/// Builds a CertID for a serial as a client would (used by tests and for
/// pre-signing responses).
pub fn cert_id(
    hash: HashAlg,
    issuer_name_der: &[u8],
    issuer_spki_der: &[u8],
    serial_magnitude: &[u8],
) -> Result<CertId> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(issuer_spki_der)?;
    let mut serial = Vec::new();
    push_uint(&mut serial, serial_magnitude);
    Ok(CertId {
        hash,
        issuer_name_hash: hash.digest(issuer_name_der),
        issuer_key_hash: hash.digest(spki.subject_public_key.raw_bytes()),
        serial: serial[2..].to_vec(),
    })
}

/// The signature algorithm OIDs a response may carry, for lints.
pub fn is_supported_signature(oid: ObjectIdentifier) -> bool {
    matches!(
        oid,
        rfc5912::ECDSA_WITH_SHA_256
            | rfc5912::ECDSA_WITH_SHA_384
            | rfc5912::SHA_256_WITH_RSA_ENCRYPTION
            | hallmark_crypto::ID_RSASSA_PSS
    )
}
