//! Who runs a command, for the audit log, and recording what they did.

use hallmark_authority::Authority;

use crate::{Res, s};

/// The audit log's actor for a CLI command: `cli:` and [`whoami`].
pub fn actor() -> String {
    format!("cli:{}", whoami())
}

/// Appends one audit entry for a CLI action.
pub async fn record(
    auth: &Authority,
    actor: &str,
    action: &str,
    details: serde_json::Value,
) -> Res {
    auth.record(actor, action, details).await.map_err(s)
}

/// Who runs the command, for the audit log: the account of the process's
/// user id (not `$USER`, which anyone can set), with the account that used
/// sudo, if any.
fn whoami() -> String {
    // The real user id, from the kernel's status of this process (the
    // owner of /proc/self is root for a binary given capabilities).
    let me: Option<u32> = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        });
    let Some(uid) = me else {
        return std::env::var("USER").unwrap_or_else(|_| "operator".into());
    };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    match std::env::var("SUDO_USER") {
        Ok(by) if uid == 0 && !by.is_empty() => format!("{name} (sudo by {by})"),
        _ => name,
    }
}
