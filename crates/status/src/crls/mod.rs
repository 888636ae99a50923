//! CRL publication: generating and storing CRLs, publishing them after
//! revocations, paying CRL debts other processes left, and importing CRLs
//! signed elsewhere (an offline root's).
//!
//! After revocations CRLs are made in two lanes, each taking what is queued
//! in batches under its own lock: the partitions (what a certificate's CRL
//! distribution point names; small, quick to sign) and the full CRLs (which
//! grow with every revocation: a million entries take seconds). A
//! revocation waits for the partition lane and, separately, the full lane,
//! so its partition CRL is never held up behind a long full CRL.

mod lanes;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use hallmark_ca::{CaError, IssuerKey, Settings};
use hallmark_pki::crl::{EntryWriter, Reason};
use hallmark_store::crls::{self as stored, CrlDue, FULL_CRL};
use hallmark_store::{Store, StoreError, audit};

use crate::{Result, StatusError};
use lanes::{Batch, Kind, Lanes};

/// How long a revocation's CRLs are left to the process that made it
/// before a server publishes them in its place.
pub const CRL_DEBT_GRACE: i64 = 10;

#[derive(Clone, Debug, serde::Serialize)]
pub struct CrlInfo {
    pub issuer: String,
    pub shard: i64,
    pub number: i64,
    pub entries: usize,
    pub bytes: usize,
    /// False when another process published a later CRL meanwhile.
    pub published: bool,
}

fn log_failure(issuer: &str, e: &StatusError) {
    tracing::error!(error = %e, issuer, "CRL regeneration after a revocation failed (the revocation is stored and OCSP answers revoked); `serve` retries it within seconds; without a running server, run `hallmark crl generate`");
}

/// Makes, stores and publishes the CRLs of the CAs whose keys are here:
/// after revocations (in the two lanes), on schedule, and the debts other
/// processes left.
pub struct CrlPublisher {
    store: Store,
    /// The CAs whose CRLs are signed here (their keys are in this key
    /// store), by id.
    issuers: BTreeMap<String, IssuerKey>,
    settings: Settings,
    /// CRLs owed after revocations, in two lanes.
    lanes: Lanes,
    /// The wall clock, read again after waiting for a lane.
    clock: fn() -> u64,
    /// Partition CRLs known to be published (see
    /// [`ensure_partition`](Self::ensure_partition)).
    published: std::sync::Mutex<BTreeSet<(String, i64)>>,
}

impl CrlPublisher {
    pub fn new(
        store: Store,
        issuers: impl IntoIterator<Item = IssuerKey>,
        settings: Settings,
        clock: fn() -> u64,
    ) -> Self {
        Self {
            store,
            issuers: issuers.into_iter().map(|i| (i.id.clone(), i)).collect(),
            settings,
            lanes: Lanes::default(),
            clock,
            published: std::sync::Mutex::new(BTreeSet::new()),
        }
    }

    /// The CA `id`, if its CRLs are signed here (its key is here).
    pub fn issuer(&self, id: &str) -> Result<&IssuerKey> {
        self.issuers
            .get(id)
            .ok_or_else(|| CaError::UnknownIssuer(id.into()).into())
    }

    /// The partitions a live certificate of `id` can name at `now` (what a
    /// CRL distribution point can ask for); None for a CA whose CRLs are
    /// not signed here.
    pub fn live_partitions(&self, id: &str, now: u64) -> Option<RangeInclusive<i64>> {
        let ca = self.issuers.get(id)?;
        Some(self.settings.shard_of(now)..=self.settings.shard_of(ca.not_after))
    }

