//! The issuance cycle's writes, many rows per statement: reservations
//! (pending rows), signed certificates in their place, and the
//! certificates of a batch stored at once.

use sqlx::any::AnyArguments;

use super::NewCert;
use crate::{AnyConnection, Result};

pub(crate) const RESERVE_HEAD: &str = "INSERT INTO certificates (issuer, serial, status, profile, subject, tbs, not_before, not_after, shard, created_at, changed_at) VALUES ";
pub(crate) const RESERVE_TAIL: &str = " ON CONFLICT DO NOTHING RETURNING issuer, serial";
pub(crate) const RESERVE_COLUMNS: usize = 11;

pub(crate) fn bind_reserve(args: &mut AnyArguments, c: &NewCert) -> Result<()> {
    crate::bind(args, c.issuer.clone())?;
    crate::bind(args, c.serial.clone())?;
    crate::bind(args, "pending")?;
    crate::bind(args, c.profile.clone())?;
    crate::bind(args, c.subject.clone())?;
    crate::bind(args, c.tbs.clone())?;
    crate::bind(args, c.not_before)?;
    crate::bind(args, c.not_after)?;
    crate::bind(args, c.shard)?;
    crate::bind(args, c.created_at)?;
    crate::bind(args, c.created_at)
}

/// Inserts pending certificates in one statement; returns the (issuer,
/// serial) pairs that are ours: inserted now, or found pending with the same
/// TBS (an earlier attempt of the same batch committed but its answer was
/// lost). The others were taken.
pub async fn reserve_many(
    conn: &mut AnyConnection,
    rows: &[&NewCert],
) -> Result<Vec<(String, String)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from(RESERVE_HEAD);
    sql.push_str(&crate::values_list(rows.len(), RESERVE_COLUMNS));
    sql.push_str(RESERVE_TAIL);
    let mut args = AnyArguments::default();
    for c in rows {
        bind_reserve(&mut args, c)?;
    }
    // The statement text is built from placeholders only; values are bound.
    let mut ours: Vec<(String, String)> =
        sqlx::query_as_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args)
            .fetch_all(&mut *conn)
            .await?;
    if ours.len() < rows.len() {
        let rest: Vec<&NewCert> = rows
            .iter()
            .filter(|c| !ours.contains(&(c.issuer.clone(), c.serial.clone())))
            .copied()
            .collect();
        ours.extend(same_reservations(conn, &rest).await?);
    }
    Ok(ours)
}

/// The (issuer, serial) pairs of `rows` already pending with the same TBS.
pub(crate) async fn same_reservations(
    conn: &mut AnyConnection,
    rows: &[&NewCert],
) -> Result<Vec<(String, String)>> {
    let mut same = Vec::new();
    for c in rows {
        if holds(conn, SAME_RESERVATION, &c.issuer, &c.serial, &c.tbs).await? {
            same.push((c.issuer.clone(), c.serial.clone()));
        }
    }
    Ok(same)
}

/// A reservation already stored by an earlier attempt of the same request
/// (the TBS holds the serial, the subject's key and the time, so no other
/// request has the same).
pub(crate) const SAME_RESERVATION: &str = "SELECT 1 FROM certificates WHERE issuer = $1 AND serial = $2 AND status = 'pending' AND tbs = $3";
/// A certificate already stored by an earlier attempt of the same request.
pub(crate) const SAME_CERTIFICATE: &str = "SELECT 1 FROM certificates WHERE issuer = $1 AND serial = $2 AND status = 'issued' AND cert = $3";

/// Whether the row (issuer, serial) holds `bytes`, asked by one of the
/// queries above.
pub(crate) async fn holds(
    conn: &mut AnyConnection,
    query: &'static str,
    issuer: &str,
    serial: &str,
    bytes: &[u8],
) -> Result<bool> {
    let found: Option<(i64,)> = sqlx::query_as(query)
        .bind(issuer.to_string())
        .bind(serial.to_string())
        .bind(bytes.to_vec())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// A certificate signed in a batch, stored with its row in one statement
/// (see `hallmark_authority::batch` for why a batch needs no reservation).
pub struct IssuedCert<'a> {
    pub row: &'a NewCert,
    pub cert: &'a [u8],
    pub escrow: Option<&'a [u8]>,
}

