//! AES-256-GCM sealing for secrets at rest (key store entries, personal data).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::{CryptoError, fill_random};

/// A 256-bit AES-GCM key. Nonces are random (96 bits), which is safe for the
/// number of messages a key store or a data directory ever seals.
pub struct SealingKey(LessSafeKey);

impl SealingKey {
    pub fn new(key: &[u8; 32]) -> Result<Self, CryptoError> {
        let k = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| CryptoError::MalformedKey("AES-256 key".into()))?;
        Ok(Self(LessSafeKey::new(k)))
    }

    /// Returns nonce ‖ ciphertext ‖ tag. `aad` binds the ciphertext to its
    /// context (e.g. the key label) so entries cannot be swapped.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| CryptoError::SigningFailed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) produced; fails on any tampering or a
    /// wrong key.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(CryptoError::BadSignature);
        }
        let (n, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| CryptoError::BadSignature)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::BadSignature)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}
