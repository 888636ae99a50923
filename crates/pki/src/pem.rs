//! PEM armour (RFC 7468).

use crate::{PkiError, Result};

pub fn encode(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Accepts PEM with the given label, or raw DER.
pub fn decode(expected_label: &str, input: &[u8]) -> Result<Vec<u8>> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (label, der) =
            der::pem::decode_vec(trimmed).map_err(|e| PkiError::malformed("PEM", e))?;
        if label != expected_label
            && !(expected_label == "CERTIFICATE REQUEST" && label == "NEW CERTIFICATE REQUEST")
        {
            return Err(PkiError::Malformed {
                what: "PEM",
                detail: format!("expected a {expected_label} block, found {label}"),
            });
        }
        Ok(der)
    } else {
        Ok(input.to_vec())
    }
}
