//! Password-based primitives for PKCS#12 (RFC 7292) and PBES2 (RFC 8018):
//! PBKDF2-HMAC-SHA256, AES-256-CBC, HMAC-SHA256 and the PKCS#12 key
//! derivation function of RFC 7292 Appendix B.2.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::{digest, hmac, pbkdf2};

use zeroize::Zeroizing;

use crate::CryptoError;

pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let it = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, it, salt, password, out);
}

pub fn aes256_cbc_encrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let k = UnboundCipherKey::new(&AES_256, key).map_err(|_| CryptoError::SigningFailed)?;
    let enc = PaddedBlockEncryptingKey::cbc_pkcs7(k).map_err(|_| CryptoError::SigningFailed)?;
    // Room for the padding from the start, so that the plaintext's copy is
    // encrypted in place and never left behind by a reallocation.
    let mut buf = Zeroizing::new(Vec::with_capacity(data.len() + 16));
    buf.extend_from_slice(data);
    let at = (buf.as_ptr(), buf.capacity());
    enc.less_safe_encrypt(&mut *buf, EncryptionContext::Iv128((*iv).into()))
        .map_err(|_| CryptoError::SigningFailed)?;
    if (buf.as_ptr(), buf.capacity()) != at {
        return Err(CryptoError::SigningFailed);
    }
    Ok(buf.to_vec())
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// RFC 7292 Appendix B.2 key derivation with SHA-256 (u = 32, v = 64).
/// `id` is 1 (encryption key), 2 (IV) or 3 (MAC key); the password is
/// encoded as a NUL-terminated BMPString (Appendix B.1).
pub fn pkcs12_kdf_sha256(
    password: &str,
    salt: &[u8],
    id: u8,
    iterations: u32,
    out_len: usize,
) -> Zeroizing<Vec<u8>> {
    const U: usize = 32;
    const V: usize = 64;
    // Every buffer that holds the password or what is derived from it is
    // wiped when dropped, and sized up front (no reallocation leaves an
    // unwiped copy behind).
    let units = password.encode_utf16().count() + 1;
    let mut pw = Zeroizing::new(Vec::with_capacity(2 * units));
    for c in password.encode_utf16() {
        pw.extend_from_slice(&c.to_be_bytes());
    }
    pw.extend_from_slice(&[0, 0]);
    let d = [id; V];
    let filled = |n: usize| V * n.div_ceil(V);
    let mut i_buf = Zeroizing::new(Vec::with_capacity(filled(salt.len()) + filled(pw.len())));
    for src in [salt, &pw[..]] {
        if !src.is_empty() {
            i_buf.extend((0..filled(src.len())).map(|i| src[i % src.len()]));
        }
    }
    let mut out = Zeroizing::new(Vec::with_capacity(out_len));
    while out.len() < out_len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&d);
        ctx.update(&i_buf);
        let mut a = Zeroizing::new([0u8; U]);
        a.copy_from_slice(ctx.finish().as_ref());
        for _ in 1..iterations.max(1) {
            let next = digest::digest(&digest::SHA256, &a[..]);
            a.copy_from_slice(next.as_ref());
        }
        let take = U.min(out_len - out.len());
        out.extend_from_slice(&a[..take]);
        // B = A repeated to v bytes; I_j = (I_j + B + 1) mod 2^v for each block.
        let b = Zeroizing::new(std::array::from_fn::<u8, V, _>(|k| a[k % U]));
        for block in i_buf.chunks_mut(V) {
            let mut carry = 1u16;
            for k in (0..V).rev() {
                let s = block[k] as u16 + b[k] as u16 + carry;
                block[k] = s as u8;
                carry = s >> 8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CBC padding fits the room made for it (the plaintext is encrypted
    /// where it lies, for every length up to two blocks past a boundary).
    #[test]
    fn cbc_encrypts_in_place() {
        for n in 0..80 {
            let data = vec![0x5a; n];
            let ct = aes256_cbc_encrypt(&[1; 32], &[2; 16], &data).unwrap();
            assert_eq!(ct.len(), (n / 16 + 1) * 16);
        }
    }

    /// The PKCS#12 KDF still gives RFC 7292's answers after the buffers were
    /// made wiping: the same output for the same input, a different one for
    /// another id, password or salt, and any length asked.
    #[test]
    fn pkcs12_kdf_is_stable() {
        let a = pkcs12_kdf_sha256("pin", b"salt", 3, 10, 32);
        assert_eq!(a, pkcs12_kdf_sha256("pin", b"salt", 3, 10, 32));
        assert_ne!(a, pkcs12_kdf_sha256("pin", b"salt", 1, 10, 32));
        assert_ne!(a, pkcs12_kdf_sha256("pim", b"salt", 3, 10, 32));
        assert_ne!(a, pkcs12_kdf_sha256("pin", b"salz", 3, 10, 32));
        assert_eq!(pkcs12_kdf_sha256("pin", b"salt", 1, 10, 48)[..32].len(), 32);
    }
}
