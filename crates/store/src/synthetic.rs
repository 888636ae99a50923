//! Made-up rows for benchmarks and load tests (`hallmark bench
//! crl-fixture`). Never used by the CA itself.

use crate::{MAX_ROWS_PER_STATEMENT, Result, Store};

/// A revoked certificate made up for benchmarks and load tests.
pub struct SyntheticRevoked {
    pub serial: String,
    pub revoked_at: i64,
    pub reason: i64,
    pub not_after: i64,
    pub shard: i64,
}

impl Store {
    /// Inserts made-up revoked certificates (no certificate body) for CRL
    /// benchmarks. Never used by the CA itself.
    pub async fn insert_synthetic_revoked(
        &self,
        issuer: &str,
        rows: &[SyntheticRevoked],
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO certificates (issuer, serial, status, profile, subject, not_before, not_after, shard, created_at, revoked_at, reason, changed_at) VALUES ",
            );
            sql.push_str(&crate::values_list(chunk.len(), 12));
            // Placeholders only; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::sql::positional_for(sql, self)));
            for r in chunk {
                q = q
                    .bind(issuer.to_string())
                    .bind(r.serial.clone())
                    .bind("issued")
                    .bind("bench")
                    .bind("CN=bench")
                    .bind(now)
                    .bind(r.not_after)
                    .bind(r.shard)
                    .bind(now)
                    .bind(r.revoked_at)
                    .bind(r.reason)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
