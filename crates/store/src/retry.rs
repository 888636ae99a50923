//! Reads again after a lost connection: a restarted or failed-over
//! PostgreSQL kills every pooled connection.

use std::time::Duration;

use crate::{Backend, Result, Store, StoreError};

/// The connection broke, as opposed to the database refusing the work.
pub(crate) fn connection_lost(e: &StoreError) -> bool {
    match e {
        StoreError::Database(
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_),
        ) => true,
        // SQLSTATE class 08 (connection exception) and 57P (the server
        // terminated the session: shutdown, admin command, crash recovery).
        StoreError::Database(sqlx::Error::Database(d)) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Before attempt `attempt + 1` after a lost connection: a restarting server
/// refuses sessions for a moment (57P03), so wait a little longer each time
/// (50 ms × attempt; 6.8 s in all for a pool of 16).
pub(crate) async fn pause_after_loss(attempt: usize) {
    tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
}

impl Store {
    /// Runs a read, again when the connection it ran on turned out dead: a
    /// restarted or failed-over PostgreSQL kills every pooled connection,
    /// and only those idle for [`PING_IDLE`] are pinged before use. Each
    /// failed attempt drops one dead connection, so the pool's size bounds
    /// the attempts. For reads only, which can be repeated.
    pub(crate) async fn read<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut retry = self.read_retry();
        loop {
            match f().await {
                Err(e) if retry.again(&e).await => {}
                r => return r,
            }
        }
    }

    /// The retry budget of one read: on PostgreSQL, as many attempts as the
    /// pool has connections now (each lost one is dropped), plus one.
    pub(crate) fn read_retry(&self) -> ReadRetry {
        ReadRetry {
            attempt: 1,
            budget: match self.backend {
                Backend::Postgres => self.pool.size() as usize + 1,
                Backend::Sqlite => 1,
            },
        }
    }
}

/// Attempts of one read (see [`Store::read`]).
pub(crate) struct ReadRetry {
    attempt: usize,
    budget: usize,
}

impl ReadRetry {
    /// Whether a read that failed with `e` should run again: when the
    /// connection was lost and the budget allows; pauses first.
    pub(crate) async fn again(&mut self, e: &StoreError) -> bool {
        if self.attempt >= self.budget || !connection_lost(e) {
            return false;
        }
        tracing::warn!(error = %e, attempt = self.attempt, "database connection lost during a read; reading again");
        pause_after_loss(self.attempt).await;
        self.attempt += 1;
        true
    }
}
