//! M-of-N control of the key-store passphrase: Shamir secret sharing over
//! GF(2^8) (the AES field). Fewer than M shares say nothing about the
//! passphrase; any M recover it. Shares carry their threshold, their index
//! and a checksum that catches typing mistakes.
//!
//! Why this is written here and not taken from a crate (decided in the
//! architecture review, issue 15): the sharing itself is forty lines, and
//! the crates that offer it did not fit. `sharks` and `blahaj` work in the
//! field of 0x11d with log/exp tables (a table lookup indexed by a secret
//! byte is a cache-timing channel) and could not read the shares custodians
//! already hold; `vsss-rs` 6 works in this same field (0x11b) without
//! tables, and our tests check both ways against it (its shares are `[x,
//! y…]`, the secret at x = 0, as ours), but as a runtime dependency it
//! brings `ff`, `generic-array` 1 and its own API over `rand_core` for
//! what is one function. The multiplication below runs eight fixed rounds with masks
//! instead of branches, so its time does not depend on the bytes it
//! multiplies.

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use crate::{KeyError, Passphrase, Result};

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (0x11b), in
/// constant time: each of the eight rounds adds `a` under a mask made of
/// b's low bit, and reduces under a mask made of a's high bit.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        a = (a << 1) ^ (0x1b & 0u8.wrapping_sub(a >> 7));
        b >>= 1;
    }
    p
}

fn gf_inv(a: u8) -> u8 {
    // a^254 = a^-1 in GF(2^8).
    let mut r = 1u8;
    let mut base = a;
    let mut e = 254u32;
    while e > 0 {
        if e & 1 != 0 {
            r = gf_mul(r, base);
        }
        base = gf_mul(base, base);
        e >>= 1;
    }
    r
}

/// One custodian's share.
#[derive(Clone)]
pub struct Share {
    pub threshold: u8,
    pub index: u8,
    y: Zeroizing<Vec<u8>>,
}

impl Share {
    /// `hallmark-share:v1:M:X:HEX:CHECK`.
    pub fn encode(&self) -> Zeroizing<String> {
        let body = format!("{}:{}:{}", self.threshold, self.index, hex(&self.y));
        let check = &hex(&hallmark_crypto::sha256(body.as_bytes()))[..8];
        Zeroizing::new(format!("hallmark-share:v1:{body}:{check}"))
    }

    pub fn decode(s: &str) -> Result<Self> {
        let bad = |why: &str| KeyError::Passphrase(format!("malformed share: {why}"));
        let rest = s
            .trim()
            .strip_prefix("hallmark-share:v1:")
            .ok_or_else(|| bad("it must start with hallmark-share:v1:"))?;
        let (body, check) = rest.rsplit_once(':').ok_or_else(|| bad("no checksum"))?;
        if &hex(&hallmark_crypto::sha256(body.as_bytes()))[..8] != check {
            return Err(bad("the checksum does not match (mistyped?)"));
        }
        let mut parts = body.split(':');
        let threshold: u8 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("threshold"))?;
        let index: u8 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("index"))?;
        let y = parts.next().and_then(unhex).ok_or_else(|| bad("value"))?;
        if threshold < 2 || index == 0 {
            return Err(bad("threshold or index out of range"));
        }
        Ok(Self {
            threshold,
            index,
            y: Zeroizing::new(y),
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Splits the passphrase into `n` shares, any `m` of which recover it.
pub fn split(pass: &Passphrase, m: u8, n: u8) -> Result<Vec<Share>> {
    split_bytes(pass.expose().as_bytes(), m, n)
}

/// Splits any secret (e.g. a PKCS#11 PIN) into `n` shares, any `m` of
/// which recover it.
pub fn split_bytes(secret: &[u8], m: u8, n: u8) -> Result<Vec<Share>> {
    if m < 2 || m > n {
        return Err(KeyError::Passphrase(format!(
            "need 2 <= M <= N, got M={m}, N={n}"
        )));
    }
    if secret.is_empty() {
        return Err(KeyError::Passphrase("nothing to split".into()));
    }
    let mut coeffs = Zeroizing::new(vec![0u8; secret.len() * (m as usize - 1)]);
    hallmark_crypto::fill_random(&mut coeffs)?;
    Ok((1..=n)
        .map(|x| {
            let y = secret
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    // Horner: s + c1 x + c2 x^2 + …
                    let c = &coeffs[i * (m as usize - 1)..(i + 1) * (m as usize - 1)];
                    let mut acc = 0u8;
                    for k in c.iter().rev() {
                        acc = gf_mul(acc, x) ^ k;
                    }
                    gf_mul(acc, x) ^ s
                })
                .collect();
            Share {
                threshold: m,
                index: x,
                y: Zeroizing::new(y),
            }
        })
        .collect())
}

