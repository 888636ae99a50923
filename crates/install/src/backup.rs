//! Encrypted backups of a whole installation (configuration, profiles, key
//! store and a consistent SQLite snapshot) and their restore onto a fresh
//! machine. A PostgreSQL database is not in the archive: it is backed up
//! with PostgreSQL's tools, and the archive holds the rest. The archive is sealed with AES-256-GCM under a key derived with
//! Argon2id from the key-store passphrase (the key store's own derivation);
//! keys inside stay sealed as well.

use std::path::Path;

use hallmark_crypto::aead::SealingKey;
use hallmark_keys::{KdfParams, Passphrase};
use zeroize::Zeroizing;

use crate::config::{self, Config};
use crate::{InstallError, Result};

const MAGIC: &[u8; 6] = b"HMBK1\n";
const DB_NAME: &str = "hallmark.db";

fn derive(pass: &Passphrase, salt: &[u8], p: KdfParams) -> Result<SealingKey> {
    Ok(hallmark_keys::derive_sealing_key(pass, salt, p)?)
}

fn push(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(data);
}

/// Writes an encrypted backup of the installation in `dir` to `out`.
pub async fn create(
    dir: &Path,
    store: &hallmark_store::Store,
    pass: &Passphrase,
    out: &Path,
    kdf: KdfParams,
) -> Result<u64> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(InstallError::Invalid(format!(
            "cannot write {}: {} {}",
            out.display(),
            parent.display(),
            if parent.exists() {
                "is a file, not a directory"
            } else {
                "is a directory that does not exist"
            }
        )));
    }
    if out.exists() {
        return Err(InstallError::Invalid(format!(
            "{} exists; refusing to overwrite",
            out.display()
        )));
    }
    let mut payload = Zeroizing::new(Vec::new());
    for name in [
        config::CONFIG_FILE,
        config::PROFILES_FILE,
        config::KEYSTORE_FILE,
    ] {
        let data = std::fs::read(dir.join(name))
            .map_err(|e| InstallError::Config(format!("cannot read {name}: {e}")))?;
        push(&mut payload, name, &data);
    }
    // A PostgreSQL database is backed up with PostgreSQL's own tools
    // (pg_dump, base backups); the archive then holds the rest.
    if store.backend() == hallmark_store::Backend::Sqlite {
        let snapshot = dir.join(format!(".backup-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&snapshot);
        store.snapshot_sqlite(&snapshot).await?;
        let db = std::fs::read(&snapshot)
            .map_err(|e| InstallError::Config(format!("cannot read the snapshot: {e}")));
        let _ = std::fs::remove_file(&snapshot);
        push(&mut payload, DB_NAME, &db?);
    }

    let mut salt = [0u8; 16];
    hallmark_crypto::fill_random(&mut salt).map_err(|e| InstallError::Invalid(e.to_string()))?;
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&salt);
    for v in [kdf.m_kib, kdf.t, kdf.p] {
        header.extend_from_slice(&v.to_be_bytes());
    }
    let sealed = derive(pass, &salt, kdf)?
        .seal(&header, &payload)
        .map_err(|e| InstallError::Invalid(e.to_string()))?;
    let mut file = header;
    file.extend_from_slice(&sealed);
    // Whole or not at all, readable by the operator only (the keys inside
    // are sealed, the rest is the installation's record).
    // Created, never written over: two backups to one name at once leave
    // one of them, and the other fails.
    hallmark_keys::write_new_file_atomic(out, &file, 0o600).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            InstallError::Invalid(format!("{} exists; refusing to overwrite", out.display()))
        } else {
            InstallError::Invalid(format!("cannot write {}: {e}", out.display()))
        }
    })?;
    Ok(file.len() as u64)
}

