//! Installation-wide settings: small key/value records (the audit key's
//! public key, OCSP signer and TLS key labels, cross-certificates, the
//! configuration's digest).

use crate::{AnyConnection, Result, Store};

impl Store {
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

/// Sets a setting unless it exists (the first writer wins; a second
/// process making the same key at once keeps the first's).
pub async fn insert_setting_once(conn: &mut AnyConnection, key: &str, value: &str) -> Result<()> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
