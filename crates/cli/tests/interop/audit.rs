//! The audit log: a hash chain that `audit verify` checks, and which finds
//! a changed or a missing entry.

use super::*;

on_both!(audit_detects_tampering, cut_tail_found_by_the_anchor);

/// Deleting the log's last checkpoints together with every entry after the
/// checkpoint before them leaves a chain that verifies in the database;
/// the head anchored in the data directory finds the cut.
fn cut_tail_found_by_the_anchor(b: Backend) {
    let hm = setup!(b);
    for i in 0..3 {
        hm.issue(
            &format!("c{i}"),
            "personal",
            &format!("CN=Anchored {i},C=HK"),
            &[],
        );
    }
    let out = hm.ok(&["audit", "verify"]);
    assert!(
        out.contains("audit log OK") && out.contains("anchored head"),
        "{out}"
    );
    let cps: Vec<i64> = hm
        .sql_ok("SELECT seq FROM audit_checkpoints ORDER BY seq")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(cps.len() >= 3, "{cps:?}");
    let keep = cps[cps.len() - 3];
    let anchor = std::fs::read_to_string(hm.path("audit-anchor.json")).unwrap();
    assert!(
        anchor.contains(&format!("\"seq\": {}", cps[cps.len() - 1])),
        "{anchor}"
    );
    hm.sql_ok(&format!("DELETE FROM audit_checkpoints WHERE seq > {keep}"));
    hm.sql_ok(&format!("DELETE FROM audit_log WHERE seq > {keep}"));
    // Without the anchor the cut log looks whole ...
    std::fs::rename(hm.path("audit-anchor.json"), hm.path("anchor.saved")).unwrap();
    let out = hm.ok(&["audit", "verify"]);
    assert!(out.contains("audit log OK"), "{out}");
    // ... with it, the cut is found.
    std::fs::rename(hm.path("anchor.saved"), hm.path("audit-anchor.json")).unwrap();
    let out = hm.run(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success()
            && text.contains(&format!(
                "anchors a signed checkpoint at entry {}",
                cps[cps.len() - 1]
            )),
        "{text}"
    );
    // Later checkpoints do not move the anchor back.
    hm.issue("after", "personal", "CN=After The Cut,C=HK", &[]);
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hm.path("audit-anchor.json")).unwrap())
            .unwrap();
    assert!(now["seq"].as_i64().unwrap() >= cps[cps.len() - 1], "{now}");
}

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
