//! Hong Kong identity card numbers: one or two letters, six digits and a
//! check digit (0-9 or A), written `A123456(3)`.
//!
//! The check digit: letters count A=10 … Z=35, a missing first letter 36;
//! the eight symbols are weighted 9 down to 2, the check digit 1, and the
//! weighted sum is a multiple of 11 (a check value of 10 is written `A`).

use std::fmt;

/// A validated HKID number, kept in its canonical form `AB123456C`
/// (letters upper case, no brackets).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Hkid(String);

/// Why a string is not an HKID number (for the form's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HkidError {
    Format,
    CheckDigit,
}

fn letter_value(c: u8) -> u32 {
    u32::from(c - b'A') + 10
}

/// The check symbol for a prefix of one or two letters and six digits.
fn check_symbol(letters: &[u8], digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    let first = if letters.len() == 2 {
        letter_value(letters[0])
    } else {
        36
    };
    sum += 9 * first;
    sum += 8 * letter_value(letters[letters.len() - 1]);
    for (i, d) in digits.iter().enumerate() {
        sum += (7 - i as u32) * u32::from(d - b'0');
    }
    match (11 - sum % 11) % 11 {
        10 => b'A',
        n => b'0' + n as u8,
    }
}

impl Hkid {
    /// Parses `A123456(3)`, `A1234563`, `ab 123456 (a)` and the like.
    pub fn parse(s: &str) -> Result<Self, HkidError> {
        let clean: Vec<u8> = s
            .bytes()
            .filter(|b| !matches!(b, b' ' | b'(' | b')' | b'-'))
            .map(|b| b.to_ascii_uppercase())
            .collect();
        let nl = clean.iter().take_while(|b| b.is_ascii_uppercase()).count();
        if !(1..=2).contains(&nl) || clean.len() != nl + 7 {
            return Err(HkidError::Format);
        }
        let (letters, rest) = clean.split_at(nl);
        let (digits, check) = rest.split_at(6);
        if !digits.iter().all(u8::is_ascii_digit)
            || !(check[0].is_ascii_digit() || check[0] == b'A')
        {
            return Err(HkidError::Format);
        }
        if check_symbol(letters, digits) != check[0] {
            return Err(HkidError::CheckDigit);
        }
        Ok(Self(String::from_utf8_lossy(&clean).into_owned()))
    }

    /// Makes a valid number from a prefix and six digits (synthetic residents).
    pub fn from_parts(letters: &str, number: u32) -> Result<Self, HkidError> {
        let l = letters.as_bytes();
        if !(1..=2).contains(&l.len()) || !l.iter().all(u8::is_ascii_uppercase) || number > 999_999
        {
            return Err(HkidError::Format);
        }
        let digits = format!("{number:06}");
        let c = check_symbol(l, digits.as_bytes()) as char;
        Ok(Self(format!("{letters}{digits}{c}")))
    }

    /// The canonical form, `AB123456C`: what is hashed for lookup.
    pub fn canonical(&self) -> &str {
        &self.0
    }

    /// As printed on the card: `AB123456(C)`.
    pub fn display(&self) -> String {
        let (head, check) = self.0.split_at(self.0.len() - 1);
        format!("{head}({check})")
    }

    /// Masked for pages and letters: `A123***(*)`.
    pub fn masked(&self) -> String {
        let d = self.display();
        let keep = d.len() - 6;
        format!("{}***(*)", &d[..keep])
    }
}

impl fmt::Debug for Hkid {
    // Personal data: never printed whole by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hkid({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_check() {
        // The textbook example, a two-letter one, and a check value of 10.
        assert_eq!(Hkid::parse("A123456(3)").unwrap().canonical(), "A1234563");
        assert_eq!(Hkid::parse("a1234563").unwrap().display(), "A123456(3)");
        let two = Hkid::from_parts("XA", 123_456).unwrap();
        assert_eq!(Hkid::parse(&two.display()).unwrap(), two);
        assert_eq!(Hkid::parse("A123456(4)"), Err(HkidError::CheckDigit));
        assert_eq!(Hkid::parse("A12345(3)"), Err(HkidError::Format));
        assert_eq!(Hkid::parse("ABC123456(3)"), Err(HkidError::Format));
        assert_eq!(Hkid::parse("1234567(3)"), Err(HkidError::Format));
        assert_eq!(Hkid::parse(""), Err(HkidError::Format));
        assert_eq!(Hkid::parse("A123456(3)").unwrap().masked(), "A123***(*)");
    }

    #[test]
    fn every_generated_number_parses_and_one_wrong_digit_fails() {
        let mut a_seen = false;
        for n in (0..999_999).step_by(7919) {
            for p in ["A", "Z", "ZA", "ZZ"] {
                let id = Hkid::from_parts(p, n).unwrap();
                a_seen |= id.canonical().ends_with('A');
                assert_eq!(Hkid::parse(&id.display()).unwrap(), id);
                // Change one digit: the weighted sum moves by 1..=7 × 1..=9,
                // never a multiple of 11, so the check always catches it.
                let mut b = id.canonical().as_bytes().to_vec();
                let i = b.len() - 2;
                b[i] = if b[i] == b'9' { b'0' } else { b[i] + 1 };
                assert!(Hkid::parse(std::str::from_utf8(&b).unwrap()).is_err());
            }
        }
        assert!(a_seen, "some numbers have the check value A");
    }
}
