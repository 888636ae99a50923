//! The registration authority's tables: the imported population registry
//! (`ra_residents`) and applications (`ra_applications`). Personal data
//! arrives here already sealed; this module never sees it in the clear.
//!
//! State changes of an application are conditional updates (`WHERE status
//! = …`), so two officers or two browser tabs acting at once cannot both
//! move it: the loser gets [`StoreError::Conflict`].

use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};

use crate::{AnyConnection, Result, Store, StoreError};

// ---------------------------------------------------------------- registry

/// One sealed registry record, keyed by the keyed hash of its ID number.
pub struct ResidentRow {
    pub id_hash: Vec<u8>,
    pub sealed: Vec<u8>,
    pub key_version: i64,
}

/// Imports (or replaces) registry records, many per statement.
pub async fn upsert_residents(
    conn: &mut AnyConnection,
    rows: &[ResidentRow],
    now: i64,
) -> Result<()> {
    for chunk in crate::pow2_chunks(rows) {
        let mut sql = String::from(
            "INSERT INTO ra_residents (id_hash, sealed, key_version, imported_at) VALUES ",
        );
        sql.push_str(&crate::values_list(chunk.len(), 4));
        sql.push_str(" ON CONFLICT (id_hash) DO UPDATE SET sealed = excluded.sealed, key_version = excluded.key_version, imported_at = excluded.imported_at");
        let mut args = AnyArguments::default();
        for r in chunk {
            crate::bind(&mut args, r.id_hash.clone())?;
            crate::bind(&mut args, r.sealed.clone())?;
            crate::bind(&mut args, r.key_version)?;
            crate::bind(&mut args, now)?;
        }
        // Placeholders only; every value is bound.
        sqlx::query_with(sqlx::AssertSqlSafe(crate::sql::positional(sql, conn)), args)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl Store {
    pub async fn resident(&self, id_hash: &[u8]) -> Result<Option<ResidentRow>> {
        let row =
            sqlx::query("SELECT id_hash, sealed, key_version FROM ra_residents WHERE id_hash = $1")
                .bind(id_hash.to_vec())
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(ResidentRow {
                id_hash: r.try_get(0)?,
                sealed: r.try_get(1)?,
                key_version: r.try_get(2)?,
            })
        })
        .transpose()
    }

    pub async fn resident_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ra_residents")
            .fetch_one(self.pool())
            .await?;
        Ok(n)
    }
}

// ------------------------------------------------------------ applications

#[derive(Clone, Debug, Default)]
pub struct ApplicationRow {
    pub reference: String,
    pub channel: String,
    pub centre: Option<String>,
    pub profile: String,
    pub id_hash: Vec<u8>,
    pub sealed: Vec<u8>,
    pub key_version: i64,
    pub status: String,
    pub registry: String,
    pub entered_by: String,
    pub approved_by: Option<String>,
    pub pin_mac: Option<Vec<u8>>,
    pub pin_failures: i64,
    pub mailers: i64,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// MAC of the random value sent to prove the e-mail address.
    pub email_mac: Option<Vec<u8>>,
    pub email_expires: i64,
    pub email_sends: i64,
    pub email_confirmed_at: Option<i64>,
    /// MAC of the revocation code on the latest PIN mailer.
    pub revoke_mac: Option<Vec<u8>>,
    /// The officer whose paper lost report awaits a supervisor.
    pub lost_requested_by: Option<String>,
    pub lost_at: Option<i64>,
    /// When the applicant opted in to marketing (None: not, or withdrawn).
    pub marketing_at: Option<i64>,
    /// The campaign batch it was imported in.
    pub batch: Option<String>,
}

const APP_COLUMNS: &str = "reference, channel, centre, profile, id_hash, sealed, key_version, status, registry, entered_by, approved_by, pin_mac, pin_failures, mailers, issuer, serial, created_at, updated_at, email_mac, email_expires, email_sends, email_confirmed_at, revoke_mac, lost_requested_by, lost_at, marketing_at, batch";

fn app_row(r: &AnyRow) -> Result<ApplicationRow> {
    Ok(ApplicationRow {
        reference: r.try_get(0)?,
        channel: r.try_get(1)?,
        centre: r.try_get(2)?,
        profile: r.try_get(3)?,
        id_hash: r.try_get(4)?,
        sealed: r.try_get(5)?,
        key_version: r.try_get(6)?,
        status: r.try_get(7)?,
        registry: r.try_get(8)?,
        entered_by: r.try_get(9)?,
        approved_by: r.try_get(10)?,
        pin_mac: r.try_get(11)?,
        pin_failures: r.try_get(12)?,
        mailers: r.try_get(13)?,
        issuer: r.try_get(14)?,
        serial: r.try_get(15)?,
        created_at: r.try_get(16)?,
        updated_at: r.try_get(17)?,
        email_mac: r.try_get(18)?,
        email_expires: r.try_get(19)?,
        email_sends: r.try_get(20)?,
        email_confirmed_at: r.try_get(21)?,
        revoke_mac: r.try_get(22)?,
        lost_requested_by: r.try_get(23)?,
        lost_at: r.try_get(24)?,
        marketing_at: r.try_get(25)?,
        batch: r.try_get(26)?,
    })
}

