//! The two lanes CRLs are made in after revocations (partitions, full
//! CRLs): what is queued in each, and the batches that take it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::{Result, StatusError};

/// The two kinds of CRL made after revocations, each in a lane of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An issuer's partition (shard) CRLs; none for a root.
    Partitions,
    /// An issuer's full CRL.
    Full,
}

/// One lane: CRLs owed after revocations, taken in numbered batches by
/// whoever holds its lock.
#[derive(Default)]
pub(crate) struct Lane {
    pub(crate) lock: tokio::sync::Mutex<()>,
    pub(crate) due: Mutex<CrlsDue>,
}

#[derive(Default)]
pub(crate) struct Lanes {
    pub(crate) partitions: Lane,
    pub(crate) full: Lane,
}

impl Lanes {
    pub(crate) fn of(&self, kind: Kind) -> &Lane {
        match kind {
            Kind::Partitions => &self.partitions,
            Kind::Full => &self.full,
        }
    }
}

#[derive(Default)]
pub(crate) struct CrlsDue {
    /// (issuer, shard) not yet on a published CRL (shard is `FULL_CRL` in
    /// the full lane).
    pub(crate) pending: BTreeSet<(String, i64)>,
    /// Batches taken so far.
    pub(super) taken: u64,
    /// For each (issuer, shard), the latest batch that published it: what
    /// was queued before that batch was taken is on the published CRL.
    /// (Kept per CRL, so that one issuer whose CRLs keep failing does not
    /// hold up the callers of the others.)
    pub(super) published: BTreeMap<(String, i64), u64>,
    /// Revocations queued so far (for tests).
    pub(crate) queued: u64,
}

impl Lane {
    pub(super) fn due(&self) -> Result<std::sync::MutexGuard<'_, CrlsDue>> {
        self.due
            .lock()
            .map_err(|_| StatusError::Invalid("the CRL queue lock is poisoned".into()))
    }

    /// Queues CRLs; returns the ticket (batch number) that will cover them.
    pub(super) fn queue(&self, issuer: &str, shard: i64) -> Result<u64> {
        let mut due = self.due()?;
        due.pending.insert((issuer.to_string(), shard));
        due.queued += 1;
        Ok(due.taken + 1)
    }
}

/// A batch of CRLs being made: what it has not done goes back to the queue
/// when it ends, also when the task making it is cancelled (a client that
/// hung up) or panics, so that no revocation is left off the CRLs.
pub(crate) struct Batch<'a> {
    pub(crate) number: u64,
    pub(crate) work: Option<BTreeSet<(String, i64)>>,
    pub(crate) due: &'a Mutex<CrlsDue>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take().filter(|w| !w.is_empty())
            && let Ok(mut due) = self.due.lock()
        {
            due.pending.extend(work);
        }
    }
}
