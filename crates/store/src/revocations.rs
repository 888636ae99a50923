//! Revocations: final (also enforced by a database trigger), recorded with
//! the CRLs they make due in the same transaction, and read back for CRLs
//! (by issuer and partition) and for OCSP caches in other processes (by time
//! of change).

use sqlx::Row;

use crate::certificates::{CertRow, GET_CERT, cert_row};
use crate::{AnyConnection, Result, Store, StoreError};

/// Revocations per read when following them by time of change.
const REVOKED_PAGE: usize = 4096;

/// Revokes an issued certificate. Revocation is final (also enforced by a
/// database trigger).
pub async fn revoke(
    conn: &mut AnyConnection,
    issuer: &str,
    serial: &str,
    revoked_at: i64,
    reason: i64,
    now: i64,
) -> Result<CertRow> {
    let row = sqlx::query(GET_CERT)
        .bind(issuer)
        .bind(serial)
        .fetch_optional(&mut *conn)
        .await?;
    let mut c = match row {
        Some(r) => cert_row(&r)?,
        None => {
            return Err(StoreError::NotFound(format!(
                "no certificate with serial {serial}"
            )));
        }
    };
    if c.status != "issued" {
        return Err(StoreError::Conflict(format!(
            "certificate {serial} was never issued (status {})",
            c.status
        )));
    }
    if c.revoked_at.is_some() {
        return Err(StoreError::Conflict(format!(
            "certificate {serial} is already revoked; a revocation cannot be changed"
        )));
    }
    let done = sqlx::query(
        "UPDATE certificates SET revoked_at = $1, reason = $2, changed_at = $3 WHERE issuer = $4 AND serial = $5 AND revoked_at IS NULL",
    )
    .bind(revoked_at)
    .bind(reason)
    .bind(now)
    .bind(issuer)
    .bind(serial)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        // Revoked by someone else between our read and our write.
        return Err(StoreError::Conflict(format!(
            "certificate {serial} is already revoked; a revocation cannot be changed"
        )));
    }
    crate::crls::owe_crl(conn, issuer, c.shard, now).await?;
    c.revoked_at = Some(revoked_at);
    c.reason = Some(reason);
    c.changed_at = now;
    Ok(c)
}

impl Store {
    /// Calls `f(issuer, serial, changed_at)` for every certificate revoked
    /// at or after `since` (by its time of change), for dropping cached OCSP
    /// responses across processes. Read in short pages, without the
    /// certificates: a mass revocation (a compromised issuing CA) is neither
    /// loaded at once nor read in one long query (which would keep SQLite's
    /// WAL from being reset behind it). Each page is read again after a lost
    /// connection.
    pub async fn for_each_revoked_since(
        &self,
        since: i64,
        f: impl FnMut(&str, &str, i64),
    ) -> Result<u64> {
        self.for_each_revoked_since_paged(since, REVOKED_PAGE, f)
            .await
    }

    pub(crate) async fn for_each_revoked_since_paged(
        &self,
        since: i64,
        page: usize,
        mut f: impl FnMut(&str, &str, i64),
    ) -> Result<u64> {
        let page = page.max(1);
        // Keyset pagination on (changed_at, issuer, serial), which the
        // partial index certificates_changed holds in that order.
        let mut after = (since, String::new(), String::new());
        let mut n = 0;
        loop {
            let at = &after;
            let rows: Vec<(String, String, i64)> = self
                .read(|| async move {
                    Ok(sqlx::query_as(
                        "SELECT issuer, serial, changed_at FROM certificates WHERE revoked_at IS NOT NULL AND (changed_at, issuer, serial) > ($1, $2, $3) ORDER BY changed_at, issuer, serial LIMIT $4",
                    )
                    .bind(at.0)
                    .bind(&at.1)
                    .bind(&at.2)
                    .bind(page as i64)
                    .fetch_all(&self.pool)
                    .await?)
                })
                .await?;
            let full = rows.len() >= page;
            for (issuer, serial, changed_at) in &rows {
                f(issuer, serial, *changed_at);
                n += 1;
            }
            match rows.into_iter().last() {
                Some((issuer, serial, changed_at)) if full => after = (changed_at, issuer, serial),
                _ => return Ok(n),
            }
        }
    }

