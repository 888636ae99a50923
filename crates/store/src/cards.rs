//! Holders' keys after issuance: which smart card holds which certificate
//! (`ra_cards`), and the recoveries of escrowed encipherment keys
//! (`ra_recoveries`), each move conditional on the state it leaves.

use sqlx::Row;

use crate::{AnyConnection, Result, Store, StoreError};

/// A card holding a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardRow {
    pub issuer: String,
    pub serial: String,
    pub reference: String,
    pub card_serial: String,
    pub card_label: String,
    pub manufacturer: String,
    pub model: String,
    /// `on-card` or `imported`.
    pub key_origin: String,
    pub personalised_by: String,
    pub personalised_at: i64,
}

const CARD_COLUMNS: &str = "issuer, serial, reference, card_serial, card_label, manufacturer, model, key_origin, personalised_by, personalised_at";

fn card_row(r: &sqlx::any::AnyRow) -> Result<CardRow> {
    Ok(CardRow {
        issuer: r.try_get(0)?,
        serial: r.try_get(1)?,
        reference: r.try_get(2)?,
        card_serial: r.try_get(3)?,
        card_label: r.try_get(4)?,
        manufacturer: r.try_get(5)?,
        model: r.try_get(6)?,
        key_origin: r.try_get(7)?,
        personalised_by: r.try_get(8)?,
        personalised_at: r.try_get(9)?,
    })
}

/// Records that a card holds a certificate (in the personalising
/// transaction).
pub async fn insert_card(conn: &mut AnyConnection, c: &CardRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO ra_cards ({CARD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&c.issuer)
        .bind(&c.serial)
        .bind(&c.reference)
        .bind(&c.card_serial)
        .bind(&c.card_label)
        .bind(&c.manufacturer)
        .bind(&c.model)
        .bind(&c.key_origin)
        .bind(&c.personalised_by)
        .bind(c.personalised_at)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            crate::conflict_or(e, || {
                format!("certificate {} is already on a card", c.serial)
            })
        })?;
    Ok(())
}

/// A key recovery.
#[derive(Clone, Debug, Default)]
pub struct RecoveryRow {
    pub id: String,
    pub reference: String,
    pub issuer: String,
    pub serial: String,
    /// `requested`, `approved`, `collected` or `cancelled`.
    pub state: String,
    pub requested_by: String,
    /// The requester's office.
    pub centre: Option<String>,
    pub requested_at: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    pub pin_mac: Option<Vec<u8>>,
    pub pin_failures: i64,
    pub collected_at: Option<i64>,
}

const RECOVERY_COLUMNS: &str = "id, reference, issuer, serial, state, requested_by, centre, requested_at, approved_by, approved_at, pin_mac, pin_failures, collected_at";

fn recovery_row(r: &sqlx::any::AnyRow) -> Result<RecoveryRow> {
    Ok(RecoveryRow {
        id: r.try_get(0)?,
        reference: r.try_get(1)?,
        issuer: r.try_get(2)?,
        serial: r.try_get(3)?,
        state: r.try_get(4)?,
        requested_by: r.try_get(5)?,
        centre: r.try_get(6)?,
        requested_at: r.try_get(7)?,
        approved_by: r.try_get(8)?,
        approved_at: r.try_get(9)?,
        pin_mac: r.try_get(10)?,
        pin_failures: r.try_get(11)?,
        collected_at: r.try_get(12)?,
    })
}

pub async fn insert_recovery(conn: &mut AnyConnection, r: &RecoveryRow) -> Result<()> {
    sqlx::query("INSERT INTO ra_recoveries (id, reference, issuer, serial, state, requested_by, centre, requested_at) VALUES ($1, $2, $3, $4, 'requested', $5, $6, $7)")
        .bind(&r.id)
        .bind(&r.reference)
        .bind(&r.issuer)
        .bind(&r.serial)
        .bind(&r.requested_by)
        .bind(&r.centre)
        .bind(r.requested_at)
        .execute(&mut *conn)
        .await
        .map_err(|e| crate::conflict_or(e, || format!("recovery {} exists", r.id)))?;
    Ok(())
}

/// What a recovery's move sets besides its state.
#[derive(Default)]
pub struct RecoveryChange<'a> {
    pub approved_by: Option<&'a str>,
    /// `Some(None)` spends the PIN.
    pub pin_mac: Option<Option<&'a [u8]>>,
    pub collected: bool,
}

