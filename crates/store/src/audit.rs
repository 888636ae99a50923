//! The audit log: an append-only, hash-chained record of every state change.
//! Entry n carries the hash of entry n−1; checkpoints sign the head of the
//! chain with the audit key, so that rewriting history (even recomputing every
//! later hash) or cutting off its tail is detected.

use hallmark_crypto::{Sha256, Signer};
use sqlx::Row;
use sqlx::any::AnyArguments;

use crate::{AnyConnection, Backend, Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Who: "cli:root", "api:admin", "system".
    pub actor: String,
    /// What: "certificate.issue", "certificate.revoke", "crl.generate", …
    pub action: String,
    /// Details as compact JSON (no secrets, no personal data beyond ids).
    pub details: String,
}

impl AuditEvent {
    pub fn new(actor: &str, action: &str, details: String) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            details,
        }
    }
}

pub const GENESIS: [u8; 32] = [0; 32];

pub fn entry_hash(seq: i64, ts: i64, e: &AuditEvent, prev: &[u8]) -> [u8; 32] {
    let mut h = Sha256::default();
    h.update(b"hallmark-audit-v1");
    h.update(&seq.to_be_bytes());
    h.update(&ts.to_be_bytes());
    for part in [
        e.actor.as_bytes(),
        e.action.as_bytes(),
        e.details.as_bytes(),
    ] {
        h.update(&(part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.update(prev);
    h.finish()
}

fn checkpoint_message(seq: i64, hash: &[u8]) -> Vec<u8> {
    let mut m = b"hallmark-audit-checkpoint-v1".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// Taken by every appender on PostgreSQL before it reads the head.
pub(crate) const LOCK_CHAIN: &str = "SELECT pg_advisory_xact_lock(7412)";

async fn lock_chain(conn: &mut AnyConnection, backend: Backend) -> Result<()> {
    if backend == Backend::Postgres {
        // Serialises appenders across processes; SQLite's BEGIN IMMEDIATE
        // already does.
        sqlx::query(LOCK_CHAIN).execute(&mut *conn).await?;
    }
    Ok(())
}

async fn head(conn: &mut AnyConnection) -> Result<(i64, Vec<u8>)> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, GENESIS.to_vec()),
    })
}

/// Appends events inside the caller's transaction; returns the new head of
/// the chain (sequence number and hash), `None` if there was nothing to add.
pub async fn append(
    conn: &mut AnyConnection,
    backend: Backend,
    ts: i64,
    events: &[AuditEvent],
) -> Result<Option<(i64, Vec<u8>)>> {
    if events.is_empty() {
        return Ok(None);
    }
    lock_chain(conn, backend).await?;
    let mut head = head(conn).await?;
    // One multi-row INSERT per chunk: a batch of issuances costs one round trip.
    for chunk in crate::pow2_chunks(events) {
        let mut sql = String::from(INSERT_ENTRIES);
        sql.push_str(&crate::values_list(chunk.len(), ENTRY_COLUMNS));
        let mut args = AnyArguments::default();
        bind_entries(&mut args, ts, chunk, &mut head)?;
        // Placeholders only; every value is bound.
        sqlx::query_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some(head))
}

/// Appends one event inside the caller's transaction.
pub async fn record(
    conn: &mut AnyConnection,
    backend: Backend,
    ts: i64,
    actor: &str,
    action: &str,
    details: impl std::fmt::Display,
) -> Result<()> {
    let event = AuditEvent::new(actor, action, details.to_string());
    append(conn, backend, ts, &[event]).await.map(|_| ())
}

pub(crate) const INSERT_ENTRIES: &str =
    "INSERT INTO audit_log (seq, ts, actor, action, details, prev_hash, hash) VALUES ";
pub(crate) const ENTRY_COLUMNS: usize = 7;

/// Binds the columns of each entry, chained from `head`, which moves on to
/// the last entry.
pub(crate) fn bind_entries<E: std::borrow::Borrow<AuditEvent>>(
    args: &mut AnyArguments,
    ts: i64,
    events: &[E],
    head: &mut (i64, Vec<u8>),
) -> Result<()> {
    for e in events {
        let e = e.borrow();
        let seq = head.0 + 1;
        let h = entry_hash(seq, ts, e, &head.1);
        let prev = std::mem::replace(&mut head.1, h.to_vec());
        head.0 = seq;
        crate::bind(args, seq)?;
        crate::bind(args, ts)?;
        crate::bind(args, e.actor.clone())?;
        crate::bind(args, e.action.clone())?;
        crate::bind(args, e.details.clone())?;
        crate::bind(args, prev)?;
        crate::bind(args, h.to_vec())?;
    }
    Ok(())
}

