//! Staff accounts (`ra_staff`) and their browser sessions
//! (`ra_sessions`). An account is proposed by one administrator and
//! activated by another (dual control); moves are conditional on the
//! state they leave.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{AnyConnection, Result, Store, StoreError};

#[derive(Clone, Debug)]
pub struct StaffRow {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub centre: Option<String>,
    /// Argon2id: salt ‖ hash.
    pub password: Vec<u8>,
    pub totp_sealed: Vec<u8>,
    pub totp_last_step: i64,
    pub failures: i64,
    pub locked_until: i64,
    /// `proposed` (waiting for a second administrator), `active` or
    /// `disabled`; only an active account signs in.
    pub state: String,
    pub proposed_by: Option<String>,
    pub approved_by: Option<String>,
    pub created_at: i64,
}

const STAFF_COLUMNS: &str = "username, display_name, role, centre, password, totp_sealed, totp_last_step, failures, locked_until, state, proposed_by, approved_by, created_at";

fn staff_row(r: &AnyRow) -> Result<StaffRow> {
    Ok(StaffRow {
        username: r.try_get(0)?,
        display_name: r.try_get(1)?,
        role: r.try_get(2)?,
        centre: r.try_get(3)?,
        password: r.try_get(4)?,
        totp_sealed: r.try_get(5)?,
        totp_last_step: r.try_get(6)?,
        failures: r.try_get(7)?,
        locked_until: r.try_get(8)?,
        state: r.try_get(9)?,
        proposed_by: r.try_get(10)?,
        approved_by: r.try_get(11)?,
        created_at: r.try_get(12)?,
    })
}

pub async fn insert_staff(conn: &mut AnyConnection, s: &StaffRow, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO ra_staff (username, display_name, role, centre, password, totp_sealed, state, proposed_by, approved_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&s.username)
    .bind(&s.display_name)
    .bind(&s.role)
    .bind(&s.centre)
    .bind(s.password.clone())
    .bind(s.totp_sealed.clone())
    .bind(&s.state)
    .bind(&s.proposed_by)
    .bind(&s.approved_by)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| crate::conflict_or(e, || format!("staff account {} exists", s.username)))?;
    Ok(())
}

/// Records a failed sign-in; locks the account until `lock_until` when
/// `lock_until` is given.
pub async fn login_failure(
    conn: &mut AnyConnection,
    username: &str,
    lock_until: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE ra_staff SET failures = failures + 1, locked_until = COALESCE($1, locked_until) WHERE username = $2",
    )
    .bind(lock_until)
    .bind(username)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a successful sign-in with TOTP time step `step`; a step used
/// before (a replayed code) is a [`StoreError::Conflict`].
pub async fn login_success(conn: &mut AnyConnection, username: &str, step: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ra_staff SET failures = 0, locked_until = 0, totp_last_step = $1 WHERE username = $2 AND totp_last_step < $1",
    )
    .bind(step)
    .bind(username)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(
            "this one-time code was used already".into(),
        ));
    }
    Ok(())
}

/// Activates a proposed account with its credentials, approved by
/// `approved_by`; an account no longer proposed is a
/// [`StoreError::Conflict`].
pub async fn activate_staff(
    conn: &mut AnyConnection,
    username: &str,
    (password, totp_sealed): (&[u8], &[u8]),
    approved_by: &str,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ra_staff SET state = 'active', password = $1, totp_sealed = $2, approved_by = $3, failures = 0, locked_until = 0 WHERE username = $4 AND state = 'proposed'",
    )
    .bind(password.to_vec())
    .bind(totp_sealed.to_vec())
    .bind(approved_by)
    .bind(username)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "staff account {username} is not waiting for approval"
        )));
    }
    Ok(())
}

/// Moves an account from state `from` to `to`, ending its sessions.
pub async fn set_staff_state(
    conn: &mut AnyConnection,
    username: &str,
    (from, to): (&str, &str),
) -> Result<()> {
    let done = sqlx::query("UPDATE ra_staff SET state = $1 WHERE username = $2 AND state = $3")
        .bind(to)
        .bind(username)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "staff account {username} is not {from}"
        )));
    }
    sqlx::query("DELETE FROM ra_sessions WHERE username = $1")
        .bind(username)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub struct SessionRow {
    pub username: String,
    pub csrf: String,
    pub agent_hash: Vec<u8>,
    pub expires_at: i64,
}

pub async fn insert_session(
    conn: &mut AnyConnection,
    token_hash: &[u8],
    s: &SessionRow,
    now: i64,
) -> Result<()> {
    // Expired sessions go as new ones come.
    sqlx::query("DELETE FROM ra_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ra_sessions (token_hash, username, csrf, agent_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash.to_vec())
    .bind(&s.username)
    .bind(&s.csrf)
    .bind(s.agent_hash.clone())
    .bind(s.expires_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    pub async fn staff(&self, username: &str) -> Result<Option<StaffRow>> {
        let sql = format!("SELECT {STAFF_COLUMNS} FROM ra_staff WHERE username = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(staff_row).transpose()
    }

    /// Every account, by username.
    pub async fn staff_all(&self) -> Result<Vec<StaffRow>> {
        let sql = format!("SELECT {STAFF_COLUMNS} FROM ra_staff ORDER BY username");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(staff_row).collect()
    }

    /// Active accounts with `role`.
    pub async fn active_staff_with_role(&self, role: &str) -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM ra_staff WHERE role = $1 AND state = 'active'")
                .bind(role)
                .fetch_one(self.pool())
                .await?;
        Ok(n)
    }

    pub async fn staff_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ra_staff")
            .fetch_one(self.pool())
            .await?;
        Ok(n)
    }

    pub async fn session(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let r = sqlx::query(
            "SELECT username, csrf, agent_hash, expires_at FROM ra_sessions WHERE token_hash = $1",
        )
        .bind(token_hash.to_vec())
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(SessionRow {
                username: r.try_get(0)?,
                csrf: r.try_get(1)?,
                agent_hash: r.try_get(2)?,
                expires_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    pub async fn end_session(&self, token_hash: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM ra_sessions WHERE token_hash = $1")
            .bind(token_hash.to_vec())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