const INSERT_ISSUED: &str = "INSERT INTO certificates (issuer, serial, status, profile, subject, cert, escrow, not_before, not_after, shard, created_at, changed_at) VALUES ";

/// Inserts signed certificates, many per statement; a serial already used
/// is a [`crate::StoreError::Conflict`] (the caller's transaction then rolls back).
pub async fn insert_issued(conn: &mut AnyConnection, rows: &[IssuedCert<'_>]) -> Result<()> {
    for chunk in crate::pow2_chunks(rows) {
        let mut sql = String::from(INSERT_ISSUED);
        sql.push_str(&crate::values_list(chunk.len(), 12));
        let mut args = AnyArguments::default();
        for r in chunk {
            let c = r.row;
            crate::bind(&mut args, c.issuer.clone())?;
            crate::bind(&mut args, c.serial.clone())?;
            crate::bind(&mut args, "issued")?;
            crate::bind(&mut args, c.profile.clone())?;
            crate::bind(&mut args, c.subject.clone())?;
            crate::bind(&mut args, r.cert.to_vec())?;
            crate::bind(&mut args, r.escrow.map(<[u8]>::to_vec))?;
            crate::bind(&mut args, c.not_before)?;
            crate::bind(&mut args, c.not_after)?;
            crate::bind(&mut args, c.shard)?;
            crate::bind(&mut args, c.created_at)?;
            crate::bind(&mut args, c.created_at)?;
        }
        // Placeholders only; every value is bound.
        sqlx::query_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args)
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                crate::conflict_or(e, || "a serial number of the batch is taken".into())
            })?;
    }
    Ok(())
}

pub struct Finalize<'a> {
    pub issuer: &'a str,
    pub serial: &'a str,
    pub cert: &'a [u8],
    pub escrow: Option<&'a [u8]>,
}

/// What [`finalize_many`] did with each row.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Finalized {
    /// Pending rows that now hold their certificate.
    pub stored: Vec<(String, String)>,
    /// Rows that already held the same certificate (a retried request).
    pub already: Vec<(String, String)>,
}

pub(crate) const FINALIZE_HEAD: &str = "UPDATE certificates SET status = 'issued', cert = v.column3, tbs = NULL, escrow = v.column4 FROM (VALUES ";
pub(crate) const FINALIZE_TAIL: &str = ") AS v WHERE certificates.issuer = v.column1 AND certificates.serial = v.column2 AND certificates.status = 'pending' \
     RETURNING certificates.issuer, certificates.serial";
pub(crate) const FINALIZE_COLUMNS: usize = 4;

pub(crate) fn bind_finalize(args: &mut AnyArguments, f: &Finalize<'_>) -> Result<()> {
    crate::bind(args, f.issuer.to_string())?;
    crate::bind(args, f.serial.to_string())?;
    crate::bind(args, f.cert.to_vec())?;
    crate::bind(args, f.escrow.map(<[u8]>::to_vec))
}

/// Stores signed certificates of pending rows in one statement.
pub async fn finalize_many(conn: &mut AnyConnection, rows: &[&Finalize<'_>]) -> Result<Finalized> {
    let mut out = Finalized::default();
    if rows.is_empty() {
        return Ok(out);
    }
    let mut sql = String::from(FINALIZE_HEAD);
    sql.push_str(&crate::values_list(rows.len(), FINALIZE_COLUMNS));
    sql.push_str(FINALIZE_TAIL);
    let mut args = AnyArguments::default();
    for f in rows {
        bind_finalize(&mut args, f)?;
    }
    let q = sqlx::query_as_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args);
    out.stored = q.fetch_all(&mut *conn).await?;
    if out.stored.len() == rows.len() {
        return Ok(out);
    }
    // The rows not updated: stored before with the same certificate, or not ours.
    for f in rows {
        let key = (f.issuer.to_string(), f.serial.to_string());
        if out.stored.contains(&key) {
            continue;
        }
        if holds(conn, SAME_CERTIFICATE, f.issuer, f.serial, f.cert).await? {
            out.already.push(key);
        }
    }
    Ok(out)
}
