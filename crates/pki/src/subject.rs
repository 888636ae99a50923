//! Subject names from RFC 4514 strings (e.g. `CN=陳大文,C=HK`) with the string
//! types RFC 5280 expects: PrintableString for C and serialNumber (X.520),
//! IA5String for emailAddress (PKCS #9), UTF8String for everything else
//! (RFC 5280 §4.1.2.6), which carries Chinese names.

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use der::{Any, Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::profile::{SUBJECT_ATTRIBUTES, attribute_name};
use crate::{PkiError, Result};

/// Upper bounds from RFC 5280 Appendix A (ub-common-name etc.).
fn upper_bound(name: &str) -> usize {
    match name {
        "C" => 2,
        "serialNumber" => 64,
        "emailAddress" => 255,
        "organizationIdentifier" => 64,
        _ => 64,
    }
}

/// Parses `CN=…,O=…,C=HK`. As in RFC 4514 the string lists the most specific
/// RDN first; the encoded sequence starts with the last one (C).
pub fn parse(s: &str) -> Result<Name> {
    // Spaces at the ends go, except an escaped one ending the last value.
    if s.trim().is_empty() {
        return Ok(Name::default());
    }
    let s = s.trim_start();
    let mut pairs = Vec::new();
    for part in split_unescaped(s, ',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| PkiError::Subject(format!("{part:?} is not TYPE=value")))?;
        let k = k.trim();
        if split_unescaped(v, '+').len() > 1 {
            return Err(PkiError::Subject(format!(
                "{part:?} holds an unescaped '+': multi-valued RDNs are not supported; \
                 write \\+ if the '+' is part of the value"
            )));
        }
        pairs.push((k.to_string(), unescape(trim_unescaped(v))?));
    }
    build(&pairs)
}

/// A name from (attribute, value) pairs, most specific first as in
/// [`parse`], with the same checks (known attributes, upper bounds, string
/// types) but no escaping: for names made from other names' values, which
/// may hold any character.
pub fn build<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Name> {
    let mut rdns = Vec::new();
    for (k, v) in pairs {
        let (k, v) = (k.as_ref(), v.as_ref());
        if v.chars().any(char::is_control) {
            return Err(PkiError::Subject(format!(
                "{k} holds a control character; names must be printable text"
            )));
        }
        let (name, oid) = SUBJECT_ATTRIBUTES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .or_else(|| match k.to_ascii_lowercase().as_str() {
                "commonname" => Some(&SUBJECT_ATTRIBUTES[0]),
                "surname" => Some(&SUBJECT_ATTRIBUTES[1]),
                "givenname" => Some(&SUBJECT_ATTRIBUTES[8]),
                "organizationname" => Some(&SUBJECT_ATTRIBUTES[6]),
                "e" | "email" => Some(&SUBJECT_ATTRIBUTES[11]),
                _ => None,
            })
            .ok_or_else(|| {
                PkiError::Subject(format!(
                    "unknown attribute {k:?}; use one of {}",
                    SUBJECT_ATTRIBUTES.map(|(n, _)| n).join(", ")
                ))
            })?;
        if v.is_empty() {
            return Err(PkiError::Subject(format!("{name} is empty")));
        }
        if *name != "C" && v.chars().count() > upper_bound(name) {
            return Err(PkiError::Subject(format!(
                "{name} is longer than {} characters",
                upper_bound(name)
            )));
        }
        let value = encode_value(name, v)?;
        let atv = AttributeTypeAndValue {
            oid: ObjectIdentifier::new_unwrap(oid),
            value,
        };
        rdns.push(RelativeDistinguishedName::try_from(vec![atv])?);
    }
    rdns.reverse();
    Ok(Name::from_der(&RdnSequence::from(rdns).to_der()?)?)
}

/// The longest prefix of `s` that, with `suffix`, fits in the upper bound
/// of `attribute`, followed by `suffix`.
pub fn with_suffix_within_bound(attribute: &str, s: &str, suffix: &str) -> String {
    let room = upper_bound(attribute).saturating_sub(suffix.chars().count());
    let head: String = s.chars().take(room).collect();
    format!("{}{suffix}", head.trim_end())
}

fn encode_value(name: &str, v: &str) -> Result<Any> {
    let bad = |what: &str| PkiError::Subject(format!("{name} {v:?} {what}"));
    Ok(match name {
        "C" => {
            if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad(
                    "must be a two-letter ISO 3166 country code in capitals",
                ));
            }
            Any::encode_from(&PrintableStringRef::new(v).map_err(|_| bad("is not printable"))?)?
        }
        "serialNumber" => Any::encode_from(
            &PrintableStringRef::new(v)
                .map_err(|_| bad("must use letters, digits, space and '()+,-./:=? only"))?,
        )?,
        "emailAddress" => {
            Any::encode_from(&Ia5StringRef::new(v).map_err(|_| bad("must be ASCII"))?)?
        }
        _ => Any::encode_from(&Utf8StringRef::new(v)?)?,
    })
}

