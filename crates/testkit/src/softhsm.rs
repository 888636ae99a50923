//! A throwaway SoftHSM2 token for the PKCS#11 tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's SoftHSM2 PKCS#11 module (package softhsm2).
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A fresh SoftHSM2 token with its user PIN also in a file; deleted on
/// drop, even when an assertion failed.
pub struct SoftHsmToken {
    pub label: String,
    pub pin: String,
    pub pin_file: PathBuf,
}

impl SoftHsmToken {
    /// A token named `label`, which should be unique to the test run (add
    /// the process id).
    pub fn new(label: &str) -> Self {
        let pin = "246810".to_string();
        let o = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                &pin,
                "--so-pin",
                "135790",
            ])
            .output()
            .expect("softhsm2-util is needed (Debian: apt-get install softhsm2)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pin_file = std::env::temp_dir().join(format!("{label}.pin"));
        std::fs::write(&pin_file, format!("{pin}\n")).unwrap();
        Self {
            label: label.into(),
            pin,
            pin_file,
        }
    }

    pub fn module() -> &'static Path {
        Path::new(SOFTHSM_MODULE)
    }

    /// `hallmark init` arguments that put every key on this token.
    pub fn init_args(&self) -> Vec<String> {
        vec![
            "--key-store".into(),
            "pkcs11".into(),
            "--pkcs11-module".into(),
            SOFTHSM_MODULE.into(),
            "--pkcs11-token".into(),
            self.label.clone(),
            "--pkcs11-pin-file".into(),
            self.pin_file.display().to_string(),
        ]
    }
}

impl Drop for SoftHsmToken {
    fn drop(&mut self) {
        let _ = Command::new("softhsm2-util")
            .args(["--delete-token", "--token", &self.label])
            .output();
        let _ = std::fs::remove_file(&self.pin_file);
    }
}
