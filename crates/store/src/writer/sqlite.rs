//! Batches written by a thread of their own over a direct SQLite connection:
//! one `BEGIN IMMEDIATE … COMMIT` (one WAL fsync) per batch, prepared
//! statements executed row by row, without crossing threads per statement
//! (as sqlx's SQLite driver does).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::{Job, MAX_BATCH, Op, answer, fill, not_pending, taken};
use crate::audit::{self, AuditEvent};
use crate::certificates;
use crate::{Result, StoreError};

pub(super) fn spawn(path: PathBuf, mut rx: mpsc::Receiver<Job>, now: fn() -> i64) {
    let run = move || {
        let mut conn: Option<Connection> = None;
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            fill(&mut batch, first, &mut rx);
            // Opened on first use, and again after a failure to open.
            if conn.is_none() {
                match open(&path) {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        let e = StoreError::Corrupt(format!("cannot open {}: {e}", path.display()));
                        answer(&mut batch, Err(e));
                        continue;
                    }
                }
            }
            let results = match &mut conn {
                Some(conn) => write(conn, &batch, now()),
                None => Err(StoreError::WriterGone),
            };
            answer(&mut batch, results);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("hallmark-sqlite-writer".into())
        .spawn(run)
    {
        // Without the thread the receiver is dropped and every submit
        // reports that the writer is gone.
        tracing::error!(error = %e, "cannot start the SQLite writer thread");
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL is already set on the file by the pool's connections; FULL sync
    // so that a committed issuance survives power loss.
    conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;")?;
    Ok(conn)
}

/// Writes one batch in one transaction.
fn write(conn: &mut Connection, jobs: &[Job], now: i64) -> Result<Vec<Result<()>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(jobs.len());
    let mut events: Vec<&AuditEvent> = Vec::new();
    {
        let mut reserve = tx.prepare_cached(
            "INSERT INTO certificates (issuer, serial, status, profile, subject, tbs, not_before, not_after, shard, created_at, changed_at) \
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT DO NOTHING",
        )?;
        let mut finalize = tx.prepare_cached(
            "UPDATE certificates SET status = 'issued', cert = ?3, tbs = NULL, escrow = ?4 \
             WHERE issuer = ?1 AND serial = ?2 AND status = 'pending'",
        )?;
        let mut same = tx.prepare_cached(certificates::SAME_RESERVATION)?;
        let mut stored = tx.prepare_cached(certificates::SAME_CERTIFICATE)?;
        for (op, _) in jobs {
            out.push(match op {
                Op::Reserve(c) => {
                    let n = reserve.execute(params![
                        c.issuer,
                        c.serial,
                        c.profile,
                        c.subject,
                        c.tbs,
                        c.not_before,
                        c.not_after,
                        c.shard,
                        c.created_at
                    ])?;
                    if n == 1 || same.exists(params![c.issuer, c.serial, c.tbs])? {
                        Ok(())
                    } else {
                        Err(taken(&c.serial))
                    }
                }
                Op::Finalize {
                    issuer,
                    serial,
                    cert,
                    escrow,
                    audit,
                } => {
                    if finalize.execute(params![issuer, serial, cert, escrow])? == 1 {
                        events.push(audit);
                        Ok(())
                    } else if stored.exists(params![issuer, serial, cert])? {
                        // Stored by an earlier attempt of the same request.
                        Ok(())
                    } else {
                        Err(not_pending(serial))
                    }
                }
            });
        }
    }
    if !events.is_empty() {
        let (mut seq, mut prev): (i64, Vec<u8>) = tx
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, audit::GENESIS.to_vec()));
        let mut append = tx.prepare_cached(
            "INSERT INTO audit_log (seq, ts, actor, action, details, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for e in events {
            seq += 1;
            let h = audit::entry_hash(seq, now, e, &prev);
            append.execute(params![
                seq,
                now,
                e.actor,
                e.action,
                e.details,
                prev,
                &h[..]
            ])?;
            prev = h.to_vec();
        }
    }
    tx.commit()?;
    Ok(out)
}
