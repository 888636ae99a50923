//! The outbox (`outbox`): notices to send (e-mail) or print (letters),
//! written in the same transaction as the change that causes them, so a
//! notice exists exactly when its cause committed.
//!
//! Delivery takes a row with a claim (a random token) and a lease: while
//! the lease runs no other process takes it; a process that died while
//! sending leaves the lease to expire and the row is taken again. Each row
//! has a `dedup_key`, unique: the same notice cannot be queued twice by two
//! processes, and a resend after a crash carries the same key (the
//! message's Message-ID) so the receiving side can tell it is the same
//! message. The sealed recipient and body are dropped once delivered.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{AnyConnection, Result, Store};

/// A notice waiting to go out.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub dedup_key: String,
    /// `email` or `letter`.
    pub medium: String,
    pub sealed: Vec<u8>,
    pub key_version: i64,
    pub attempts: i64,
    pub claim: String,
}

/// Queues a notice; `false` if one with this key exists already (queued by
/// another process, or sent before).
pub async fn enqueue(
    conn: &mut AnyConnection,
    dedup_key: &str,
    medium: &str,
    sealed: &[u8],
    key_version: i64,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO outbox (dedup_key, medium, sealed, key_version, status, not_before, created_at) VALUES ($1, $2, $3, $4, 'queued', $5, $5) ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(dedup_key)
    .bind(medium)
    .bind(sealed.to_vec())
    .bind(key_version)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How the outbox stands, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
}

impl Store {
    /// Claims up to `limit` notices that are due (queued and past their
    /// `not_before`, or `sending` with a lease that ran out) for
    /// `lease_secs`. Each claim is a conditional update, so two processes
    /// never hold the same notice. E-mail is left alone unless `email`
    /// (no server configured: it waits).
    pub async fn claim_outbox(
        &self,
        now: i64,
        lease_secs: i64,
        limit: i64,
        email: bool,
    ) -> Result<Vec<OutboxRow>> {
        let due = sqlx::query(
            "SELECT id FROM outbox WHERE status IN ('queued', 'sending') AND not_before <= $1 AND ($3 = 1 OR medium <> 'email') ORDER BY not_before, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .bind(i64::from(email))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(due.len());
        for r in due {
            let id: i64 = r.try_get(0)?;
            let mut raw = [0u8; 16];
            hallmark_crypto::fill_random(&mut raw)
                .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
            let claim: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let row = sqlx::query(
                "UPDATE outbox SET status = 'sending', claim = $1, not_before = $2, attempts = attempts + 1
                 WHERE id = $3 AND status IN ('queued', 'sending') AND not_before <= $4
                 RETURNING id, dedup_key, medium, sealed, key_version, attempts, claim",
            )
            .bind(&claim)
            .bind(now + lease_secs)
            .bind(id)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
            if let Some(r) = row {
                out.push(outbox_row(&r)?);
            }
        }
        Ok(out)
    }

    /// Marks a claimed notice delivered and drops its sealed content;
    /// `false` if the claim was lost (the lease ran out and another
    /// process took it).
    pub async fn outbox_sent(&self, id: i64, claim: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, sealed = NULL, last_error = NULL WHERE id = $2 AND claim = $3 AND status = 'sending'",
        )
        .bind(now)
        .bind(id)
        .bind(claim)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts a claimed notice back to be tried at `retry_at`, or gives it up
    /// (`failed`) when `retry_at` is None.
    pub async fn outbox_failed(
        &self,
        id: i64,
        claim: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = $1, not_before = COALESCE($2, not_before), last_error = $3 WHERE id = $4 AND claim = $5 AND status = 'sending'",
        )
        .bind(if retry_at.is_some() { "queued" } else { "failed" })
        .bind(retry_at)
        .bind(error)
        .bind(id)
        .bind(claim)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM outbox GROUP BY status")
            .fetch_all(self.pool())
            .await?;
        let mut c = OutboxCounts::default();
        for r in rows {
            let (s, n): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
            match s.as_str() {
                "queued" => c.queued = n,
                "sending" => c.sending = n,
                "sent" => c.sent = n,
                _ => c.failed += n,
            }
        }
        Ok(c)
    }

