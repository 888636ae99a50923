//! Files the CLI writes that only their owner may read (PKCS#12 files,
//! custodians' shares, the demo's secrets): created new, never overwritten.

use std::path::Path;

use crate::{Res, s};

pub fn write_private(path: &Path, data: &[u8]) -> Res {
    use std::io::Write;
    create_private(path)?.write_all(data).map_err(s)
}

/// Creates a new file readable by its owner only; refuses to overwrite.
pub fn create_private(path: &Path) -> Result<std::fs::File, String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} exists; refusing to overwrite", path.display())
        } else {
            format!("cannot create {}: {e}", path.display())
        }
    })
}
