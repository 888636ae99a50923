//! Waiting for something another process does: a server that reads its
//! configuration every few seconds, a background publisher, a follower.

use std::time::{Duration, Instant};

/// Polls `ok` every 250 ms until it holds; panics naming `what` when it
/// still does not after `limit`.
pub fn eventually_within(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "waited {} s for {what}",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// [`eventually_within`] 15 s: three times the 5 s at which a running
/// `hallmark serve` reads its configuration and settles its CRL debts.
pub fn eventually(what: &str, ok: impl FnMut() -> bool) {
    eventually_within(Duration::from_secs(15), what, ok)
}
