//! Group commit: issuance writes from many requests are gathered into one
//! transaction and one fsync, and each request is answered only after that
//! commit. Durability stays per request; the cost of the sync is shared.

use tokio::sync::{mpsc, oneshot};

use crate::audit::{self, AuditEvent};
use crate::certs::{self, NewCert};
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

/// Handle to the writer task.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Most operations committed together.
const MAX_BATCH: usize = 512;

impl Writer {
    /// Starts the writer task; `now` gives the time stamps (Unix seconds).
    pub fn spawn(store: Store, now: fn() -> i64) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                let results = run_batch(&store, &batch, now()).await;
                match results {
                    Ok(per_op) => {
                        for ((_, reply), r) in batch.drain(..).zip(per_op) {
                            let _ = reply.send(r);
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        tracing::error!(error = %msg, "storage batch failed; nothing in it was stored");
                        for (_, reply) in batch.drain(..) {
                            let _ = reply
                                .send(Err(StoreError::Corrupt(format!("storage failed: {msg}"))));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    pub async fn submit(&self, op: Op) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

async fn run_batch(store: &Store, batch: &[Job], now: i64) -> Result<Vec<Result<()>>> {
    let mut tx = store.begin().await?;
    let mut out: Vec<Result<()>> = Vec::with_capacity(batch.len());

    // Reservations: one multi-row INSERT; the rows it did not insert collide.
    let reserves: Vec<(usize, &NewCert)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, (op, _))| match op {
            Op::Reserve(c) => Some((i, c)),
            Op::Finalize { .. } => None,
        })
        .collect();
    let mut inserted = std::collections::HashSet::new();
    for chunk in certs::pow2_chunks(&reserves) {
        let rows: Vec<&NewCert> = chunk.iter().map(|(_, c)| *c).collect();
        inserted.extend(certs::reserve_many(&mut tx, &rows).await?);
    }

    // Finalisations: one multi-row UPDATE.
    let finals: Vec<(usize, certs::Finalize<'_>)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, (op, _))| match op {
            Op::Finalize {
                issuer,
                serial,
                cert,
                escrow,
                ..
            } => Some((
                i,
                certs::Finalize {
                    issuer,
                    serial,
                    cert,
                    escrow: escrow.as_deref(),
                },
            )),
            Op::Reserve(_) => None,
        })
        .collect();
    let mut finalized = std::collections::HashSet::new();
    for chunk in certs::pow2_chunks(&finals) {
        let rows: Vec<&certs::Finalize<'_>> = chunk.iter().map(|(_, f)| f).collect();
        finalized.extend(certs::finalize_many(&mut tx, &rows).await?);
    }

    let mut events = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (op, _) in batch {
        match op {
            Op::Reserve(c) => {
                // A serial repeated inside one batch collides with itself.
                let key = (c.issuer.clone(), c.serial.clone());
                out.push(if inserted.contains(&key) && seen.insert(key) {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(format!(
                        "serial {} is already used",
                        c.serial
                    )))
                });
            }
            Op::Finalize {
                issuer,
                serial,
                audit,
                ..
            } => {
                if finalized.contains(&(issuer.clone(), serial.clone())) {
                    events.push(audit.clone());
                    out.push(Ok(()));
                } else {
                    out.push(Err(StoreError::Conflict(format!(
                        "no pending certificate {serial}"
                    ))));
                }
            }
        }
    }
    audit::append(&mut tx, store.backend(), now, &events).await?;
    tx.commit().await?;
    Ok(out)
}