/// A backup, opened: its files, checked but not yet written anywhere.
pub struct Archive {
    files: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl Archive {
    /// Whether it holds the (SQLite) database; a PostgreSQL installation's
    /// is backed up with PostgreSQL's tools and restored first.
    pub fn has_database(&self) -> bool {
        self.files.iter().any(|(n, _)| n == DB_NAME)
    }

    /// The configuration it holds.
    pub fn config(&self) -> Result<Config> {
        let text = self
            .files
            .iter()
            .find(|(n, _)| n == config::CONFIG_FILE)
            .and_then(|(_, d)| std::str::from_utf8(d).ok())
            .ok_or_else(|| InstallError::Invalid("the backup holds no configuration".into()))?;
        toml::from_str(text)
            .map_err(|e| InstallError::Invalid(format!("the backup's configuration: {e}")))
    }
}

/// Opens a backup with the passphrase: decrypted and its contents checked,
/// nothing written.
pub fn open(input: &Path, pass: &Passphrase) -> Result<Archive> {
    let file = std::fs::read(input)
        .map_err(|e| InstallError::Invalid(format!("cannot read {}: {e}", input.display())))?;
    let hlen = MAGIC.len() + 16 + 12;
    if file.len() < hlen || &file[..MAGIC.len()] != MAGIC {
        return Err(InstallError::Invalid(format!(
            "{} is not a Hallmark backup",
            input.display()
        )));
    }
    let (header, sealed) = file.split_at(hlen);
    let salt = &header[MAGIC.len()..MAGIC.len() + 16];
    let n = |i: usize| {
        let o = MAGIC.len() + 16 + 4 * i;
        u32::from_be_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]])
    };
    let kdf = KdfParams {
        m_kib: n(0),
        t: n(1),
        p: n(2),
    };
    // From the file's unauthenticated header: bounded before Argon2 sees
    // them (a crafted file could ask for terabytes), and at least the
    // minimum (a weakened header gains nothing: the seal would not open,
    // but it is refused before any work).
    let what = format!("the backup {}", input.display());
    kdf.check_bounds(&what)?;
    kdf.check_minimum(&what)?;
    let payload = Zeroizing::new(derive(pass, salt, kdf)?.open(header, sealed).map_err(|_| {
        InstallError::Invalid("wrong passphrase, or the backup was altered".into())
    })?);
    let mut rest: &[u8] = &payload;
    let mut files = Vec::new();
    while !rest.is_empty() {
        let bad = || InstallError::Invalid("the backup's contents are malformed".into());
        let nl = u16::from_be_bytes(
            rest.get(..2)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let name = std::str::from_utf8(rest.get(2..2 + nl).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_string();
        let dl_at = 2 + nl;
        let dl = u64::from_be_bytes(
            rest.get(dl_at..dl_at + 8)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let data = rest.get(dl_at + 8..dl_at + 8 + dl).ok_or_else(bad)?;
        if ![
            config::CONFIG_FILE,
            config::PROFILES_FILE,
            config::KEYSTORE_FILE,
            DB_NAME,
        ]
        .contains(&name.as_str())
            || files.iter().any(|(n, _)| *n == name)
        {
            return Err(bad());
        }
        files.push((name, Zeroizing::new(data.to_vec())));
        rest = &rest[dl_at + 8 + dl..];
    }
    let archive = Archive { files };
    archive.config()?;
    Ok(archive)
}

/// Writes an opened backup into `dir`, which must not hold an
/// installation; `database_url` (the database it is restored beside, when
/// not the one it was taken from) goes into the restored configuration.
pub fn restore(archive: &Archive, dir: &Path, database_url: Option<&str>) -> Result<Vec<String>> {
    if dir.exists() && !dir.is_dir() {
        return Err(InstallError::Invalid(format!(
            "{} is a file, not a data directory",
            dir.display()
        )));
    }
    if dir.join(config::CONFIG_FILE).exists() || dir.join(config::KEYSTORE_FILE).exists() {
        return Err(InstallError::Invalid(format!(
            "{} already holds an installation",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| InstallError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut names = Vec::new();
    for (name, data) in &archive.files {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        use std::io::Write;
        let path = dir.join(name);
        o.open(&path)
            .and_then(|mut f| f.write_all(data).and_then(|_| f.sync_all()))
            .map_err(|e| InstallError::Invalid(format!("cannot write {}: {e}", path.display())))?;
        names.push(name.clone());
    }
    if let Some(url) = database_url {
        Config::update(dir, |cfg| {
            cfg.database.url = url.to_string();
            Ok(())
        })?;
    }
    // The restored configuration must load.
    Config::load(dir)?;
    Ok(names)
}
