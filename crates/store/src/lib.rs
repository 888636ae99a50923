//! Storage for Hallmark: one schema on SQLite (the embedded default, WAL mode)
//! and PostgreSQL (production), through sqlx's `Any` driver. Each backend
//! owns its migrations (`migrations/sqlite`, `migrations/postgres`); every
//! query is written once with `$n` placeholders, which both backends accept.
//!
//! Every state change runs in one transaction together with its audit-log
//! entries, so a crash leaves either all of it or none.

pub mod audit;
pub mod certs;
pub mod writer;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub use sqlx::AnyConnection;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the storage writer has stopped")]
    WriterGone,
}

/// PostgreSQL's server-side TCP keepalives for Hallmark's sessions: a dead
/// client is noticed after about 10 + 5 × 4 s of silence.
const PG_KEEPALIVES: [&str; 3] = [
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 4",
];

/// A pooled connection idle at least this long is pinged before use.
const PING_IDLE: Duration = Duration::from_secs(1);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database file, for the SQLite writer thread.
    sqlite_path: Option<std::path::PathBuf>,
}

const MIGRATIONS_SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_audit_rowid.sql")),
    (
        3,
        include_str!("../migrations/sqlite/0003_changed_index.sql"),
    ),
    (
        4,
        include_str!("../migrations/sqlite/0004_created_index.sql"),
    ),
    (
        5,
        include_str!("../migrations/sqlite/0005_crl_this_update.sql"),
    ),
    (6, include_str!("../migrations/sqlite/0006_crls_due.sql")),
];
const MIGRATIONS_POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_check.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_final_trigger.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_changed_index.sql"),
    ),
    (
        5,
        include_str!("../migrations/postgres/0005_created_index.sql"),
    ),
    (
        6,
        include_str!("../migrations/postgres/0006_crl_this_update.sql"),
    ),
    (7, include_str!("../migrations/postgres/0007_crls_due.sql")),
];