    /// Publishes the CRLs that list a revocation of `(issuer, shard)` just
    /// committed: returns once generations that started after the commit
    /// have published them, made here or by a concurrent caller (one
    /// generation serves every revocation queued before it, so a burst of
    /// revocations does not queue one CRL signing each). `partitions_done`
    /// hears when the partition CRL is out (before the full CRL). On failure
    /// the CRLs stay due, here and in the database.
    pub async fn publish_after_revocation(
        &self,
        issuer: &str,
        shard: i64,
        now: u64,
        partitions_done: Option<tokio::sync::oneshot::Sender<bool>>,
    ) -> Result<()> {
        let is_root = self.issuer(issuer).is_ok_and(|i| i.is_root);
        let parts = (!is_root)
            .then(|| self.lanes.partitions.queue(issuer, shard))
            .transpose()?;
        let full = self.lanes.full.queue(issuer, FULL_CRL)?;
        let first = match parts {
            Some(t) => {
                self.publish_lane(Kind::Partitions, Some((t, (issuer, shard))), now)
                    .await
            }
            None => Ok(0),
        };
        if let Some(tx) = partitions_done {
            let _ = tx.send(first.is_ok());
        }
        let second = self
            .publish_lane(Kind::Full, Some((full, (issuer, FULL_CRL))), now)
            .await;
        first.and(second).map(|_| ())
    }

