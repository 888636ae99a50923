//! AES-256-GCM sealing for secrets at rest (key store entries, personal data).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::{CryptoError, fill_random};

/// AES-GCM's tag.
const TAG_LEN: usize = 16;

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
        // Room for the tag from the start: the plaintext's only copy is
        // encrypted in place, and appending the tag never reallocates
        // (which would free an unwiped copy of the plaintext).
        let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        buf.extend_from_slice(plaintext);
        let at = (buf.as_ptr(), buf.capacity());
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut *buf,
            )
            .map_err(|_| CryptoError::SigningFailed)?;
        if (buf.as_ptr(), buf.capacity()) != at {
            // Moved: a copy of the plaintext may be left unwiped.
            return Err(CryptoError::SigningFailed);
        }
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) produced; fails on any tampering or a
    /// wrong key.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Sealing encrypts the plaintext's one copy where it lies: the buffer
    /// never moves (which [`SealingKey::seal`] checks, failing otherwise),
    /// whatever the length; and what is sealed opens.
    #[test]
    fn sealing_never_moves_the_plaintext() {
        let key = SealingKey::new(&[7u8; 32]).unwrap();
        for n in [0usize, 1, 15, 16, 17, 31, 100, 1000, 4096, 65_537] {
            let plain: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let sealed = key.seal(b"aad", &plain).unwrap();
            assert_eq!(sealed.len(), NONCE_LEN + n + TAG_LEN);
            assert_eq!(
                key.open(b"aad", &sealed).unwrap().as_slice(),
                plain.as_slice()
            );
            assert!(key.open(b"other", &sealed).is_err());
        }
    }
}
