//! Hallmark's PKI building blocks: certificates, CSRs, CRLs, OCSP, PKCS#12 and
//! pre-issuance linting. Pure functions: no I/O, no clock (times are passed
//! in as Unix seconds), randomness only through `hallmark_crypto`.

pub mod budget;
pub mod cert;
pub mod crl;
pub mod csr;
pub mod derw;
pub mod ext;
pub mod lint;
pub mod ocsp;
pub mod pem;
pub mod pkcs12;
pub mod profile;
pub mod subject;
pub mod time;

pub use x509_cert::Certificate;
pub use x509_cert::name::Name;

/// What went wrong while building or parsing a PKI object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("{what} is too large: {size} bytes, at most {limit} are accepted")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("CSR signature does not verify: the CSR was altered or not signed by its key")]
    CsrSignature,
    #[error("invalid subject: {0}")]
    Subject(String),
    #[error("unsupported or weak key: {0}")]
    Key(String),
    #[error("certificate failed linting: {}", .0.join("; "))]
    Lint(Vec<String>),
    #[error("invalid profile {name}: {detail}")]
    Profile { name: String, detail: String },
    #[error("encoding error: {0}")]
    Encoding(#[from] der::Error),
    #[error(transparent)]
    Crypto(#[from] hallmark_crypto::CryptoError),
}

impl PkiError {
    pub(crate) fn malformed(what: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Malformed {
            what,
            detail: e.to_string(),
        }
    }
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// Hex encoding (lower case) for serials and key identifiers.
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let s: String = s.chars().filter(|c| *c != ':').collect();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A fresh certificate serial: 20 random bytes with the top bit cleared and
/// a non-zero first byte, i.e. a positive INTEGER carrying 159 random-ish
/// bits and encoded in exactly 20 octets (RFC 5280 §4.1.2.2; CA/B BR 7.1).
pub fn random_serial() -> Result<[u8; 20]> {
    let mut s = [0u8; 20];
    hallmark_crypto::fill_random(&mut s)?;
    s[0] &= 0x7f;
    if s[0] == 0 {
        s[0] = 0x40;
    }
    Ok(s)
}