    /// Streams the unexpired revoked certificates of an issuer (one shard or
    /// all) as (serial hex, revoked_at, reason), in serial order.
    pub async fn for_each_revoked(
        &self,
        issuer: &str,
        shard: Option<i64>,
        now: i64,
        mut f: impl FnMut(&str, i64, i64) -> Result<()>,
    ) -> Result<u64> {
        use futures_util::TryStreamExt;
        let mut conn = self.pool.acquire().await?;
        let sql = if shard.is_some() {
            "SELECT serial, revoked_at, reason FROM certificates WHERE issuer = $1 AND revoked_at IS NOT NULL AND not_after >= $2 AND shard = $3"
        } else {
            "SELECT serial, revoked_at, reason FROM certificates WHERE issuer = $1 AND revoked_at IS NOT NULL AND not_after >= $2 AND $3 = $3"
        };
        let mut rows = sqlx::query(sql)
            .bind(issuer)
            .bind(now)
            .bind(shard.unwrap_or(0))
            .fetch(&mut *conn);
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let serial: &str = r.try_get(0)?;
            f(
                serial,
                r.try_get(1)?,
                r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
            )?;
            n += 1;
        }
        Ok(n)
    }

    /// Shards holding revoked, unexpired certificates of an issuer.
    pub async fn revoked_shards(&self, issuer: &str, now: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT shard FROM certificates WHERE issuer = $1 AND revoked_at IS NOT NULL AND not_after >= $2 ORDER BY shard",
        )
        .bind(issuer)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[tokio::test]
    async fn revocations_since_a_time() {
        let t = temp_sqlite("revoked-since").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let rows: Vec<NewCert> = ["0a", "0b", "0c"].iter().map(|s| cert(s)).collect();
        issue_all(&mut tx, &rows).await;
        revoke(&mut tx, "ca", "0a", 100, 1, 100).await.unwrap();
        revoke(&mut tx, "ca", "0c", 200, 1, 200).await.unwrap();
        crate::commit(tx).await.unwrap();
        let seen = |since| async move {
            let mut v = Vec::new();
            let n = store
                .for_each_revoked_since(since, |i, s, at| v.push(format!("{i}/{s}@{at}")))
                .await
                .unwrap();
            assert_eq!(n as usize, v.len());
            v.sort();
            v
        };
        assert_eq!(seen(0).await, ["ca/0a@100", "ca/0c@200"]);
        assert_eq!(seen(150).await, ["ca/0c@200"]);
        assert!(seen(201).await.is_empty());
    }

    /// Pages of two over revocations that share their time of change (a
    /// mass revocation happens within one second): every one is seen once,
    /// whatever the page boundaries.
    #[tokio::test]
    async fn revocations_since_a_time_in_pages() {
        let t = temp_sqlite("revoked-pages").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let mut other = issuer_row();
        other.id = "cb".into();
        insert_issuer(&mut tx, &other).await.unwrap();
        let serials: Vec<String> = (1..=7).map(|i| format!("{i:02x}")).collect();
        let mut rows: Vec<NewCert> = serials.iter().map(|s| cert(s)).collect();
        rows.extend(serials.iter().take(3).map(|s| NewCert {
            issuer: "cb".into(),
            ..cert(s)
        }));
        issue_all(&mut tx, &rows).await;
        for (i, r) in rows.iter().enumerate() {
            let at = if i < 5 { 100 } else { 101 };
            revoke(&mut tx, &r.issuer, &r.serial, at, 1, at)
                .await
                .unwrap();
        }
        crate::commit(tx).await.unwrap();
        let mut want: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{}/{}@{}",
                    r.issuer,
                    r.serial,
                    if i < 5 { 100 } else { 101 }
                )
            })
            .collect();
        want.sort();
        for page in [1, 2, 3, 10, 11] {
            let mut got = Vec::new();
            let n = store
                .for_each_revoked_since_paged(100, page, |i, s, at| {
                    got.push(format!("{i}/{s}@{at}"))
                })
                .await
                .unwrap();
            assert_eq!(n as usize, got.len());
            got.sort();
            assert_eq!(got, want, "pages of {page}");
        }
        let mut late = 0;
        store
            .for_each_revoked_since_paged(101, 2, |_, _, _| late += 1)
            .await
            .unwrap();
        assert_eq!(late, 5);
    }
}
