//! `hallmark keys`: the key store's keys (labels and algorithms, a signing
//! test) and M-of-N custody (splitting the passphrase or the PKCS#11 PIN
//! into custodians' shares).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use hallmark_authority::{Authority, system_now};

use crate::files::write_private;
use crate::operator::{actor, record};
use crate::unlock::{kdf, open, pass};
use crate::{Global, Res, passphrase, s};

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Labels and algorithms of the keys (never key material).
    List,
    /// Split the key-store passphrase into N custodian shares, any M of
    /// which open the key store (pass them with --share FILE, M times).
    Split {
        #[arg(long)]
        m: u8,
        #[arg(long)]
        n: u8,
        /// Directory for the share files (share-1.txt …, mode 0600).
        #[arg(long)]
        out_dir: PathBuf,
        /// Seal each share to its custodian (give N names): the share is
        /// encrypted under the custodian's own passphrase, asked for at the
        /// terminal or read from $HALLMARK_CUSTODIAN_PASSPHRASE_<NAME>.
        #[arg(long = "custodian")]
        custodians: Vec<String>,
    },
    /// Sign and verify a test message with every key.
    Test,
    /// Split the PKCS#11 user PIN (from $HALLMARK_PKCS11_PIN or the PIN file)
    /// into N custodian shares, any M of which stand in for it (--pin-share).
    SplitPin {
        #[arg(long)]
        m: u8,
        #[arg(long)]
        n: u8,
        #[arg(long)]
        out_dir: PathBuf,
        /// Seal each share to its custodian, as for `keys split`.
        #[arg(long = "custodian")]
        custodians: Vec<String>,
    },
}

pub async fn run(g: &Global, c: KeysCmd) -> Res {
    match c {
        KeysCmd::List => {
            let auth = open(g).await?;
            outln!("key store: {}", auth.key_backend());
            for (label, alg) in auth.key_labels() {
                outln!("{label:<40} {alg}");
            }
            Ok(())
        }
        KeysCmd::Split {
            m,
            n,
            out_dir,
            custodians,
        } => {
            let auth = open(g).await?;
            let p = pass(g, false)?;
            let shares = hallmark_keys::shamir::split(&p, m, n).map_err(s)?;
            hand_out_shares(
                &auth,
                &shares,
                &custodians,
                &out_dir,
                "share",
                "custody.split",
                m,
            )
            .await?;
            eprintln!(
                "wrote {n} shares to {}: hand one to each custodian, then remove the passphrase from this machine; any {m} open the key store",
                out_dir.display()
            );
            Ok(())
        }
        KeysCmd::SplitPin {
            m,
            n,
            out_dir,
            custodians,
        } => {
            let auth = open(g).await?;
            let token = auth
                .key_token()
                .map_err(s)?
                .ok_or("this installation keeps its keys in the software store; there is no PIN")?;
            let shares =
                hallmark_keys::shamir::split_bytes(token.pin.as_bytes(), m, n).map_err(s)?;
            hand_out_shares(
                &auth,
                &shares,
                &custodians,
                &out_dir,
                "pin-share",
                "custody.split-pin",
                m,
            )
            .await?;
            eprintln!(
                "wrote {n} PIN shares to {}; remove the PIN file and variable: any {m} custodians then give --pin-share",
                out_dir.display()
            );
            Ok(())
        }
        KeysCmd::Test => {
            let auth = open(g).await?;
            let mut failed = 0;
            for (label, r) in auth.test_keys().map_err(s)? {
                match r {
                    Ok(()) => outln!("{label:<40} signs and verifies"),
                    Err(e) => {
                        failed += 1;
                        outln!("{label:<40} FAILED: {e}");
                    }
                }
            }
            if failed > 0 {
                return Err(format!("{failed} keys failed"));
            }
            Ok(())
        }
    }
}

/// Writes each share to `out_dir` (owner-only, never overwriting): as
/// `PREFIX-INDEX.txt`, or, given one custodian per share, sealed to that
/// custodian's passphrase as `PREFIX-NAME.sealed`. Records the split in the
/// audit log.
async fn hand_out_shares(
    auth: &Authority,
    shares: &[hallmark_keys::shamir::Share],
    custodians: &[String],
    out_dir: &Path,
    prefix: &str,
    action: &str,
    m: u8,
) -> Res {
    if !custodians.is_empty() {
        if custodians.len() != shares.len() {
            return Err(format!(
                "give one --custodian per share: {} names for {} shares",
                custodians.len(),
                shares.len()
            ));
        }
        // Names that differ only in case, '-' or '.' would share one
        // environment variable and, on some file systems, one file.
        let mut names: Vec<String> = custodians
            .iter()
            .map(|c| passphrase::custodian_key(c))
            .collect();
        names.sort();
        names.dedup();
        if names.len() != custodians.len() {
            return Err(
                "each --custodian name must be different (ignoring case, '-' and '.')".into(),
            );
        }
        for c in custodians {
            hallmark_keys::shamir::check_custodian(c).map_err(s)?;
        }
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    // Every custodian's passphrase first, so that a mistyped one leaves no
    // partial split behind.
    let mut passes = Vec::new();
    for c in custodians {
        passes.push(passphrase::custodian(c, true)?);
    }
    for (i, sh) in shares.iter().enumerate() {
        let (path, text) = match (custodians.get(i), passes.get(i)) {
            (Some(c), Some(p)) => {
                let sealed = hallmark_keys::shamir::seal(sh, c, p, kdf()).map_err(s)?;
                (out_dir.join(format!("{prefix}-{c}.sealed")), sealed)
            }
            _ => (
                out_dir.join(format!("{prefix}-{}.txt", sh.index)),
                sh.encode().to_string(),
            ),
        };
        write_private(&path, format!("{text}\n").as_bytes())?;
    }
    record(
        auth,
        &actor(),
        action,
        serde_json::json!({"m": m, "n": shares.len(), "custodians": custodians}),
    )
    .await?;
    auth.checkpoint(system_now()).await.map_err(s)?;
    Ok(())
}
