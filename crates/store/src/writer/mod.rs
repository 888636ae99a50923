//! Group commit: issuance writes from many requests are gathered into one
//! transaction and one fsync, and each request is answered only after that
//! commit. Durability stays per request; the cost of the sync is shared.
//!
//! On SQLite the batches are written by a thread of their own that talks to
//! SQLite directly ([`sqlite`]): through sqlx every statement would be a
//! hand-off to sqlx's worker thread. On PostgreSQL a task writes them
//! through sqlx ([`sqlx_batch`]).

mod sqlite;
mod sqlx_batch;

use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditEvent;
use crate::certificates::NewCert;
use crate::{Result, Store, StoreError};

pub enum Op {
    /// Store serial and linted TBS before signing.
    Reserve(NewCert),
    /// Store the signed certificate with its audit entry.
    Finalize {
        issuer: String,
        serial: String,
        cert: Vec<u8>,
        escrow: Option<Vec<u8>>,
        audit: AuditEvent,
    },
}

type Job = (Op, oneshot::Sender<Result<()>>);

/// Handle to the writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    /// Where finalisations go when they have a writer of their own.
    finals: Option<mpsc::Sender<Job>>,
}

/// Most operations committed together.
const MAX_BATCH: usize = 512;

impl Writer {
    /// Starts the writer; `now` gives the time stamps (Unix seconds).
    pub fn spawn(store: Store, now: fn() -> i64) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        match store.sqlite_path() {
            // SQLite has one writer at a time anyway.
            Some(path) => {
                sqlite::spawn(path.to_path_buf(), rx, now);
                Self { tx, finals: None }
            }
            // Reservations touch no audit chain: on a connection of their
            // own they commit beside the finalisations instead of between.
            None => {
                let (ftx, frx) = mpsc::channel::<Job>(4096);
                tokio::spawn(sqlx_batch::run(store.clone(), rx, now));
                tokio::spawn(sqlx_batch::run(store, frx, now));
                Self {
                    tx,
                    finals: Some(ftx),
                }
            }
        }
    }

    pub async fn submit(&self, op: Op) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let queue = match (&op, &self.finals) {
            (Op::Finalize { .. }, Some(finals)) => finals,
            _ => &self.tx,
        };
        queue
            .send((op, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// Gathers the next batch: waits for one job, then takes what is queued.
fn fill(batch: &mut Vec<Job>, first: Job, rx: &mut mpsc::Receiver<Job>) {
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

/// Answers every job of a batch: with its own outcome when the batch
/// committed, with the batch's error when nothing in it was stored.
fn answer(batch: &mut Vec<Job>, results: Result<Vec<Result<()>>>) {
    match results {
        Ok(per_op) => {
            for ((_, reply), r) in batch.drain(..).zip(per_op) {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            // Nothing of the batch was stored, unless the connection broke
            // while the commit was under way: then the outcome is unknown.
            tracing::error!(error = %msg, "storage batch failed");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Corrupt(format!(
                    "storage failed ({msg}); look the certificate up before trying again"
                ))));
            }
        }
    }
}

fn taken(serial: &str) -> StoreError {
    StoreError::Conflict(format!("serial {serial} is already used"))
}

fn not_pending(serial: &str) -> StoreError {
    StoreError::Conflict(format!("no pending certificate {serial}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuers::insert_issuer;

    fn reserve(serial: &str) -> Op {
        Op::Reserve(crate::testing::cert(serial))
    }

    fn finalize(serial: &str, cert: &[u8]) -> Op {
        Op::Finalize {
            issuer: "ca".into(),
            serial: serial.into(),
            cert: cert.to_vec(),
            escrow: None,
            audit: AuditEvent::new(
                "test",
                "certificate.issue",
                format!("{{\"serial\":\"{serial}\"}}"),
            ),
        }
    }

    /// Many concurrent requests through the writer: every outcome is the
    /// request's own, a taken serial is refused, a retried finalisation is
    /// not recorded twice, and the audit chain holds one entry per issuance.
    async fn writer_outcomes(store: Store) {
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &crate::testing::issuer_row())
            .await
            .unwrap();
        crate::commit(tx).await.unwrap();
        let w = Writer::spawn(store.clone(), || 1_700_000_000);
        let serials: Vec<String> = (0..64).map(|i| format!("{i:04x}")).collect();
        let mut tasks = Vec::new();
        for s in &serials {
            let (w, s) = (w.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                w.submit(reserve(&s)).await?;
                w.submit(finalize(&s, s.as_bytes())).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(matches!(
            w.submit(reserve("0001")).await,
            Err(StoreError::Conflict(m)) if m.contains("already used")
        ));
        // The same reservation again (its first answer was lost) is ours;
        // another TBS under that serial is not.
        w.submit(reserve("0100")).await.unwrap();
        w.submit(reserve("0100")).await.unwrap();
        let mut other = crate::testing::cert("0100");
        other.tbs = b"another".to_vec();
        assert!(matches!(
            w.submit(Op::Reserve(other)).await,
            Err(StoreError::Conflict(m)) if m.contains("already used")
        ));
        w.submit(finalize("0100", b"0100")).await.unwrap();
        assert!(matches!(
            w.submit(finalize("ffff", b"x")).await,
            Err(StoreError::Conflict(m)) if m.contains("no pending")
        ));
        // The same finalisation again (a retry) succeeds without a second
        // record; another certificate for the serial does not.
        w.submit(finalize("0002", b"0002")).await.unwrap();
        assert!(w.submit(finalize("0002", b"other")).await.is_err());
        let row = store.get_cert(Some("ca"), "0003").await.unwrap();
        assert_eq!(row.status, "issued");
        assert_eq!(row.cert.as_deref(), Some(&b"0003"[..]));
        // Another appender (as another process would) moves the head of the
        // audit chain under the writer; the writer's next entries chain on.
        store
            .audit(1, &[AuditEvent::new("test", "other", "{}".into())])
            .await
            .unwrap();
        w.submit(reserve("1000")).await.unwrap();
        w.submit(finalize("1000", b"1000")).await.unwrap();
        w.submit(reserve("1001")).await.unwrap();
        w.submit(finalize("1001", b"1001")).await.unwrap();
        let report = store.verify_audit(&[], |_| {}).await.unwrap();
        assert_eq!(report.entries, 68);
        assert!(
            report.findings.iter().all(|f| !f.contains("entry")),
            "{:?}",
            report.findings
        );
        // The database goes back one entry (a restore, a fail-over): the
        // writer's next entry chains to the real head, not the one it
        // remembers.
        sqlx::query("DELETE FROM audit_log WHERE seq = 68")
            .execute(store.pool())
            .await
            .unwrap();
        w.submit(reserve("1002")).await.unwrap();
        w.submit(finalize("1002", b"1002")).await.unwrap();
        let report = store.verify_audit(&[], |_| {}).await.unwrap();
        assert_eq!(report.entries, 68);
        assert!(
            report.findings.iter().all(|f| !f.contains("entr")),
            "{:?}",
            report.findings
        );

        // One serial finalised twice in one step-by-step batch, with two
        // certificates: the request whose certificate was stored succeeds
        // and is audited once; the other is refused.
        w.submit(reserve("3000")).await.unwrap();
        let (a, _) = oneshot::channel();
        let (b, _) = oneshot::channel();
        let jobs = vec![
            (finalize("3000", b"first"), a),
            (finalize("3000", b"second"), b),
        ];
        let out = sqlx_batch::run_batch(&store, &jobs, 1_700_000_000, &mut None)
            .await
            .unwrap();
        let row = store.get_cert(Some("ca"), "3000").await.unwrap();
        let won = usize::from(row.cert.as_deref() == Some(&b"second"[..]));
        assert!(out[won].is_ok(), "{out:?}");
        assert!(
            matches!(&out[1 - won], Err(StoreError::Conflict(m)) if m.contains("no pending")),
            "{out:?}"
        );
        let report = store.verify_audit(&[], |_| {}).await.unwrap();
        assert_eq!(report.entries, 69);
        assert!(report.findings.iter().all(|f| !f.contains("entr")));
    }

    /// Every other session of the database is terminated, as a server
    /// restart or a fail-over would: the pooled connections are dead, and
    /// the writer's next batches still succeed, each request once.
    async fn connection_loss(store: &Store) {
        // The server probes a silent client soon (over TCP, as here), so a
        // dead client's locks do not outlive it by hours.
        let idle: (String,) = sqlx::query_as("SHOW tcp_keepalives_idle")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(idle.0, "10");
        let w = Writer::spawn(store.clone(), || 1_700_000_000);
        let before = store.verify_audit(&[], |_| {}).await.unwrap().entries;
        idle_connections(store, 4).await;
        let mut live = store.pool().acquire().await.unwrap();
        assert!(terminate_others(&mut live).await >= 3);
        assert!(store.pool().num_idle() >= 3);
        // Under load (no idle ping yet) the writer runs its batches again
        // on other connections.
        for s in ["2000", "2001"] {
            w.submit(reserve(s)).await.unwrap();
            w.submit(finalize(s, s.as_bytes())).await.unwrap();
        }
        // Killed again, and read at once (no idle ping yet): the reads run
        // again on other connections.
        idle_connections(store, 4).await;
        assert!(terminate_others(&mut live).await >= 3);
        let row = store.get_cert(Some("ca"), "2000").await.unwrap();
        assert_eq!(row.status, "issued");
        assert_eq!(store.list_certs(10, None).await.unwrap().len(), 10);
        assert!(!store.live_page("ca", 0, "", 5).await.unwrap().is_empty());
        idle_connections(store, 4).await;
        assert!(terminate_others(&mut live).await >= 3);
        store.for_each_revoked_since(0, |_, _, _| {}).await.unwrap();
        // Killed again while Hallmark is quiet: an idle connection is
        // pinged before use, and replaced.
        assert!(terminate_others(&mut live).await >= 1);
        drop(live);
        tokio::time::sleep(crate::PING_IDLE + std::time::Duration::from_millis(200)).await;
        let report = store.verify_audit(&[], |_| {}).await.unwrap();
        assert_eq!(report.entries, before + 2);
        assert!(
            report.findings.iter().all(|f| !f.contains("entr")),
            "{:?}",
            report.findings
        );
    }

    /// Leaves `n` connections idle in the pool (opened at once, released).
    async fn idle_connections(store: &Store, n: usize) {
        let held: Vec<_> = futures_util::future::join_all((0..n).map(|_| store.pool().acquire()))
            .await
            .into_iter()
            .map(|c| c.unwrap())
            .collect();
        drop(held);
    }

    /// Terminates every session of the database but `conn`'s.
    async fn terminate_others(conn: &mut crate::AnyConnection) -> usize {
        let killed: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        killed.len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writer_outcomes() {
        let t = crate::testing::temp_sqlite("writer").await;
        writer_outcomes(t.store.clone()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_writer_outcomes() {
        let Some(pg) = crate::testing::temp_postgres("writer").await else {
            return;
        };
        writer_outcomes(pg.store.clone()).await;
        connection_loss(&pg.store).await;
        pg.remove().await;
    }
}
