//! Where the key-store passphrase comes from: a file, the environment, or a
//! prompt. Never from the command line, never logged.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use hallmark_keys::Passphrase;

/// The demo passphrase file `quickstart` leaves in its data directory.
pub const DEMO_FILE: &str = "passphrase.demo";

pub fn obtain(file: Option<&Path>, data_dir: &Path, confirm: bool) -> Result<Passphrase, String> {
    let demo = data_dir.join(DEMO_FILE);
    let file = match file {
        Some(f) => Some(f.to_path_buf()),
        None if std::env::var("HALLMARK_PASSPHRASE").is_err() && demo.exists() => {
            eprintln!(
                "note: using the demo passphrase in {} (quickstart data directory)",
                demo.display()
            );
            Some(demo)
        }
        None => None,
    };
    if let Some(f) = file.as_deref() {
        let s = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read passphrase file {}: {e}", f.display()))?;
        return Passphrase::new(s).map_err(|e| format!("passphrase in {}: {e}", f.display()));
    }
    if let Ok(s) = std::env::var("HALLMARK_PASSPHRASE") {
        return Passphrase::new(s).map_err(|e| format!("$HALLMARK_PASSPHRASE: {e}"));
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "no passphrase: set HALLMARK_PASSPHRASE, pass --passphrase-file FILE, or run in a terminal".into(),
        );
    }
    let p = prompt("Key-store passphrase: ")?;
    if confirm {
        let again = prompt("Repeat the passphrase: ")?;
        if again.expose() != p.expose() {
            return Err("the passphrases differ".into());
        }
    }
    Ok(p)
}

/// A custodian's own passphrase for sealing or opening their share: from
/// `$HALLMARK_CUSTODIAN_PASSPHRASE_<NAME>` (NAME upper-cased, `-` and `.` as
/// `_`) for scripted ceremonies, else asked at the terminal.
pub fn custodian(name: &str, confirm: bool) -> Result<Passphrase, String> {
    let var = format!("HALLMARK_CUSTODIAN_PASSPHRASE_{}", custodian_key(name));
    if let Ok(v) = std::env::var(&var) {
        return Passphrase::new(v).map_err(|e| format!("${var}: {e}"));
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "custodian {name} must give their share passphrase: run in a terminal or set ${var}"
        ));
    }
    let p = prompt(&format!("Custodian {name}, your share passphrase: "))?;
    if confirm {
        let again = prompt(&format!("Custodian {name}, repeat it: "))?;
        if again.expose() != p.expose() {
            return Err(format!("custodian {name}: the passphrases differ"));
        }
    }
    Ok(p)
}

/// A custodian's name as it appears in their environment variable.
pub fn custodian_key(name: &str) -> String {
    name.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// Reads a line from the terminal. Echo is turned off with `stty` where
/// available, so the passphrase does not appear on screen.
fn prompt(label: &str) -> Result<Passphrase, String> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let hidden = stty("-echo");
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
        eprintln!();
    }
    r.map_err(|e| format!("cannot read the passphrase: {e}"))?;
    Passphrase::new(line).map_err(|e| format!("passphrase: {e}"))
}
