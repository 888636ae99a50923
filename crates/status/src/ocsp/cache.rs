//! The responder's cache of signed responses, in shards, with the
//! invalidations ("tombstones") that keep a response signed from a status
//! read before a revocation out of it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hallmark_pki::ocsp::HashAlg;

pub(super) const SHARDS: usize = 16;

/// A cached response. Every response ends with the responder's certificate
/// (the same for all of an issuer's responses), so only what comes before it
/// is kept: a third of the memory per certificate.
pub(super) struct Entry {
    pub(super) head: Box<[u8]>,
    /// The certificate field that follows `head` (shared by all of a
    /// responder's entries; kept per entry so an entry never meets another
    /// responder's certificate).
    pub(super) tail: Option<Arc<[u8]>>,
    /// Re-sign after this time: half-way to nextUpdate (RFC 5019 §6.2 asks
    /// responses to be refreshed before they expire).
    pub(super) refresh_at: u64,
}

/// A cached response's key: the issuer's index among the slots, the CertID's
/// hash algorithm and the serial.
pub(super) type Key = (u16, HashAlg, Vec<u8>);

/// Invalidations remembered per shard (about 4 MiB in all): enough for a
/// revocation storm of thousands a second while a response is being signed.
pub(super) const TOMBSTONES_PER_SHARD: usize = 4096;

/// One shard of the cache, with the invalidations of its serials: a
/// response signed from a status read before its serial was invalidated is
/// not cached, while responses for other serials still are.
#[derive(Default)]
pub(super) struct Shard {
    pub(super) entries: HashMap<Key, Entry>,
    /// Recent invalidations: (issuer index, serial) → the generation it made.
    tombstones: HashMap<(u16, Vec<u8>), u64>,
    order: VecDeque<((u16, Vec<u8>), u64)>,
    /// The newest generation among tombstones no longer kept: a response
    /// whose status was read before it is refused whatever its serial.
    forgotten: u64,
}

impl Shard {
    /// Whether a serial was (or may have been) invalidated after
    /// `generation` was read.
    pub(super) fn invalidated_since(&self, idx: u16, serial: &[u8], generation: u64) -> bool {
        self.forgotten > generation
            || self
                .tombstones
                .get(&(idx, serial.to_vec()))
                .is_some_and(|g| *g > generation)
    }

    pub(super) fn bury(&mut self, idx: u16, serial: Vec<u8>, generation: u64) {
        for h in [HashAlg::Sha1, HashAlg::Sha256] {
            self.entries.remove(&(idx, h, serial.clone()));
        }
        self.tombstones.insert((idx, serial.clone()), generation);
        self.order.push_back(((idx, serial), generation));
        while self.order.len() > TOMBSTONES_PER_SHARD {
            let Some((key, g)) = self.order.pop_front() else {
                break;
            };
            if self.tombstones.get(&key) == Some(&g) {
                self.tombstones.remove(&key);
            }
            self.forgotten = self.forgotten.max(g);
        }
    }
}
