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

impl Store {
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
