//! Personal data at rest: records are sealed with AES-256-GCM under the
//! newest version of the `ra-personal` data key (older versions still open
//! what they sealed), bound to the row they belong to; identity numbers
//! and one-time PINs are kept only as HMAC-SHA-256 under the `ra-lookup`
//! key. Both keys come from key custody through the CA service, so a dump
//! of the database opens nothing.

use hallmark_authority::{Authority, DataKey};
use hallmark_crypto::aead::SealingKey;
use serde::{Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::{RaError, Result};

pub struct Vault {
    /// (version, key), oldest first; the last one seals.
    sealing: Vec<(u32, SealingKey)>,
    lookup: Zeroizing<[u8; 32]>,
}

impl Vault {
    pub async fn load(auth: &Authority) -> Result<Self> {
        let sealing = auth
            .data_keys("ra-personal")
            .await?
            .into_iter()
            .map(|DataKey { version, key }| Ok((version, SealingKey::new(&key)?)))
            .collect::<Result<Vec<_>>>()?;
        let lookup = auth
            .data_keys("ra-lookup")
            .await?
            .into_iter()
            .next()
            .map(|k| k.key)
            .ok_or_else(|| RaError::Internal("no lookup key".into()))?;
        Ok(Self { sealing, lookup })
    }

    /// Seals `value` as JSON for the row named by `aad`; returns the
    /// sealed record (the key version, 4 bytes big-endian, then nonce,
    /// ciphertext and tag) and the key version.
    pub fn seal<T: Serialize>(&self, aad: &str, value: &T) -> Result<(Vec<u8>, i64)> {
        let json = Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| RaError::Internal(e.to_string()))?,
        );
        let sealed = self.seal_bytes(aad, &json)?;
        let version = sealed
            .first_chunk::<4>()
            .map_or(0, |v| u32::from_be_bytes(*v));
        Ok((sealed, i64::from(version)))
    }

    /// Seals raw bytes (a private key) for the row named by `aad`, in the
    /// same format as [`seal`](Self::seal).
    pub fn seal_bytes(&self, aad: &str, secret: &[u8]) -> Result<Vec<u8>> {
        let (version, key) = self
            .sealing
            .last()
            .ok_or_else(|| RaError::Internal("no sealing key".into()))?;
        let mut out = version.to_be_bytes().to_vec();
        out.extend_from_slice(&key.seal(aad.as_bytes(), secret)?);
        Ok(out)
    }

    /// Opens what [`seal_bytes`](Self::seal_bytes) sealed.
    pub fn open_bytes(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (key, sealed) = self.key_of(aad, sealed)?;
        key.open(aad.as_bytes(), sealed)
            .map_err(|_| RaError::Internal(format!("sealed record {aad} does not open")))
    }

    /// The key version a sealed record names, and the rest of the record.
    fn key_of<'s>(&self, aad: &str, sealed: &'s [u8]) -> Result<(&SealingKey, &'s [u8])> {
        let (v, rest) = sealed
            .split_first_chunk::<4>()
            .ok_or_else(|| RaError::Internal(format!("sealed record {aad} is truncated")))?;
        let version = u32::from_be_bytes(*v);
        let key = self
            .sealing
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
            .ok_or_else(|| RaError::Internal(format!("no data key version {version}")))?;
        Ok((key, rest))
    }

    pub fn open<T: DeserializeOwned>(&self, aad: &str, sealed: &[u8]) -> Result<T> {
        let (key, sealed) = self.key_of(aad, sealed)?;
        let json = key
            .open(aad.as_bytes(), sealed)
            .map_err(|_| RaError::Internal(format!("sealed record {aad} does not open")))?;
        serde_json::from_slice(&json).map_err(|e| RaError::Internal(e.to_string()))
    }

    /// The keyed hash under which a value of `kind` is looked up.
    pub fn lookup_hash(&self, kind: &str, value: &str) -> Vec<u8> {
        let mut msg = Vec::with_capacity(kind.len() + 1 + value.len());
        msg.extend_from_slice(kind.as_bytes());
        msg.push(0);
        msg.extend_from_slice(value.as_bytes());
        hallmark_crypto::hmac_sha256(&self.lookup[..], &msg).to_vec()
    }

    /// Whether `given` matches a MAC made by [`lookup_hash`](Self::lookup_hash)
    /// (constant time).
    pub fn lookup_matches(&self, kind: &str, given: &str, mac: &[u8]) -> bool {
        hallmark_crypto::constant_time_eq(&self.lookup_hash(kind, given), mac)
    }
}
