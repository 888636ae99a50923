//! Campaign batches (`ra_batches`) and the batch moves of their
//! applications: many rows per statement, each move conditional on the
//! state it leaves, so a batch step run twice (or by two processes at
//! once) moves every application at most once.

use sqlx::Row;
use sqlx::any::AnyArguments;

use crate::registration::{ApplicationRow, ResidentRow};
use crate::{AnyConnection, Result, Store, StoreError};

#[derive(Clone, Debug)]
pub struct BatchRow {
    pub id: String,
    pub centre: Option<String>,
    /// `importing` until the whole file is in, then `imported`.
    pub state: String,
    pub entered_by: String,
    pub rows_imported: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    pub created_at: i64,
}

const BATCH_COLUMNS: &str =
    "id, centre, state, entered_by, rows_imported, approved_by, approved_at, created_at";

fn batch_row(r: &sqlx::any::AnyRow) -> Result<BatchRow> {
    Ok(BatchRow {
        id: r.try_get(0)?,
        centre: r.try_get(1)?,
        state: r.try_get(2)?,
        entered_by: r.try_get(3)?,
        rows_imported: r.try_get(4)?,
        approved_by: r.try_get(5)?,
        approved_at: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

/// What a batch step reads of an application.
pub struct BatchApp {
    /// The application's line in the batch's file.
    pub row: i64,
    pub reference: String,
    pub profile: String,
    pub id_hash: Vec<u8>,
    pub sealed: Vec<u8>,
}

pub async fn create_batch(
    conn: &mut AnyConnection,
    id: &str,
    centre: Option<&str>,
    entered_by: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO ra_batches (id, centre, state, entered_by, created_at) VALUES ($1, $2, 'importing', $3, $4)")
        .bind(id)
        .bind(centre)
        .bind(entered_by)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|e| crate::conflict_or(e, || format!("batch {id} exists")))?;
    Ok(())
}

const INSERT_APPS: &str = "INSERT INTO ra_applications (reference, channel, centre, profile, id_hash, sealed, key_version, status, registry, entered_by, created_at, updated_at, batch, batch_row) VALUES ";
const APP_INSERT_COLUMNS: usize = 14;

/// Inserts imported applications with their line in the batch's file,
/// many per statement. A reference already taken is a
/// [`StoreError::Conflict`] and nothing of the call is kept by the
/// caller's transaction.
pub async fn insert_applications(
    conn: &mut AnyConnection,
    rows: &[(i64, ApplicationRow)],
) -> Result<()> {
    for chunk in crate::pow2_chunks(rows) {
        let mut sql = String::from(INSERT_APPS);
        sql.push_str(&crate::values_list(chunk.len(), APP_INSERT_COLUMNS));
        let mut args = AnyArguments::default();
        for (line, a) in chunk {
            crate::bind(&mut args, a.reference.clone())?;
            crate::bind(&mut args, a.channel.clone())?;
            crate::bind(&mut args, a.centre.clone())?;
            crate::bind(&mut args, a.profile.clone())?;
            crate::bind(&mut args, a.id_hash.clone())?;
            crate::bind(&mut args, a.sealed.clone())?;
            crate::bind(&mut args, a.key_version)?;
            crate::bind(&mut args, a.status.clone())?;
            crate::bind(&mut args, a.registry.clone())?;
            crate::bind(&mut args, a.entered_by.clone())?;
            crate::bind(&mut args, a.created_at)?;
            crate::bind(&mut args, a.updated_at)?;
            crate::bind(&mut args, a.batch.clone())?;
            crate::bind(&mut args, *line)?;
        }
        // Placeholders only; every value is bound.
        sqlx::query_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args)
            .execute(&mut *conn)
            .await
            .map_err(|e| crate::conflict_or(e, || "an application reference is taken".into()))?;
    }
    Ok(())
}

/// Marks an import complete; only then can its batch be checked.
pub async fn finish_import(conn: &mut AnyConnection, id: &str, rows: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ra_batches SET state = 'imported', rows_imported = $2 WHERE id = $1 AND state = 'importing'",
    )
    .bind(id)
    .bind(rows)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!("batch {id} is not importing")));
    }
    Ok(())
}

