//! Follows revocations made by other processes sharing the database (another
//! server, a CLI command) and drops their responses from this process's
//! OCSP cache.

use std::collections::HashMap;

use hallmark_store::{Store, StoreError};

use crate::ocsp::OcspService;

/// How far back each poll for revocations looks: a revocation's time of
/// change is taken before its commit, which can wait on locks.
const REVOCATION_LOOKBACK: i64 = 120;

/// Follows revocations made by other processes (another server, the CLI)
/// and drops their cached responses. Each revocation is dropped once: a
/// poll looks back [`REVOCATION_LOOKBACK`] seconds, and those already seen
/// are remembered for that long, so a mass revocation (a million
/// certificates of a compromised CA) is not invalidated again at every poll,
/// which would keep every pre-signing page from being cached.
pub struct RevocationFollower {
    since: i64,
    /// Revocations seen in the look-back window: a 128-bit digest of
    /// issuer and serial, with the time of change.
    seen: HashMap<u128, i64>,
}

impl RevocationFollower {
    /// Follows revocations from `now` on (and the look-back before it).
    pub fn new(now: i64) -> Self {
        Self {
            since: now,
            seen: HashMap::new(),
        }
    }

    /// One poll: drops the cached responses of revocations not seen before.
    /// Returns how many were dropped.
    pub async fn poll(
        &mut self,
        store: &Store,
        ocsp: &OcspService,
        now: i64,
    ) -> Result<usize, StoreError> {
        let from = self.since - REVOCATION_LOOKBACK;
        let mut fresh = 0;
        store
            .for_each_revoked_since(from, |issuer, serial, changed_at| {
                let mut d = hallmark_crypto::Sha256::default();
                d.update(issuer.as_bytes());
                d.update(&[0]);
                d.update(serial.as_bytes());
                let digest = d.finish();
                let mut key = [0u8; 16];
                key.copy_from_slice(&digest[..16]);
                if self
                    .seen
                    .insert(u128::from_be_bytes(key), changed_at)
                    .is_none()
                {
                    ocsp.invalidate(issuer, serial);
                    fresh += 1;
                }
            })
            .await?;
        self.since = now;
        let keep_from = now - REVOCATION_LOOKBACK;
        self.seen.retain(|_, at| *at >= keep_from);
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{NOW, issued, setup};

    /// Revocations made elsewhere are invalidated once each, not at every
    /// poll of the look-back window; new ones still are.
    #[tokio::test]
    async fn revocations_are_followed_once() {
        let s = setup("follow").await;
        issued(&s, &["0a", "0b", "0c"], &["0a", "0b"]).await;
        let (store, svc) = (&s.store, &s.svc);
        let now = NOW as i64;
        let mut follower = super::RevocationFollower::new(now);
        let g0 = svc.generation();
        assert_eq!(follower.poll(store, svc, now + 5).await.unwrap(), 2);
        assert_eq!(svc.generation(), g0 + 2);
        // Still in the look-back window: not invalidated again.
        assert_eq!(follower.poll(store, svc, now + 10).await.unwrap(), 0);
        assert_eq!(svc.generation(), g0 + 2);
        let mut tx = store.begin().await.unwrap();
        hallmark_store::revocations::revoke(&mut tx, "ca", "0c", now + 10, 1, now + 10)
            .await
            .unwrap();
        hallmark_store::commit(tx).await.unwrap();
        assert_eq!(follower.poll(store, svc, now + 15).await.unwrap(), 1);
        assert_eq!(svc.generation(), g0 + 3);
    }
}