/// Splits at unescaped separators (RFC 4514 §2.4 backslash escapes).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut esc = false;
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// Trims the spaces around a value, but not an escaped trailing one
/// (`CN=foo\ `).
fn trim_unescaped(v: &str) -> &str {
    // ASCII whitespace only (one byte each): other spaces are part of the
    // value, and the control characters among them are refused later.
    let v = v.trim_ascii_start();
    let mut end = v.trim_ascii_end().len();
    let escapes = v[..end].bytes().rev().take_while(|b| *b == b'\\').count();
    if escapes % 2 == 1 && end < v.len() {
        end += 1;
    }
    &v[..end]
}

/// Undoes RFC 4514 §2.4 escapes: a backslash before a special character,
/// or before two hex digits giving one octet of the value's UTF-8.
fn unescape(s: &str) -> Result<String> {
    let bad = |why: &str| PkiError::Subject(format!("{s:?}: {why}"));
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match it.next() {
            Some(h) if h.is_ascii_hexdigit() => {
                let l = it.next().filter(char::is_ascii_hexdigit).ok_or_else(|| {
                    bad("a backslash escape needs two hex digits (\\C3\\A9) or a special character")
                })?;
                let byte = u8::from_str_radix(&format!("{h}{l}"), 16)
                    .map_err(|_| bad("bad hex escape"))?;
                out.push(byte);
            }
            Some(n) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
            }
            None => return Err(bad("ends with a lone backslash")),
        }
    }
    String::from_utf8(out).map_err(|_| bad("hex escapes do not make UTF-8"))
}

/// The attributes of a name as (short name, string value) pairs, in
/// encoding order. Unknown attributes are reported by OID.
pub fn attributes(name: &Name) -> Vec<(String, String)> {
    name.iter()
        .map(|atv| {
            let n = attribute_name(&atv.oid)
                .map(str::to_string)
                .unwrap_or_else(|| atv.oid.to_string());
            (n, value_string(&atv.value))
        })
        .collect()
}

pub fn value_string(v: &Any) -> String {
    match v.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            String::from_utf8_lossy(v.value()).into_owned()
        }
        _ => format!("#{}", crate::hex(v.value())),
    }
}

/// Human-readable RFC 4514 form with the most specific RDN first.
pub fn display(name: &Name) -> String {
    let mut parts: Vec<String> = attributes(name)
        .into_iter()
        .map(|(k, v)| {
            let mut v = v
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('+', "\\+");
            // RFC 4514 §2.4: a leading space or '#', a trailing space (a
            // value of one space is escaped once).
            let trail = v.len() > 1 && v.ends_with(' ');
            if v.starts_with(' ') || v.starts_with('#') {
                v.insert(0, '\\');
            }
            if trail {
                v.insert(v.len() - 1, '\\');
            }
            format!("{k}={v}")
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_cn_is_utf8_and_country_printable() {
        let n = parse("CN=香港郵政電子核證機關,O=Hongkong Post,C=HK").unwrap();
        let attrs = attributes(&n);
        assert_eq!(attrs[0], ("C".into(), "HK".into()));
        assert_eq!(attrs[2], ("CN".into(), "香港郵政電子核證機關".into()));
        let der = n.to_der().unwrap();
        // PrintableString (0x13) "HK" and UTF8String (0x0c) CN.
        assert!(der.windows(4).any(|w| w == [0x13, 2, b'H', b'K']));
        assert!(der.contains(&0x0c));
        assert_eq!(display(&n), "CN=香港郵政電子核證機關,O=Hongkong Post,C=HK");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse("CN=").is_err());
        assert!(parse("XX=1").is_err());
        assert!(parse("C=hk").is_err());
        assert!(parse("CN").is_err());
        assert!(parse(&format!("CN={}", "a".repeat(65))).is_err());
    }

    #[test]
    fn escaped_comma() {
        let n = parse("CN=Chan\\, Tai Man").unwrap();
        assert_eq!(attributes(&n)[0].1, "Chan, Tai Man");
        assert_eq!(parse(&display(&n)).unwrap(), n);
    }

    #[test]
    fn hex_escapes_and_plus_signs() {
        // RFC 4514 §2.4: \C3\A9 is the UTF-8 of é.
        let n = parse("CN=caf\\C3\\A9").unwrap();
        assert_eq!(attributes(&n)[0].1, "café");
        let n = parse("CN=a\\+b\\\\c").unwrap();
        assert_eq!(attributes(&n)[0].1, "a+b\\c");
        assert_eq!(parse(&display(&n)).unwrap(), n);
        // Escaped spaces at the ends are part of the value, in any RDN.
        let n = parse("CN=\\ padded\\ , O=x").unwrap();
        assert_eq!(attributes(&n)[1].1, " padded ");
        assert_eq!(parse(&display(&n)).unwrap(), n);
        let n = parse("CN=\\ ,O=x").unwrap();
        assert_eq!(attributes(&n)[1].1, " ");
        assert_eq!(parse(&display(&n)).unwrap(), n);
        let n = parse("  CN=foo\\ ").unwrap();
        assert_eq!(attributes(&n)[0].1, "foo ");
        assert_eq!(parse(&display(&n)).unwrap(), n);
        // A non-ASCII space after a backslash is an escaped character.
        let n = parse("CN=a\\\u{a0},C=HK").unwrap();
        assert_eq!(attributes(&n)[1].1, "a\u{a0}");
        for bad in [
            "CN=x\\00y",
            "CN=a+SN=b",
            "CN=x\\",
            "CN=x\\C3",
            "CN=\\ff\\fe",
            "CN=a\tb",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
