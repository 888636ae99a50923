//! The audit log's head, anchored outside the database: each checkpoint's
//! entry and chain hash are also written to `audit-anchor.json` in the data
//! directory, so that deleting the last checkpoints together with the
//! entries after the one before (which leaves a chain that verifies) is
//! still found: the anchor names a checkpoint the database no longer has.
//! `audit verify` prints it too, for an operator's external record.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Authority, AuthorityError, Result};

pub const ANCHOR_FILE: &str = "audit-anchor.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The checkpointed entry.
    pub seq: i64,
    /// The chain hash at that entry (hex).
    pub hash: String,
}

fn read(dir: &Path) -> Result<Option<Anchor>> {
    let path = dir.join(ANCHOR_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            AuthorityError::Invalid(format!(
                "{} does not parse ({e}): it anchors the audit log's head; restore it from your records",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuthorityError::Invalid(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

impl Authority {
    /// Writes the latest checkpoint to the anchor file if it is newer than
    /// what the file holds (under a lock: several commands may checkpoint
    /// at once).
    pub(crate) async fn anchor_audit_head(&self) -> Result<()> {
        let Some((seq, hash)) = self.store.latest_checkpoint().await? else {
            return Ok(());
        };
        let lock = self.dir.join(format!("{ANCHOR_FILE}.lock"));
        let _held = hallmark_keys::lock_file(&lock)
            .map_err(|e| AuthorityError::Invalid(format!("cannot lock {}: {e}", lock.display())))?;
        if read(&self.dir)?.is_some_and(|a| a.seq >= seq) {
            return Ok(());
        }
        let anchor = Anchor {
            seq,
            hash: hallmark_pki::hex(&hash),
        };
        let text = serde_json::to_string_pretty(&anchor).unwrap_or_default() + "\n";
        let path = self.dir.join(ANCHOR_FILE);
        hallmark_keys::write_file_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|e| AuthorityError::Invalid(format!("cannot write {}: {e}", path.display())))
    }

    /// The anchor in the data directory, and what the database says of it:
    /// a finding if the checkpoint it names is gone or different.
    pub(crate) async fn check_anchor(&self) -> Result<(Option<Anchor>, Option<String>)> {
        let Some(anchor) = read(&self.dir)? else {
            return Ok((None, None));
        };
        let finding = match self.store.checkpoint_hash(anchor.seq).await? {
            Some(h) if hallmark_pki::hex(&h) == anchor.hash => None,
            Some(_) => Some(format!(
                "the checkpoint at entry {} differs from the one anchored in {ANCHOR_FILE}: the log was rewritten",
                anchor.seq
            )),
            None => Some(format!(
                "the log was cut: {ANCHOR_FILE} anchors a signed checkpoint at entry {} that the database no longer has \
                 (its tail, checkpoints included, was deleted)",
                anchor.seq
            )),
        };
        Ok((Some(anchor), finding))
    }
}
