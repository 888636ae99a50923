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

/// The text of a PDF as poppler's `pdftotext` reads it (layout kept).
pub fn pdftotext(file: &Path) -> String {
    let o = Command::new("pdftotext")
        .args(["-layout"])
        .arg(file)
        .arg("-")
        .output()
        .expect("pdftotext is needed (Debian: apt-get install poppler-utils)");
    assert!(
        o.status.success(),
        "pdftotext {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The fonts a PDF embeds, as poppler's `pdffonts` lists them.
pub fn pdffonts(file: &Path) -> String {
    let o = Command::new("pdffonts")
        .arg(file)
        .output()
        .expect("pdffonts is needed (Debian: apt-get install poppler-utils)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The current RFC 6238 code for a base32 secret, computed by PyOTP (the
/// library many authenticator back ends use), not by Hallmark.
pub fn totp_now(secret_base32: &str) -> String {
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, pyotp; print(pyotp.TOTP(sys.argv[1]).now())",
            secret_base32,
        ])
        .output()
        .expect("python3 is needed");
    assert!(
        o.status.success(),
        "pyotp: {} (scripts/test.sh installs it)",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
