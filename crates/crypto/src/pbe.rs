//! Password-based primitives for PKCS#12 (RFC 7292) and PBES2 (RFC 8018):
//! PBKDF2-HMAC-SHA256, AES-256-CBC, HMAC-SHA256 and the PKCS#12 key
//! derivation function of RFC 7292 Appendix B.2.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::{digest, hmac, pbkdf2};

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
    let mut buf = data.to_vec();
    enc.less_safe_encrypt(&mut buf, EncryptionContext::Iv128((*iv).into()))
        .map_err(|_| CryptoError::SigningFailed)?;
    Ok(buf)
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
) -> Vec<u8> {
    const U: usize = 32;
    const V: usize = 64;
    let mut pw: Vec<u8> = password
        .encode_utf16()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    pw.extend_from_slice(&[0, 0]);
    let d = [id; V];
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = V * src.len().div_ceil(V);
        (0..len).map(|i| src[i % src.len()]).collect()
    };
    let mut i_buf = fill(salt);
    i_buf.extend(fill(&pw));
    let mut out = Vec::with_capacity(out_len);
    while out.len() < out_len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&d);
        ctx.update(&i_buf);
        let mut a = ctx.finish().as_ref().to_vec();
        for _ in 1..iterations.max(1) {
            a = digest::digest(&digest::SHA256, &a).as_ref().to_vec();
        }
        out.extend_from_slice(&a[..U.min(out_len - out.len())]);
        // B = A repeated to v bytes; I_j = (I_j + B + 1) mod 2^v for each block.
        let b: Vec<u8> = (0..V).map(|k| a[k % U]).collect();
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
