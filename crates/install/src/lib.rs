//! The installation: a data directory and what an operator does to it
//! outside a running service. Its configuration file (`hallmark.toml`) and
//! certificate profiles (`profiles.toml`), the key ceremonies (the first
//! one, `init`; adding, signing and importing issuing CAs; re-keying the
//! root) and encrypted backups with their restore. This is all an offline
//! root's machine runs.
//!
//! May touch: the data directory's files, key custody (creating and using
//! CA keys during a ceremony), the store (recording CAs and their audit
//! entries). Must not: listen on the network, hold a running service's
//! state, or issue end-entity certificates (that is `hallmark-authority`'s
//! issuance gate, through `hallmark-ca`). No wall clock: every ceremony
//! takes the time as an argument.

pub mod backup;
pub mod ceremony;
pub mod config;

use std::collections::BTreeMap;
use std::path::Path;

use hallmark_ca::CaError;
use hallmark_keys::KeyError;
use hallmark_pki::profile::Profile;
use hallmark_store::StoreError;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The data directory or its configuration is missing, unreadable or
    /// says something impossible.
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Pki(#[from] hallmark_pki::PkiError),
    /// What the operator asked cannot be done as asked; the message says why.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = InstallError> = std::result::Result<T, E>;

/// The certificate profiles of the installation in `dir`.
pub fn load_profiles(dir: &Path) -> Result<BTreeMap<String, Profile>> {
    let path = dir.join(config::PROFILES_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| InstallError::Config(format!("cannot read {}: {e}", path.display())))?;
    Ok(hallmark_pki::profile::parse_profiles(&text)?)
}
