//! Published CRLs, their numbers (with their thisUpdate, taken together),
//! and the CRLs owed after revocations ("debts", paid by the CRLs made
//! after them).

use sqlx::Row;

use crate::{AnyConnection, Result, Store, StoreError};

/// Full-CRL rows use this shard number.
pub const FULL_CRL: i64 = -1;

/// Records, in the revocation's transaction, that the issuer's CRL for
/// `shard` and its full CRL are due (two debts: they are made apart).
pub(crate) async fn owe_crl(
    conn: &mut AnyConnection,
    issuer: &str,
    shard: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO crls_due (issuer, shard, version, changed_at) VALUES ($1, $2, 1, $4), ($1, $3, 1, $4) \
         ON CONFLICT (issuer, shard) DO UPDATE SET version = crls_due.version + 1, changed_at = excluded.changed_at",
    )
    .bind(issuer)
    .bind(shard)
    .bind(FULL_CRL)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A CRL debt as read: (issuer, shard, version, changed_at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlDue {
    pub issuer: String,
    pub shard: i64,
    pub version: i64,
    pub changed_at: i64,
}

/// Marks debts paid by CRLs whose numbers were taken after `paid` was
/// read, up to the versions read: a debt a revocation renewed since (a
/// higher version) stays owed.
pub async fn clear_crls_due(conn: &mut AnyConnection, paid: &[CrlDue]) -> Result<()> {
    for d in paid {
        sqlx::query(
            "UPDATE crls_due SET paid = CASE WHEN paid > $3 THEN paid ELSE $3 END WHERE issuer = $1 AND shard = $2",
        )
            .bind(&d.issuer)
            .bind(d.shard)
            .bind(d.version)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Marks every debt of an issuer paid (its CRL was imported: made elsewhere).
pub async fn clear_all_crls_due(conn: &mut AnyConnection, issuer: &str) -> Result<()> {
    sqlx::query("UPDATE crls_due SET paid = version WHERE issuer = $1")
        .bind(issuer)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes an issuer's next CRL number and the thisUpdate of its CRL, in one
/// statement, so that concurrent generators (several processes) never
/// share a number (RFC 5280 §5.2.3: CRL numbers increase) and a CRL
/// numbered after another is never dated before it: the thisUpdate is
/// `now` or the latest one given, whichever is later, unless the latest
/// is more than 5 minutes ahead of `now` (a clock that ran fast, since
/// corrected): every later CRL would carry that future date, which relying
/// parties refuse, so `now` is taken instead.
///
/// The number is never below `floor` (the caller's clock in
/// milliseconds), so that an installation restored from an older backup,
/// whose counter went back with it, does not give out a number again for
/// a different CRL. Above the floor, numbers go up by one, so they stay
/// monotonic when the clock steps back.
pub async fn next_crl_number(
    conn: &mut AnyConnection,
    issuer: &str,
    floor: i64,
    now: i64,
) -> Result<(i64, i64)> {
    let r: (i64, i64) = sqlx::query_as(
        "UPDATE crl_numbers SET next = (CASE WHEN next > $2 THEN next ELSE $2 END) + 1, \
         this_update = CASE WHEN this_update > $3 AND this_update <= $3 + 300 THEN this_update ELSE $3 END \
         WHERE issuer = $1 RETURNING next - 1, this_update",
    )
    .bind(issuer)
    .bind(floor)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r)
}

/// The number of the CRL published for an issuer's partition, if any.
pub async fn crl_number(conn: &mut AnyConnection, issuer: &str, shard: i64) -> Result<Option<i64>> {
    let r: Option<(i64,)> =
        sqlx::query_as("SELECT number FROM crls WHERE issuer = $1 AND shard = $2")
            .bind(issuer)
            .bind(shard)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(r.map(|r| r.0))
}

pub async fn put_crl(
    conn: &mut AnyConnection,
    issuer: &str,
    shard: i64,
    number: i64,
    this_update: i64,
    next_update: i64,
    der: &[u8],
) -> Result<bool> {
    // One statement (no collision between processes), and never a CRL
    // over one with a higher number: false when a newer one is there.
    let done = sqlx::query(
        "INSERT INTO crls (issuer, shard, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (issuer, shard) DO UPDATE SET number = excluded.number, this_update = excluded.this_update, \
         next_update = excluded.next_update, der = excluded.der WHERE crls.number < excluded.number",
    )
    .bind(issuer)
    .bind(shard)
    .bind(number)
    .bind(this_update)
    .bind(next_update)
    .bind(der.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Clone, Debug)]
pub struct CrlRow {
    pub issuer: String,
    pub shard: i64,
    pub number: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub der: Vec<u8>,
}

impl Store {
    /// CRL debts (see `revoke`): of one issuer, or of all, optionally only
    /// those unchanged since `before` (left by a process that did not pay).
    pub async fn crls_due(&self, issuer: Option<&str>, before: Option<i64>) -> Result<Vec<CrlDue>> {
        let rows = self
            .read(|| async move {
                Ok(sqlx::query(
                    "SELECT issuer, shard, version, changed_at FROM crls_due \
                     WHERE version > paid AND (CAST($1 AS TEXT) IS NULL OR issuer = $1) AND changed_at < $2 ORDER BY issuer, shard",
                )
                .bind(issuer)
                .bind(before.unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CrlDue {
                    issuer: r.try_get(0)?,
                    shard: r.try_get(1)?,
                    version: r.try_get(2)?,
                    changed_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn get_crl(&self, issuer: &str, shard: i64) -> Result<CrlRow> {
        let r = self
            .read(|| async move {
                Ok(sqlx::query("SELECT issuer, shard, number, this_update, next_update, der FROM crls WHERE issuer = $1 AND shard = $2")
                    .bind(issuer)
                    .bind(shard)
                    .fetch_optional(&self.pool)
                    .await?)
            })
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no CRL for {issuer} shard {shard}")))?;
        Ok(CrlRow {
            issuer: r.try_get(0)?,
            shard: r.try_get(1)?,
            number: r.try_get(2)?,
            this_update: r.try_get(3)?,
            next_update: r.try_get(4)?,
            der: r.try_get(5)?,
        })
    }

    pub async fn crls(&self) -> Result<Vec<(String, i64, i64, i64)>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT issuer, shard, number, next_update FROM crls ORDER BY issuer, shard",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::revoke;
    use crate::testing::*;

    /// CRL numbers never fall below the clock (in ms) and never repeat,
    /// also when the counter goes back (a restored backup) or the clock does.
    #[tokio::test]
    async fn crl_numbers_follow_the_clock_and_only_rise() {
        on_each_backend("crl-numbers", async |store: &Store| {
            let mut tx = store.begin().await.unwrap();
            insert_issuer(&mut tx, &issuer_row()).await.unwrap();
            let mut take = async |floor: i64, now: i64| {
                next_crl_number(&mut tx, "ca", floor, now).await.unwrap()
            };
            assert_eq!(take(5_000, 5).await, (5_000, 5));
            assert_eq!(take(5_000, 5).await, (5_001, 5));
            // The clock stepped back (or another process's is behind): the
            // number still rises, and the date does not go back.
            assert_eq!(take(4_000, 4).await, (5_002, 5));
            assert_eq!(take(6_000, 6).await, (6_000, 6));
            // Within 5 minutes ahead the latest date holds; further ahead (a
            // clock that ran fast) it is not followed.
            assert_eq!(take(7_000, 300).await, (7_000, 300));
            assert_eq!(take(7_000, 7).await, (7_001, 300));
            assert_eq!(take(9_000, 10_000).await, (9_000, 10_000));
            assert_eq!(take(9_000, 9).await, (9_001, 9));
            // Restored from a backup taken when the counter was at 3.
            sqlx::query("UPDATE crl_numbers SET next = 3 WHERE issuer = 'ca'")
                .execute(&mut *tx)
                .await
                .unwrap();
            assert_eq!(
                next_crl_number(&mut tx, "ca", 9_000, 9).await.unwrap(),
                (9_000, 9)
            );
            crate::commit(tx).await.unwrap();
        })
        .await;
    }

    /// A revocation leaves a CRL debt in its transaction; a generator that
    /// read the debt before a later revocation does not clear the later one.
    #[tokio::test]
    async fn crl_debts_are_cleared_only_as_read() {
        on_each_backend("crl-debts", async |store: &Store| {
            let mut tx = store.begin().await.unwrap();
            insert_issuer(&mut tx, &issuer_row()).await.unwrap();
            issue_all(&mut tx, &[cert("01"), cert("02"), cert("03")]).await;
            revoke(&mut tx, "ca", "01", 100, 1, 100).await.unwrap();
            crate::commit(tx).await.unwrap();
            let read = store.crls_due(Some("ca"), None).await.unwrap();
            let owed: Vec<_> = read.iter().map(|d| (d.shard, d.changed_at)).collect();
            assert_eq!(owed, [(FULL_CRL, 100), (cert("01").shard, 100)]);
            // Left by a process that did not pay: seen only once old enough.
            assert!(store.crls_due(None, Some(100)).await.unwrap().is_empty());
            assert_eq!(store.crls_due(None, Some(101)).await.unwrap(), read);
            assert!(store.crls_due(Some("cb"), None).await.unwrap().is_empty());
            // Another revocation after the read: the debt stays.
            let mut tx = store.begin().await.unwrap();
            revoke(&mut tx, "ca", "02", 105, 1, 105).await.unwrap();
            clear_crls_due(&mut tx, &read).await.unwrap();
            crate::commit(tx).await.unwrap();
            let again = store.crls_due(None, None).await.unwrap();
            assert_eq!(again.len(), 2);
            assert!(again[0].version > read[0].version && again[1].version > read[1].version);
            let mut tx = store.begin().await.unwrap();
            clear_crls_due(&mut tx, &again).await.unwrap();
            crate::commit(tx).await.unwrap();
            assert!(store.crls_due(None, None).await.unwrap().is_empty());
            // A slow generator that read the first debts clears late, after a
            // new revocation: the new debt stays (versions never start again).
            let mut tx = store.begin().await.unwrap();
            revoke(&mut tx, "ca", "03", 110, 1, 110).await.unwrap();
            clear_crls_due(&mut tx, &read).await.unwrap();
            crate::commit(tx).await.unwrap();
            assert_eq!(store.crls_due(None, None).await.unwrap().len(), 2);
            let mut tx = store.begin().await.unwrap();
            clear_all_crls_due(&mut tx, "ca").await.unwrap();
            crate::commit(tx).await.unwrap();
            assert!(store.crls_due(None, None).await.unwrap().is_empty());
        })
        .await;
    }

    /// A CRL never replaces one with a higher number (two processes
    /// generating at once, or an old CRL imported again).
    #[tokio::test]
    async fn crls_only_move_forward() {
        let t = temp_sqlite("crl-forward").await;
        let store = &t.store;
        let mut tx = store.begin().await.unwrap();
        insert_issuer(&mut tx, &issuer_row()).await.unwrap();
        assert!(
            put_crl(&mut tx, "ca", FULL_CRL, 11, 1, 2, b"eleven")
                .await
                .unwrap()
        );
        assert!(
            !put_crl(&mut tx, "ca", FULL_CRL, 10, 1, 2, b"ten")
                .await
                .unwrap()
        );
        assert!(
            !put_crl(&mut tx, "ca", FULL_CRL, 11, 1, 2, b"again")
                .await
                .unwrap()
        );
        assert_eq!(crl_number(&mut tx, "ca", FULL_CRL).await.unwrap(), Some(11));
        crate::commit(tx).await.unwrap();
        assert_eq!(store.get_crl("ca", FULL_CRL).await.unwrap().der, b"eleven");
        let mut tx = store.begin().await.unwrap();
        assert!(
            put_crl(&mut tx, "ca", FULL_CRL, 12, 1, 2, b"twelve")
                .await
                .unwrap()
        );
        assert_eq!(crl_number(&mut tx, "ca", 3).await.unwrap(), None);
        crate::commit(tx).await.unwrap();
        assert_eq!(store.get_crl("ca", FULL_CRL).await.unwrap().der, b"twelve");
    }
}