    /// Whether a notice with this key was ever queued.
    pub async fn outbox_has(&self, dedup_key: &str) -> Result<bool> {
        let r = sqlx::query("SELECT 1 FROM outbox WHERE dedup_key = $1")
            .bind(dedup_key)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.is_some())
    }
}

fn outbox_row(r: &AnyRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.try_get(0)?,
        dedup_key: r.try_get(1)?,
        medium: r.try_get(2)?,
        sealed: r.try_get::<Option<Vec<u8>>, _>(3)?.unwrap_or_default(),
        key_version: r.try_get(4)?,
        attempts: r.try_get(5)?,
        claim: r.try_get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_each_backend;

    #[tokio::test]
    async fn a_notice_is_queued_once_claimed_once_and_retaken_after_its_lease() {
        on_each_backend("outbox-claims", async |s: &Store| {
            let mut tx = s.begin().await.unwrap();
            assert!(
                enqueue(&mut tx, "k1", "email", b"sealed", 1, 100)
                    .await
                    .unwrap()
            );
            assert!(
                !enqueue(&mut tx, "k1", "email", b"other", 1, 100)
                    .await
                    .unwrap()
            );
            crate::commit(tx).await.unwrap();
            let first = s.claim_outbox(100, 60, 10, true).await.unwrap();
            assert_eq!(first.len(), 1);
            assert_eq!(first[0].sealed, b"sealed");
            // Held by the lease.
            assert!(s.claim_outbox(120, 60, 10, true).await.unwrap().is_empty());
            // The holder died; after the lease another takes it, and the
            // first holder's late success no longer counts.
            let second = s.claim_outbox(161, 60, 10, true).await.unwrap();
            assert_eq!(second.len(), 1);
            assert_eq!(second[0].attempts, 2);
            assert!(
                !s.outbox_sent(first[0].id, &first[0].claim, 162)
                    .await
                    .unwrap()
            );
            assert!(
                s.outbox_sent(second[0].id, &second[0].claim, 162)
                    .await
                    .unwrap()
            );
            assert!(
                s.claim_outbox(10_000, 60, 10, true)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Without a mail server, e-mail waits.
            let mut tx = s.begin().await.unwrap();
            enqueue(&mut tx, "k3", "email", b"y", 1, 200).await.unwrap();
            enqueue(&mut tx, "k4", "letter", b"z", 1, 200)
                .await
                .unwrap();
            crate::commit(tx).await.unwrap();
            let letters = s.claim_outbox(200, 60, 10, false).await.unwrap();
            assert_eq!(letters.len(), 1);
            assert_eq!(letters[0].medium, "letter");
            s.outbox_sent(letters[0].id, &letters[0].claim, 200)
                .await
                .unwrap();
            let c = s.outbox_counts().await.unwrap();
            assert_eq!((c.sent, c.queued, c.sending), (2, 1, 0));
            // Delivered content is dropped.
            let (sealed,): (Option<Vec<u8>>,) =
                sqlx::query_as("SELECT sealed FROM outbox WHERE dedup_key = 'k1'")
                    .fetch_one(s.pool())
                    .await
                    .unwrap();
            assert!(sealed.is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn a_failed_attempt_waits_and_then_gives_up() {
        on_each_backend("outbox-retries", async |s: &Store| {
            let mut tx = s.begin().await.unwrap();
            enqueue(&mut tx, "k2", "email", b"x", 1, 0).await.unwrap();
            crate::commit(tx).await.unwrap();
            let c = s.claim_outbox(0, 60, 1, true).await.unwrap().remove(0);
            s.outbox_failed(c.id, &c.claim, "421 busy", Some(30))
                .await
                .unwrap();
            assert!(s.claim_outbox(29, 60, 1, true).await.unwrap().is_empty());
            let c = s.claim_outbox(30, 60, 1, true).await.unwrap().remove(0);
            s.outbox_failed(c.id, &c.claim, "550 no such user", None)
                .await
                .unwrap();
            assert!(
                s.claim_outbox(1_000_000, 60, 1, true)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(s.outbox_counts().await.unwrap().failed, 1);
        })
        .await;
    }
}