pub async fn insert_application(conn: &mut AnyConnection, a: &ApplicationRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO ra_applications (reference, channel, centre, profile, id_hash, sealed, key_version, status, registry, entered_by, created_at, updated_at, email_mac, email_expires, email_sends, marketing_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&a.reference)
    .bind(&a.channel)
    .bind(&a.centre)
    .bind(&a.profile)
    .bind(a.id_hash.clone())
    .bind(a.sealed.clone())
    .bind(a.key_version)
    .bind(&a.status)
    .bind(&a.registry)
    .bind(&a.entered_by)
    .bind(a.created_at)
    .bind(a.updated_at)
    .bind(a.email_mac.clone())
    .bind(a.email_expires)
    .bind(a.email_sends)
    .bind(a.marketing_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| crate::conflict_or(e, || format!("application {} exists", a.reference)))?;
    Ok(())
}

/// Reads an application inside a transaction.
pub async fn application(conn: &mut AnyConnection, reference: &str) -> Result<ApplicationRow> {
    let sql = format!("SELECT {APP_COLUMNS} FROM ra_applications WHERE reference = $1");
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no application {reference}")))?;
    app_row(&r)
}

/// Moves an application from `from` to `to` with the given column changes;
/// [`StoreError::Conflict`] if it was no longer in `from`.
pub async fn transition(
    conn: &mut AnyConnection,
    reference: &str,
    from: &str,
    to: &str,
    change: Change<'_>,
    now: i64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ra_applications SET status = $1, updated_at = $2,
            registry = COALESCE($3, registry),
            approved_by = COALESCE($4, approved_by),
            pin_mac = CASE WHEN $5 = 1 THEN $6 ELSE pin_mac END,
            pin_failures = CASE WHEN $5 = 1 THEN 0 ELSE pin_failures END,
            mailers = mailers + $7,
            issuer = COALESCE($8, issuer),
            serial = COALESCE($9, serial),
            email_mac = CASE WHEN $12 = 1 THEN $13 ELSE email_mac END,
            email_expires = COALESCE($14, email_expires),
            email_sends = email_sends + $15,
            email_confirmed_at = COALESCE($16, email_confirmed_at),
            revoke_mac = COALESCE($17, revoke_mac),
            lost_requested_by = CASE WHEN $18 = 1 THEN $19 ELSE lost_requested_by END,
            lost_at = COALESCE($20, lost_at),
            marketing_at = CASE WHEN $21 = 1 THEN $22 ELSE marketing_at END
         WHERE reference = $10 AND status = $11",
    )
    .bind(to)
    .bind(now)
    .bind(change.registry)
    .bind(change.approved_by)
    .bind(i64::from(change.pin_mac.is_some()))
    .bind(change.pin_mac.flatten().map(<[u8]>::to_vec))
    .bind(i64::from(change.new_mailer))
    .bind(change.issuer)
    .bind(change.serial)
    .bind(reference)
    .bind(from)
    .bind(i64::from(change.email_mac.is_some()))
    .bind(change.email_mac.flatten().map(<[u8]>::to_vec))
    .bind(change.email_expires)
    .bind(i64::from(change.email_sent))
    .bind(change.email_confirmed_at)
    .bind(change.revoke_mac.map(<[u8]>::to_vec))
    .bind(i64::from(change.lost_requested_by.is_some()))
    .bind(change.lost_requested_by.flatten())
    .bind(change.lost_at)
    .bind(i64::from(change.marketing_at.is_some()))
    .bind(change.marketing_at.flatten())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "application {reference} is no longer {from}"
        )));
    }
    Ok(())
}

/// Column changes of a [`transition`]; `None` keeps a column.
#[derive(Default)]
pub struct Change<'a> {
    pub registry: Option<&'a str>,
    pub approved_by: Option<&'a str>,
    /// `Some(Some(mac))` sets a new PIN (and clears its failures),
    /// `Some(None)` spends it.
    pub pin_mac: Option<Option<&'a [u8]>>,
    pub new_mailer: bool,
    pub issuer: Option<&'a str>,
    pub serial: Option<&'a str>,
    /// Like `pin_mac`, for the e-mail address's random value.
    pub email_mac: Option<Option<&'a [u8]>>,
    pub email_expires: Option<i64>,
    /// One more random value was sent.
    pub email_sent: bool,
    pub email_confirmed_at: Option<i64>,
    pub revoke_mac: Option<&'a [u8]>,
    /// `Some(Some(officer))` records a paper lost report, `Some(None)`
    /// clears it.
    pub lost_requested_by: Option<Option<&'a str>>,
    pub lost_at: Option<i64>,
    /// `Some(Some(t))` records consent to marketing, `Some(None)` withdraws it.
    pub marketing_at: Option<Option<i64>>,
}

