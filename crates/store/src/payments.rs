//! Payments of fees (`ra_payments`). A payment moves only forward, by
//! conditional updates, so a webhook that arrives twice changes nothing
//! the second time and one that arrives late cannot undo a later state.

use sqlx::Row;

use crate::{AnyConnection, Result, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRow {
    pub id: String,
    pub reference: String,
    pub amount_cents: i64,
    pub status: String,
    pub receipt_no: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn insert_payment(conn: &mut AnyConnection, p: &PaymentRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO ra_payments (id, reference, amount_cents, status, created_at, updated_at) VALUES ($1, $2, $3, 'created', $4, $4)",
    )
    .bind(&p.id)
    .bind(&p.reference)
    .bind(p.amount_cents)
    .bind(p.created_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| crate::conflict_or(e, || format!("payment {} exists", p.id)))?;
    Ok(())
}

/// Moves a payment from `from` to `to`; `false` if it was not in `from`
/// (a duplicate or out-of-order event). A capture takes the next receipt
/// number.
pub async fn advance(
    conn: &mut AnyConnection,
    id: &str,
    from: &str,
    to: &str,
    now: i64,
) -> Result<bool> {
    let done = if to == "captured" {
        sqlx::query(
            "UPDATE ra_payments SET status = $1, updated_at = $2,
                receipt_no = (SELECT COALESCE(MAX(receipt_no), 0) + 1 FROM ra_payments)
             WHERE id = $3 AND status = $4",
        )
    } else {
        sqlx::query(
            "UPDATE ra_payments SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
        )
    }
    .bind(to)
    .bind(now)
    .bind(id)
    .bind(from)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        crate::conflict_or(e, || "a receipt number was taken at the same moment".into())
    })?;
    Ok(done.rows_affected() == 1)
}

const PAY_COLUMNS: &str = "id, reference, amount_cents, status, receipt_no, created_at, updated_at";

fn pay_row(r: &sqlx::any::AnyRow) -> Result<PaymentRow> {
    Ok(PaymentRow {
        id: r.try_get(0)?,
        reference: r.try_get(1)?,
        amount_cents: r.try_get(2)?,
        status: r.try_get(3)?,
        receipt_no: r.try_get(4)?,
        created_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
    })
}

/// A collected, unrevoked certificate of `profile` with no captured
/// payment, for fee reminders and the unpaid policy.
pub struct UnpaidRow {
    pub reference: String,
    pub sealed: Vec<u8>,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
}

impl Store {
    /// Unpaid certificates of `profile` valid from `(from, to]`, with no
    /// notice under `key_prefix ‖ issuer ‖ ":" ‖ serial` (when given), after
    /// `(not_before, serial)`.
    pub async fn unpaid(
        &self,
        profile: &str,
        (from, to): (i64, i64),
        key_prefix: Option<&str>,
        after: (i64, &str),
        limit: i64,
    ) -> Result<Vec<UnpaidRow>> {
        let rows = sqlx::query(
            "SELECT a.reference, a.sealed, c.issuer, c.serial, c.not_before
             FROM certificates c JOIN ra_applications a ON a.issuer = c.issuer AND a.serial = c.serial
             WHERE a.status = 'activated' AND c.revoked_at IS NULL AND a.profile = $1
               AND c.not_before > $2 AND c.not_before <= $3
               AND (c.not_before > $4 OR (c.not_before = $4 AND c.serial > $5))
               AND NOT EXISTS (SELECT 1 FROM ra_payments p WHERE p.reference = a.reference AND p.status = 'captured')
               AND ($6 = '' OR NOT EXISTS (SELECT 1 FROM outbox o WHERE o.dedup_key = $6 || c.issuer || ':' || c.serial))
             ORDER BY c.not_before, c.serial LIMIT $7",
        )
        .bind(profile)
        .bind(from)
        .bind(to)
        .bind(after.0)
        .bind(after.1)
        .bind(key_prefix.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnpaidRow {
                    reference: r.try_get(0)?,
                    sealed: r.try_get(1)?,
                    issuer: r.try_get(2)?,
                    serial: r.try_get(3)?,
                    not_before: r.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn payment(&self, id: &str) -> Result<Option<PaymentRow>> {
        let sql = format!("SELECT {PAY_COLUMNS} FROM ra_payments WHERE id = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(pay_row).transpose()
    }

    /// An application's payments, newest first.
    pub async fn payments_of(&self, reference: &str) -> Result<Vec<PaymentRow>> {
        let sql = format!(
            "SELECT {PAY_COLUMNS} FROM ra_payments WHERE reference = $1 ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(pay_row).collect()
    }
}