impl Store {
    /// Appends events in a transaction of their own.
    pub async fn audit(&self, ts: i64, events: &[AuditEvent]) -> Result<()> {
        let mut tx = self.begin().await?;
        append(&mut tx, self.backend, ts, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends one event in a transaction of its own.
    pub async fn record(
        &self,
        ts: i64,
        actor: &str,
        action: &str,
        details: impl std::fmt::Display,
    ) -> Result<()> {
        self.audit(ts, &[AuditEvent::new(actor, action, details.to_string())])
            .await
    }

    /// The details of the entries recording `action`, oldest first.
    pub async fn audit_details(&self, action: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT details FROM audit_log WHERE action = $1 ORDER BY seq")
                .bind(action)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Signs the current head of the chain, if it moved since the last
    /// checkpoint. Returns the sequence number signed.
    pub async fn checkpoint(&self, ts: i64, signer: &dyn Signer) -> Result<Option<i64>> {
        let mut tx = self.begin().await?;
        lock_chain(&mut tx, self.backend).await?;
        let (seq, hash) = head(&mut tx).await?;
        let last: Option<(i64,)> =
            sqlx::query_as("SELECT seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        if seq == 0 || last.map(|l| l.0) == Some(seq) {
            return Ok(None);
        }
        let sig = signer
            .sign(&checkpoint_message(seq, &hash))
            .map_err(|e| StoreError::Corrupt(format!("audit key cannot sign: {e}")))?;
        sqlx::query("INSERT INTO audit_checkpoints (seq, ts, hash, signature, spki) VALUES ($1, $2, $3, $4, $5)")
            .bind(seq)
            .bind(ts)
            .bind(hash)
            .bind(sig)
            .bind(signer.spki_der().to_vec())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(seq))
    }

    /// The latest signed checkpoint: (entry, chain hash there).
    pub async fn latest_checkpoint(&self) -> Result<Option<(i64, Vec<u8>)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    /// The chain hash a checkpoint at entry `seq` signed, if there is one.
    pub async fn checkpoint_hash(&self, seq: i64) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT hash FROM audit_checkpoints WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Re-computes the whole chain and checks every checkpoint signature
    /// against the audit key `audit_spki`.
    pub async fn verify_audit(
        &self,
        audit_spki: &[u8],
        mut progress: impl FnMut(i64),
    ) -> Result<AuditReport> {
        let mut report = AuditReport::default();
        let mut conn = self.pool.acquire().await?;
        let mut expected = 1i64;
        let mut prev = GENESIS.to_vec();
        let mut hashes = std::collections::HashMap::new();
        let mut rows = sqlx::query(
            "SELECT seq, ts, actor, action, details, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .fetch(&mut *conn);
        use futures_util::TryStreamExt;
        while let Some(r) = rows.try_next().await? {
            let seq: i64 = r.try_get(0)?;
            let ts: i64 = r.try_get(1)?;
            let e = AuditEvent {
                actor: r.try_get(2)?,
                action: r.try_get(3)?,
                details: r.try_get(4)?,
            };
            let stored_prev: Vec<u8> = r.try_get(5)?;
            let stored: Vec<u8> = r.try_get(6)?;
            if seq != expected {
                report.findings.push(if seq > expected {
                    format!("entries {expected}..{} are missing (deleted)", seq - 1)
                } else {
                    format!("entry {seq} is out of order (inserted)")
                });
            }
            if stored_prev != prev {
                report
                    .findings
                    .push(format!("entry {seq} does not chain to the entry before it (inserted, deleted or reordered)"));
            }
            let h = entry_hash(seq, ts, &e, &stored_prev);
            if h.as_slice() != stored.as_slice() {
                report.findings.push(format!(
                    "entry {seq} was edited: its content does not match its hash"
                ));
            }
            hashes.insert(seq, stored.clone());
            prev = stored;
            expected = seq + 1;
            report.entries += 1;
            if report.entries % 10_000 == 0 {
                progress(report.entries);
            }
        }
        drop(rows);
        let last = expected - 1;
        let cps =
            sqlx::query("SELECT seq, hash, signature, spki FROM audit_checkpoints ORDER BY seq")
                .fetch_all(&mut *conn)
                .await?;
        for r in cps {
            let seq: i64 = r.try_get(0)?;
            let hash: Vec<u8> = r.try_get(1)?;
            let sig: Vec<u8> = r.try_get(2)?;
            let spki: Vec<u8> = r.try_get(3)?;
            report.checkpoints += 1;
            let alg = hallmark_crypto::classify_spki(&spki)
                .map(|k| k.algorithm.signature_algorithm())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let sig_ok = spki == audit_spki
                && hallmark_crypto::verify_signature(
                    &spki,
                    alg.oid,
                    None,
                    &checkpoint_message(seq, &hash),
                    &sig,
                )
                .is_ok();
            if !sig_ok {
                report.findings.push(format!(
                    "checkpoint at entry {seq} is not signed by the audit key"
                ));
                continue;
            }
            match hashes.get(&seq) {
                Some(h) if *h == hash => {}
                Some(_) => report.findings.push(format!(
                    "entries up to {seq} were rewritten after the checkpoint that signed them"
                )),
                None if seq > last => report.findings.push(format!(
                    "entries {}..{seq} were deleted: a signed checkpoint covers them",
                    last + 1
                )),
                None => report.findings.push(format!(
                    "entry {seq}, covered by a signed checkpoint, is missing"
                )),
            }
            report.last_checkpoint = seq;
        }
        report.head = last;
        Ok(report)
    }
}

#[derive(Debug, Default)]
pub struct AuditReport {
    pub entries: i64,
    pub head: i64,
    pub checkpoints: i64,
    pub last_checkpoint: i64,
    pub findings: Vec<String>,
    /// The head anchored outside the database (entry, chain hash in hex),
    /// filled in by the CA service.
    pub anchor: Option<(i64, String)>,
}