/// Recovers the passphrase from at least M distinct shares of one split.
pub fn combine(shares: &[Share]) -> Result<Passphrase> {
    let secret = combine_bytes(shares)?;
    let s = String::from_utf8(secret.to_vec())
        .map_err(|_| KeyError::Passphrase("the shares do not combine into a passphrase".into()))?;
    Passphrase::new(s)
}

/// Recovers a secret from at least M distinct shares of one split.
pub fn combine_bytes(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>> {
    let Some(first) = shares.first() else {
        return Err(KeyError::Passphrase("no shares given".into()));
    };
    let m = first.threshold as usize;
    let mut idx: Vec<u8> = shares.iter().map(|s| s.index).collect();
    idx.sort_unstable();
    idx.dedup();
    if idx.len() != shares.len() {
        return Err(KeyError::Passphrase(
            "the same share was given twice".into(),
        ));
    }
    if shares
        .iter()
        .any(|s| s.threshold as usize != m || s.y.len() != first.y.len())
    {
        return Err(KeyError::Passphrase(
            "the shares come from different splits".into(),
        ));
    }
    if shares.len() < m {
        return Err(KeyError::Passphrase(format!(
            "{m} custodians' shares are needed, {} given",
            shares.len()
        )));
    }
    let use_ = &shares[..m];
    let mut secret = Zeroizing::new(vec![0u8; first.y.len()]);
    for (i, si) in use_.iter().enumerate() {
        // Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i).
        let mut l = 1u8;
        for (j, sj) in use_.iter().enumerate() {
            if i != j {
                l = gf_mul(l, gf_mul(sj.index, gf_inv(sj.index ^ si.index)));
            }
        }
        for (b, y) in secret.iter_mut().zip(si.y.iter()) {
            *b ^= gf_mul(*y, l);
        }
    }
    Ok(secret)
}

/// A share sealed to its custodian: AES-256-GCM under Argon2id of the
/// custodian's own passphrase, bound to the custodian's name. Whoever finds
/// the file learns nothing without that passphrase.
///
/// `hallmark-sealed-share:v1:NAME:M_KIB:T:P:SALT:SEALED` (base64 fields).
pub fn seal(
    share: &Share,
    custodian: &str,
    pass: &Passphrase,
    kdf: crate::KdfParams,
) -> Result<String> {
    check_custodian(custodian)?;
    let mut salt = [0u8; 16];
    hallmark_crypto::fill_random(&mut salt)?;
    let key = crate::derive_sealing_key(pass, &salt, kdf)?;
    let sealed = key.seal(&sealed_aad(custodian), share.encode().as_bytes())?;
    Ok(format!(
        "{SEALED_PREFIX}{custodian}:{}:{}:{}:{}:{}",
        kdf.m_kib,
        kdf.t,
        kdf.p,
        Base64::encode_string(&salt),
        Base64::encode_string(&sealed)
    ))
}

const SEALED_PREFIX: &str = "hallmark-sealed-share:v1:";

fn sealed_aad(custodian: &str) -> Vec<u8> {
    format!("hallmark-sealed-share-v1:{custodian}").into_bytes()
}

/// Custodian names go into file names and the audit log: letters, digits,
/// `.`, `_`, `-`, at most 64.
pub fn check_custodian(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(KeyError::Passphrase(format!(
            "custodian name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(())
}

/// The custodian a sealed share belongs to, `None` for a plain share (or a
/// name no share could carry, so that it is never shown).
pub fn sealed_custodian(text: &str) -> Option<&str> {
    text.trim()
        .strip_prefix(SEALED_PREFIX)
        .and_then(|r| r.split(':').next())
        .filter(|n| check_custodian(n).is_ok())
}

/// Opens a sealed share with its custodian's passphrase.
pub fn open(text: &str, pass: &Passphrase) -> Result<(String, Share)> {
    let bad = |why: &str| KeyError::Passphrase(format!("malformed sealed share: {why}"));
    let rest = text
        .trim()
        .strip_prefix(SEALED_PREFIX)
        .ok_or_else(|| bad("it must start with hallmark-sealed-share:v1:"))?;
    let f: Vec<&str> = rest.split(':').collect();
    let [name, m_kib, t, p, salt, sealed] = f[..] else {
        return Err(bad("it must have 6 fields"));
    };
    check_custodian(name)?;
    let num = |v: &str| v.parse::<u32>().map_err(|_| bad("bad KDF parameter"));
    let kdf = crate::KdfParams {
        m_kib: num(m_kib)?,
        t: num(t)?,
        p: num(p)?,
    };
    // Refuse parameters that would exhaust memory or time (the file may
    // come from anywhere). Lowered parameters gain an attacker nothing: the
    // share was sealed under the custodian's own, so others derive a key
    // that does not open it.
    kdf.check_bounds(&format!("custodian {name}'s share"))?;
    let salt = Base64::decode_vec(salt).map_err(|_| bad("bad salt"))?;
    let sealed = Base64::decode_vec(sealed).map_err(|_| bad("bad ciphertext"))?;
    let key = crate::derive_sealing_key(pass, &salt, kdf)?;
    let plain = key.open(&sealed_aad(name), &sealed).map_err(|_| {
        KeyError::Passphrase(format!(
            "custodian {name}: wrong passphrase for this share (or the file was altered)"
        ))
    })?;
    let text = std::str::from_utf8(&plain).map_err(|_| bad("not a share inside"))?;
    Ok((name.to_string(), Share::decode(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_m_of_n_recover_and_fewer_do_not() {
        let pass = Passphrase::new("correct horse battery staple 香港".into()).unwrap();
        let shares = split(&pass, 3, 5).unwrap();
        let text: Vec<_> = shares
            .iter()
            .map(|s| Share::decode(&s.encode()).unwrap())
            .collect();
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let got =
                        combine(&[text[a].clone(), text[b].clone(), text[c].clone()]).unwrap();
                    assert_eq!(got.expose(), pass.expose());
                }
                let e = combine(&[text[a].clone(), text[b].clone()]).err().unwrap();
                assert!(
                    e.to_string()
                        .contains("3 custodians' shares are needed, 2 given")
                );
            }
        }
        // A mistyped share is caught by its checksum.
        let mut s = shares[0].encode().to_string();
        let pos = s.len() - 12;
        s.replace_range(
            pos..pos + 1,
            if &s[pos..pos + 1] == "0" { "1" } else { "0" },
        );
        assert!(Share::decode(&s).is_err());
        assert!(split(&pass, 1, 3).is_err() && split(&pass, 4, 3).is_err());
    }

    #[test]
    fn field_inverse() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1);
        }
    }

    /// The textbook multiplication (shift and add, with branches) that
    /// Hallmark used until the branch-free one replaced it.
    fn gf_mul_with_branches(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let hi = a & 0x80;
            a <<= 1;
            if hi != 0 {
                a ^= 0x1b;
            }
            b >>= 1;
        }
        p
    }

    #[test]
    fn multiplication_agrees_with_the_textbook_and_with_vsss_rs() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let ours = gf_mul(a, b);
                assert_eq!(ours, gf_mul_with_branches(a, b), "{a} * {b}");
                assert_eq!(ours, (vsss_rs::Gf256(a) * vsss_rs::Gf256(b)).0, "{a} * {b}");
            }
        }
    }

    /// Shares a custodian was given before the multiplication changed (made
    /// by the branching code, 3 of 5): any three still recover the secret.
    #[test]
    fn shares_made_before_still_combine() {
        const OLD: [&str; 5] = [
            "hallmark-share:v1:3:1:d25d4a0dc779204d901d4e46665cc2db43c635c288b9accaa98198c675:7e40fe73",
            "hallmark-share:v1:3:2:e1f35af58fcf8aacdd4336e68d59c68b55b0e320484d4035eb50fcc929:ce7e9092",
            "hallmark-share:v1:3:3:da08891ef0194362f8b8ec1fcb6671236219b28ba19acc8927b210602e:e17d3571",
            "hallmark-share:v1:3:4:1adae795df1eaa4bed8cfffbe51c3d6211a4e5eb9e467770569848a98b:46cbe779",
            "hallmark-share:v1:3:5:2121347ea0c86385c8772502a3238aca260db4407791fbcc9a7aa4008c:21444029",
        ];
        let shares: Vec<Share> = OLD.iter().map(|s| Share::decode(s).unwrap()).collect();
        for pick in [[0, 1, 2], [0, 2, 4], [1, 3, 4], [4, 3, 0]] {
            let got = combine_bytes(&pick.map(|i| shares[i].clone())).unwrap();
            assert_eq!(got.as_slice(), "香港郵政 custodian vector".as_bytes());
        }
    }

    /// Randomness for vsss-rs from the same source as Hallmark's own.
    struct SystemRandom;

    impl rand_core::TryRng for SystemRandom {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> std::result::Result<u32, Self::Error> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }
        fn try_next_u64(&mut self) -> std::result::Result<u64, Self::Error> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Self::Error> {
            hallmark_crypto::fill_random(dst).unwrap();
            Ok(())
        }
    }

    impl rand_core::TryCryptoRng for SystemRandom {}

    /// Our shares combine in vsss-rs, an implementation we did not write,
    /// and its shares combine in ours: the same field, the same points.
    #[test]
    fn shares_interoperate_with_vsss_rs() {
        let secret = "correct horse battery staple 香港".as_bytes();
        let ours = split_bytes(secret, 3, 5).unwrap();
        let as_vsss: Vec<Vec<u8>> = ours
            .iter()
            .map(|s| [&[s.index][..], &s.y[..]].concat())
            .collect();
        for pick in [[0, 1, 2], [1, 2, 4], [4, 0, 3]] {
            let got = vsss_rs::Gf256::combine_bytes(pick.map(|i| as_vsss[i].clone())).unwrap();
            assert_eq!(got, secret);
        }
        let theirs = vsss_rs::Gf256::split_bytes(3, 5, secret, SystemRandom).unwrap();
        let as_ours: Vec<Share> = theirs
            .iter()
            .map(|v| Share {
                threshold: 3,
                index: v[0],
                y: Zeroizing::new(v[1..].to_vec()),
            })
            .collect();
        for pick in [[0, 1, 2], [2, 3, 4], [3, 0, 1]] {
            let got = combine_bytes(&pick.map(|i| as_ours[i].clone())).unwrap();
            assert_eq!(got.as_slice(), secret);
        }
        // Two of their shares are not enough for us either.
        assert!(combine_bytes(&as_ours[..2]).is_err());
    }

    #[test]
    fn sealed_shares_open_only_with_their_custodians_passphrase() {
        let p = Passphrase::new("correct horse battery staple".into()).unwrap();
        let shares = split(&p, 2, 3).unwrap();
        let kdf = crate::KdfParams::danger_insecure_for_tests();
        let alice = Passphrase::new("alice's own words".into()).unwrap();
        let sealed = seal(&shares[0], "alice", &alice, kdf).unwrap();
        assert_eq!(sealed_custodian(&sealed), Some("alice"));
        assert!(!sealed.contains(shares[0].encode().as_str()));
        let (name, opened) = open(&sealed, &alice).unwrap();
        assert_eq!(name, "alice");
        assert_eq!(opened.encode().as_str(), shares[0].encode().as_str());
        let wrong = Passphrase::new("bob's words here".into()).unwrap();
        assert!(matches!(
            open(&sealed, &wrong),
            Err(KeyError::Passphrase(m)) if m.contains("wrong passphrase")
        ));
        // The share is bound to its custodian's name.
        let renamed = sealed.replacen(":alice:", ":mallory:", 1);
        assert!(open(&renamed, &alice).is_err());
        assert!(seal(&shares[1], "bad name/..", &alice, kdf).is_err());
        assert_eq!(sealed_custodian(shares[1].encode().as_str()), None);
    }
}
