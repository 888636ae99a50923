//! Temporary directories with names no other test (or test run) shares,
//! removed when dropped, also after a failed assertion.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A tag unique to this process and call: the process id, a counter and
/// the clock's nanoseconds (so a re-used process id does not collide with
/// what a crashed earlier run left behind).
pub fn unique_tag() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    #[allow(clippy::disallowed_methods)] // a name, not a time
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{n}_{nanos}", std::process::id())
}

/// A fresh directory under the system's temporary directory.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// `hm-{tag}-{unique}`, created empty.
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("hm-{tag}-{}", unique_tag()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
