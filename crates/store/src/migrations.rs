//! The schema, one list of migrations per backend (`migrations/sqlite`,
//! `migrations/postgres`), applied in order at connection and recorded in
//! `schema_migrations`.
//!
//! An applied migration is never edited (databases that ran it would differ
//! from new ones): a change is a new file. Its number is the next free one on
//! both backends (the first above both lists' last), so one change carries
//! one number everywhere; a backend that needs nothing for it has no file of
//! that number (numbers must only rise, not be contiguous).

use sqlx::{Connection, Executor};

use crate::{Backend, Result, Store};

pub(crate) const MIGRATIONS_SQLITE: &[(i64, &str)] = &[
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
    (8, include_str!("../migrations/sqlite/0008_ra.sql")),
    (9, include_str!("../migrations/sqlite/0009_mail.sql")),
    (10, include_str!("../migrations/sqlite/0010_lost.sql")),
    (
        11,
        include_str!("../migrations/sqlite/0011_appointments.sql"),
    ),
    (12, include_str!("../migrations/sqlite/0012_privacy.sql")),
    (13, include_str!("../migrations/sqlite/0013_payments.sql")),
    (14, include_str!("../migrations/sqlite/0014_campaigns.sql")),
    (
        15,
        include_str!("../migrations/sqlite/0015_cards_recovery.sql"),
    ),
    (
        16,
        include_str!("../migrations/sqlite/0016_staff_accounts.sql"),
    ),
];
pub(crate) const MIGRATIONS_POSTGRES: &[(i64, &str)] = &[
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
    (8, include_str!("../migrations/postgres/0008_ra.sql")),
    (9, include_str!("../migrations/postgres/0009_mail.sql")),
    (10, include_str!("../migrations/postgres/0010_lost.sql")),
    (
        11,
        include_str!("../migrations/postgres/0011_appointments.sql"),
    ),
    (12, include_str!("../migrations/postgres/0012_privacy.sql")),
    (13, include_str!("../migrations/postgres/0013_payments.sql")),
    (
        14,
        include_str!("../migrations/postgres/0014_campaigns.sql"),
    ),
    (
        15,
        include_str!("../migrations/postgres/0015_cards_recovery.sql"),
    ),
    (
        16,
        include_str!("../migrations/postgres/0016_staff_accounts.sql"),
    ),
];

impl Store {
    pub(crate) async fn migrate(&self) -> Result<()> {
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
}

#[cfg(test)]
mod tests {
    use crate::audit::AuditEvent;

    /// A database made before migration 2 (the audit log keyed by a
    /// separate primary-key index) is rebuilt on opening: the same entries,
    /// chain intact, now keyed by the row id, and appending goes on.
    #[tokio::test]
    async fn sqlite_audit_log_rowid_migration() {
        let t = crate::testing::temp_sqlite("migrate-audit").await;
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
        let url = format!("sqlite://{}/t.db", t.dir.path().display());
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
        crate::issuers::insert_issuer(&mut tx, &crate::testing::issuer_row())
            .await
            .unwrap();
        crate::commit(tx).await.unwrap();
        let w = crate::writer::Writer::spawn(reopened.clone(), || 1_700_000_002);
        w.submit(crate::writer::Op::Reserve(crate::testing::cert("01")))
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
