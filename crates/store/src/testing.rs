//! The storage tests' harness: temporary SQLite and PostgreSQL stores and
//! rows to put in them.

#![allow(clippy::unwrap_used)]

pub(crate) use crate::certificates::NewCert;
use crate::certificates::{Finalize, finalize_many, reserve_many};
pub(crate) use crate::issuers::{IssuerRow, insert_issuer};
use crate::{AnyConnection, Store};

/// A SQLite store in a fresh directory of its own, removed on drop.
pub(crate) struct TempSqlite {
    pub store: Store,
    pub dir: hallmark_testkit::temp::TempDir,
}

pub(crate) async fn temp_sqlite(tag: &str) -> TempSqlite {
    let dir = hallmark_testkit::temp::TempDir::new(tag);
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    TempSqlite { store, dir }
}

/// A PostgreSQL store in a database of its own on the server of
/// HALLMARK_TEST_DATABASE_URL; None when that is not set (refused when
/// HALLMARK_REQUIRE_POSTGRES=1, as CI sets it). `remove` drops it.
pub(crate) struct TempPg {
    pub store: Store,
    db: hallmark_testkit::postgres::TempDatabase,
}

impl TempPg {
    /// Closes the store's connections, then drops its database.
    pub(crate) async fn remove(self) {
        self.store.pool().close().await;
        drop(self.db);
    }
}

pub(crate) async fn temp_postgres(tag: &str) -> Option<TempPg> {
    let Some(db) =
        hallmark_testkit::postgres::TempDatabase::create(&format!("{tag}_{}", std::process::id()))
    else {
        eprintln!("PostgreSQL not configured (HALLMARK_TEST_DATABASE_URL); SQLite only");
        return None;
    };
    let store = Store::connect(&db.url).await.unwrap();
    Some(TempPg { store, db })
}

/// Runs a storage test on SQLite, then on PostgreSQL when configured.
pub(crate) async fn on_each_backend(tag: &str, test: impl AsyncFn(&Store)) {
    let t = temp_sqlite(tag).await;
    test(&t.store).await;
    if let Some(pg) = temp_postgres(tag).await {
        test(&pg.store).await;
        pg.remove().await;
    }
}

/// Stores `rows` as issued certificates, each "signed" as its TBS.
pub(crate) async fn issue_all(conn: &mut AnyConnection, rows: &[NewCert]) {
    for chunk in rows.chunks(100) {
        reserve_many(conn, &chunk.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        let fins: Vec<Finalize<'_>> = chunk
            .iter()
            .map(|c| Finalize {
                issuer: &c.issuer,
                serial: &c.serial,
                cert: &c.tbs,
                escrow: None,
            })
            .collect();
        finalize_many(conn, &fins.iter().collect::<Vec<_>>())
            .await
            .unwrap();
    }
}

/// A pending certificate of the issuer "ca" whose TBS is its serial.
pub(crate) fn cert(serial: &str) -> NewCert {
    NewCert {
        issuer: "ca".into(),
        serial: serial.into(),
        profile: "p".into(),
        subject: "CN=x".into(),
        tbs: serial.as_bytes().to_vec(),
        not_before: 1,
        not_after: 2,
        shard: 0,
        created_at: 1,
    }
}

/// The issuer "ca" the storage tests file certificates under.
pub(crate) fn issuer_row() -> IssuerRow {
    IssuerRow {
        id: "ca".into(),
        subject: "CN=ca".into(),
        cert: vec![1],
        parent: None,
        key_label: "k".into(),
        is_root: false,
        created_at: 1,
    }
}
