//! Issuers, certificates, CRLs: rows and queries.

use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};

use crate::{AnyConnection, Result, Store, StoreError, conflict_or};

#[derive(Clone, Debug)]
pub struct IssuerRow {
    pub id: String,
    pub subject: String,
    pub cert: Vec<u8>,
    pub parent: Option<String>,
    pub key_label: String,
    pub is_root: bool,
    pub created_at: i64,
}

/// A certificate about to be signed: its serial and linted TBS are stored
/// first, so a certificate can never exist that the database does not know.
#[derive(Clone, Debug)]
pub struct NewCert {
    pub issuer: String,
    pub serial: String,
    pub profile: String,
    pub subject: String,
    pub tbs: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub shard: i64,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRow {
    pub issuer: String,
    pub serial: String,
    pub status: String,
    pub profile: String,
    pub subject: String,
    pub cert: Option<Vec<u8>>,
    pub not_before: i64,
    pub not_after: i64,
    pub shard: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub reason: Option<i64>,
    pub changed_at: i64,
}

macro_rules! cert_cols {
    () => {
        "issuer, serial, status, profile, subject, cert, not_before, not_after, shard, created_at, revoked_at, reason, changed_at"
    };
}

/// A page of certificates, newest first, before a (created_at, serial)
/// cursor: a range scan of the `certificates_created` index.
macro_rules! list_certs {
    () => {
        concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE (created_at, serial) < ($1, $2) \
             ORDER BY created_at DESC, serial DESC LIMIT $3"
        )
    };
}
const LIST_CERTS: &str = list_certs!();

/// A certificate by its key: issuer ($1) and serial ($2).
macro_rules! get_cert {
    () => {
        concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE issuer = $1 AND serial = $2"
        )
    };
}

fn cert_row(r: &AnyRow) -> Result<CertRow> {
    Ok(CertRow {
        issuer: r.try_get(0)?,
        serial: r.try_get(1)?,
        status: r.try_get(2)?,
        profile: r.try_get(3)?,
        subject: r.try_get(4)?,
        cert: r.try_get(5)?,
        not_before: r.try_get(6)?,
        not_after: r.try_get(7)?,
        shard: r.try_get(8)?,
        created_at: r.try_get(9)?,
        revoked_at: r.try_get(10)?,
        reason: r.try_get(11)?,
        changed_at: r.try_get(12)?,
    })
}

/// Full-CRL rows use this shard number.
pub const FULL_CRL: i64 = -1;

pub async fn insert_issuer(conn: &mut AnyConnection, i: &IssuerRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO issuers (id, subject, cert, parent, key_label, is_root, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&i.id)
    .bind(&i.subject)
    .bind(i.cert.clone())
    .bind(i.parent.clone())
    .bind(&i.key_label)
    .bind(i.is_root as i64)
    .bind(i.created_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| conflict_or(e, || format!("an issuing CA named {:?} already exists", i.id)))?;
    sqlx::query("INSERT INTO crl_numbers (issuer, next) VALUES ($1, 1)")
        .bind(&i.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Rows per multi-row statement (SQLite allows 32,766 parameters).
pub const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Revocations per read when following them by time of change.
const REVOKED_PAGE: usize = 4096;

/// Splits `items` into chunks whose lengths are powers of two (at most
/// [`MAX_ROWS_PER_STATEMENT`]), so multi-row statements come in a few
/// shapes that stay in the prepared-statement cache instead of being
/// prepared anew for every batch size.
pub fn pow2_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let n = items.len().min(MAX_ROWS_PER_STATEMENT);
        let size = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let (head, tail) = items.split_at(size);
        items = tail;
        Some(head)
    })
}

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
    let mut ours: Vec<(String, String)> = sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args)
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
    let q = sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args);
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

/// Revokes an issued certificate. Revocation is final (also enforced by a
/// database trigger).
pub async fn revoke(
    conn: &mut AnyConnection,
    issuer: &str,
    serial: &str,
    revoked_at: i64,
    reason: i64,
    now: i64,
) -> Result<CertRow> {
    let row = sqlx::query(concat!(
        "SELECT ",
        cert_cols!(),
        " FROM certificates WHERE issuer = $1 AND serial = $2"
    ))
    .bind(issuer)
    .bind(serial)
    .fetch_optional(&mut *conn)
    .await?;
    let mut c = match row {
        Some(r) => cert_row(&r)?,
        None => {
            return Err(StoreError::NotFound(format!(
                "no certificate with serial {serial}"
            )));
        }
    };
    if c.status != "issued" {
        return Err(StoreError::Conflict(format!(
            "certificate {serial} was never issued (status {})",
            c.status
        )));
    }
    if c.revoked_at.is_some() {
        return Err(StoreError::Conflict(format!(
            "certificate {serial} is already revoked; a revocation cannot be changed"
        )));
    }
    let done = sqlx::query(
        "UPDATE certificates SET revoked_at = $1, reason = $2, changed_at = $3 WHERE issuer = $4 AND serial = $5 AND revoked_at IS NULL",
    )
    .bind(revoked_at)
    .bind(reason)
    .bind(now)
    .bind(issuer)
    .bind(serial)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        // Revoked by someone else between our read and our write.
        return Err(StoreError::Conflict(format!(
            "certificate {serial} is already revoked; a revocation cannot be changed"
        )));
    }
    owe_crl(conn, issuer, c.shard, now).await?;
    c.revoked_at = Some(revoked_at);
    c.reason = Some(reason);
    c.changed_at = now;
    Ok(c)
}

