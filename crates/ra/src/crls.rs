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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use hallmark_pki::crl::{EntryWriter, Reason};
use hallmark_store::StoreError;
use hallmark_store::audit;
use hallmark_store::certs::{self, FULL_CRL};

use crate::{Authority, RaError, Result, system_now};

/// How long a revocation's CRLs are left to the process that made it
/// before a server publishes them in its place.
pub(crate) const CRL_DEBT_GRACE: i64 = 10;

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

/// The two kinds of CRL made after revocations, each in a lane of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An issuer's partition (shard) CRLs; none for a root.
    Partitions,
    /// An issuer's full CRL.
    Full,
}

/// One lane: CRLs owed after revocations, taken in numbered batches by
/// whoever holds its lock.
#[derive(Default)]
pub(crate) struct Lane {
    pub(crate) lock: tokio::sync::Mutex<()>,
    pub(crate) due: Mutex<CrlsDue>,
}

#[derive(Default)]
pub(crate) struct Lanes {
    pub(crate) partitions: Lane,
    pub(crate) full: Lane,
}

impl Lanes {
    pub(crate) fn of(&self, kind: Kind) -> &Lane {
        match kind {
            Kind::Partitions => &self.partitions,
            Kind::Full => &self.full,
        }
    }
}

#[derive(Default)]
pub(crate) struct CrlsDue {
    /// (issuer, shard) not yet on a published CRL (shard is `FULL_CRL` in
    /// the full lane).
    pub(crate) pending: BTreeSet<(String, i64)>,
    /// Batches taken so far.
    taken: u64,
    /// For each (issuer, shard), the latest batch that published it: what
    /// was queued before that batch was taken is on the published CRL.
    /// (Kept per CRL, so that one issuer whose CRLs keep failing does not
    /// hold up the callers of the others.)
    published: BTreeMap<(String, i64), u64>,
    /// Revocations queued so far (for tests).
    pub(crate) queued: u64,
}

impl Lane {
    fn due(&self) -> Result<std::sync::MutexGuard<'_, CrlsDue>> {
        self.due
            .lock()
            .map_err(|_| RaError::Invalid("the CRL queue lock is poisoned".into()))
    }

    /// Queues CRLs; returns the ticket (batch number) that will cover them.
    fn queue(&self, issuer: &str, shard: i64) -> Result<u64> {
        let mut due = self.due()?;
        due.pending.insert((issuer.to_string(), shard));
        due.queued += 1;
        Ok(due.taken + 1)
    }
}

/// A batch of CRLs being made: what it has not done goes back to the queue
/// when it ends, also when the task making it is cancelled (a client that
/// hung up) or panics, so that no revocation is left off the CRLs.
pub(crate) struct Batch<'a> {
    pub(crate) number: u64,
    pub(crate) work: Option<BTreeSet<(String, i64)>>,
    pub(crate) due: &'a Mutex<CrlsDue>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take().filter(|w| !w.is_empty())
            && let Ok(mut due) = self.due.lock()
        {
            due.pending.extend(work);
        }
    }
}

fn log_failure(issuer: &str, e: &RaError) {
    tracing::error!(error = %e, issuer, "CRL regeneration after a revocation failed (the revocation is stored and OCSP answers revoked); `serve` retries it within seconds; without a running server, run `hallmark crl generate`");
}