/// Deletes applications that never completed (not collected, not being
/// issued) and were last changed before `before`, with their bookings and
/// unsent notices; returns how many. Seats of future bookings are freed.
pub async fn purge_incomplete(
    conn: &mut AnyConnection,
    before: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT reference FROM ra_applications WHERE status IN ('awaiting-registry', 'awaiting-approval', 'approved', 'rejected') AND serial IS NULL AND updated_at < $1 ORDER BY updated_at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let refs: Vec<String> = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    for r in &refs {
        sqlx::query(
            "UPDATE ra_slots SET booked = booked - 1 WHERE booked > 0 AND EXISTS (SELECT 1 FROM ra_bookings b WHERE b.reference = $1 AND b.status = 'booked' AND b.centre = ra_slots.centre AND b.starts_at = ra_slots.starts_at)",
        )
        .bind(r)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM ra_bookings WHERE reference = $1")
            .bind(r)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM outbox WHERE dedup_key LIKE $1")
            .bind(format!("email-confirm:{r}:%"))
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM ra_applications WHERE reference = $1")
            .bind(r)
            .execute(&mut *conn)
            .await?;
    }
    Ok(refs)
}

/// Counts a wrong PIN; returns the failures so far.
pub async fn pin_failure(conn: &mut AnyConnection, reference: &str) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "UPDATE ra_applications SET pin_failures = pin_failures + 1 WHERE reference = $1 RETURNING pin_failures",
    )
    .bind(reference)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

/// A collected certificate that a reminder may be due for.
pub struct ExpiringRow {
    pub reference: String,
    pub sealed: Vec<u8>,
    pub issuer: String,
    pub serial: String,
    pub not_after: i64,
}

impl Store {
    /// The application whose collected certificate is `(issuer, serial)`.
    pub async fn application_of_certificate(
        &self,
        issuer: &str,
        serial: &str,
    ) -> Result<Option<ApplicationRow>> {
        let sql =
            format!("SELECT {APP_COLUMNS} FROM ra_applications WHERE issuer = $1 AND serial = $2");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(issuer)
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(app_row).transpose()
    }

    pub async fn application(&self, reference: &str) -> Result<Option<ApplicationRow>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM ra_applications WHERE reference = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(app_row).transpose()
    }

    /// Applications in `status`, oldest first, after `(created_at,
    /// reference)` (keyset paging: the queue stays fast however long).
    pub async fn applications_in(
        &self,
        status: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<ApplicationRow>> {
        let (t, r) = after.unwrap_or((i64::MIN, ""));
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM ra_applications WHERE status = $1 AND (created_at, reference) > ($2, $3) ORDER BY created_at, reference LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status)
            .bind(t)
            .bind(r)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(app_row).collect()
    }

    /// Collected, unrevoked certificates whose notAfter falls in `(from,
    /// to]` and that have no notice under `key_prefix ‖ issuer ‖ ":" ‖
    /// serial` yet, after `(not_after, serial)` (keyset paging).
    pub async fn expiring_without_notice(
        &self,
        from: i64,
        to: i64,
        key_prefix: &str,
        after: (i64, &str),
        limit: i64,
    ) -> Result<Vec<ExpiringRow>> {
        let rows = sqlx::query(
            "SELECT a.reference, a.sealed, c.issuer, c.serial, c.not_after
             FROM certificates c JOIN ra_applications a ON a.issuer = c.issuer AND a.serial = c.serial
             WHERE a.status = 'activated' AND c.revoked_at IS NULL AND c.not_after > $1 AND c.not_after <= $2
               AND (c.not_after > $3 OR (c.not_after = $3 AND c.serial > $4))
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.dedup_key = $5 || c.issuer || ':' || c.serial)
             ORDER BY c.not_after, c.serial LIMIT $6",
        )
        .bind(from)
        .bind(to)
        .bind(after.0)
        .bind(after.1)
        .bind(key_prefix)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExpiringRow {
                    reference: r.try_get(0)?,
                    sealed: r.try_get(1)?,
                    issuer: r.try_get(2)?,
                    serial: r.try_get(3)?,
                    not_after: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Applications of one person (by the keyed hash of the ID number).
    pub async fn applications_of(&self, id_hash: &[u8]) -> Result<Vec<ApplicationRow>> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM ra_applications WHERE id_hash = $1 ORDER BY created_at"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_hash.to_vec())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(app_row).collect()
    }
}

impl Store {
    /// Applications (not of a campaign batch) the registry could not be
    /// asked about yet, oldest first.
    pub async fn pending_registry(&self, limit: i64) -> Result<Vec<ApplicationRow>> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM ra_applications WHERE status = 'awaiting-registry' AND registry = 'pending' AND batch IS NULL ORDER BY created_at, reference LIMIT $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(app_row).collect()
    }
}

impl Store {
    /// Applications per (channel, status).
    pub async fn applications_by_channel(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT channel, status, COUNT(*) FROM ra_applications GROUP BY channel, status",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }
}