/// Moves a recovery from `from` to `to`; a recovery no longer in `from`
/// (someone else moved it first) is a [`StoreError::Conflict`].
pub async fn move_recovery(
    conn: &mut AnyConnection,
    id: &str,
    (from, to): (&str, &str),
    change: RecoveryChange<'_>,
    now: i64,
) -> Result<()> {
    let mut sets = vec!["state = $1".to_string()];
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    let approved = change.approved_by.map(|_| next());
    if let Some(i) = approved {
        sets.push(format!("approved_by = ${i}, approved_at = ${}", next()));
    }
    let pin = change.pin_mac.map(|_| next());
    if let Some(i) = pin {
        sets.push(format!("pin_mac = ${i}, pin_failures = 0"));
    }
    let collected = change.collected.then(&mut next);
    if let Some(i) = collected {
        sets.push(format!("collected_at = ${i}"));
    }
    let (id_i, from_i) = (next(), next());
    let sql = format!(
        "UPDATE ra_recoveries SET {} WHERE id = ${id_i} AND state = ${from_i}",
        sets.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(to);
    if let Some(by) = change.approved_by {
        q = q.bind(by).bind(now);
    }
    if let Some(mac) = change.pin_mac {
        q = q.bind(mac.map(<[u8]>::to_vec));
    }
    if change.collected {
        q = q.bind(now);
    }
    let done = q.bind(id).bind(from).execute(&mut *conn).await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "recovery {id} is no longer {from}"
        )));
    }
    Ok(())
}

/// Counts a wrong PIN; returns the failures so far.
pub async fn recovery_pin_failure(conn: &mut AnyConnection, id: &str) -> Result<i64> {
    let r = sqlx::query(
        "UPDATE ra_recoveries SET pin_failures = pin_failures + 1 WHERE id = $1 RETURNING pin_failures",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get(0)?)
}

impl Store {
    /// The cards holding an application's certificates, newest first.
    pub async fn cards_of(&self, reference: &str) -> Result<Vec<CardRow>> {
        self.cards_where("reference", reference).await
    }

    /// The certificates a card holds, newest first.
    pub async fn card(&self, card_serial: &str) -> Result<Vec<CardRow>> {
        self.cards_where("card_serial", card_serial).await
    }

    async fn cards_where(&self, column: &'static str, value: &str) -> Result<Vec<CardRow>> {
        let sql = format!(
            "SELECT {CARD_COLUMNS} FROM ra_cards WHERE {column} = $1 ORDER BY personalised_at DESC, serial"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(card_row).collect()
    }

    pub async fn recovery(&self, id: &str) -> Result<Option<RecoveryRow>> {
        let sql = format!("SELECT {RECOVERY_COLUMNS} FROM ra_recoveries WHERE id = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(recovery_row).transpose()
    }

    /// Recoveries in `state` (every state if none), newest first.
    pub async fn recoveries(&self, state: Option<&str>, limit: i64) -> Result<Vec<RecoveryRow>> {
        let order = "ORDER BY requested_at DESC, id";
        let rows = match state {
            Some(state) => {
                let sql = format!(
                    "SELECT {RECOVERY_COLUMNS} FROM ra_recoveries WHERE state = $1 {order} LIMIT $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(state)
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                let sql = format!("SELECT {RECOVERY_COLUMNS} FROM ra_recoveries {order} LIMIT $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(recovery_row).collect()
    }

    /// The recovery of this certificate's key under way (requested or
    /// approved), if there is one.
    pub async fn open_recovery(&self, issuer: &str, serial: &str) -> Result<Option<String>> {
        let r = sqlx::query(
            "SELECT id FROM ra_recoveries WHERE issuer = $1 AND serial = $2 AND state IN ('requested', 'approved')",
        )
        .bind(issuer)
        .bind(serial)
        .fetch_optional(self.pool())
        .await?;
        Ok(match r {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// The sealed escrow of a certificate, if its key was escrowed.
    pub async fn escrow(&self, issuer: &str, serial: &str) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT escrow FROM certificates WHERE issuer = $1 AND serial = $2")
            .bind(issuer)
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        Ok(match r {
            Some(r) => r.try_get::<Option<Vec<u8>>, _>(0)?,
            None => None,
        })
    }
}
