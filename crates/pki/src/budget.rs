//! Budgets on the work an untrusted input can ask for, each with where its
//! figure comes from (as webpki cites its own). Checked before, or while,
//! the input is decoded; an input over budget is refused with what was
//! over, never parsed further.

use crate::{PkiError, Result};

/// Deepest DER nesting accepted in a CSR or an OCSP request. The deepest
/// path in a PKCS#10 request (RFC 2986 §4.1: CertificationRequest →
/// CertificationRequestInfo → attributes → Attribute → values →
/// extensionRequest's Extensions → Extension → extnValue → a
/// GeneralNames → GeneralName) is 10 levels, and an OCSP request's
/// (RFC 6960 §4.1.1: OCSPRequest → TBSRequest → requestList → Request →
/// CertID → AlgorithmIdentifier → parameters, or requestExtensions →
/// Extension → extnValue) 7; 16 leaves room for unusual but valid
/// encodings and stops a crafted one made of nesting alone.
pub const MAX_DER_DEPTH: usize = 16;

/// Most RDNs in a requested subject. The CA/Browser Forum's subscriber
/// subjects (BR §7.1.4) and the profiles here use at most 9 attributes;
/// the subject of an issued certificate never comes from the CSR anyway.
pub const MAX_SUBJECT_RDNS: usize = 32;

/// Most attributes in a CSR (RFC 2986 §4.1 `attributes`): real requests
/// carry one or two (extensionRequest, challengePassword).
pub const MAX_CSR_ATTRIBUTES: usize = 16;

/// Most extensions requested in a CSR's extensionRequest (RFC 2985
/// §5.4.2). A certificate here carries at most 10 (RFC 5280 §4.2 and the
/// profiles); the requested ones are ignored, but still decoded.
pub const MAX_CSR_EXTENSIONS: usize = 32;

/// Walks the DER TLVs of `input` (without decoding their contents) and
/// refuses nesting deeper than [`MAX_DER_DEPTH`]. Constructed values are
/// descended into; primitive ones and lengths past the end are left to the
/// decoder, which refuses them with its own error.
pub fn check_der_depth(what: &'static str, input: &[u8]) -> Result<()> {
    // (end of the constructed value, depth) of the values we are inside.
    let mut stack: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < input.len() {
        while stack.last().is_some_and(|end| i >= *end) {
            stack.pop();
        }
        let tag = input[i];
        i += 1;
        if tag & 0x1f == 0x1f {
            // High tag number: skip its subsequent octets.
            while i < input.len() && input[i] & 0x80 != 0 {
                i += 1;
            }
            i += 1;
        }
        let Some(&first) = input.get(i) else { break };
        i += 1;
        let len = if first & 0x80 == 0 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || i + n > input.len() {
                return Ok(()); // Indefinite or absurd: the decoder refuses it.
            }
            let l = input[i..i + n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | *b as usize);
            i += n;
            l
        };
        if tag & 0x20 != 0 {
            stack.push(i.saturating_add(len));
            if stack.len() > MAX_DER_DEPTH {
                return Err(PkiError::malformed(
                    what,
                    format!("DER nested deeper than {MAX_DER_DEPTH} levels"),
                ));
            }
        } else {
            i = i.saturating_add(len);
        }
    }
    Ok(())
}

/// Refuses `count` items of `item` over `limit`.
pub fn check_count(what: &'static str, item: &str, count: usize, limit: usize) -> Result<()> {
    if count > limit {
        return Err(PkiError::malformed(
            what,
            format!("{count} {item}, more than the {limit} accepted"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Vec<u8> {
        let mut v = vec![0x05, 0x00];
        for _ in 0..depth {
            let mut outer = vec![0x30];
            crate::cert::push_len(&mut outer, v.len());
            outer.extend_from_slice(&v);
            v = outer;
        }
        v
    }

    #[test]
    fn nesting_is_bounded() {
        assert!(check_der_depth("CSR", &nested(MAX_DER_DEPTH)).is_ok());
        let e = check_der_depth("CSR", &nested(MAX_DER_DEPTH + 1)).unwrap_err();
        assert!(e.to_string().contains("deeper than 16"), "{e}");
        // Siblings do not add up.
        let mut wide = Vec::new();
        for _ in 0..100 {
            wide.extend(nested(3));
        }
        assert!(check_der_depth("CSR", &crate::derw::seq(&[&wide])).is_ok());
        // Garbage and truncation are the decoder's to refuse.
        assert!(check_der_depth("CSR", &[0x30, 0x84, 0xff]).is_ok());
        assert!(check_der_depth("CSR", &[0x1f, 0xff, 0xff]).is_ok());
    }
}
