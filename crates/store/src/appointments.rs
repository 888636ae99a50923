//! Counter appointments (`ra_slots`, `ra_bookings`): slots per
//! registration centre with a capacity, and bookings. A seat is taken by
//! a conditional update (`booked < capacity`) in the booking's
//! transaction, so concurrent requests never overfill a slot; an
//! application has at most one standing booking (a partial unique index).

use sqlx::Row;

use crate::{AnyConnection, Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRow {
    pub centre: String,
    pub starts_at: i64,
    pub capacity: i64,
    pub booked: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookingRow {
    pub code: String,
    pub reference: String,
    pub centre: String,
    pub starts_at: i64,
}

/// Opens a slot (or changes its capacity, never below its bookings).
pub async fn open_slot(
    conn: &mut AnyConnection,
    centre: &str,
    starts_at: i64,
    capacity: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ra_slots (centre, starts_at, capacity) VALUES ($1, $2, $3)
         ON CONFLICT (centre, starts_at) DO UPDATE SET capacity = excluded.capacity WHERE ra_slots.booked <= excluded.capacity",
    )
    .bind(centre)
    .bind(starts_at)
    .bind(capacity)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes a seat; [`StoreError::Conflict`] if the slot is full or gone.
pub async fn take_seat(conn: &mut AnyConnection, centre: &str, starts_at: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ra_slots SET booked = booked + 1 WHERE centre = $1 AND starts_at = $2 AND booked < capacity",
    )
    .bind(centre)
    .bind(starts_at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict("the slot is full".into()));
    }
    Ok(())
}

pub async fn free_seat(conn: &mut AnyConnection, centre: &str, starts_at: i64) -> Result<()> {
    sqlx::query("UPDATE ra_slots SET booked = booked - 1 WHERE centre = $1 AND starts_at = $2 AND booked > 0")
        .bind(centre)
        .bind(starts_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a booking; [`StoreError::Conflict`] if the application has a
/// standing one already.
pub async fn insert_booking(conn: &mut AnyConnection, b: &BookingRow, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO ra_bookings (code, reference, centre, starts_at, status, created_at, updated_at) VALUES ($1, $2, $3, $4, 'booked', $5, $5)",
    )
    .bind(&b.code)
    .bind(&b.reference)
    .bind(&b.centre)
    .bind(b.starts_at)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| crate::conflict_or(e, || format!("application {} has a booking already", b.reference)))?;
    Ok(())
}

/// Cancels a standing booking; [`StoreError::Conflict`] if it is not.
pub async fn cancel_booking(conn: &mut AnyConnection, code: &str, now: i64) -> Result<()> {
    let done = sqlx::query("UPDATE ra_bookings SET status = 'cancelled', updated_at = $1 WHERE code = $2 AND status = 'booked'")
        .bind(now)
        .bind(code)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "booking {code} is not standing"
        )));
    }
    Ok(())
}

impl Store {
    /// Slots from `from` to `to` with a free seat, by time then centre.
    pub async fn free_slots(&self, from: i64, to: i64, limit: i64) -> Result<Vec<SlotRow>> {
        let rows = sqlx::query(
            "SELECT centre, starts_at, capacity, booked FROM ra_slots WHERE starts_at >= $1 AND starts_at < $2 AND booked < capacity ORDER BY starts_at, centre LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SlotRow {
                    centre: r.try_get(0)?,
                    starts_at: r.try_get(1)?,
                    capacity: r.try_get(2)?,
                    booked: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn slot(&self, centre: &str, starts_at: i64) -> Result<Option<SlotRow>> {
        let r = sqlx::query("SELECT centre, starts_at, capacity, booked FROM ra_slots WHERE centre = $1 AND starts_at = $2")
            .bind(centre)
            .bind(starts_at)
            .fetch_optional(self.pool())
            .await?;
        r.map(|r| {
            Ok(SlotRow {
                centre: r.try_get(0)?,
                starts_at: r.try_get(1)?,
                capacity: r.try_get(2)?,
                booked: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// The application's standing booking.
    pub async fn booking_of(&self, reference: &str) -> Result<Option<BookingRow>> {
        let r = sqlx::query(
            "SELECT code, reference, centre, starts_at FROM ra_bookings WHERE reference = $1 AND status = 'booked'",
        )
        .bind(reference)
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(BookingRow {
                code: r.try_get(0)?,
                reference: r.try_get(1)?,
                centre: r.try_get(2)?,
                starts_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Standing bookings starting in `(from, to]` with no notice under
    /// `key_prefix ‖ code` yet, with their application's sealed
    /// particulars, after `(starts_at, code)` (keyset paging).
    pub async fn bookings_without_notice(
        &self,
        from: i64,
        to: i64,
        key_prefix: &str,
        after: (i64, &str),
        limit: i64,
    ) -> Result<Vec<(BookingRow, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT b.code, b.reference, b.centre, b.starts_at, a.sealed FROM ra_bookings b JOIN ra_applications a ON a.reference = b.reference
             WHERE b.status = 'booked' AND b.starts_at > $1 AND b.starts_at <= $2
               AND (b.starts_at > $5 OR (b.starts_at = $5 AND b.code > $6))
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.dedup_key = $3 || b.code)
             ORDER BY b.starts_at, b.code LIMIT $4",
        )
        .bind(from)
        .bind(to)
        .bind(key_prefix)
        .bind(limit)
        .bind(after.0)
        .bind(after.1)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    BookingRow {
                        code: r.try_get(0)?,
                        reference: r.try_get(1)?,
                        centre: r.try_get(2)?,
                        starts_at: r.try_get(3)?,
                    },
                    r.try_get(4)?,
                ))
            })
            .collect()
    }
}
