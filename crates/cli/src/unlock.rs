//! Opening the installation: the key-store passphrase (or M custodians'
//! shares of it), the PKCS#11 PIN from custodians' shares, and the CA
//! service, with each quorum's presence on the audit record.

use std::path::PathBuf;
use std::sync::Arc;

use hallmark_authority::Authority;
use hallmark_keys::{KdfParams, Passphrase};

use crate::operator::record;
use crate::{Global, Res, passphrase, s};

pub fn pass(g: &Global, confirm: bool) -> Res<Passphrase> {
    if !g.shares.is_empty() {
        return quorum(g).map(|(p, _)| p);
    }
    passphrase::obtain(g.passphrase_file.as_deref(), &g.data_dir, confirm)
}

/// Reads share files; a sealed share is opened with its custodian's
/// passphrase. Returns the shares and who was present (custodian names,
/// or share numbers for plain shares).
fn read_shares(files: &[PathBuf]) -> Res<(Vec<hallmark_keys::shamir::Share>, Vec<String>)> {
    let (mut shares, mut present) = (Vec::new(), Vec::new());
    for f in files {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read share {}: {e}", f.display()))?,
        );
        let at = |e: hallmark_keys::KeyError| format!("{}: {e}", f.display());
        match hallmark_keys::shamir::sealed_custodian(&text) {
            Some(name) => {
                let p = passphrase::custodian(name, false)?;
                let (name, share) = hallmark_keys::shamir::open(&text, &p).map_err(at)?;
                present.push(name);
                shares.push(share);
            }
            None => {
                let share = hallmark_keys::shamir::Share::decode(&text).map_err(at)?;
                present.push(format!("share {}", share.index));
                shares.push(share);
            }
        }
    }
    Ok((shares, present))
}

/// The PKCS#11 PIN from M custodians' `--pin-share` files, handed to the
/// key configuration for this process.
pub fn pin_quorum(g: &Global) -> Res {
    if g.pin_shares.is_empty() {
        return Ok(());
    }
    let secret = hallmark_keys::shamir::combine_bytes(&read_shares(&g.pin_shares)?.0).map_err(s)?;
    let pin = String::from_utf8(secret.to_vec())
        .map_err(|_| "the PIN shares do not combine into a PIN".to_string())?;
    hallmark_install::config::provide_pkcs11_pin(zeroize::Zeroizing::new(pin));
    Ok(())
}

/// The passphrase from M custodians' shares, and who was present; combined
/// once per process, so custodians type their passphrases once.
fn quorum(g: &Global) -> Res<(Passphrase, Vec<String>)> {
    static DONE: std::sync::OnceLock<(Passphrase, Vec<String>)> = std::sync::OnceLock::new();
    if let Some(q) = DONE.get() {
        return Ok(q.clone());
    }
    let (shares, present) = read_shares(&g.shares)?;
    let q = (hallmark_keys::shamir::combine(&shares).map_err(s)?, present);
    Ok(DONE.get_or_init(|| q).clone())
}

pub async fn open(g: &Global) -> Res<Arc<Authority>> {
    let p = pass(g, false)?;
    let abort = hallmark_keys::danger_switch("HALLMARK_DANGER_ABORT_AFTER_SIGN");
    let auth = Authority::open_with(&g.data_dir, &p, g.database_url.as_deref(), abort)
        .await
        .map_err(s)?;
    if !g.shares.is_empty() {
        // Each custodian's presence is on the record.
        let (_, present) = quorum(g)?;
        let cmd: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .take(2)
            .collect();
        record(
            &auth,
            "custody",
            "custody.quorum",
            serde_json::json!({"present": present, "command": cmd.join(" ")}),
        )
        .await?;
    }
    Ok(auth)
}

pub fn kdf() -> KdfParams {
    if hallmark_keys::danger_switch("HALLMARK_DANGER_INSECURE_KDF") {
        KdfParams::danger_insecure_for_tests()
    } else {
        KdfParams::default()
    }
}
