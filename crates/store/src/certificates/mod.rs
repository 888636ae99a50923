//! Certificates and their reservations: Boulder's issuance cycle stores the
//! serial and the linted TBS first (a pending row), then the signed
//! certificate in its place (issued), or marks the reservation abandoned.
//! Reads by serial, pages of the list, and pages of live certificates for
//! OCSP pre-signing. The statements of the issuance cycle, many rows at a
//! time, are in `issuance.rs`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{AnyConnection, Result, Store, StoreError};

mod issuance;
pub use issuance::*;

/// A certificate about to be signed: its serial and linted TBS are stored
/// first, so a certificate can never exist that the database does not know.
#[derive(Clone, Debug)]
pub struct NewCert {
    pub issuer: String,
    pub serial: String,
    pub profile: String,
    pub subject: String,
    pub tbs: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub shard: i64,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRow {
    pub issuer: String,
    pub serial: String,
    pub status: String,
    pub profile: String,
    pub subject: String,
    pub cert: Option<Vec<u8>>,
    pub not_before: i64,
    pub not_after: i64,
    pub shard: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub reason: Option<i64>,
    pub changed_at: i64,
}

macro_rules! cert_cols {
    () => {
        "issuer, serial, status, profile, subject, cert, not_before, not_after, shard, created_at, revoked_at, reason, changed_at"
    };
}

/// A page of certificates, newest first, before a (created_at, serial)
/// cursor: a range scan of the `certificates_created` index.
macro_rules! list_certs {
    () => {
        concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE (created_at, serial) < ($1, $2) \
             ORDER BY created_at DESC, serial DESC LIMIT $3"
        )
    };
}
const LIST_CERTS: &str = list_certs!();

/// A certificate by its key: issuer ($1) and serial ($2).
macro_rules! get_cert {
    () => {
        concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE issuer = $1 AND serial = $2"
        )
    };
}

pub(crate) fn cert_row(r: &AnyRow) -> Result<CertRow> {
    Ok(CertRow {
        issuer: r.try_get(0)?,
        serial: r.try_get(1)?,
        status: r.try_get(2)?,
        profile: r.try_get(3)?,
        subject: r.try_get(4)?,
        cert: r.try_get(5)?,
        not_before: r.try_get(6)?,
        not_after: r.try_get(7)?,
        shard: r.try_get(8)?,
        created_at: r.try_get(9)?,
        revoked_at: r.try_get(10)?,
        reason: r.try_get(11)?,
        changed_at: r.try_get(12)?,
    })
}

/// A certificate by its key, as [`get_cert`](Store::get_cert) reads it.
pub(crate) const GET_CERT: &str = get_cert!();