impl Store {
    /// Connects to `sqlite://PATH` or `postgres://…`, creating a SQLite file
    /// if needed, and applies pending migrations.
    /// Whether the database at `url` holds an installation (the schema and
    /// at least one CA), read without creating or migrating anything: a
    /// restore beside a PostgreSQL database restored first checks it.
    pub async fn holds_installation(url: &str) -> Result<bool> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = match url.strip_prefix("sqlite://") {
            Some(path) => {
                let file = path.split('?').next().unwrap_or(path);
                if !std::path::Path::new(file).is_file() {
                    return Ok(false);
                }
                format!("sqlite://{file}?mode=ro")
            }
            None => url.to_string(),
        };
        let mut conn = sqlx::AnyConnection::connect(&url).await?;
        let n: std::result::Result<(i64,), _> = sqlx::query_as("SELECT COUNT(*) FROM issuers")
            .fetch_one(&mut conn)
            .await;
        let _ = conn.close().await;
        Ok(matches!(n, Ok((n,)) if n > 0))
    }

    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Conflict(format!(
                "unsupported database URL {url:?}: use sqlite://FILE or postgres://HOST/DB"
            )));
        };
        let url = if backend == Backend::Sqlite && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let opts: AnyConnectOptions = url.parse()?;
        // Streaming a million revoked entries into a CRL is expected to take
        // a while; only statements slower than this are worth a warning.
        let opts = opts.log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(30));
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            // No ping before every use (a round trip per transaction on
            // PostgreSQL, 15-20 % of issuance throughput); only a connection
            // that sat idle for a while is pinged, which catches those a
            // database restart or fail-over killed while Hallmark was quiet.
            // Under load a broken connection fails its statement and is
            // replaced; the issuance writer runs such a batch again.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers; FULL sync so that a
                        // committed issuance survives power loss.
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=FULL").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                    } else {
                        // A session whose client vanished without closing
                        // (a crashed host, a cut network) keeps its locks,
                        // the audit chain's among them, until the server
                        // notices: by default after two hours of silence.
                        // Server-side keepalives make that about 30 s.
                        for set in PG_KEEPALIVES {
                            conn.execute(set).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        // The file as SQLite itself opened it (sqlx decodes the URL); none
        // for an in-memory database, whose writes then go through sqlx.
        let sqlite_path = if backend == Backend::Sqlite {
            let file: Option<(String,)> =
                sqlx::query_as("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_optional(&pool)
                    .await?;
            file.map(|f| f.0)
                .filter(|f| !f.is_empty())
                .map(std::path::PathBuf::from)
        } else {
            None
        };
        let store = Self {
            pool,
            backend,
            sqlite_path,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database file of a SQLite store.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .await?;
        let migrations = match self.backend {
            Backend::Sqlite => MIGRATIONS_SQLITE,
            Backend::Postgres => MIGRATIONS_POSTGRES,
        };
        for (version, sql) in migrations {
            // On SQLite the write lock is taken at once: a deferred
            // transaction that read the versions first could not upgrade to
            // a writer if another process committed meanwhile (an instant
            // SQLITE_BUSY that no busy timeout waits out).
            let mut tx = match self.backend {
                Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres => conn.begin().await?,
            };
            if self.backend == Backend::Postgres {
                // Serialise concurrent `hallmark serve` start-ups.
                sqlx::query("SELECT pg_advisory_xact_lock(7411)")
                    .execute(&mut *tx)
                    .await?;
            }
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_none() {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(version, "applied database migration");
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (BEGIN IMMEDIATE) so that two writers never deadlock on upgrade.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// Settings whose key starts with `prefix`, ordered by key.
    pub async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        // The settings table is small: filtered here rather than with SQL
        // string functions, whose signatures differ between the backends.
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM settings ORDER BY key")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .collect())
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let r: Option<(String,)> = self
            .read(|| async move {
                Ok(sqlx::query_as("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            })
            .await?;
        Ok(r.map(|r| r.0))
    }
}

/// Sets a setting in one statement, so that processes setting it at once
/// (two servers starting on one database) do not collide: the last wins.
pub async fn put_setting(conn: &mut AnyConnection, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

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

/// `VALUES`-list placeholders for a multi-row statement: `rows` tuples of
/// `cols` parameters each, numbered from `$1`. Every value is bound, so the
/// statement text holds placeholders only.
pub(crate) fn values_list(rows: usize, cols: usize) -> String {
    values_list_from(1, rows, cols)
}

/// [`values_list`] numbered from `$first`, for a statement with several lists.
pub(crate) fn values_list_from(first: usize, rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + r * cols + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Adds one bound value to a statement's arguments.
pub(crate) fn bind<'t, T>(args: &mut sqlx::any::AnyArguments, value: T) -> Result<()>
where
    T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Arguments;
    args.add(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot bind a value: {e}")))
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn conflict_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return StoreError::Conflict(what());
    }
    StoreError::Database(e)
}

/// Commits a transaction begun with [`Store::begin`].
pub async fn commit(tx: sqlx::Transaction<'static, sqlx::Any>) -> Result<()> {
    tx.commit().await?;
    Ok(())
}

impl Store {
    /// Writes a consistent copy of a SQLite database to `path` (VACUUM INTO),
    /// while the database stays in use. PostgreSQL is backed up with its own
    /// tools (pg_dump, base backups).
    pub async fn snapshot_sqlite(&self, path: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Conflict(
                "the database is PostgreSQL: back it up with pg_dump or a base backup; `hallmark backup` covers SQLite installations".into(),
            ));
        }
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::audit::AuditEvent;

    /// A database made before migration 2 (the audit log keyed by a
    /// separate primary-key index) is rebuilt on opening: the same entries,
    /// chain intact, now keyed by the row id, and appending goes on.
    #[tokio::test]
    async fn sqlite_audit_log_rowid_migration() {
        let t = crate::certs::tests::temp_sqlite("migrate-audit").await;
        let events: Vec<AuditEvent> = (0..5)
            .map(|i| AuditEvent::new("test", "step", format!("{{\"i\":{i}}}")))
            .collect();
        t.store.audit(1_700_000_000, &events).await.unwrap();
        // Back to the first schema, as an older Hallmark left it.
        sqlx::raw_sql(
            "CREATE TABLE audit_v1 (seq BIGINT PRIMARY KEY, ts BIGINT NOT NULL, actor TEXT NOT NULL, \
               action TEXT NOT NULL, details TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL); \
             INSERT INTO audit_v1 SELECT * FROM audit_log; DROP TABLE audit_log; \
             ALTER TABLE audit_v1 RENAME TO audit_log; DELETE FROM schema_migrations WHERE version = 2;",
        )
        .execute(t.store.pool())
        .await
        .unwrap();
        let url = format!("sqlite://{}/t.db", t.dir.display());
        let reopened = crate::Store::connect(&url).await.unwrap();
        let (sql, indexes): (String, i64) = sqlx::query_as(
            "SELECT sql, (SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log') \
             FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'",
        )
        .fetch_one(reopened.pool())
        .await
        .unwrap();
        assert!(sql.contains("seq INTEGER PRIMARY KEY"), "{sql}");
        assert_eq!(indexes, 0);
        reopened.audit(1_700_000_001, &events[..1]).await.unwrap();
        // The issuance writer's own statements append to the new table too.
        let mut tx = reopened.begin().await.unwrap();
        crate::certs::insert_issuer(&mut tx, &crate::certs::tests::issuer_row())
            .await
            .unwrap();
        crate::commit(tx).await.unwrap();
        let w = crate::writer::Writer::spawn(reopened.clone(), || 1_700_000_002);
        w.submit(crate::writer::Op::Reserve(crate::certs::tests::cert("01")))
            .await
            .unwrap();
        w.submit(crate::writer::Op::Finalize {
            issuer: "ca".into(),
            serial: "01".into(),
            cert: b"01".to_vec(),
            escrow: None,
            audit: AuditEvent::new("test", "certificate.issue", "{}".into()),
        })
        .await
        .unwrap();
        let report = reopened.verify_audit(&[], |_| {}).await.unwrap();
        assert_eq!(report.entries, 7);
        assert!(
            report.findings.iter().all(|f| !f.contains("entr")),
            "{:?}",
            report.findings
        );
    }
}
