//! PostgreSQL for tests: the server named by `$HALLMARK_TEST_DATABASE_URL`
//! (CI sets it, with `HALLMARK_REQUIRE_POSTGRES=1`), and databases of their
//! own on it, made with `psql` and dropped when done.

use std::process::Command;

/// The PostgreSQL server for tests, as a URL naming a database to connect
/// to for administration (e.g. `postgres://USER@127.0.0.1:5432/test`); None
/// when the suite runs on SQLite alone. Panics when
/// `HALLMARK_REQUIRE_POSTGRES=1` but no server is named, so that CI cannot
/// silently skip PostgreSQL.
pub fn server_url() -> Option<String> {
    match std::env::var("HALLMARK_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            let required = std::env::var("HALLMARK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "HALLMARK_REQUIRE_POSTGRES=1 but HALLMARK_TEST_DATABASE_URL is not set"
            );
            None
        }
    }
}

/// Runs one SQL statement with `psql` against `url`; panics with psql's
/// message when it fails.
pub fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql is needed for PostgreSQL tests (Debian: apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database of its own on the test server, dropped (`WITH (FORCE)`,
/// closing what is still connected) when this is dropped.
pub struct TempDatabase {
    /// Its name, `hm_test_` and the tag.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
    server: String,
}

impl TempDatabase {
    /// Creates `hm_test_{tag}` (the tag made of letters, digits and `_`;
    /// `-` becomes `_`) after dropping any left by an earlier run. None when
    /// no test server is configured (see [`server_url`]).
    pub fn create(tag: &str) -> Option<Self> {
        let server = server_url()?;
        let name = format!("hm_test_{}", tag.replace('-', "_"));
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "database tag {tag:?}: use letters, digits, '-' and '_'"
        );
        psql(
            &server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(&server, &format!("CREATE DATABASE {name}"));
        let url = match server.rsplit_once('/') {
            Some((host, _)) => format!("{host}/{name}"),
            None => panic!("HALLMARK_TEST_DATABASE_URL has no database name: {server}"),
        };
        Some(Self { name, url, server })
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.server)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}
