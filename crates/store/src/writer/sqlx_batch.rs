//! Batches written through sqlx (PostgreSQL).

use std::collections::HashSet;

use tokio::sync::mpsc;

use super::{Job, MAX_BATCH, Op, answer, fill, not_pending, taken};
use crate::audit;
use crate::certificates::{self, NewCert};
use crate::{Backend, Result, Store};
use sqlx::any::AnyArguments;

pub(super) async fn run(store: Store, mut rx: mpsc::Receiver<Job>, now: fn() -> i64) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // The head of the audit chain as this writer last left it.
    let mut head: Option<(i64, Vec<u8>)> = None;
    while let Some(first) = rx.recv().await {
        fill(&mut batch, first, &mut rx);
        let now = now();
        let finals = batch
            .iter()
            .any(|(op, _)| matches!(op, Op::Finalize { .. }));
        // The one-statement path needs the chain head when it writes entries.
        let fast = match (&head, store.backend()) {
            (Some(h), Backend::Postgres) => Some(one_statement(&store, &batch, now, h).await),
            (None, Backend::Postgres) if !finals => {
                Some(one_statement(&store, &batch, now, &(0, Vec::new())).await)
            }
            _ => None,
        };
        let results = match fast {
            Some(Ok((out, new_head))) => {
                head = new_head.or(head);
                Ok(out)
            }
            None => step_by_step(&store, &batch, now, &mut head).await,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "one-statement batch failed; writing it step by step");
                step_by_step(&store, &batch, now, &mut head).await
            }
        };
        answer(&mut batch, results);
    }
}