/// Deletes an interrupted import (state `importing`) with its applications;
/// how many applications went.
pub async fn discard_import(conn: &mut AnyConnection, id: &str) -> Result<u64> {
    let gone = sqlx::query("DELETE FROM ra_batches WHERE id = $1 AND state = 'importing'")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if gone.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "batch {id} is not an interrupted import"
        )));
    }
    let apps = sqlx::query("DELETE FROM ra_applications WHERE batch = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(apps.rows_affected())
}

/// Records the registry's answers: `(reference, registry, status)`, for
/// applications still awaiting the registry; returns how many moved.
pub async fn set_registry_many(
    conn: &mut AnyConnection,
    rows: &[(String, &'static str, &'static str)],
    now: i64,
) -> Result<u64> {
    let mut moved = 0;
    for chunk in crate::pow2_chunks(rows) {
        let mut sql = String::from(
            "UPDATE ra_applications SET registry = v.column2, status = v.column3, updated_at = $1 FROM (VALUES ",
        );
        sql.push_str(&crate::sql::values_list_from(2, chunk.len(), 3));
        sql.push_str(") AS v WHERE ra_applications.reference = v.column1 AND ra_applications.status = 'awaiting-registry'");
        let mut args = AnyArguments::default();
        crate::bind(&mut args, now)?;
        for (r, reg, status) in chunk {
            crate::bind(&mut args, r.clone())?;
            crate::bind(&mut args, *reg)?;
            crate::bind(&mut args, *status)?;
        }
        moved += sqlx::query_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(moved)
}

/// A supervisor's batch approval: every application of the batch that the
/// registry confirmed and that awaits approval is approved by `by`, and the
/// batch records who and when. Returns how many were approved.
pub async fn approve_batch(conn: &mut AnyConnection, id: &str, by: &str, now: i64) -> Result<u64> {
    let n = sqlx::query(
        "UPDATE ra_applications SET status = 'approved', approved_by = $2, updated_at = $3 \
         WHERE batch = $1 AND status = 'awaiting-approval' AND registry = 'confirmed'",
    )
    .bind(id)
    .bind(by)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("UPDATE ra_batches SET approved_by = $2, approved_at = $3 WHERE id = $1")
        .bind(id)
        .bind(by)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(n)
}

/// An application whose certificate was issued in a batch, with its key.
pub struct IssuedApp<'a> {
    pub reference: &'a str,
    pub issuer: &'a str,
    pub serial: &'a str,
    pub key_sealed: &'a [u8],
}