/// Records, in the revocation's transaction, that the issuer's CRL for
/// `shard` and its full CRL are due (two debts: they are made apart).
async fn owe_crl(conn: &mut AnyConnection, issuer: &str, shard: i64, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO crls_due (issuer, shard, version, changed_at) VALUES ($1, $2, 1, $4), ($1, $3, 1, $4) \
         ON CONFLICT (issuer, shard) DO UPDATE SET version = crls_due.version + 1, changed_at = excluded.changed_at",
    )
    .bind(issuer)
    .bind(shard)
    .bind(FULL_CRL)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A CRL debt as read: (issuer, shard, version, changed_at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlDue {
    pub issuer: String,
    pub shard: i64,
    pub version: i64,
    pub changed_at: i64,
}

/// Marks debts paid by CRLs whose numbers were taken after `paid` was
/// read, up to the versions read: a debt a revocation renewed since (a
/// higher version) stays owed.
pub async fn clear_crls_due(conn: &mut AnyConnection, paid: &[CrlDue]) -> Result<()> {
    for d in paid {
        sqlx::query(
            "UPDATE crls_due SET paid = CASE WHEN paid > $3 THEN paid ELSE $3 END WHERE issuer = $1 AND shard = $2",
        )
            .bind(&d.issuer)
            .bind(d.shard)
            .bind(d.version)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Marks every debt of an issuer paid (its CRL was imported: made elsewhere).
pub async fn clear_all_crls_due(conn: &mut AnyConnection, issuer: &str) -> Result<()> {
    sqlx::query("UPDATE crls_due SET paid = version WHERE issuer = $1")
        .bind(issuer)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes an issuer's next CRL number and the thisUpdate of its CRL, in one
/// statement, so that concurrent generators (several processes) never
/// share a number (RFC 5280 §5.2.3: CRL numbers increase) and a CRL
/// numbered after another is never dated before it: the thisUpdate is
/// `now` or the latest one given, whichever is later, unless the latest
/// is more than 5 minutes ahead of `now` (a clock that ran fast, since
/// corrected): every later CRL would carry that future date, which relying
/// parties refuse, so `now` is taken instead.
///
/// The number is never below `floor` (the caller's clock in
/// milliseconds), so that an installation restored from an older backup,
/// whose counter went back with it, does not give out a number again for
/// a different CRL. Above the floor, numbers go up by one, so they stay
/// monotonic when the clock steps back.
pub async fn next_crl_number(
    conn: &mut AnyConnection,
    issuer: &str,
    floor: i64,
    now: i64,
) -> Result<(i64, i64)> {
    let r: (i64, i64) = sqlx::query_as(
        "UPDATE crl_numbers SET next = (CASE WHEN next > $2 THEN next ELSE $2 END) + 1, \
         this_update = CASE WHEN this_update > $3 AND this_update <= $3 + 300 THEN this_update ELSE $3 END \
         WHERE issuer = $1 RETURNING next - 1, this_update",
    )
    .bind(issuer)
    .bind(floor)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r)
}

/// Files a CA certificate as an issued certificate of its parent (so that
/// it can be revoked and listed on the parent's CRL); nothing if it is
/// there already.
pub async fn record_ca_certificate(
    conn: &mut AnyConnection,
    c: &NewCert,
    cert: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO certificates (issuer, serial, status, profile, subject, cert, not_before, not_after, shard, created_at, changed_at) \
         VALUES ($1, $2, 'issued', $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (issuer, serial) DO NOTHING",
    )
    .bind(&c.issuer)
    .bind(&c.serial)
    .bind(&c.profile)
    .bind(&c.subject)
    .bind(cert.to_vec())
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(c.shard)
    .bind(c.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The number of the CRL published for an issuer's partition, if any.
pub async fn crl_number(conn: &mut AnyConnection, issuer: &str, shard: i64) -> Result<Option<i64>> {
    let r: Option<(i64,)> =
        sqlx::query_as("SELECT number FROM crls WHERE issuer = $1 AND shard = $2")
            .bind(issuer)
            .bind(shard)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(r.map(|r| r.0))
}

pub async fn put_crl(
    conn: &mut AnyConnection,
    issuer: &str,
    shard: i64,
    number: i64,
    this_update: i64,
    next_update: i64,
    der: &[u8],
) -> Result<bool> {
    // One statement (no collision between processes), and never a CRL
    // over one with a higher number: false when a newer one is there.
    let done = sqlx::query(
        "INSERT INTO crls (issuer, shard, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (issuer, shard) DO UPDATE SET number = excluded.number, this_update = excluded.this_update, \
         next_update = excluded.next_update, der = excluded.der WHERE crls.number < excluded.number",
    )
    .bind(issuer)
    .bind(shard)
    .bind(number)
    .bind(this_update)
    .bind(next_update)
    .bind(der.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Clone, Debug)]
pub struct CrlRow {
    pub issuer: String,
    pub shard: i64,
    pub number: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub der: Vec<u8>,
}

impl Store {
    /// CRL debts (see `revoke`): of one issuer, or of all, optionally only
    /// those unchanged since `before` (left by a process that did not pay).
    pub async fn crls_due(&self, issuer: Option<&str>, before: Option<i64>) -> Result<Vec<CrlDue>> {
        let rows = self
            .read(|| async move {
                Ok(sqlx::query(
                    "SELECT issuer, shard, version, changed_at FROM crls_due \
                     WHERE version > paid AND (CAST($1 AS TEXT) IS NULL OR issuer = $1) AND changed_at < $2 ORDER BY issuer, shard",
                )
                .bind(issuer)
                .bind(before.unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CrlDue {
                    issuer: r.try_get(0)?,
                    shard: r.try_get(1)?,
                    version: r.try_get(2)?,
                    changed_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn issuers(&self) -> Result<Vec<IssuerRow>> {
        let rows = self
            .read(|| async move {
                Ok(sqlx::query(
                    "SELECT id, subject, cert, parent, key_label, is_root, created_at FROM issuers ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(IssuerRow {
                    id: r.try_get(0)?,
                    subject: r.try_get(1)?,
                    cert: r.try_get(2)?,
                    parent: r.try_get(3)?,
                    key_label: r.try_get(4)?,
                    is_root: r.try_get::<i64, _>(5)? != 0,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Finds a certificate by serial (hex), optionally under one issuer.
    /// Serials are unique per issuer; across issuers the oldest wins.
    ///
    /// Looked up in the (issuer, serial) key once per issuer (there are a
    /// few): by serial alone the query read the whole table (0.2 s at a
    /// million certificates on SQLite, on every revocation, API lookup and
    /// mutual-TLS admin request), and with the issuers in a subquery
    /// PostgreSQL's planner, without statistics on that small table, still
    /// chose to walk a whole index.
    pub async fn get_cert(&self, issuer: Option<&str>, serial: &str) -> Result<CertRow> {
        let rows = self
            .read(|| async move {
                let issuers: Vec<String> = match issuer {
                    Some(i) => vec![i.to_string()],
                    None => sqlx::query_as::<_, (String,)>("SELECT id FROM issuers ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(|r| r.0)
                        .collect(),
                };
                let mut rows = Vec::new();
                for i in &issuers {
                    rows.extend(
                        sqlx::query(get_cert!())
                            .bind(i)
                            .bind(serial)
                            .fetch_optional(&self.pool)
                            .await?,
                    );
                }
                Ok(rows)
            })
            .await?;
        let rows = rows
            .iter()
            .map(cert_row)
            .collect::<Result<Vec<CertRow>>>()?;
        rows.into_iter()
            .min_by(|a, b| (a.created_at, &a.issuer).cmp(&(b.created_at, &b.issuer)))
            .ok_or_else(|| StoreError::NotFound(format!("no certificate with serial {serial}")))
    }

    /// Lists certificates, newest first, `limit` at a time; `before` is the
    /// (created_at, serial) of the last row of the previous page.
    pub async fn list_certs(
        &self,
        limit: i64,
        before: Option<(i64, String)>,
    ) -> Result<Vec<CertRow>> {
        let (ts, serial) = before.unwrap_or((i64::MAX, String::new()));
        let serial = serial.as_str();
        let rows = self
            .read(|| async move {
                Ok(sqlx::query(LIST_CERTS)
                    .bind(ts)
                    .bind(serial)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            })
            .await?;
        rows.iter().map(cert_row).collect()
    }

    /// Calls `f(issuer, serial, changed_at)` for every certificate revoked
    /// at or after `since` (by its time of change), for dropping cached OCSP
    /// responses across processes. Read in short pages, without the
    /// certificates: a mass revocation (a compromised issuing CA) is neither
    /// loaded at once nor read in one long query (which would keep SQLite's
    /// WAL from being reset behind it). Each page is read again after a lost
    /// connection.
    pub async fn for_each_revoked_since(
        &self,
        since: i64,
        f: impl FnMut(&str, &str, i64),
    ) -> Result<u64> {
        self.for_each_revoked_since_paged(since, REVOKED_PAGE, f)
            .await
    }

    pub(crate) async fn for_each_revoked_since_paged(
        &self,
        since: i64,
        page: usize,
        mut f: impl FnMut(&str, &str, i64),
    ) -> Result<u64> {
        let page = page.max(1);
        // Keyset pagination on (changed_at, issuer, serial), which the
        // partial index certificates_changed holds in that order.
        let mut after = (since, String::new(), String::new());
        let mut n = 0;
        loop {
            let at = &after;
            let rows: Vec<(String, String, i64)> = self
                .read(|| async move {
                    Ok(sqlx::query_as(
                        "SELECT issuer, serial, changed_at FROM certificates WHERE revoked_at IS NOT NULL AND (changed_at, issuer, serial) > ($1, $2, $3) ORDER BY changed_at, issuer, serial LIMIT $4",
                    )
                    .bind(at.0)
                    .bind(&at.1)
                    .bind(&at.2)
                    .bind(page as i64)
                    .fetch_all(&self.pool)
                    .await?)
                })
                .await?;
            let full = rows.len() >= page;
            for (issuer, serial, changed_at) in &rows {
                f(issuer, serial, *changed_at);
                n += 1;
            }
            match rows.into_iter().last() {
                Some((issuer, serial, changed_at)) if full => after = (changed_at, issuer, serial),
                _ => return Ok(n),
            }
        }
    }

    /// Streams the unexpired revoked certificates of an issuer (one shard or
    /// all) as (serial hex, revoked_at, reason), in serial order.
    pub async fn for_each_revoked(
        &self,
        issuer: &str,
        shard: Option<i64>,
        now: i64,
        mut f: impl FnMut(&str, i64, i64) -> Result<()>,
    ) -> Result<u64> {
        use futures_util::TryStreamExt;
        let mut conn = self.pool.acquire().await?;
        let sql = if shard.is_some() {
            "SELECT serial, revoked_at, reason FROM certificates WHERE issuer = $1 AND revoked_at IS NOT NULL AND not_after >= $2 AND shard = $3"
        } else {
            "SELECT serial, revoked_at, reason FROM certificates WHERE issuer = $1 AND revoked_at IS NOT NULL AND not_after >= $2 AND $3 = $3"
        };
        let mut rows = sqlx::query(sql)
            .bind(issuer)
            .bind(now)
            .bind(shard.unwrap_or(0))
            .fetch(&mut *conn);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let serial: &str = r.try_get(0)?;
            f(
                serial,
                r.try_get(1)?,
                r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
            )?;
            n += 1;
        }
        Ok(n)
    }

    /// A page of the issued, unexpired certificates of an issuer, in serial
    /// order after `after` (empty for the first page), as (serial hex,
    /// revoked_at, reason), for pre-signing OCSP responses. Each page is a
    /// short read of its own: walking millions of certificates holds no
    /// snapshot open (which on SQLite would keep the WAL from being reset
    /// while issuance goes on, and on PostgreSQL hold back vacuum).
    pub async fn live_page(
        &self,
        issuer: &str,
        now: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, Option<i64>, i64)>> {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = self
            .read(|| async move {
                Ok(sqlx::query_as(
                    "SELECT serial, revoked_at, reason FROM certificates \
                     WHERE issuer = $1 AND serial > $2 AND status = 'issued' AND not_after >= $3 \
                     ORDER BY serial LIMIT $4",
                )
                .bind(issuer)
                .bind(after)
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(s, at, reason)| (s, at, reason.unwrap_or(0)))
            .collect())
    }

    /// Shards holding revoked, unexpired certificates of an issuer.
    pub async fn revoked_shards(&self, issuer: &str, now: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT shard FROM certificates WHERE issuer = $1 AND revoked_at IS NOT NULL AND not_after >= $2 ORDER BY shard",
        )
        .bind(issuer)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn get_crl(&self, issuer: &str, shard: i64) -> Result<CrlRow> {
        let r = self
            .read(|| async move {
                Ok(sqlx::query("SELECT issuer, shard, number, this_update, next_update, der FROM crls WHERE issuer = $1 AND shard = $2")
                    .bind(issuer)
                    .bind(shard)
                    .fetch_optional(&self.pool)
                    .await?)
            })
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no CRL for {issuer} shard {shard}")))?;
        Ok(CrlRow {
            issuer: r.try_get(0)?,
            shard: r.try_get(1)?,
            number: r.try_get(2)?,
            this_update: r.try_get(3)?,
            next_update: r.try_get(4)?,
            der: r.try_get(5)?,
        })
    }

    pub async fn crls(&self) -> Result<Vec<(String, i64, i64, i64)>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT issuer, shard, number, next_update FROM crls ORDER BY issuer, shard",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Marks pending rows older than `before` abandoned: their certificate
    /// was never stored, so it was never handed out. The serial stays
    /// reserved for ever.
    pub async fn abandon_pending(&self, before: i64, now: i64) -> Result<u64> {
        let r = sqlx::query("UPDATE certificates SET status = 'abandoned', changed_at = $1 WHERE status = 'pending' AND created_at < $2")
            .bind(now)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn count_certs(&self) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM certificates GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

/// A revoked certificate made up for benchmarks and load tests.
pub struct SyntheticRevoked {
    pub serial: String,
    pub revoked_at: i64,
    pub reason: i64,
    pub not_after: i64,
    pub shard: i64,
}

impl Store {
    /// Inserts made-up revoked certificates (no certificate body) for CRL
    /// benchmarks. Never used by the CA itself.
    pub async fn insert_synthetic_revoked(
        &self,
        issuer: &str,
        rows: &[SyntheticRevoked],
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO certificates (issuer, serial, status, profile, subject, not_before, not_after, shard, created_at, revoked_at, reason, changed_at) VALUES ",
            );
            sql.push_str(&crate::values_list(chunk.len(), 12));
            // Placeholders only; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(issuer.to_string())
                    .bind(r.serial.clone())
                    .bind("issued")
                    .bind("bench")
                    .bind("CN=bench")
                    .bind(now)
                    .bind(r.not_after)
                    .bind(r.shard)
                    .bind(now)
                    .bind(r.revoked_at)
                    .bind(r.reason)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A SQLite store in a fresh directory of its own, removed on drop.
    pub(crate) struct TempSqlite {
        pub store: Store,
        pub dir: std::path::PathBuf,
    }

    impl Drop for TempSqlite {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub(crate) async fn temp_sqlite(tag: &str) -> TempSqlite {
        let dir = std::env::temp_dir().join(format!("hm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.display()))
            .await
            .unwrap();
        TempSqlite { store, dir }
    }

    /// A PostgreSQL store in a database of its own on the server of
    /// HALLMARK_TEST_DATABASE_URL; None when that is not set (refused when
    /// HALLMARK_REQUIRE_POSTGRES is, as CI sets it). `remove` drops it.
    pub(crate) struct TempPg {
        pub store: Store,
        admin: Store,
        drop_sql: String,
    }

    impl TempPg {
        pub(crate) async fn remove(self) {
            self.store.pool().close().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(self.drop_sql))
                .execute(self.admin.pool())
                .await
                .unwrap();
        }
    }

    pub(crate) async fn temp_postgres(tag: &str) -> Option<TempPg> {
        let Ok(base) = std::env::var("HALLMARK_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("HALLMARK_REQUIRE_POSTGRES").is_err(),
                "HALLMARK_REQUIRE_POSTGRES is set but HALLMARK_TEST_DATABASE_URL is not"
            );
            eprintln!("PostgreSQL not configured (HALLMARK_TEST_DATABASE_URL); SQLite only");
            return None;
        };
        let name = format!("hm_test_{}_{}", tag.replace('-', "_"), std::process::id());
        let admin = Store::connect(&base).await.unwrap();
        let drop_sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        for sql in [drop_sql.clone(), format!("CREATE DATABASE {name}")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(admin.pool())
                .await
                .unwrap();
        }
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("HALLMARK_TEST_DATABASE_URL has no database name: {base}"),
        };
        let store = Store::connect(&url).await.unwrap();
        Some(TempPg {
            store,
            admin,
            drop_sql,
        })
    }

    /// Runs a storage test on SQLite, then on PostgreSQL when configured.
    pub(crate) async fn on_each_backend(tag: &str, test: impl AsyncFn(&Store)) {
        let t = temp_sqlite(tag).await;
        test(&t.store).await;
        if let Some(pg) = temp_postgres(tag).await {
            test(&pg.store).await;
            pg.remove().await;
        }
    }

    /// Stores `rows` as issued certificates, each "signed" as its TBS.
    pub(crate) async fn issue_all(conn: &mut AnyConnection, rows: &[NewCert]) {
        for chunk in rows.chunks(100) {
            reserve_many(conn, &chunk.iter().collect::<Vec<_>>())
                .await
                .unwrap();
            let fins: Vec<Finalize<'_>> = chunk
                .iter()
                .map(|c| Finalize {
                    issuer: &c.issuer,
                    serial: &c.serial,
                    cert: &c.tbs,
                    escrow: None,
                })
                .collect();
            finalize_many(conn, &fins.iter().collect::<Vec<_>>())
                .await
                .unwrap();
        }
    }

    /// A pending certificate of the issuer "ca" whose TBS is its serial.
    pub(crate) fn cert(serial: &str) -> NewCert {
        NewCert {
            issuer: "ca".into(),
            serial: serial.into(),
            profile: "p".into(),
            subject: "CN=x".into(),
            tbs: serial.as_bytes().to_vec(),
            not_before: 1,
            not_after: 2,
            shard: 0,
            created_at: 1,
        }
    }

    /// The issuer "ca" the storage tests file certificates under.
    pub(crate) fn issuer_row() -> IssuerRow {
        IssuerRow {
            id: "ca".into(),
            subject: "CN=ca".into(),
            cert: vec![1],
            parent: None,
            key_label: "k".into(),
            is_root: false,
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn batch_writes_single_out_collisions() {
        let t = temp_sqlite("store").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let (a, b, c) = (cert("aa"), cert("bb"), cert("cc"));
        assert_eq!(reserve_many(&mut tx, &[&a]).await.unwrap().len(), 1);
        // "aa" is taken: only "bb" and "cc" are ours.
        let mut taken = a.clone();
        taken.tbs = b"another".to_vec();
        let got = reserve_many(&mut tx, &[&taken, &b, &c]).await.unwrap();
        assert_eq!(
            got,
            vec![
                ("ca".to_string(), "bb".to_string()),
                ("ca".to_string(), "cc".to_string())
            ]
        );
        // The same reservation again (a batch re-run after its answer was
        // lost) is still ours; a different TBS under that serial is not.
        let got = reserve_many(&mut tx, &[&taken, &a]).await.unwrap();
        assert_eq!(got, vec![("ca".to_string(), "aa".to_string())]);
        let f = |serial: &'static str| Finalize {
            issuer: "ca",
            serial,
            cert: serial.as_bytes(),
            escrow: None,
        };
        let (fa, fz) = (f("aa"), f("zz"));
        assert_eq!(
            finalize_many(&mut tx, &[&fa]).await.unwrap().stored.len(),
            1
        );
        // "aa" is no longer pending and "zz" never was.
        let (fb, fa2) = (f("bb"), f("aa"));
        let got = finalize_many(&mut tx, &[&fa2, &fb, &fz]).await.unwrap();
        assert_eq!(
            got,
            Finalized {
                stored: vec![("ca".to_string(), "bb".to_string())],
                already: vec![("ca".to_string(), "aa".to_string())],
            }
        );
        tx.rollback().await.unwrap();
    }

    /// Pages of live certificates cover every issued, unexpired one once, in
    /// serial order, and nothing pending or expired.
    #[tokio::test]
    async fn live_pages_cover_each_live_certificate_once() {
        let t = temp_sqlite("pages").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let rows: Vec<NewCert> = (0..600)
            .map(|i| {
                let mut c = cert(&format!("{:04x}", (i * 7919) % 65536));
                // Every tenth has expired at time 10.
                c.not_after = if i % 10 == 0 { 5 } else { 100 };
                c
            })
            .collect();
        issue_all(&mut tx, &rows[..550]).await;
        // The last 50 stay pending.
        reserve_many(&mut tx, &rows[550..].iter().collect::<Vec<_>>())
            .await
            .unwrap();
        crate::commit(tx).await.unwrap();
        let mut want: Vec<String> = rows[..550]
            .iter()
            .filter(|c| c.not_after == 100)
            .map(|c| c.serial.clone())
            .collect();
        want.sort();
        let (mut got, mut after, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = store.live_page("ca", 10, &after, 64).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.0.clone();
            pages += 1;
            got.extend(page.into_iter().map(|r| r.0));
        }
        assert_eq!(got, want);
        assert_eq!(pages, want.len().div_ceil(64));
    }

    /// Pages of the certificate list cover every certificate once, newest
    /// first and by serial within a second, and each page is a range scan
    /// of the index (not a sort of everything issued).
    #[tokio::test]
    async fn list_pages_walk_the_index() {
        let t = temp_sqlite("list").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        // 300 certificates in 4 seconds (75 a second).
        let rows: Vec<NewCert> = (0..300)
            .map(|i| {
                let mut c = cert(&format!("{:04x}", (i * 7919) % 65536));
                c.created_at = 1_000 + i / 75;
                c
            })
            .collect();
        issue_all(&mut tx, &rows).await;
        crate::commit(tx).await.unwrap();
        let mut want: Vec<(i64, String)> = rows
            .iter()
            .map(|c| (c.created_at, c.serial.clone()))
            .collect();
        want.sort();
        want.reverse();
        let (mut got, mut before, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = store.list_certs(40, before.clone()).await.unwrap();
            let Some(last) = page.last() else { break };
            before = Some((last.created_at, last.serial.clone()));
            pages += 1;
            got.extend(page.into_iter().map(|r| (r.created_at, r.serial)));
        }
        assert_eq!(got, want);
        assert_eq!(pages, 300usize.div_ceil(40));

        let plan: Vec<String> = sqlx::query(concat!("EXPLAIN QUERY PLAN ", list_certs!()))
            .bind(1_002i64)
            .bind("8000")
            .bind(40i64)
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|p| p.contains("USING INDEX certificates_created")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// A certificate found by serial alone is looked up in the (issuer,
    /// serial) key of each issuer, not by reading the whole table.
    #[tokio::test]
    async fn lookup_by_serial_uses_the_key() {
        let t = temp_sqlite("by-serial").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let mut other = issuer_row();
        other.id = "cb".into();
        insert_issuer(&mut tx, &other).await.unwrap();
        let mut rows: Vec<NewCert> = (0..50).map(|i| cert(&format!("{i:02x}"))).collect();
        rows.push(NewCert {
            issuer: "cb".into(),
            created_at: 5,
            ..cert("07")
        });
        issue_all(&mut tx, &rows).await;
        crate::commit(tx).await.unwrap();
        // The oldest of two with one serial, unless the issuer is named.
        assert_eq!(store.get_cert(None, "07").await.unwrap().issuer, "ca");
        assert_eq!(store.get_cert(Some("cb"), "07").await.unwrap().issuer, "cb");
        assert!(matches!(
            store.get_cert(Some("cb"), "08").await,
            Err(StoreError::NotFound(_))
        ));
        let plan: Vec<String> = sqlx::query(concat!("EXPLAIN QUERY PLAN ", get_cert!()))
            .bind("ca")
            .bind("07")
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|p| p.starts_with("SEARCH certificates USING INDEX")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|p| p.starts_with("SCAN certificates")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn revocations_since_a_time() {
        let t = temp_sqlite("revoked-since").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let rows: Vec<NewCert> = ["0a", "0b", "0c"].iter().map(|s| cert(s)).collect();
        issue_all(&mut tx, &rows).await;
        revoke(&mut tx, "ca", "0a", 100, 1, 100).await.unwrap();
        revoke(&mut tx, "ca", "0c", 200, 1, 200).await.unwrap();
        crate::commit(tx).await.unwrap();
        let seen = |since| async move {
            let mut v = Vec::new();
            let n = store
                .for_each_revoked_since(since, |i, s, at| v.push(format!("{i}/{s}@{at}")))
                .await
                .unwrap();
            assert_eq!(n as usize, v.len());
            v.sort();
            v
        };
        assert_eq!(seen(0).await, ["ca/0a@100", "ca/0c@200"]);
        assert_eq!(seen(150).await, ["ca/0c@200"]);
        assert!(seen(201).await.is_empty());
    }

    /// CRL numbers never fall below the clock (in ms) and never repeat,
    /// also when the counter goes back (a restored backup) or the clock does.
    #[tokio::test]
    async fn crl_numbers_follow_the_clock_and_only_rise() {
        on_each_backend("crl-numbers", async |store: &Store| {
            let mut tx = store.begin().await.unwrap();
            insert_issuer(&mut tx, &issuer_row()).await.unwrap();
            let mut take = async |floor: i64, now: i64| {
                next_crl_number(&mut tx, "ca", floor, now).await.unwrap()
            };
            assert_eq!(take(5_000, 5).await, (5_000, 5));
            assert_eq!(take(5_000, 5).await, (5_001, 5));
            // The clock stepped back (or another process's is behind): the
            // number still rises, and the date does not go back.
            assert_eq!(take(4_000, 4).await, (5_002, 5));
            assert_eq!(take(6_000, 6).await, (6_000, 6));
            // Within 5 minutes ahead the latest date holds; further ahead (a
            // clock that ran fast) it is not followed.
            assert_eq!(take(7_000, 300).await, (7_000, 300));
            assert_eq!(take(7_000, 7).await, (7_001, 300));
            assert_eq!(take(9_000, 10_000).await, (9_000, 10_000));
            assert_eq!(take(9_000, 9).await, (9_001, 9));
            // Restored from a backup taken when the counter was at 3.
            sqlx::query("UPDATE crl_numbers SET next = 3 WHERE issuer = 'ca'")
                .execute(&mut *tx)
                .await
                .unwrap();
            assert_eq!(
                next_crl_number(&mut tx, "ca", 9_000, 9).await.unwrap(),
                (9_000, 9)
            );
            crate::commit(tx).await.unwrap();
        })
        .await;
    }

    /// A revocation leaves a CRL debt in its transaction; a generator that
    /// read the debt before a later revocation does not clear the later one.
    #[tokio::test]
    async fn crl_debts_are_cleared_only_as_read() {
        on_each_backend("crl-debts", async |store: &Store| {
            let mut tx = store.begin().await.unwrap();
            insert_issuer(&mut tx, &issuer_row()).await.unwrap();
            issue_all(&mut tx, &[cert("01"), cert("02"), cert("03")]).await;
            revoke(&mut tx, "ca", "01", 100, 1, 100).await.unwrap();
            crate::commit(tx).await.unwrap();
            let read = store.crls_due(Some("ca"), None).await.unwrap();
            let owed: Vec<_> = read.iter().map(|d| (d.shard, d.changed_at)).collect();
            assert_eq!(owed, [(FULL_CRL, 100), (cert("01").shard, 100)]);
            // Left by a process that did not pay: seen only once old enough.
            assert!(store.crls_due(None, Some(100)).await.unwrap().is_empty());
            assert_eq!(store.crls_due(None, Some(101)).await.unwrap(), read);
            assert!(store.crls_due(Some("cb"), None).await.unwrap().is_empty());
            // Another revocation after the read: the debt stays.
            let mut tx = store.begin().await.unwrap();
            revoke(&mut tx, "ca", "02", 105, 1, 105).await.unwrap();
            clear_crls_due(&mut tx, &read).await.unwrap();
            crate::commit(tx).await.unwrap();
            let again = store.crls_due(None, None).await.unwrap();
            assert_eq!(again.len(), 2);
            assert!(again[0].version > read[0].version && again[1].version > read[1].version);
            let mut tx = store.begin().await.unwrap();
            clear_crls_due(&mut tx, &again).await.unwrap();
            crate::commit(tx).await.unwrap();
            assert!(store.crls_due(None, None).await.unwrap().is_empty());
            // A slow generator that read the first debts clears late, after a
            // new revocation: the new debt stays (versions never start again).
            let mut tx = store.begin().await.unwrap();
            revoke(&mut tx, "ca", "03", 110, 1, 110).await.unwrap();
            clear_crls_due(&mut tx, &read).await.unwrap();
            crate::commit(tx).await.unwrap();
            assert_eq!(store.crls_due(None, None).await.unwrap().len(), 2);
            let mut tx = store.begin().await.unwrap();
            clear_all_crls_due(&mut tx, "ca").await.unwrap();
            crate::commit(tx).await.unwrap();
            assert!(store.crls_due(None, None).await.unwrap().is_empty());
        })
        .await;
    }

    /// On PostgreSQL too, a certificate by serial and a page of the list
    /// are read through an index: with sequential scans made as dear as
    /// they go, the plans name the index and no scan of the table (nor a
    /// sort of it).
    #[tokio::test]
    async fn postgres_lookups_use_their_indexes() {
        let Some(pg) = temp_postgres("plans").await else {
            return;
        };
        let mut tx = pg.store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let rows: Vec<NewCert> = (0..300)
            .map(|i| {
                let mut c = cert(&format!("{:04x}", (i * 7919) % 65536));
                c.created_at = 1_000 + i / 75;
                c
            })
            .collect();
        issue_all(&mut tx, &rows).await;
        crate::commit(tx).await.unwrap();
        let mut conn = pg.store.pool().acquire().await.unwrap();
        sqlx::query("ANALYZE").execute(&mut *conn).await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        let plan = |rows: Vec<AnyRow>| -> String {
            rows.iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let by_serial = plan(
            sqlx::query(concat!("EXPLAIN ", get_cert!()))
                .bind("ca")
                .bind("07")
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
        );
        assert!(
            by_serial.contains("certificates_pkey")
                && !by_serial.contains("Seq Scan on certificates"),
            "{by_serial}"
        );
        let page = plan(
            sqlx::query(concat!("EXPLAIN ", list_certs!()))
                .bind(1_002i64)
                .bind("8000")
                .bind(40i64)
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
        );
        assert!(
            page.contains("certificates_created")
                && !page.contains("Seq Scan")
                && !page.contains("Sort"),
            "{page}"
        );
        drop(conn);
        pg.remove().await;
    }

    /// A CRL never replaces one with a higher number (two processes
    /// generating at once, or an old CRL imported again).
    #[tokio::test]
    async fn crls_only_move_forward() {
        let t = temp_sqlite("crl-forward").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        assert!(
            put_crl(&mut tx, "ca", FULL_CRL, 11, 1, 2, b"eleven")
                .await
                .unwrap()
        );
        assert!(
            !put_crl(&mut tx, "ca", FULL_CRL, 10, 1, 2, b"ten")
                .await
                .unwrap()
        );
        assert!(
            !put_crl(&mut tx, "ca", FULL_CRL, 11, 1, 2, b"again")
                .await
                .unwrap()
        );
        assert_eq!(crl_number(&mut tx, "ca", FULL_CRL).await.unwrap(), Some(11));
        crate::commit(tx).await.unwrap();
        assert_eq!(store.get_crl("ca", FULL_CRL).await.unwrap().der, b"eleven");
        let mut tx = store.begin().await.unwrap();
        assert!(
            put_crl(&mut tx, "ca", FULL_CRL, 12, 1, 2, b"twelve")
                .await
                .unwrap()
        );
        assert_eq!(crl_number(&mut tx, "ca", 3).await.unwrap(), None);
        crate::commit(tx).await.unwrap();
        assert_eq!(store.get_crl("ca", FULL_CRL).await.unwrap().der, b"twelve");
    }

    /// Pages of two over revocations that share their time of change (a
    /// mass revocation happens within one second): every one is seen once,
    /// whatever the page boundaries.
    #[tokio::test]
    async fn revocations_since_a_time_in_pages() {
        let t = temp_sqlite("revoked-pages").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let mut other = issuer_row();
        other.id = "cb".into();
        insert_issuer(&mut tx, &other).await.unwrap();
        let serials: Vec<String> = (1..=7).map(|i| format!("{i:02x}")).collect();
        let mut rows: Vec<NewCert> = serials.iter().map(|s| cert(s)).collect();
        rows.extend(serials.iter().take(3).map(|s| NewCert {
            issuer: "cb".into(),
            ..cert(s)
        }));
        issue_all(&mut tx, &rows).await;
        for (i, r) in rows.iter().enumerate() {
            let at = if i < 5 { 100 } else { 101 };
            revoke(&mut tx, &r.issuer, &r.serial, at, 1, at)
                .await
                .unwrap();
        }
        crate::commit(tx).await.unwrap();
        let mut want: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{}/{}@{}",
                    r.issuer,
                    r.serial,
                    if i < 5 { 100 } else { 101 }
                )
            })
            .collect();
        want.sort();
        for page in [1, 2, 3, 10, 11] {
            let mut got = Vec::new();
            let n = store
                .for_each_revoked_since_paged(100, page, |i, s, at| {
                    got.push(format!("{i}/{s}@{at}"))
                })
                .await
                .unwrap();
            assert_eq!(n as usize, got.len());
            got.sort();
            assert_eq!(got, want, "pages of {page}");
        }
        let mut late = 0;
        store
            .for_each_revoked_since_paged(101, 2, |_, _, _| late += 1)
            .await
            .unwrap();
        assert_eq!(late, 5);
    }

    #[test]
    fn chunks_are_powers_of_two_and_cover_everything() {
        for n in 0..600usize {
            let v: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = pow2_chunks(&v).collect();
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= 256)
            );
            assert_eq!(chunks.concat(), v);
        }
    }
}
