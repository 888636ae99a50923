//! The audit log: a hash chain that `audit verify` checks, and which finds
//! a changed or a missing entry.

use super::*;

on_both!(audit_detects_tampering);

fn audit_detects_tampering(b: Backend) {
    let hm = setup!(b);
    let (serial, _) = hm.issue("a", "personal", "CN=Audit Me,C=HK", &[]);
    hm.ok(&["cert", "revoke", &serial, "--reason", "superseded"]);
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));
    let issue_seq = hm
        .sql_ok("SELECT seq FROM audit_log WHERE action = 'certificate.issue'")
        .trim()
        .to_string();
    let original = hm
        .sql_ok(&format!(
            "SELECT details FROM audit_log WHERE seq = {issue_seq}"
        ))
        .trim()
        .to_string();

    // Edited entry.
    hm.sql_ok(&format!("UPDATE audit_log SET details = replace(details, 'personal', 'server') WHERE seq = {issue_seq}"));
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains(&format!("entry {issue_seq} was edited")),
        "{text}"
    );
    hm.sql_ok(&format!(
        "UPDATE audit_log SET details = '{}' WHERE seq = {issue_seq}",
        original.replace('\'', "''")
    ));
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));

    // Deleted entry in the middle.
    let saved = hm.sql_ok("SELECT seq, ts, actor, action, details FROM audit_log WHERE seq = 2");
    assert!(!saved.is_empty());
    hm.sql_ok("CREATE TABLE audit_backup AS SELECT * FROM audit_log");
    hm.sql_ok("DELETE FROM audit_log WHERE seq = 2");
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("entries 2..2 are missing"),
        "{text}"
    );
    hm.sql_ok("INSERT INTO audit_log SELECT * FROM audit_backup WHERE seq = 2");
    assert!(hm.ok(&["audit", "verify"]).contains("audit log OK"));

    // Truncated tail: the signed checkpoint still names it.
    let head = hm
        .sql_ok("SELECT MAX(seq) FROM audit_log")
        .trim()
        .parse::<i64>()
        .unwrap();
    hm.sql_ok(&format!("DELETE FROM audit_log WHERE seq = {head}"));
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("were deleted"),
        "{text}"
    );
    hm.sql_ok(&format!(
        "INSERT INTO audit_log SELECT * FROM audit_backup WHERE seq = {head}"
    ));

    // Rewriting history and recomputing the chain is caught by signatures:
    // an inserted entry with a forged link.
    hm.sql_ok(&format!(
        "INSERT INTO audit_log (seq, ts, actor, action, details, prev_hash, hash) SELECT seq + 1000, ts, actor, action, details, hash, hash FROM audit_log WHERE seq = {head}"
    ));
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("missing"), "{text}");
}