impl Authority {
    /// Publishes the CRLs that list a revocation of `(issuer, shard)` just
    /// committed: returns once generations that started after the commit
    /// have published them, made here or by a concurrent caller (one
    /// generation serves every revocation queued before it, so a burst of
    /// revocations does not queue one CRL signing each). `partitions_done`
    /// hears when the partition CRL is out (before the full CRL). On failure
    /// the CRLs stay due, here and in the database.
    pub(crate) async fn publish_after_revocation(
        &self,
        issuer: &str,
        shard: i64,
        now: u64,
        partitions_done: Option<tokio::sync::oneshot::Sender<bool>>,
    ) -> Result<()> {
        let is_root = self.ca.issuer(Some(issuer)).is_ok_and(|i| i.is_root);
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

    /// Revokes as [`revoke`](Self::revoke) does, but waits at most `wait`
    /// for the partition CRL listing the revocation (what the certificate's
    /// CRL distribution point names); the full CRL, which takes seconds to
    /// sign at a million entries, is published in the background. The
    /// revocation is stored and OCSP answers revoked either way; the CRLs
    /// owed are in the database, so a crash before they are out loses
    /// nothing (the next server publishes them). The flag says whether the
    /// partition CRL was out within `wait`.
    pub async fn revoke_waiting_at_most(
        self: &Arc<Self>,
        serial_hex: &str,
        reason: Reason,
        actor: &str,
        now: u64,
        wait: std::time::Duration,
    ) -> Result<(certs::CertRow, bool)> {
        let row = self.revoke_stored(serial_hex, reason, actor, now).await?;
        let (auth, issuer, shard) = (self.clone(), row.issuer.clone(), row.shard);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = auth
                .publish_after_revocation(&issuer, shard, now, Some(tx))
                .await
            {
                log_failure(&issuer, &e);
            }
        });
        let published = match tokio::time::timeout(wait, rx).await {
            Ok(done) => done.unwrap_or(false),
            Err(_) => {
                tracing::info!(issuer = %row.issuer, serial = %row.serial, "the CRL after a revocation is still being made; it is published in the background");
                false
            }
        };
        Ok((row, published))
    }

    pub(crate) async fn publish_after_revocation_logged(
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
            if self.ca.issuer(Some(&d.issuer)).is_ok() {
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

    async fn clear_crls_due(&self, paid: &[certs::CrlDue]) -> Result<()> {
        if paid.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        certs::clear_crls_due(&mut tx, paid).await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// Debts of `issuer` in the database of one kind, read before any CRL
    /// number is taken: every CRL of that kind made after covers them.
    async fn owed(&self, issuer: &str, kind: Kind) -> Result<Vec<certs::CrlDue>> {
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
        let now = now.max(system_now());
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
            let Ok(ca) = self.ca.issuer(Some(issuer)) else {
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
            Some(i) => vec![self.ca.issuer(Some(i))?.id.clone()],
            None => self.ca.issuers().map(|i| i.id.clone()).collect(),
        };
        for id in ids {
            let is_root = self.ca.issuer(Some(&id))?.is_root;
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
                            let first = self.ca.settings.shard_of(now);
                            let last = self
                                .ca
                                .settings
                                .shard_of(self.ca.issuer(Some(&id))?.not_after);
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
        let issuer = self.ca.issuer(Some(issuer_id))?;
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
            certs::next_crl_number(&mut tx, issuer_id, now as i64 * 1000, now as i64).await?;
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
            return Err(RaError::Store(StoreError::Corrupt(b)));
        }
        let count = entries.len();
        let next_update = now + self.ca.settings.crl_validity_secs;
        let dp = (shard != FULL_CRL).then(|| self.ca.settings.shard_crl_url(issuer_id, shard));
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
        if !certs::put_crl(
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

    /// Publishes a full CRL signed elsewhere: an offline root's, brought
    /// over from the root machine (`crl generate --issuer root --full-only
    /// --out FILE` there). It must be signed by the CA's key, carry a
    /// cRLNumber above the one published, and not have expired.
    pub async fn import_crl(
        &self,
        issuer_id: &str,
        bytes: &[u8],
        actor: &str,
        now: u64,
    ) -> Result<CrlInfo> {
        let der = hallmark_pki::pem::decode("X509 CRL", bytes)?;
        let issuer = self
            .store
            .issuers()
            .await?
            .into_iter()
            .find(|i| i.id == issuer_id)
            .ok_or_else(|| RaError::Invalid(format!("no CA named {issuer_id:?}")))?;
        if self.ca.issuer(Some(issuer_id)).is_ok() {
            return Err(RaError::Invalid(format!(
                "{issuer_id:?} signs its CRLs here (its key is in this key store): \
                 `hallmark crl generate --issuer {issuer_id}` makes them"
            )));
        }
        let got = hallmark_pki::crl::check_received(&der, &issuer.cert, now)?;
        if got.next_update.is_some_and(|n| n <= now) {
            return Err(RaError::Invalid(format!(
                "this CRL expired at {}; generate a fresh one on the root machine",
                hallmark_pki::time::rfc3339(got.next_update.unwrap_or_default())
            )));
        }
        let _held = self.lanes.full.lock.lock().await;
        let mut tx = self.store.begin().await?;
        if let Some(published) = certs::crl_number(&mut tx, issuer_id, FULL_CRL).await?
            && published >= got.number as i64
        {
            return Err(RaError::Invalid(format!(
                "CRL number {} is not newer than the one published ({published})",
                got.number
            )));
        }
        // CAs of this installation that the CRL revokes (an offline root
        // revoked the issuing CA): recorded, so that they issue no more.
        let mut cas_revoked = Vec::new();
        for (row, parent, serial) in self.ca_certificates().await? {
            let Some((_, at, reason)) = got
                .revoked
                .iter()
                .find(|(s, _, _)| parent == issuer_id && hallmark_pki::hex(s) == serial)
            else {
                continue;
            };
            self.file_ca_certificate(&mut tx, &row, &parent, &serial)
                .await?;
            match certs::revoke(
                &mut tx,
                &parent,
                &serial,
                *at as i64,
                *reason as i64,
                now as i64,
            )
            .await
            {
                Ok(_) => cas_revoked.push(row.id.clone()),
                Err(StoreError::Conflict(_)) => {} // revoked here already
                Err(e) => return Err(e.into()),
            }
        }
        if !certs::put_crl(
            &mut tx,
            issuer_id,
            FULL_CRL,
            got.number as i64,
            got.this_update as i64,
            got.next_update.unwrap_or(got.this_update) as i64,
            &der,
        )
        .await?
        {
            return Err(RaError::Invalid(format!(
                "CRL number {} is not newer than the one published",
                got.number
            )));
        }
        // Revocations by this CA are on the CRL it made: nothing is owed.
        certs::clear_all_crls_due(&mut tx, issuer_id).await?;
        audit::record(
            &mut tx,
            self.store.backend(),
            now as i64,
            actor,
            "crl.import",
            serde_json::json!({"issuer": issuer_id, "number": got.number, "entries": got.revoked.len(),
                "cas_revoked": cas_revoked, "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(&der))})
            .to_string(),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        if !cas_revoked.is_empty() {
            tracing::warn!(cas = ?cas_revoked, "the imported CRL revokes CAs of this installation; they issue no more");
            self.refresh_revoked_cas().await?;
        }
        Ok(CrlInfo {
            issuer: issuer_id.into(),
            shard: FULL_CRL,
            number: got.number as i64,
            entries: got.revoked.len(),
            bytes: der.len(),
            published: true,
        })
    }
}