    /// Publishes the CRLs listing a revocation of `(issuer, shard)` just
    /// committed, as [`publish_after_revocation`](Self::publish_after_revocation)
    /// does, but waits at most `wait` for the partition CRL (what the
    /// certificate's CRL distribution point names); the full CRL, which
    /// takes seconds to sign at a million entries, is published in the
    /// background. The CRLs owed are in the database, so a crash before
    /// they are out loses nothing (the next server publishes them). Says
    /// whether the partition CRL was out within `wait`.
    pub async fn publish_waiting_at_most(
        self: &Arc<Self>,
        issuer: &str,
        shard: i64,
        now: u64,
        wait: std::time::Duration,
    ) -> bool {
        let (crls, owner) = (self.clone(), issuer.to_string());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = crls
                .publish_after_revocation(&owner, shard, now, Some(tx))
                .await
            {
                log_failure(&owner, &e);
            }
        });
        match tokio::time::timeout(wait, rx).await {
            Ok(done) => done.unwrap_or(false),
            Err(_) => {
                tracing::info!(
                    issuer,
                    shard,
                    "the CRL after a revocation is still being made; it is published in the background"
                );
                false
            }
        }
    }

    /// [`publish_after_revocation`](Self::publish_after_revocation), with a
    /// failure logged (the revocation is stored; its CRLs stay due): says
    /// whether they were published.
    pub async fn publish_after_revocation_logged(
        &self,
        issuer: &str,
        shard: i64,
        now: u64,
    ) -> bool {
        match self
            .publish_after_revocation(issuer, shard, now, None)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                log_failure(issuer, &e);
                false
            }
        }
    }

    /// Publishes the CRLs still due after revocations whose publication
    /// failed; returns how many it made. `serve` calls it with each poll.
    ///
    /// It also pays debts left in the database by other processes: a
    /// revocation more than `CRL_DEBT_GRACE` seconds old whose CRLs were
    /// not published (a CLI command whose CRL generation failed, a crash).
    pub async fn publish_due_crls(&self, now: u64) -> Result<usize> {
        let left = self
            .store
            .crls_due(None, Some(now as i64 - CRL_DEBT_GRACE))
            .await?;
        for d in left {
            // CRLs of a CA whose key is elsewhere are made there.
            if self.issuers.contains_key(&d.issuer) {
                let kind = if d.shard == FULL_CRL {
                    Kind::Full
                } else {
                    Kind::Partitions
                };
                self.lanes
                    .of(kind)
                    .due()?
                    .pending
                    .insert((d.issuer, d.shard));
            }
        }
        let parts = self.publish_lane(Kind::Partitions, None, now).await;
        let full = self.publish_lane(Kind::Full, None, now).await;
        Ok(parts? + full?)
    }

    async fn clear_crls_due(&self, paid: &[CrlDue]) -> Result<()> {
        if paid.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        stored::clear_crls_due(&mut tx, paid).await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// Debts of `issuer` in the database of one kind, read before any CRL
    /// number is taken: every CRL of that kind made after covers them.
    async fn owed(&self, issuer: &str, kind: Kind) -> Result<Vec<CrlDue>> {
        let mut owed = self.store.crls_due(Some(issuer), None).await?;
        owed.retain(|d| (d.shard == FULL_CRL) == (kind == Kind::Full));
        Ok(owed)
    }

    /// Makes one batch of a lane: everything queued in it when its lock is
    /// taken. With a ticket for a CRL, nothing if a batch at or after the
    /// ticket published that CRL already, and an error only if that CRL
    /// failed (others that failed are queued again, and logged); without,
    /// nothing if nothing is queued, and an error if anything failed.
    async fn publish_lane(
        &self,
        kind: Kind,
        ticket: Option<(u64, (&str, i64))>,
        now: u64,
    ) -> Result<usize> {
        let lane = self.lanes.of(kind);
        // The poll must not wait behind a long CRL run for nothing.
        if ticket.is_none() && lane.due()?.pending.is_empty() {
            return Ok(0);
        }
        let _held = lane.lock.lock().await;
        // Read after the wait: the batch may hold revocations made since.
        let now = now.max((self.clock)());
        let mut batch = {
            let mut due = lane.due()?;
            let done = ticket.is_some_and(|(t, (issuer, shard))| {
                due.published
                    .get(&(issuer.to_string(), shard))
                    .is_some_and(|b| *b >= t)
            });
            if done || due.pending.is_empty() {
                return Ok(0);
            }
            due.taken += 1;
            Batch {
                number: due.taken,
                work: Some(std::mem::take(&mut due.pending)),
                due: &lane.due,
            }
        };
        let work = batch.work.clone().unwrap_or_default();
        let mut by_issuer: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (issuer, shard) in &work {
            by_issuer.entry(issuer).or_default().push(*shard);
        }
        let (mut made, mut failed, mut first_error) = (0, Vec::new(), None);
        for (issuer, shards) in by_issuer {
            let Ok(ca) = self.issuer(issuer) else {
                // Its key is elsewhere (an offline root): its CRL is made
                // there and imported.
                tracing::warn!(issuer, "no CRL made here for a CA whose key is elsewhere");
                continue;
            };
            let owed = match self.owed(issuer, kind).await {
                Ok(o) => o,
                Err(e) => {
                    failed.extend(shards.iter().map(|s| (issuer.to_string(), *s)));
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let todo: Vec<i64> = match kind {
                Kind::Full => vec![FULL_CRL],
                // A root has no partitions: its full CRL covers them.
                Kind::Partitions if ca.is_root => Vec::new(),
                Kind::Partitions => {
                    let mut t: Vec<i64> = shards
                        .iter()
                        .copied()
                        .chain(owed.iter().map(|d| d.shard))
                        .collect();
                    t.sort_unstable();
                    t.dedup();
                    t
                }
            };
            let mut ok = true;
            for shard in todo {
                match self.generate_crl_unlocked(issuer, shard, now).await {
                    Ok(_) => made += 1,
                    Err(e) => {
                        failed.extend(shards.iter().map(|s| (issuer.to_string(), *s)));
                        first_error.get_or_insert(e);
                        ok = false;
                        break;
                    }
                }
            }
            if ok && let Err(e) = self.clear_crls_due(&owed).await {
                first_error.get_or_insert(e);
            }
        }
        // What failed goes back to the queue when the batch is dropped.
        let failed: BTreeSet<(String, i64)> = failed.into_iter().collect();
        {
            let mut due = lane.due()?;
            for item in work.iter().filter(|i| !failed.contains(*i)) {
                due.published.insert(item.clone(), batch.number);
            }
        }
        let mine_failed = ticket
            .is_some_and(|(_, (issuer, shard))| failed.contains(&(issuer.to_string(), shard)));
        batch.work = Some(failed);
        match first_error {
            None => Ok(made),
            Some(e) if ticket.is_none() || mine_failed => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "CRLs of another issuer failed in this batch; queued again");
                Ok(made)
            }
        }
    }

    /// Makes sure the partition CRL that a certificate of `issuer` expiring
    /// at `not_after` names in its distribution point is published: made
    /// here at the first certificate of a partition (under the partition
    /// lane's lock, checked again once held, so concurrent issuances make
    /// it once), remembered after. The CA calls it at issuance, so every
    /// CDP URL answers from the certificate's first moment and a GET never
    /// has to make a CRL.
    pub async fn ensure_partition(&self, issuer: &str, not_after: u64, now: u64) -> Result<()> {
        let Ok(key) = self.issuer(issuer) else {
            return Ok(());
        };
        if key.is_root {
            return Ok(());
        }
        let shard = self.settings.shard_of(not_after);
        let known = |s: &Self| {
            s.published
                .lock()
                .is_ok_and(|p| p.contains(&(issuer.to_string(), shard)))
        };
        if known(self) {
            return Ok(());
        }
        let exists = |r: std::result::Result<_, StoreError>| match r {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        };
        if !exists(self.store.get_crl(issuer, shard).await)? {
            let _held = self.lanes.partitions.lock.lock().await;
            if !exists(self.store.get_crl(issuer, shard).await)? {
                self.generate_crl_unlocked(issuer, shard, now).await?;
            }
        }
        if let Ok(mut p) = self.published.lock() {
            p.insert((issuer.to_string(), shard));
        }
        Ok(())
    }

    /// Generates and stores CRLs: for each issuer (or one), the full CRL and
    /// every shard CRL (or only `shard`).
    pub async fn generate_crls(
        &self,
        issuer: Option<&str>,
        shard: Option<i64>,
        now: u64,
    ) -> Result<Vec<CrlInfo>> {
        let mut out = Vec::new();
        let ids: Vec<String> = match issuer {
            Some(i) => vec![self.issuer(i)?.id.clone()],
            None => self.issuers.keys().cloned().collect(),
        };
        for id in ids {
            let is_root = self.issuer(&id)?.is_root;
            // Partitions first, each under the partition lane's lock (taken
            // for one at a time: a revocation's partition need not wait for
            // all of them).
            {
                let owed = self.owed(&id, Kind::Partitions).await?;
                let mut shards = Vec::new();
                if !is_root {
                    match shard {
                        Some(s) => shards.push(s),
                        None => {
                            // Every shard a live certificate could name, so
                            // each CDP URL answers even before anything is
                            // revoked.
                            let live = self.store.revoked_shards(&id, now as i64).await?;
                            let first = self.settings.shard_of(now);
                            let last = self.settings.shard_of(self.issuer(&id)?.not_after);
                            shards.extend(first..=last.min(first + 64));
                            shards.extend(live);
                            shards.sort_unstable();
                            shards.dedup();
                        }
                    }
                }
                for s in &shards {
                    let _held = self.lanes.partitions.lock.lock().await;
                    out.push(self.generate_crl_unlocked(&id, *s, now).await?);
                }
                let paid: Vec<_> = owed
                    .into_iter()
                    .filter(|d| is_root || shards.contains(&d.shard))
                    .collect();
                self.clear_crls_due(&paid).await?;
            }
            let owed = self.owed(&id, Kind::Full).await?;
            let _held = self.lanes.full.lock.lock().await;
            out.push(self.generate_crl_unlocked(&id, FULL_CRL, now).await?);
            self.clear_crls_due(&owed).await?;
        }
        Ok(out)
    }

    /// Generates one CRL: the full CRL (`FULL_CRL`) or one shard.
    pub async fn generate_crl(&self, issuer_id: &str, shard: i64, now: u64) -> Result<CrlInfo> {
        let kind = if shard == FULL_CRL {
            Kind::Full
        } else {
            Kind::Partitions
        };
        let _held = self.lanes.of(kind).lock.lock().await;
        self.generate_crl_unlocked(issuer_id, shard, now).await
    }

    /// Makes and stores one CRL. Callers hold the lock of its lane (so that
    /// one process does not make the same CRL twice at once); correctness
    /// across processes comes from the database (numbers, dates, and a CRL
    /// never replacing a later one).
    async fn generate_crl_unlocked(
        &self,
        issuer_id: &str,
        shard: i64,
        now: u64,
    ) -> Result<CrlInfo> {
        let started = std::time::Instant::now();
        let issuer = self.issuer(issuer_id)?;
        // The number is taken before the entries are read, in its own short
        // transaction. A revocation committed after this read makes another
        // CRL, numbered after this one and listing it, and a CRL never
        // replaces one with a higher number: so whatever is published lists
        // every revocation committed before its number was taken. (Read
        // first and numbered after, a CRL without a fresh revocation could
        // outnumber the one made for it.)
        // The thisUpdate is taken with it: never before that of a CRL
        // numbered earlier, also one another process made, or one made for
        // a caller that read the clock after this one did.
        let mut tx = self.store.begin().await?;
        let (number, this_update) =
            stored::next_crl_number(&mut tx, issuer_id, now as i64 * 1000, now as i64).await?;
        hallmark_store::commit(tx).await?;
        // Which certificates have expired (and leave the CRL) is this
        // process's clock's to say.
        let clock = now;
        let now = this_update.max(0) as u64;
        let mut entries = EntryWriter::default();
        let mut bad: Option<String> = None;
        self.store
            .for_each_revoked(
                issuer_id,
                (shard != FULL_CRL).then_some(shard),
                clock as i64,
                |serial, at, reason| {
                    let Some(bytes) = hallmark_pki::unhex(serial) else {
                        bad = Some(format!("stored serial {serial:?} is not hex"));
                        return Ok(());
                    };
                    let reason = Reason::from_code(reason as u8).unwrap_or(Reason::Unspecified);
                    entries
                        .push(&bytes, at.max(0) as u64, reason)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                },
            )
            .await?;
        if let Some(b) = bad {
            return Err(StatusError::Store(StoreError::Corrupt(b)));
        }
        let count = entries.len();
        let next_update = now + self.settings.crl_validity_secs;
        let dp = (shard != FULL_CRL).then(|| self.settings.shard_crl_url(issuer_id, shard));
        let der = hallmark_ca::revocation::sign_crl(
            issuer,
            &entries,
            number as u64,
            now,
            next_update,
            dp.as_deref(),
        )?;
        drop(entries);
        let mut tx = self.store.begin().await?;
        if !stored::put_crl(
            &mut tx,
            issuer_id,
            shard,
            number,
            now as i64,
            next_update as i64,
            &der,
        )
        .await?
        {
            // Another process published a later one meanwhile.
            tracing::info!(
                issuer = issuer_id,
                shard,
                number,
                "CRL superseded before it was published"
            );
            return Ok(CrlInfo {
                issuer: issuer_id.into(),
                shard,
                number,
                entries: count,
                bytes: der.len(),
                published: false,
            });
        }
        audit::record(
            &mut tx,
            self.store.backend(),
            now as i64,
            "system",
            "crl.generate",
            serde_json::json!({"issuer": issuer_id, "shard": shard, "number": number, "entries": count}).to_string(),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        tracing::debug!(
            issuer = issuer_id,
            shard,
            number,
            entries = count,
            ms = started.elapsed().as_millis() as u64,
            "CRL published"
        );
        Ok(CrlInfo {
            issuer: issuer_id.into(),
            shard,
            number,
            entries: count,
            bytes: der.len(),
            published: true,
        })
    }

    /// Holds the full-CRL lane, as publishing a full CRL made here holds it:
    /// for publishing one signed elsewhere (an offline root's, imported).
    pub async fn hold_full_lane(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lanes.full.lock.lock().await
    }
}
