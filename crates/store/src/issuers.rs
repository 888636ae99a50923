//! The CAs of the installation: roots and issuing CAs, their certificates
//! and the labels of their keys in key custody (never the keys).

use sqlx::Row;

use crate::{AnyConnection, Result, Store, conflict_or};

#[derive(Clone, Debug)]
pub struct IssuerRow {
    pub id: String,
    pub subject: String,
    pub cert: Vec<u8>,
    pub parent: Option<String>,
    pub key_label: String,
    pub is_root: bool,
    pub created_at: i64,
}

pub async fn insert_issuer(conn: &mut AnyConnection, i: &IssuerRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO issuers (id, subject, cert, parent, key_label, is_root, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&i.id)
    .bind(&i.subject)
    .bind(i.cert.clone())
    .bind(i.parent.clone())
    .bind(&i.key_label)
    .bind(i.is_root as i64)
    .bind(i.created_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| conflict_or(e, || format!("an issuing CA named {:?} already exists", i.id)))?;
    sqlx::query("INSERT INTO crl_numbers (issuer, next) VALUES ($1, 1)")
        .bind(&i.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    pub async fn issuers(&self) -> Result<Vec<IssuerRow>> {
        let rows = self
            .read(|| async move {
                Ok(sqlx::query(
                    "SELECT id, subject, cert, parent, key_label, is_root, created_at FROM issuers ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(IssuerRow {
                    id: r.try_get(0)?,
                    subject: r.try_get(1)?,
                    cert: r.try_get(2)?,
                    parent: r.try_get(3)?,
                    key_label: r.try_get(4)?,
                    is_root: r.try_get::<i64, _>(5)? != 0,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }
}
