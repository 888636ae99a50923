//! Storage for Hallmark: one schema on SQLite (the embedded default, WAL mode)
//! and PostgreSQL (production), through sqlx's `Any` driver. Each backend
//! owns its migrations (`migrations/sqlite`, `migrations/postgres`); every
//! query is written once with `$n` placeholders, which both backends accept.
//!
//! Every state change runs in one transaction together with its audit-log
//! entries, so a crash leaves either all of it or none.
//!
//! # One module per aggregate
//!
//! Each family of tables is a module that says what it keeps:
//! [`issuers`] (the CAs), [`certificates`] (certificates and their
//! reservations), [`revocations`], [`crls`] (published CRLs, their numbers,
//! and the CRLs owed after revocations), [`settings`], [`audit`] (the hash
//! chain), plus [`writer`] (group commit for issuance) and [`synthetic`]
//! (benchmark rows); for the registration authority [`registration`]
//! (registry, applications, staff, sessions), [`outbox`] (notices),
//! [`appointments`] and [`payments`]. Tables the eID adds follow the same
//! pattern (e.g. `people.rs`):
//!
//! - row structs apart from domain types, columns named in every SELECT;
//! - writes as free functions taking `&mut AnyConnection`, so a caller runs
//!   several of them and their audit entry in one transaction
//!   ([`Store::begin`], then [`commit`]); a unique violation becomes
//!   [`StoreError::Conflict`], a missing row [`StoreError::NotFound`];
//! - reads as `impl Store` methods through `Store::read`, which reads again
//!   after a lost PostgreSQL connection;
//! - the tables in a new migration on both backends (see [`migrations`]);
//! - tests beside the module, on both backends with
//!   `testing::on_each_backend`.

pub mod appointments;
pub mod audit;
pub mod campaign;
pub mod cards;
pub mod certificates;
pub mod crls;
pub mod issuers;
pub mod migrations;
pub mod outbox;
pub mod payments;
pub mod registration;
mod retry;
pub mod revocations;
pub mod settings;
mod sql;
pub mod staff;
pub mod synthetic;
#[cfg(test)]
pub(crate) mod testing;
pub mod writer;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub(crate) use retry::{connection_lost, pause_after_loss};
pub use settings::put_setting;
pub use sql::{MAX_ROWS_PER_STATEMENT, pow2_chunks};
pub(crate) use sql::{bind, conflict_or, values_list, values_list_from};

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

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (BEGIN IMMEDIATE) so that two writers never deadlock on upgrade.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// [`begin`](Self::begin) on a connection the caller holds (for work
    /// that sets the connection up first, e.g. its page cache).
    pub async fn begin_on<'c>(
        &self,
        conn: &'c mut AnyConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>> {
        use sqlx::Connection;
        let tx = match self.backend {
            Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => conn.begin().await?,
        };
        Ok(tx)
    }
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
