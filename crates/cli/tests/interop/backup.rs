//! Backup and restore: one encrypted archive (the operator's only, nothing
//! in clear, never written over another), restores refused before they
//! write anything, and a restore onto a fresh data directory that answers
//! OCSP as before and passes `audit verify`.

use super::*;

on_both!(backup_and_restore, crafted_backups_refused);

/// A backup whose unauthenticated header asks Argon2 for terabytes, or for
/// almost nothing, or that is cut short, is refused at once with what is
/// wrong, and nothing is restored.
fn crafted_backups_refused(b: Backend) {
    let hm = setup!(b);
    let archive = hm.p("b.hmbk");
    hm.ok(&["backup", "--out", &archive]);
    let bytes = std::fs::read(&archive).unwrap();
    // MAGIC (6) ‖ salt (16) ‖ m_kib, t, p (big-endian u32) ‖ sealed.
    let m_at = 6 + 16;
    let restore = |name: &str, data: &[u8], expect: &str| {
        let f = hm.p(&format!("{name}.hmbk"));
        std::fs::write(&f, data).unwrap();
        let fresh = hm.path(&format!("restored-{name}"));
        let started = std::time::Instant::now();
        let o = hm
            .command()
            .env("HALLMARK_DATA_DIR", &fresh)
            .args(["restore", "--in", &f])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(expect), "{name}: {e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{name} took {:?}",
            started.elapsed()
        );
        assert!(
            !fresh.join("keystore.json").exists(),
            "{name}: something was restored"
        );
    };
    let mut huge = bytes.clone();
    huge[m_at..m_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    restore("huge-memory", &huge, "out of range");
    let mut passes = bytes.clone();
    passes[m_at + 4..m_at + 8].copy_from_slice(&1_000_000u32.to_be_bytes());
    restore("many-passes", &passes, "out of range");
    let mut lanes = bytes.clone();
    lanes[m_at + 8..m_at + 12].copy_from_slice(&0u32.to_be_bytes());
    restore("no-lanes", &lanes, "out of range");
    restore("truncated", &bytes[..bytes.len() / 2], "altered");
    restore("header-only", &bytes[..m_at + 12], "altered");
    restore("cut-in-header", &bytes[..m_at + 3], "not a Hallmark backup");
    // Without the test switch, the tests' own weak KDF is refused too.
    let f = hm.p("weak.hmbk");
    std::fs::write(&f, &bytes).unwrap();
    let o = hm
        .command()
        .env_remove("HALLMARK_DANGER_INSECURE_KDF")
        .env("HALLMARK_DATA_DIR", hm.path("restored-weak"))
        .args(["restore", "--in", &f])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("below the minimum"),
        "{e}"
    );
}

fn backup_and_restore(b: Backend) {
    let hm = setup!(b);
    let (_, good) = hm.issue("g", "personal", "CN=Backup Good,C=HK", &[]);
    let (bad_serial, bad) = hm.issue("r", "personal", "CN=Backup Revoked,C=HK", &[]);
    hm.ok(&[
        "cert",
        "revoke",
        &bad_serial,
        "--reason",
        "cessationOfOperation",
    ]);
    let archive = hm.p("backup.hmbk");
    let e = hm.fails(&["backup", "--out", &hm.p("no/such/dir/b.hmbk")]);
    assert!(
        e.contains("directory") && e.contains("does not exist"),
        "{e}"
    );
    // Two backups to one name at once: one is written, the other refused
    // (never one over the other).
    let racers: Vec<_> = (0..3)
        .map(|_| {
            hm.command()
                .args(["backup", "--out", &archive])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<_> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("refusing to overwrite"), "{e}");
    }
    std::fs::remove_file(&archive).unwrap();
    let out = hm.run(&["backup", "--out", &archive]);
    assert!(out.status.success());
    // On PostgreSQL the archive holds the rest, and says how to back up
    // the database (the restore below finds the same database).
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.contains("pg_dump"), b == Backend::Postgres, "{said}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the archive is the operator's only");
    }
    let bytes = std::fs::read(&archive).unwrap();
    for clear in [
        &b"Backup Good"[..],
        b"PRIVATE KEY",
        PASSPHRASE.as_bytes(),
        b"CREATE TABLE",
    ] {
        assert!(
            !bytes.windows(clear.len()).any(|w| w == clear),
            "backup holds {:?} in clear",
            String::from_utf8_lossy(clear)
        );
    }
    // A restore must find the database it goes with: refused before
    // anything is written (no directory, no schema in the wrong database).
    let elsewhere = hm.path("restored-elsewhere");
    let restore_beside = |url: &str| {
        hm.command()
            .env("HALLMARK_DATA_DIR", &elsewhere)
            .env("HALLMARK_DATABASE_URL", url)
            .args(["restore", "--in", &archive])
            .output()
            .unwrap()
    };
    let (o, expect) = match hm.db_url() {
        Some(url) => {
            let (prefix, db) = url.rsplit_once('/').unwrap();
            let empty = format!("{db}_empty");
            hm.sql_ok(&format!("CREATE DATABASE {empty}"));
            let o = restore_beside(&format!("{prefix}/{empty}"));
            let tables = std::process::Command::new("psql")
                .arg(format!("{prefix}/{empty}"))
                .args([
                    "-qAt",
                    "-c",
                    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
                ])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&tables.stdout).trim(), "0");
            hm.sql_ok(&format!("DROP DATABASE {empty} WITH (FORCE)"));
            (o, "holds no Hallmark installation")
        }
        None => (
            restore_beside(&format!("sqlite://{}", hm.p("other.db"))),
            "without --database-url",
        ),
    };
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains(expect), "{e}");
    assert!(!elsewhere.exists());
    // Restore onto a "fresh machine": a new data directory.
    let fresh = hm.path("restored");
    let mut wrong = hm.command();
    wrong
        .env("HALLMARK_DATA_DIR", &fresh)
        .env("HALLMARK_PASSPHRASE", "not the right passphrase")
        .args(["restore", "--in", &archive]);
    let o = wrong.output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    let o = hm
        .command()
        .env("HALLMARK_DATA_DIR", &fresh)
        .args(["restore", "--in", &archive])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let srv = hm.serve_in(&fresh, &[]);
    hm.fetch_ca_files(&srv);
    let ocsp = |cert: &str| ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", cert], &[]);
    let o = ocsp(&good);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    let o = ocsp(&bad);
    assert!(
        o.contains("Response verify OK")
            && o.contains(": revoked")
            && o.contains("cessationOfOperation"),
        "{o}"
    );
    let v = hm
        .command()
        .env("HALLMARK_DATA_DIR", &fresh)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("audit log OK"));
}
