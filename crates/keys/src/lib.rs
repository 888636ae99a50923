//! Key custody. Keys are created and used here; callers get [`Signer`]s, never
//! key bytes. The embedded default is a software key store: one file in which
//! every private key is sealed with AES-256-GCM under a key derived with
//! Argon2id from the operator's passphrase. Private keys never touch the disk
//! unencrypted. The PKCS#11 backend ([`pkcs11`]) hands out signers the same
//! way, for keys that never leave the token.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use base64ct::{Base64, Encoding};
use hallmark_crypto::aead::SealingKey;
use hallmark_crypto::{KeyAlgorithm, RsaPadding, Signer, SoftwareSigner};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub mod card;
pub mod custody;
pub mod pkcs11;
pub mod shamir;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("wrong passphrase for the key store at {0}")]
    WrongPassphrase(PathBuf),
    #[error("no key labelled {0:?} in the key store")]
    NotFound(String),
    #[error("a key labelled {0:?} already exists")]
    Exists(String),
    #[error("key store {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("key store {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("passphrase: {0}")]
    Passphrase(String),
    #[error(transparent)]
    Crypto(#[from] hallmark_crypto::CryptoError),
}

pub type Result<T, E = KeyError> = std::result::Result<T, E>;

/// An operator passphrase. Never printed, wiped on drop.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Rejects passphrases too short to resist guessing even with Argon2id.
    pub fn new(s: String) -> Result<Self> {
        let s = Zeroizing::new(s);
        let trimmed = s.trim_end_matches(['\n', '\r']);
        if trimmed.chars().count() < 12 {
            return Err(KeyError::Passphrase(
                "must be at least 12 characters long".into(),
            ));
        }
        Ok(Self(Zeroizing::new(trimmed.to_string())))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Argon2id cost. The default follows RFC 9106 §4's second recommended
/// option (64 MiB, 3 passes, 4 lanes) with one lane, since unsealing happens
/// once per process start.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

/// Whether this build has the test switches (`HALLMARK_DANGER_*`): only
/// Hallmark's own test suite builds them (the `danger-test-switches`
/// feature, which the CLI's tests enable); a release build ignores them.
pub const TEST_SWITCHES: bool = cfg!(feature = "danger-test-switches");

/// A test switch: `$NAME=1` in a build with [`TEST_SWITCHES`]. Set in a
/// build without them, it is ignored, with a warning on stderr.
pub fn danger_switch(name: &str) -> bool {
    let set = std::env::var(name).is_ok_and(|v| v == "1");
    if set && !TEST_SWITCHES {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!(
                "warning: {name} is a switch of Hallmark's test builds; this build ignores it"
            );
        });
    }
    set && TEST_SWITCHES
}

static WEAK_KDF_ALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets this process open stores sealed with the tests' cheap KDF (unit
/// tests' fixtures; the CLI's tests use `HALLMARK_DANGER_INSECURE_KDF`).
/// Only in test builds.
#[cfg(feature = "danger-test-switches")]
pub fn danger_allow_weak_kdf() {
    WEAK_KDF_ALLOWED.store(true, std::sync::atomic::Ordering::SeqCst);
}

