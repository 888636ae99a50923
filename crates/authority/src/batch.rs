//! Batch issuance with centrally generated keys, for the registration
//! authority's campaigns: thousands of certificates per transaction
//! instead of one group-committed request each.
//!
//! Single issuance reserves serial and TBS durably before it signs,
//! because its certificate goes back to a caller: were the store to fail
//! after the signature, a certificate might be out in the world with no
//! record of it. A batch hands nothing to anyone: its certificates are
//! signed in this process's memory ([`Authority::sign_batch`]) and exist
//! only once [`Authority::store_batch_in`]'s transaction, the caller's,
//! commits them with their audit entries and whatever the caller records
//! beside them (the RA: the applications and their sealed keys). A crash
//! before the commit loses signatures that no one has seen, and nothing
//! else; so a batch is stored in one step, without the reservation's
//! second write of every row. Every TBS is linted before it is signed, as
//! in single issuance.

use hallmark_ca::{Prepared, Signed};
use hallmark_store::audit::AuditEvent;
use hallmark_store::certificates::{IssuedCert, NewCert};
use zeroize::Zeroizing;

use crate::{Authority, AuthorityError, IssueRequest, Result};

/// One certificate of a batch, signed but not yet stored.
pub struct BatchIssued {
    row: NewCert,
    pub cert_der: Vec<u8>,
    /// The subject's private key (PKCS#8), for the caller to seal.
    pub pkcs8: Zeroizing<Vec<u8>>,
    escrow: Option<Vec<u8>>,
    actor: String,
}

impl BatchIssued {
    pub fn issuer(&self) -> &str {
        &self.row.issuer
    }
    pub fn serial_hex(&self) -> &str {
        &self.row.serial
    }
    pub fn not_after(&self) -> u64 {
        self.row.not_after as u64
    }
}

/// Runs `f` over `items` on every core (scoped threads), keeping order.
fn parallel<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> Result<U> + Sync) -> Result<Vec<U>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len().max(1));
    let per = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| s.spawn(|| chunk.iter().map(&f).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            let part = h
                .join()
                .map_err(|_| AuthorityError::Invalid("a signing thread panicked".into()))?;
            for r in part {
                out.push(r?);
            }
        }
        Ok(out)
    })
}

impl Authority {
    /// Generates a key, builds and lints the TBS and signs it for every
    /// request, on every core; blocking (run it on a blocking thread).
    /// Nothing is stored: see [`store_batch_in`](Self::store_batch_in).
    /// Every request must ask for [`crate::KeySource::Generate`].
    pub fn sign_batch(&self, reqs: &[IssueRequest], now: u64) -> Result<Vec<BatchIssued>> {
        for r in reqs {
            let issuer = &self.ca.issuer(r.issuer.as_deref())?.id;
            if self.is_revoked_ca(issuer) {
                return Err(AuthorityError::Invalid(format!(
                    "issuing CA {issuer:?} is revoked and issues nothing more; make a new one with `hallmark ca rollover`"
                )));
            }
        }
        parallel(reqs, |r| {
            let p: Prepared = self.ca.prepare_generated(r, now)?;
            let s: Signed = self.ca.sign_prepared(&p)?;
            Ok(BatchIssued {
                row: NewCert {
                    issuer: p.pending.issuer,
                    serial: p.pending.serial_hex,
                    profile: p.pending.profile,
                    subject: p.pending.subject,
                    tbs: Vec::new(),
                    not_before: p.pending.not_before as i64,
                    not_after: p.pending.not_after as i64,
                    shard: p.pending.shard,
                    created_at: p.pending.created_at as i64,
                },
                cert_der: s.cert_der,
                pkcs8: p.pkcs8,
                escrow: s.escrow,
                actor: r.actor.clone(),
            })
        })
    }

    /// Stores a signed batch with one audit entry per certificate inside
    /// the caller's transaction. A serial already taken (never expected
    /// with 159 random bits) is [`hallmark_store::StoreError::Conflict`]:
    /// the caller rolls back and signs the batch again.
    pub async fn store_batch_in(
        &self,
        tx: &mut hallmark_store::AnyConnection,
        items: &[BatchIssued],
        now: u64,
    ) -> Result<()> {
        let rows: Vec<IssuedCert<'_>> = items
            .iter()
            .map(|b| IssuedCert {
                row: &b.row,
                cert: &b.cert_der,
                escrow: b.escrow.as_deref(),
            })
            .collect();
        let t0 = std::time::Instant::now();
        hallmark_store::certificates::insert_issued(tx, &rows).await?;
        let t1 = std::time::Instant::now();
        let events: Vec<AuditEvent> = items
            .iter()
            .map(|b| {
                crate::ledger::issue_event(
                    &b.actor,
                    &b.row.issuer,
                    &b.row.serial,
                    &b.row.profile,
                    b.escrow.is_some(),
                    &b.cert_der,
                )
            })
            .collect();
        let t2 = std::time::Instant::now();
        hallmark_store::audit::append(tx, self.store.backend(), now as i64, &events).await?;
        tracing::debug!(
            n = items.len(),
            insert_ms = (t1 - t0).as_millis() as u64,
            events_ms = (t2 - t1).as_millis() as u64,
            audit_ms = t2.elapsed().as_millis() as u64,
            "batch certificates written"
        );
        Ok(())
    }

    /// After the batch's transaction committed: the partition CRLs of its
    /// certificates answer from now on (as after a single issuance).
    pub async fn batch_committed(&self, items: &[BatchIssued], now: u64) {
        let mut seen = std::collections::BTreeSet::new();
        for b in items {
            if !seen.insert((b.row.issuer.clone(), b.row.shard)) {
                continue;
            }
            if let Err(e) = self
                .crls
                .ensure_partition(&b.row.issuer, b.not_after(), now)
                .await
            {
                tracing::error!(error = %e, issuer = %b.row.issuer, "cannot publish a partition CRL of the batch");
            }
        }
    }
}
