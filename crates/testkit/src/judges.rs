//! The outside judges: the `openssl` command and pkilint's linters, run as
//! programs so that what Hallmark writes is read by code it did not write.

use std::path::Path;
use std::process::{Command, Output};

pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is needed (Debian: apt-get install openssl)")
}

/// OpenSSL's output and errors, whether or not it succeeded.
pub fn openssl_text(args: &[&str]) -> String {
    let o = openssl(args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs OpenSSL, asserts that it succeeded, and returns its output and errors.
pub fn openssl_ok(args: &[&str]) -> String {
    let o = openssl(args);
    assert!(
        o.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a pkilint linter and asserts it reports nothing at WARNING or above.
pub fn pkilint_clean(tool: &str, args: &[&str], file: &Path) {
    let o = Command::new(tool)
        .arg("lint")
        .args(["-s", "WARNING"])
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} not found ({e}): install pkilint (scripts/test.sh does)")
        });
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.trim().is_empty(),
        "{tool} {} reports:\n{out}{}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}
