//! PEM armour (RFC 7468).

use crate::{PkiError, Result};

pub fn encode(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Accepts PEM with the given label, or raw DER. The Base64 may be wrapped
/// at any width, with CRLF or LF (RFC 7468 §3's lax parsing, as OpenSSL
/// reads it); explanatory text before the BEGIN line (OpenSSL's "Bag
/// Attributes") and anything after the END line are ignored.
pub fn decode(expected_label: &str, input: &[u8]) -> Result<Vec<u8>> {
    // DER is a SEQUENCE: 0x30 and (for anything of 128 bytes or more, as
    // every certificate, CSR and CRL is) a long-form length octet, which is
    // not ASCII; text may start with the digit 0 but not with that pair.
    if input.first() == Some(&0x30) && input.get(1).is_some_and(|b| *b >= 0x80) {
        return Ok(input.to_vec());
    }
    // The block with the expected label, else the first one (to name it).
    let find = |needle: &[u8]| input.windows(needle.len()).position(|w| w == needle);
    let Some(start) = find(format!("-----BEGIN {expected_label}-----").as_bytes())
        .or_else(|| {
            (expected_label == "CERTIFICATE REQUEST")
                .then(|| find(b"-----BEGIN NEW CERTIFICATE REQUEST-----"))
                .flatten()
        })
        .or_else(|| find(b"-----BEGIN "))
    else {
        // DER shorter than 128 bytes (a SEQUENCE all the same); anything
        // else is neither, which says more than an ASN.1 error would.
        if input.first() == Some(&0x30) {
            return Ok(input.to_vec());
        }
        return Err(PkiError::Malformed {
            what: match expected_label {
                "CERTIFICATE REQUEST" => "CSR",
                "CERTIFICATE" => "certificate",
                "X509 CRL" => "CRL",
                _ => "PEM",
            },
            detail: format!("neither PEM (no -----BEGIN {expected_label}----- line) nor DER"),
        });
    };
    let trimmed = &input[start..];
    let bad = |detail: String| PkiError::Malformed {
        what: "PEM",
        detail,
    };
    let text = std::str::from_utf8(trimmed).map_err(|_| bad("PEM must be ASCII text".into()))?;
    let (first, rest) = text
        .split_once('\n')
        .ok_or_else(|| bad("the BEGIN line is not followed by any data".into()))?;
    let label = first
        .trim_end()
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| bad(format!("malformed BEGIN line {first:?}")))?;
    if label != expected_label
        && !(expected_label == "CERTIFICATE REQUEST" && label == "NEW CERTIFICATE REQUEST")
    {
        return Err(bad(format!(
            "expected a {expected_label} block, found {label}"
        )));
    }
    let end = format!("-----END {label}-----");
    let body = &rest[..rest
        .find(&end)
        .ok_or_else(|| bad(format!("no {end} line")))?];
    let b64: String = body.split_ascii_whitespace().collect();
    use base64ct::Encoding;
    base64ct::Base64::decode_vec(&b64).map_err(|e| bad(format!("Base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn any_line_width_and_line_ending() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let pem = encode("CERTIFICATE REQUEST", &der);
        assert_eq!(decode("CERTIFICATE REQUEST", pem.as_bytes()).unwrap(), der);
        // Python's base64.encodebytes wraps at 76 columns; Windows tools
        // write CRLF; some mailers add trailing spaces.
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let wrapped: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let odd = format!(
            "-----BEGIN NEW CERTIFICATE REQUEST-----\r\n{}  \r\n-----END NEW CERTIFICATE REQUEST-----\r\ntrailer",
            wrapped.join("\r\n")
        );
        assert_eq!(decode("CERTIFICATE REQUEST", odd.as_bytes()).unwrap(), der);
        let bagged = format!("Bag Attributes\n    localKeyID: 01 02\nsubject=CN = x\n{pem}");
        assert_eq!(
            decode("CERTIFICATE REQUEST", bagged.as_bytes()).unwrap(),
            der
        );
        // DER passes through, even holding the bytes of a BEGIN line.
        let mut seq = vec![0x30, 0x82, 0x01, 0x00];
        seq.extend_from_slice(b"-----BEGIN CERTIFICATE REQUEST-----");
        seq.resize(260, 0);
        assert_eq!(decode("CERTIFICATE REQUEST", &seq).unwrap(), seq);
        // Text starting with the digit 0, and a bundle whose first block
        // has another label.
        let noted = format!("0 comment\n{pem}");
        assert_eq!(
            decode("CERTIFICATE REQUEST", noted.as_bytes()).unwrap(),
            der
        );
        let bundle = format!("{}{pem}", encode("CERTIFICATE", b"other"));
        assert_eq!(
            decode("CERTIFICATE REQUEST", bundle.as_bytes()).unwrap(),
            der
        );
    }

    #[test]
    fn refuses_broken_armour() {
        let pem = encode("CERTIFICATE", b"0123456789");
        for bad in [
            pem.replace("-----END CERTIFICATE-----", ""),
            pem.replace("MDEy", "M!Ey"),
            pem.replace("BEGIN CERTIFICATE", "BEGIN CERTIFICATE REQUEST"),
            "-----BEGIN CERTIFICATE-----".to_string(),
            "this is not a certificate".to_string(),
        ] {
            assert!(decode("CERTIFICATE", bad.as_bytes()).is_err(), "{bad}");
        }
        let e = decode("CERTIFICATE REQUEST", b"hello").unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed CSR: neither PEM (no -----BEGIN CERTIFICATE REQUEST----- line) nor DER"
        );
    }
}