impl KdfParams {
    /// The weakest Argon2id accepted for a key store, backup or share:
    /// 19 MiB and 2 passes (OWASP's minimum for Argon2id; RFC 9106 §4
    /// recommends more, which is the default).
    pub const MINIMUM: KdfParams = KdfParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };

    /// Refuses parameters a file could carry to exhaust memory or time:
    /// at most 1 GiB, 64 passes, 8 lanes (files may come from anywhere).
    pub fn check_bounds(&self, what: &str) -> Result<()> {
        if self.m_kib > 1024 * 1024 || self.t > 64 || self.p > 8 || self.t == 0 || self.p == 0 {
            return Err(KeyError::Passphrase(format!(
                "{what}: Argon2id parameters out of range (m={} KiB, t={}, p={}; at most 1 GiB, 64 passes, 8 lanes)",
                self.m_kib, self.t, self.p
            )));
        }
        Ok(())
    }

    /// Refuses parameters below [`Self::MINIMUM`] (what a tampered or
    /// test-made file would carry), unless the test switch
    /// `HALLMARK_DANGER_INSECURE_KDF` is on in a test build.
    pub fn check_minimum(&self, what: &str) -> Result<()> {
        let m = Self::MINIMUM;
        let allowed = cfg!(test)
            || WEAK_KDF_ALLOWED.load(std::sync::atomic::Ordering::SeqCst)
            || danger_switch("HALLMARK_DANGER_INSECURE_KDF");
        if (self.m_kib < m.m_kib || self.t < m.t) && !allowed {
            return Err(KeyError::Passphrase(format!(
                "{what} is sealed with Argon2id parameters below the minimum (m={} KiB, t={}; at least m={} KiB, t={}): \
                 it may have been made by a test build or altered; restore the installation from a backup made by a release build",
                self.m_kib, self.t, m.m_kib, m.t
            )));
        }
        Ok(())
    }

    /// A cheap setting for tests only: it offers no protection to a stolen store.
    pub fn danger_insecure_for_tests() -> Self {
        Self {
            m_kib: 256,
            t: 1,
            p: 1,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfRecord {
    alg: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    algorithm: String,
    /// nonce ‖ AES-256-GCM(PKCS#8) ‖ tag, AAD = "hallmark-key:" ‖ label.
    sealed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    kdf: KdfRecord,
    /// Seals a fixed string, to tell a wrong passphrase from corruption.
    check: String,
    keys: BTreeMap<String, KeyRecord>,
}

const CHECK_AAD: &[u8] = b"hallmark-keystore-check";
const CHECK_PLAIN: &[u8] = b"hallmark";

/// The software key store.
pub struct KeyStore {
    path: PathBuf,
    master: SealingKey,
    file: StoreFile,
    /// How RSA keys sign (configuration, not stored in the file).
    rsa_padding: RsaPadding,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The AES-256-GCM key that `pass` and `salt` give under Argon2id with the
/// parameters `p`: what seals the key store, and what seals backups and
/// custodians' shares.
pub fn derive_sealing_key(pass: &Passphrase, salt: &[u8], p: KdfParams) -> Result<SealingKey> {
    let params = argon2::Params::new(p.m_kib, p.t, p.p, Some(32))
        .map_err(|e| KeyError::Passphrase(format!("bad Argon2 parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    a.hash_password_into(pass.expose().as_bytes(), salt, &mut key[..])
        .map_err(|e| KeyError::Passphrase(format!("Argon2id failed: {e}")))?;
    Ok(SealingKey::new(&key)?)
}

fn key_aad(label: &str) -> Vec<u8> {
    format!("hallmark-key:{label}").into_bytes()
}

impl KeyStore {
    pub fn create(path: &Path, pass: &Passphrase, kdf: KdfParams) -> Result<Self> {
        if path.exists() {
            return Err(KeyError::Io {
                path: path.into(),
                detail: "already exists; refusing to overwrite a key store".into(),
            });
        }
        let mut salt = [0u8; 16];
        hallmark_crypto::fill_random(&mut salt)?;
        let master = derive_sealing_key(pass, &salt, kdf)?;
        let check = Base64::encode_string(&master.seal(CHECK_AAD, CHECK_PLAIN)?);
        let store = Self {
            path: path.into(),
            master,
            rsa_padding: RsaPadding::Pkcs1,
            file: StoreFile {
                version: 1,
                kdf: KdfRecord {
                    alg: "argon2id".into(),
                    params: kdf,
                    salt: Base64::encode_string(&salt),
                },
                check,
                keys: BTreeMap::new(),
            },
        };
        store.save()?;
        Ok(store)
    }

    fn read_file(path: &Path) -> Result<StoreFile> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Io {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let corrupt = |d: String| KeyError::Corrupt {
            path: path.into(),
            detail: d,
        };
        let file: StoreFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != 1 || file.kdf.alg != "argon2id" {
            return Err(corrupt("unsupported version or KDF".into()));
        }
        Ok(file)
    }

    pub fn open(path: &Path, pass: &Passphrase) -> Result<Self> {
        let corrupt = |d: String| KeyError::Corrupt {
            path: path.into(),
            detail: d,
        };
        let file = Self::read_file(path)?;
        let what = format!("the key store {}", path.display());
        file.kdf.params.check_bounds(&what)?;
        file.kdf.params.check_minimum(&what)?;
        let salt = Base64::decode_vec(&file.kdf.salt).map_err(|e| corrupt(e.to_string()))?;
        let master = derive_sealing_key(pass, &salt, file.kdf.params)?;
        let check = Base64::decode_vec(&file.check).map_err(|e| corrupt(e.to_string()))?;
        match master.open(CHECK_AAD, &check) {
            Ok(p) if p.as_slice() == CHECK_PLAIN => {}
            _ => return Err(KeyError::WrongPassphrase(path.into())),
        }
        Ok(Self {
            path: path.into(),
            master,
            file,
            rsa_padding: RsaPadding::Pkcs1,
        })
    }

    /// Writes the store atomically: a temporary file, fsync, rename, fsync
    /// of the directory. A crash leaves the old or the new store, never half.
    fn save(&self) -> Result<()> {
        let io = |e: std::io::Error| KeyError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let json = serde_json::to_vec_pretty(&self.file).map_err(|e| KeyError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        write_file_atomic(&self.path, &json, 0o600).map_err(io)
    }

    /// Changes the keys under an exclusive lock on the store, starting from
    /// the file as it is on disk: keys another process wrote since this one
    /// opened the store (`ca add` beside a running server, a second server on
    /// the same directory) are kept, not overwritten by a stale copy.
    fn update(
        &mut self,
        change: impl FnOnce(&mut BTreeMap<String, KeyRecord>) -> Result<()>,
    ) -> Result<()> {
        let io = |e: std::io::Error| KeyError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let _lock = lock_file(&self.path.with_extension("lock")).map_err(io)?;
        let on_disk = Self::read_file(&self.path)?;
        if on_disk.check != self.file.check || on_disk.kdf.salt != self.file.kdf.salt {
            return Err(KeyError::Corrupt {
                path: self.path.clone(),
                detail: "the key store was replaced by another one while open".into(),
            });
        }
        self.file.keys = on_disk.keys;
        change(&mut self.file.keys)?;
        self.save()
    }

    /// Generates a key inside the store and returns its signer.
    pub fn generate(&mut self, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>> {
        let pkcs8 = hallmark_crypto::generate_pkcs8(alg)?;
        let signer = SoftwareSigner::from_pkcs8(alg, &pkcs8)?.with_rsa_padding(self.rsa_padding);
        let sealed = self.master.seal(&key_aad(label), &pkcs8)?;
        self.update(|keys| {
            if keys.contains_key(label) {
                return Err(KeyError::Exists(label.into()));
            }
            keys.insert(
                label.into(),
                KeyRecord {
                    algorithm: alg.name().into(),
                    sealed: Base64::encode_string(&sealed),
                },
            );
            Ok(())
        })?;
        Ok(Arc::new(signer))
    }

    /// Removes a key (e.g. a superseded OCSP signing key).
    pub fn remove(&mut self, label: &str) -> Result<()> {
        self.update(|keys| match keys.remove(label) {
            Some(_) => Ok(()),
            None => Err(KeyError::NotFound(label.into())),
        })
    }

    pub fn signer(&self, label: &str) -> Result<Arc<dyn Signer>> {
        // A key another process added since this one opened the store is
        // read from the file.
        let fresh;
        let rec = match self.file.keys.get(label) {
            Some(r) => r,
            None => {
                fresh = Self::read_file(&self.path)
                    .ok()
                    .filter(|f| f.check == self.file.check)
                    .and_then(|mut f| f.keys.remove(label))
                    .ok_or_else(|| KeyError::NotFound(label.into()))?;
                &fresh
            }
        };
        let corrupt = |d: String| KeyError::Corrupt {
            path: self.path.clone(),
            detail: format!("key {label:?}: {d}"),
        };
        let alg = KeyAlgorithm::from_str(&rec.algorithm).map_err(|e| corrupt(e.to_string()))?;
        let sealed = Base64::decode_vec(&rec.sealed).map_err(|e| corrupt(e.to_string()))?;
        let pkcs8 = self
            .master
            .open(&key_aad(label), &sealed)
            .map_err(|_| corrupt("sealed key fails authentication".into()))?;
        Ok(Arc::new(
            SoftwareSigner::from_pkcs8(alg, &pkcs8)?.with_rsa_padding(self.rsa_padding),
        ))
    }

    /// Makes RSA keys sign with `padding` from now on.
    pub fn set_rsa_padding(&mut self, padding: RsaPadding) {
        self.rsa_padding = padding;
    }

    pub fn list(&self) -> Vec<(String, String)> {
        self.file
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.algorithm.clone()))
            .collect()
    }

    /// Seals a secret (e.g. an escrowed subscriber key) under the store's
    /// master key, bound to `context`.
    pub fn seal(&self, context: &str, secret: &[u8]) -> Result<Vec<u8>> {
        Ok(self.master.seal(context.as_bytes(), secret)?)
    }

    pub fn open_sealed(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Ok(self.master.open(context.as_bytes(), sealed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.into()).unwrap()
    }

    #[test]
    fn keys_are_sealed_and_need_the_passphrase() {
        let dir = std::env::temp_dir().join(format!("hm-ks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keystore.json");
        let kdf = KdfParams::danger_insecure_for_tests();
        let mut ks = KeyStore::create(&path, &pass("correct horse battery"), kdf).unwrap();
        let s = ks.generate("ca", KeyAlgorithm::EcP256).unwrap();
        let sig = s.sign(b"hello").unwrap();
        hallmark_crypto::verify_signature(
            s.spki_der(),
            const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
            None,
            b"hello",
            &sig,
        )
        .unwrap();
        assert!(matches!(
            ks.generate("ca", KeyAlgorithm::EcP256),
            Err(KeyError::Exists(_))
        ));

        // The file holds no PKCS#8 private key in clear.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("PRIVATE KEY"));

        assert!(matches!(
            KeyStore::open(&path, &pass("wrong horse battery")),
            Err(KeyError::WrongPassphrase(_))
        ));
        let ks2 = KeyStore::open(&path, &pass("correct horse battery")).unwrap();
        assert_eq!(ks2.signer("ca").unwrap().spki_der(), s.spki_der());

        // Tampering with a sealed key is detected.
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let sealed = file["keys"]["ca"]["sealed"].as_str().unwrap().to_string();
        let mut raw = Base64::decode_vec(&sealed).unwrap();
        raw[20] ^= 1;
        file["keys"]["ca"]["sealed"] = Base64::encode_string(&raw).into();
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        let ks3 = KeyStore::open(&path, &pass("correct horse battery")).unwrap();
        assert!(matches!(ks3.signer("ca"), Err(KeyError::Corrupt { .. })));
        assert!(Passphrase::new("short".into()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two processes with the same store open (a server, and `ca add` run
    /// beside it) each add a key: neither overwrites the other's, and each
    /// can use a key the other added.
    #[test]
    fn concurrent_writers_keep_each_others_keys() {
        let dir = std::env::temp_dir().join(format!("hm-ks2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keystore.json");
        let p = pass("correct horse battery");
        let kdf = KdfParams::danger_insecure_for_tests();
        KeyStore::create(&path, &p, kdf).unwrap();
        let mut server = KeyStore::open(&path, &p).unwrap();
        let mut cli = KeyStore::open(&path, &p).unwrap();
        let ca = cli.generate("new-ca", KeyAlgorithm::EcP256).unwrap();
        server.generate("ocsp", KeyAlgorithm::EcP256).unwrap();
        assert!(matches!(
            server.generate("new-ca", KeyAlgorithm::EcP256),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(cli.signer("ocsp").unwrap().spki_der().len(), 91);
        let reopened = KeyStore::open(&path, &p).unwrap();
        let labels: Vec<String> = reopened.list().into_iter().map(|(l, _)| l).collect();
        assert_eq!(labels, ["new-ca", "ocsp"]);
        assert_eq!(reopened.signer("new-ca").unwrap().spki_der(), ca.spki_der());
        cli.remove("ocsp").unwrap();
        server.generate("tls", KeyAlgorithm::EcP256).unwrap();
        let labels: Vec<String> = KeyStore::open(&path, &p)
            .unwrap()
            .list()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(labels, ["new-ca", "tls"]);

        // Truly at once: four writers, each with its own (stale) copy.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let mut ks = KeyStore::open(&path, &p).unwrap();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        ks.generate(&format!("w{w}-{i}"), KeyAlgorithm::EcP256)
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(KeyStore::open(&path, &p).unwrap().list().len(), 42);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Takes an exclusive lock on the file at `path` (created empty, mode
/// 0600, if absent), held until the returned file is dropped: how
/// processes sharing a data directory take turns at changing a file.
pub fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(path)?;
    f.lock()?;
    Ok(f)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the
/// new file, never a part: written to a file of its own beside it, synced,
/// renamed over `path`, and the directory synced. A new file gets `mode`; a
/// replaced one keeps its owner and group, and its mode as far as `mode`
/// allows (never looser). A symbolic link is followed, not replaced.
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_whole(path, bytes, mode, true)
}

/// Creates `path` with `bytes` and `mode`, whole or not at all, failing
/// with `AlreadyExists` when it exists: of two writers of one name, one
/// fails and neither loses its file to the other.
pub fn write_new_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_whole(path, bytes, mode, false)
}

fn write_whole(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> std::io::Result<()> {
    let resolved = std::fs::canonicalize(path).ok().filter(|_| replace);
    let path = resolved.as_deref().unwrap_or(path);
    let existing = std::fs::metadata(path).ok().filter(|_| replace);
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        existing
            .as_ref()
            .map_or(mode, |m| mode & m.permissions().mode() & 0o777)
    };
    let mut rnd = [0u8; 8];
    hallmark_crypto::fill_random(&mut rnd).map_err(std::io::Error::other)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", u64::from_le_bytes(rnd)));
    let tmp = path.with_file_name(name);
    let written = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        if let Some(m) = &existing {
            use std::os::unix::fs::MetadataExt;
            // Only root can give a file away; others keep their own.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace {
            std::fs::rename(&tmp, path)
        } else {
            // A link is made only where no file is: no replacing. Where
            // the file system has no links (FAT on removable media), the
            // check and the rename are two steps.
            match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => {
                    std::fs::rename(&tmp, path)
                }
                r => r,
            }
        }
    })();
    if written.is_err() || !replace {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod write_tests {
    use super::*;

    /// The file is replaced whole, with the mode asked for, and nothing is
    /// left beside it; a write into a missing directory fails cleanly.
    #[test]
    fn atomic_write_replaces_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("hm-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.toml");
        write_file_atomic(&path, b"first", 0o600).unwrap();
        write_file_atomic(&path, b"second", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.toml")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_file_atomic(&dir.join("no/such/f"), b"x", 0o600).is_err());
        // A new file is never written over one that exists.
        let fresh = dir.join("new.bin");
        write_new_file_atomic(&fresh, b"one", 0o600).unwrap();
        let again = write_new_file_atomic(&fresh, b"two", 0o600).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&fresh).unwrap(), b"one");
        std::fs::remove_file(&fresh).unwrap();
        // An existing file keeps a stricter mode, and a link stays a link.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let conf = dir.join("c.toml");
            write_file_atomic(&conf, b"a", 0o644).unwrap();
            std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
            write_file_atomic(&conf, b"b", 0o644).unwrap();
            let mode = std::fs::metadata(&conf).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let link = dir.join("link.toml");
            std::os::unix::fs::symlink(&conf, &link).unwrap();
            write_file_atomic(&link, b"c", 0o644).unwrap();
            assert!(
                std::fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(std::fs::read(&conf).unwrap(), b"c");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