/// [`run_batch`], again on another connection when the connection died under
/// it (a restarted or failed-over server, a terminated backend, an answer
/// lost while the commit went through). That is safe because every operation
/// can be repeated: a reservation finds its own row, a stored certificate is
/// recognised and not audited twice. Each failed attempt drops one dead
/// connection, so the pool's size bounds the attempts.
async fn step_by_step(
    store: &Store,
    batch: &[Job],
    now: i64,
    head: &mut Option<Head>,
) -> Result<Vec<Result<()>>> {
    let budget = store.pool().size() as usize + 1;
    let mut attempt = 1;
    loop {
        match run_batch(store, batch, now, head).await {
            Err(e) if attempt < budget && crate::connection_lost(&e) => {
                tracing::warn!(error = %e, attempt, "database connection lost during a storage batch; running it again");
                crate::pause_after_loss(attempt).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

type Head = (i64, Vec<u8>);

/// The whole batch in one round trip on PostgreSQL: reservations, stored
/// certificates and their audit entries in one autocommitted statement of
/// data-modifying CTEs, chained from the head this writer last wrote
/// (unused when the batch has no finalisations). It fails, keeping nothing,
/// when the batch is not the plain case: another process appended to the
/// audit chain (the entry numbers collide), the database went back, or a
/// finalisation found no pending row; the step-by-step path then sorts it
/// out.
async fn one_statement(
    store: &Store,
    batch: &[Job],
    now: i64,
    head: &Head,
) -> Result<(Vec<Result<()>>, Option<Head>)> {
    let mut args = AnyArguments::default();
    let mut ctes = Vec::new();
    let mut selects = Vec::new();
    let mut next = 1;
    let reserves: Vec<&NewCert> = batch
        .iter()
        .filter_map(|(op, _)| match op {
            Op::Reserve(c) => Some(c),
            Op::Finalize { .. } => None,
        })
        .collect();
    if !reserves.is_empty() {
        for c in &reserves {
            certificates::bind_reserve(&mut args, c)?;
        }
        ctes.push(format!(
            "r AS ({}{}{})",
            certificates::RESERVE_HEAD,
            crate::values_list_from(next, reserves.len(), certificates::RESERVE_COLUMNS),
            certificates::RESERVE_TAIL
        ));
        next += reserves.len() * certificates::RESERVE_COLUMNS;
        selects.push("SELECT 'r' AS k, issuer, serial FROM r");
    }
    let mut events = Vec::new();
    let mut finals = 0;
    for (op, _) in batch {
        if let Op::Finalize {
            issuer,
            serial,
            cert,
            escrow,
            audit,
        } = op
        {
            let f = certificates::Finalize {
                issuer,
                serial,
                cert,
                escrow: escrow.as_deref(),
            };
            certificates::bind_finalize(&mut args, &f)?;
            events.push(audit);
            finals += 1;
        }
    }
    let mut new_head = None;
    if finals > 0 {
        ctes.push(format!(
            "f AS ({}{}{})",
            certificates::FINALIZE_HEAD,
            crate::values_list_from(next, finals, certificates::FINALIZE_COLUMNS),
            certificates::FINALIZE_TAIL
        ));
        next += finals * certificates::FINALIZE_COLUMNS;
        let mut h = head.clone();
        audit::bind_entries(&mut args, now, &events, &mut h)?;
        // The chain lock is taken before any entry is written (the entries
        // are joined to it), and the statement fails unless every
        // finalisation found its pending row: then nothing of it stays.
        ctes.push(format!("l AS ({})", audit::LOCK_CHAIN));
        // The cached head must still be the head: a newer entry collides on
        // the entry number, and this check catches a database that went
        // back (a restore, a fail-over to a replica that lagged).
        let at = next + finals * audit::ENTRY_COLUMNS;
        crate::bind(&mut args, head.0)?;
        crate::bind(&mut args, head.1.clone())?;
        ctes.push(format!(
            "a AS ({}SELECT v.* FROM ({}{}) AS v, l WHERE hallmark_check((SELECT count(*) FROM f) = {finals}, 'a finalisation found no pending row') \
             AND hallmark_check(EXISTS (SELECT 1 FROM audit_log WHERE seq = ${at} AND hash = ${}), 'the audit chain head moved'))",
            audit::INSERT_ENTRIES.trim_end_matches("VALUES "),
            "VALUES ",
            crate::values_list_from(next, finals, audit::ENTRY_COLUMNS),
            at + 1
        ));
        new_head = Some(h);
        selects.push("SELECT 'f', issuer, serial FROM f");
    }
    let sql = format!("WITH {} {}", ctes.join(", "), selects.join(" UNION ALL "));
    // One statement, committed on its own: nothing or all of it.
    // Placeholders only; every value is bound.
    let rows: Vec<(String, String, String)> = sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args)
        .fetch_all(store.pool())
        .await?;
    let stored = rows.iter().filter(|r| r.0 == "f").count();
    if stored != finals {
        // hallmark_check makes this impossible; say so loudly if it happens.
        return Err(crate::StoreError::Corrupt(format!(
            "{stored} of {finals} finalisations were stored by one batch statement"
        )));
    }
    let mut inserted: HashSet<(String, String)> = rows
        .into_iter()
        .filter(|r| r.0 == "r")
        .map(|r| (r.1, r.2))
        .collect();
    if inserted.len() < reserves.len() {
        // Not inserted: taken, unless an earlier attempt stored it.
        let mut conn = store.pool().acquire().await?;
        let rest: Vec<&NewCert> = reserves
            .iter()
            .filter(|c| !inserted.contains(&(c.issuer.clone(), c.serial.clone())))
            .copied()
            .collect();
        inserted.extend(certificates::same_reservations(&mut conn, &rest).await?);
    }
    let out = batch
        .iter()
        .map(|(op, _)| match op {
            // A serial repeated inside one batch collides with itself.
            Op::Reserve(c) => {
                if inserted.remove(&(c.issuer.clone(), c.serial.clone())) {
                    Ok(())
                } else {
                    Err(taken(&c.serial))
                }
            }
            Op::Finalize { .. } => Ok(()),
        })
        .collect();
    Ok((out, new_head))
}

/// The batch step by step: any mix of outcomes.
pub(super) async fn run_batch(
    store: &Store,
    batch: &[Job],
    now: i64,
    head: &mut Option<Head>,
) -> Result<Vec<Result<()>>> {
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
    let mut inserted = HashSet::new();
    for chunk in crate::pow2_chunks(&reserves) {
        let rows: Vec<&NewCert> = chunk.iter().map(|(_, c)| *c).collect();
        inserted.extend(certificates::reserve_many(&mut tx, &rows).await?);
    }

    // Finalisations: one multi-row UPDATE.
    let finals: Vec<(usize, certificates::Finalize<'_>)> = batch
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
                certificates::Finalize {
                    issuer,
                    serial,
                    cert,
                    escrow: escrow.as_deref(),
                },
            )),
            Op::Reserve(_) => None,
        })
        .collect();
    let (mut stored, mut already) = (HashSet::new(), HashSet::new());
    for chunk in crate::pow2_chunks(&finals) {
        let rows: Vec<&certificates::Finalize<'_>> = chunk.iter().map(|(_, f)| f).collect();
        let done = certificates::finalize_many(&mut tx, &rows).await?;
        stored.extend(done.stored);
        already.extend(done.already);
    }

    // A serial finalised twice in one batch: one UPDATE stored one of the
    // certificates, unpredictably which; each request asks which it was.
    let mut twice = HashSet::new();
    let mut once = HashSet::new();
    for (_, f) in &finals {
        if !once.insert((f.issuer, f.serial)) {
            twice.insert((f.issuer.to_string(), f.serial.to_string()));
        }
    }

    let mut events = Vec::new();
    let mut seen = HashSet::new();
    for (op, _) in batch {
        match op {
            Op::Reserve(c) => {
                // A serial repeated inside one batch collides with itself.
                let key = (c.issuer.clone(), c.serial.clone());
                out.push(if inserted.contains(&key) && seen.insert(key) {
                    Ok(())
                } else {
                    Err(taken(&c.serial))
                });
            }
            Op::Finalize {
                issuer,
                serial,
                cert,
                audit,
                ..
            } => {
                let key = (issuer.clone(), serial.clone());
                let twice = twice.contains(&key);
                // Of two finalisations of one serial, only the one whose
                // certificate the row holds is ours.
                let mine = !twice
                    || certificates::holds(
                        &mut tx,
                        certificates::SAME_CERTIFICATE,
                        issuer,
                        serial,
                        cert,
                    )
                    .await?;
                out.push(if !mine {
                    Err(not_pending(serial))
                } else if stored.remove(&key) {
                    // Audited once, whichever of a pair came first.
                    events.push(audit.clone());
                    Ok(())
                } else if twice || already.contains(&key) {
                    // Stored by an earlier attempt of the same request.
                    Ok(())
                } else {
                    Err(not_pending(serial))
                });
            }
        }
    }
    let new_head = audit::append(&mut tx, store.backend(), now, &events).await?;
    tx.commit().await?;
    if new_head.is_some() {
        *head = new_head;
    }
    Ok(out)
}