/// Files a CA certificate as an issued certificate of its parent (so that
/// it can be revoked and listed on the parent's CRL); nothing if it is
/// there already.
pub async fn record_ca_certificate(
    conn: &mut AnyConnection,
    c: &NewCert,
    cert: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO certificates (issuer, serial, status, profile, subject, cert, not_before, not_after, shard, created_at, changed_at) \
         VALUES ($1, $2, 'issued', $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (issuer, serial) DO NOTHING",
    )
    .bind(&c.issuer)
    .bind(&c.serial)
    .bind(&c.profile)
    .bind(&c.subject)
    .bind(cert.to_vec())
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(c.shard)
    .bind(c.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Finds a certificate by serial (hex), optionally under one issuer.
    /// Serials are unique per issuer; a serial found under several issuers
    /// without one named is a [`StoreError::Conflict`] naming them (acting
    /// on "the oldest" could revoke the wrong holder's certificate).
    ///
    /// Looked up in the (issuer, serial) key once per issuer (there are a
    /// few): by serial alone the query read the whole table (0.2 s at a
    /// million certificates on SQLite, on every revocation, API lookup and
    /// mutual-TLS admin request), and with the issuers in a subquery
    /// PostgreSQL's planner, without statistics on that small table, still
    /// chose to walk a whole index.
    pub async fn get_cert(&self, issuer: Option<&str>, serial: &str) -> Result<CertRow> {
        let rows = self
            .read(|| async move {
                let issuers: Vec<String> = match issuer {
                    Some(i) => vec![i.to_string()],
                    None => sqlx::query_as::<_, (String,)>("SELECT id FROM issuers ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(|r| r.0)
                        .collect(),
                };
                let mut rows = Vec::new();
                for i in &issuers {
                    rows.extend(
                        sqlx::query(get_cert!())
                            .bind(i)
                            .bind(serial)
                            .fetch_optional(&self.pool)
                            .await?,
                    );
                }
                Ok(rows)
            })
            .await?;
        let rows = rows
            .iter()
            .map(cert_row)
            .collect::<Result<Vec<CertRow>>>()?;
        if rows.len() > 1 {
            let issuers: Vec<&str> = rows.iter().map(|r| r.issuer.as_str()).collect();
            return Err(StoreError::Conflict(format!(
                "serial {serial} was issued by several CAs ({}): name the issuer",
                issuers.join(", ")
            )));
        }
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("no certificate with serial {serial}")))
    }

    /// Lists certificates, newest first, `limit` at a time; `before` is the
    /// (created_at, serial) of the last row of the previous page.
    pub async fn list_certs(
        &self,
        limit: i64,
        before: Option<(i64, String)>,
    ) -> Result<Vec<CertRow>> {
        let (ts, serial) = before.unwrap_or((i64::MAX, String::new()));
        let serial = serial.as_str();
        let rows = self
            .read(|| async move {
                Ok(sqlx::query(LIST_CERTS)
                    .bind(ts)
                    .bind(serial)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            })
            .await?;
        rows.iter().map(cert_row).collect()
    }

    /// A page of the issued, unexpired certificates of an issuer, in serial
    /// order after `after` (empty for the first page), as (serial hex,
    /// revoked_at, reason), for pre-signing OCSP responses. Each page is a
    /// short read of its own: walking millions of certificates holds no
    /// snapshot open (which on SQLite would keep the WAL from being reset
    /// while issuance goes on, and on PostgreSQL hold back vacuum).
    pub async fn live_page(
        &self,
        issuer: &str,
        now: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, Option<i64>, i64)>> {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = self
            .read(|| async move {
                Ok(sqlx::query_as(
                    "SELECT serial, revoked_at, reason FROM certificates \
                     WHERE issuer = $1 AND serial > $2 AND status = 'issued' AND not_after >= $3 \
                     ORDER BY serial LIMIT $4",
                )
                .bind(issuer)
                .bind(after)
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(s, at, reason)| (s, at, reason.unwrap_or(0)))
            .collect())
    }

    /// Marks pending rows older than `before` abandoned: their certificate
    /// was never stored, so it was never handed out. The serial stays
    /// reserved for ever.
    pub async fn abandon_pending(&self, before: i64, now: i64) -> Result<u64> {
        let r = sqlx::query("UPDATE certificates SET status = 'abandoned', changed_at = $1 WHERE status = 'pending' AND created_at < $2")
            .bind(now)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn count_certs(&self) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM certificates GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

/// Counts for the statistics page.
impl Store {
    /// Certificates issued from `from` on, per profile and UTC day
    /// (`created_at / 86400`).
    pub async fn issued_per_day(&self, from: i64) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT profile, created_at / 86400 AS day, COUNT(*) FROM certificates WHERE status = 'issued' AND created_at >= $1 GROUP BY profile, created_at / 86400",
        )
        .bind(from)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Revoked certificates per reason code.
    pub async fn revocations_by_reason(&self) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT COALESCE(reason, 0), COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL GROUP BY COALESCE(reason, 0)",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get(1)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[tokio::test]
    async fn batch_writes_single_out_collisions() {
        let t = temp_sqlite("store").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let (a, b, c) = (cert("aa"), cert("bb"), cert("cc"));
        assert_eq!(reserve_many(&mut tx, &[&a]).await.unwrap().len(), 1);
        // "aa" is taken: only "bb" and "cc" are ours.
        let mut taken = a.clone();
        taken.tbs = b"another".to_vec();
        let got = reserve_many(&mut tx, &[&taken, &b, &c]).await.unwrap();
        assert_eq!(
            got,
            vec![
                ("ca".to_string(), "bb".to_string()),
                ("ca".to_string(), "cc".to_string())
            ]
        );
        // The same reservation again (a batch re-run after its answer was
        // lost) is still ours; a different TBS under that serial is not.
        let got = reserve_many(&mut tx, &[&taken, &a]).await.unwrap();
        assert_eq!(got, vec![("ca".to_string(), "aa".to_string())]);
        let f = |serial: &'static str| Finalize {
            issuer: "ca",
            serial,
            cert: serial.as_bytes(),
            escrow: None,
        };
        let (fa, fz) = (f("aa"), f("zz"));
        assert_eq!(
            finalize_many(&mut tx, &[&fa]).await.unwrap().stored.len(),
            1
        );
        // "aa" is no longer pending and "zz" never was.
        let (fb, fa2) = (f("bb"), f("aa"));
        let got = finalize_many(&mut tx, &[&fa2, &fb, &fz]).await.unwrap();
        assert_eq!(
            got,
            Finalized {
                stored: vec![("ca".to_string(), "bb".to_string())],
                already: vec![("ca".to_string(), "aa".to_string())],
            }
        );
        tx.rollback().await.unwrap();
    }

    /// Pages of live certificates cover every issued, unexpired one once, in
    /// serial order, and nothing pending or expired.
    #[tokio::test]
    async fn live_pages_cover_each_live_certificate_once() {
        let t = temp_sqlite("pages").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let rows: Vec<NewCert> = (0..600)
            .map(|i| {
                let mut c = cert(&format!("{:04x}", (i * 7919) % 65536));
                // Every tenth has expired at time 10.
                c.not_after = if i % 10 == 0 { 5 } else { 100 };
                c
            })
            .collect();
        issue_all(&mut tx, &rows[..550]).await;
        // The last 50 stay pending.
        reserve_many(&mut tx, &rows[550..].iter().collect::<Vec<_>>())
            .await
            .unwrap();
        crate::commit(tx).await.unwrap();
        let mut want: Vec<String> = rows[..550]
            .iter()
            .filter(|c| c.not_after == 100)
            .map(|c| c.serial.clone())
            .collect();
        want.sort();
        let (mut got, mut after, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = store.live_page("ca", 10, &after, 64).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.0.clone();
            pages += 1;
            got.extend(page.into_iter().map(|r| r.0));
        }
        assert_eq!(got, want);
        assert_eq!(pages, want.len().div_ceil(64));
    }

    /// Pages of the certificate list cover every certificate once, newest
    /// first and by serial within a second, and each page is a range scan
    /// of the index (not a sort of everything issued).
    #[tokio::test]
    async fn list_pages_walk_the_index() {
        let t = temp_sqlite("list").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        // 300 certificates in 4 seconds (75 a second).
        let rows: Vec<NewCert> = (0..300)
            .map(|i| {
                let mut c = cert(&format!("{:04x}", (i * 7919) % 65536));
                c.created_at = 1_000 + i / 75;
                c
            })
            .collect();
        issue_all(&mut tx, &rows).await;
        crate::commit(tx).await.unwrap();
        let mut want: Vec<(i64, String)> = rows
            .iter()
            .map(|c| (c.created_at, c.serial.clone()))
            .collect();
        want.sort();
        want.reverse();
        let (mut got, mut before, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = store.list_certs(40, before.clone()).await.unwrap();
            let Some(last) = page.last() else { break };
            before = Some((last.created_at, last.serial.clone()));
            pages += 1;
            got.extend(page.into_iter().map(|r| (r.created_at, r.serial)));
        }
        assert_eq!(got, want);
        assert_eq!(pages, 300usize.div_ceil(40));

        let plan: Vec<String> = sqlx::query(concat!("EXPLAIN QUERY PLAN ", list_certs!()))
            .bind(1_002i64)
            .bind("8000")
            .bind(40i64)
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|p| p.contains("USING INDEX certificates_created")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// A certificate found by serial alone is looked up in the (issuer,
    /// serial) key of each issuer, not by reading the whole table.
    #[tokio::test]
    async fn lookup_by_serial_uses_the_key() {
        let t = temp_sqlite("by-serial").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let mut other = issuer_row();
        other.id = "cb".into();
        insert_issuer(&mut tx, &other).await.unwrap();
        let mut rows: Vec<NewCert> = (0..50).map(|i| cert(&format!("{i:02x}"))).collect();
        rows.push(NewCert {
            issuer: "cb".into(),
            created_at: 5,
            ..cert("07")
        });
        issue_all(&mut tx, &rows).await;
        crate::commit(tx).await.unwrap();
        // Two with one serial: the issuer must be named.
        match store.get_cert(None, "07").await {
            Err(StoreError::Conflict(m)) => assert!(m.contains("ca, cb"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.get_cert(Some("ca"), "07").await.unwrap().issuer, "ca");
        assert_eq!(store.get_cert(Some("cb"), "07").await.unwrap().issuer, "cb");
        assert!(matches!(
            store.get_cert(Some("cb"), "08").await,
            Err(StoreError::NotFound(_))
        ));
        let plan: Vec<String> = sqlx::query(concat!("EXPLAIN QUERY PLAN ", get_cert!()))
            .bind("ca")
            .bind("07")
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|p| p.starts_with("SEARCH certificates USING INDEX")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|p| p.starts_with("SCAN certificates")),
            "{plan:?}"
        );
    }

    /// On PostgreSQL too, a certificate by serial and a page of the list
    /// are read through an index: with sequential scans made as dear as
    /// they go, the plans name the index and no scan of the table (nor a
    /// sort of it).
    #[tokio::test]
    async fn postgres_lookups_use_their_indexes() {
        let Some(pg) = temp_postgres("plans").await else {
            return;
        };
        let mut tx = pg.store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        let rows: Vec<NewCert> = (0..300)
            .map(|i| {
                let mut c = cert(&format!("{:04x}", (i * 7919) % 65536));
                c.created_at = 1_000 + i / 75;
                c
            })
            .collect();
        issue_all(&mut tx, &rows).await;
        crate::commit(tx).await.unwrap();
        let mut conn = pg.store.pool().acquire().await.unwrap();
        sqlx::query("ANALYZE").execute(&mut *conn).await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        let plan = |rows: Vec<AnyRow>| -> String {
            rows.iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let by_serial = plan(
            sqlx::query(concat!("EXPLAIN ", get_cert!()))
                .bind("ca")
                .bind("07")
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
        );
        assert!(
            by_serial.contains("certificates_pkey")
                && !by_serial.contains("Seq Scan on certificates"),
            "{by_serial}"
        );
        let page = plan(
            sqlx::query(concat!("EXPLAIN ", list_certs!()))
                .bind(1_002i64)
                .bind("8000")
                .bind(40i64)
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
        );
        assert!(
            page.contains("certificates_created")
                && !page.contains("Seq Scan")
                && !page.contains("Sort"),
            "{page}"
        );
        drop(conn);
        pg.remove().await;
    }
}