/// Records batch-issued certificates on their applications, which stay
/// `approved` (the holder has yet to collect) and hold the sealed key.
/// Only approved applications of a batch without a certificate move; the
/// caller rolls back unless every row did.
pub async fn mark_issued(
    conn: &mut AnyConnection,
    rows: &[IssuedApp<'_>],
    now: i64,
) -> Result<u64> {
    let mut moved = 0;
    for chunk in crate::pow2_chunks(rows) {
        let mut sql = String::from(
            "UPDATE ra_applications SET issuer = v.column2, serial = v.column3, key_sealed = v.column4, updated_at = $1 FROM (VALUES ",
        );
        sql.push_str(&crate::sql::values_list_from(2, chunk.len(), 4));
        sql.push_str(") AS v WHERE ra_applications.reference = v.column1 AND ra_applications.status = 'approved' \
             AND ra_applications.serial IS NULL AND ra_applications.batch IS NOT NULL");
        let mut args = AnyArguments::default();
        crate::bind(&mut args, now)?;
        for r in chunk {
            crate::bind(&mut args, r.reference.to_string())?;
            crate::bind(&mut args, r.issuer.to_string())?;
            crate::bind(&mut args, r.serial.to_string())?;
            crate::bind(&mut args, r.key_sealed.to_vec())?;
        }
        moved += sqlx::query_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(moved)
}

/// Gives the transaction's connection a page cache of `mib` MiB on SQLite
/// (nothing on PostgreSQL), so that a batch's dirty pages stay in memory
/// until the commit instead of spilling to the WAL mid-transaction (a
/// batch touches a page of each index per certificate). Set back with
/// [`default_cache`] before the connection returns to the pool; between
/// the two, run the transactions with [`Store::begin_on`].
pub async fn large_cache(conn: &mut AnyConnection, mib: i64) -> Result<()> {
    if conn.backend_name() == "SQLite" {
        // A number, not a value from outside.
        let sql = format!("PRAGMA cache_size = -{}", mib.clamp(2, 1024) * 1024);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// SQLite's default page cache (2 MiB) again; see [`large_cache`].
pub async fn default_cache(conn: &mut AnyConnection) -> Result<()> {
    if conn.backend_name() == "SQLite" {
        sqlx::query("PRAGMA cache_size = -2000")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Clears a collected key (in the collecting transaction).
pub async fn clear_key(conn: &mut AnyConnection, reference: &str) -> Result<()> {
    sqlx::query("UPDATE ra_applications SET key_sealed = NULL WHERE reference = $1")
        .bind(reference)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Which applications of a batch a page is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Awaiting the registry.
    Check,
    /// Approved, without a certificate yet.
    Issue,
    /// Issued, waiting for its first PIN mailer.
    Mail,
}

impl Store {
    pub async fn batch(&self, id: &str) -> Result<Option<BatchRow>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM ra_batches WHERE id = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(batch_row).transpose()
    }

    /// The newest batches first.
    pub async fn batches(&self, limit: i64) -> Result<Vec<BatchRow>> {
        let sql =
            format!("SELECT {BATCH_COLUMNS} FROM ra_batches ORDER BY created_at DESC, id LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(batch_row).collect()
    }

    /// A batch's applications by (status, registry, certificate issued).
    pub async fn batch_counts(&self, id: &str) -> Result<Vec<(String, String, bool, i64)>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT status, registry, CASE WHEN serial IS NULL THEN 0 ELSE 1 END AS issued, COUNT(*) \
             FROM ra_applications WHERE batch = $1 GROUP BY status, registry, issued ORDER BY status, registry, issued",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, r, i, n)| (s, r, i == 1, n))
            .collect())
    }

    /// The next page of a batch's applications at `stage`, in file order
    /// after line `after` (keyset paging over the batch index).
    pub async fn batch_page(
        &self,
        id: &str,
        stage: Stage,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BatchApp>> {
        let sql = match stage {
            Stage::Check => {
                "SELECT batch_row, reference, profile, id_hash, sealed FROM ra_applications \
                 WHERE batch = $1 AND batch_row > $2 AND status = 'awaiting-registry' ORDER BY batch_row LIMIT $3"
            }
            Stage::Issue => {
                "SELECT batch_row, reference, profile, id_hash, sealed FROM ra_applications \
                 WHERE batch = $1 AND batch_row > $2 AND status = 'approved' AND serial IS NULL ORDER BY batch_row LIMIT $3"
            }
            Stage::Mail => {
                "SELECT batch_row, reference, profile, id_hash, sealed FROM ra_applications \
                 WHERE batch = $1 AND batch_row > $2 AND status = 'approved' AND serial IS NOT NULL AND mailers = 0 ORDER BY batch_row LIMIT $3"
            }
        };
        let rows = sqlx::query(sql)
            .bind(id)
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BatchApp {
                    row: r.try_get(0)?,
                    reference: r.try_get(1)?,
                    profile: r.try_get(2)?,
                    id_hash: r.try_get(3)?,
                    sealed: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The registry records of many ID hashes at once (those that exist).
    pub async fn residents_of(&self, hashes: &[Vec<u8>]) -> Result<Vec<ResidentRow>> {
        let mut out = Vec::with_capacity(hashes.len());
        for chunk in crate::pow2_chunks(hashes) {
            let mut sql = String::from(
                "SELECT id_hash, sealed, key_version FROM ra_residents WHERE id_hash IN (",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&(i + 1).to_string());
            }
            sql.push(')');
            let mut args = AnyArguments::default();
            for h in chunk {
                crate::bind(&mut args, h.clone())?;
            }
            let rows = sqlx::query_with(
                sqlx::AssertSqlSafe(crate::sql::positional_for(sql, self)),
                args,
            )
            .fetch_all(self.pool())
            .await?;
            for r in &rows {
                out.push(ResidentRow {
                    id_hash: r.try_get(0)?,
                    sealed: r.try_get(1)?,
                    key_version: r.try_get(2)?,
                });
            }
        }
        Ok(out)
    }

    /// The centrally generated key waiting on an application, if any.
    pub async fn waiting_key(&self, reference: &str) -> Result<Option<Vec<u8>>> {
        let r: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT key_sealed FROM ra_applications WHERE reference = $1")
                .bind(reference)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.and_then(|(k,)| k))
    }
}
