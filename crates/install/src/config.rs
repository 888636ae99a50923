//! The data directory's configuration file (`hallmark.toml`). Versioned,
//! unknown fields rejected, safe defaults for new fields.
//! The registration authority's sections (`[ra]`, `[ra.registry]`,
//! `[mail]`) are in `config/ra.rs`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::InstallError;

mod ra;
pub use ra::{Fee, MailConfig, RaConfig, RegistryConfig};

pub const CONFIG_FILE: &str = "hallmark.toml";
pub const PROFILES_FILE: &str = "profiles.toml";
pub const KEYSTORE_FILE: &str = "keystore.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub ca: CaConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default, skip_serializing_if = "RaConfig::is_default")]
    pub ra: RaConfig,
    #[serde(default, skip_serializing_if = "MailConfig::is_default")]
    pub mail: MailConfig,
}

/// Where signing keys live. The PKCS#11 user PIN is never in this file: it
/// comes from `$HALLMARK_PKCS11_PIN` or the file named by `pkcs11_pin_file`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// `software` (default) or `pkcs11`.
    #[serde(default = "d_backend")]
    pub backend: String,
    #[serde(default)]
    pub pkcs11_module: Option<std::path::PathBuf>,
    #[serde(default)]
    pub pkcs11_token: Option<String>,
    #[serde(default)]
    pub pkcs11_pin_file: Option<std::path::PathBuf>,
    /// How RSA CA keys sign: `pkcs1` (PKCS#1 v1.5, default) or `pss`
    /// (RSASSA-PSS, SHA-256). EC keys ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_padding: Option<String>,
}

fn d_backend() -> String {
    "software".into()
}

/// A PKCS#11 PIN recovered from custodians' shares for this process
/// (`--pin-share`); it takes precedence over the environment and the file.
static PIN_FROM_QUORUM: std::sync::OnceLock<zeroize::Zeroizing<String>> =
    std::sync::OnceLock::new();

/// Provides the PIN recovered from a quorum of shares (once per process).
pub fn provide_pkcs11_pin(pin: zeroize::Zeroizing<String>) {
    let _ = PIN_FROM_QUORUM.set(pin);
}

impl KeysConfig {
    pub fn rsa_padding(&self) -> Result<hallmark_crypto::RsaPadding, InstallError> {
        match &self.rsa_padding {
            None => Ok(hallmark_crypto::RsaPadding::Pkcs1),
            Some(p) => p
                .parse()
                .map_err(|e| InstallError::Config(format!("keys.rsa_padding: {e}"))),
        }
    }

    /// The token to use, with its PIN, or None for the software store.
    pub fn token(&self) -> Result<Option<hallmark_keys::custody::TokenConfig>, InstallError> {
        match self.backend.as_str() {
            "" | "software" => Ok(None),
            "pkcs11" => {
                let module = self.pkcs11_module.clone().ok_or_else(|| {
                    InstallError::Config(
                        "keys.pkcs11_module is required for the pkcs11 backend".into(),
                    )
                })?;
                let token = self.pkcs11_token.clone().ok_or_else(|| {
                    InstallError::Config(
                        "keys.pkcs11_token is required for the pkcs11 backend".into(),
                    )
                })?;
                // Every copy of the PIN is wiped when dropped.
                let pin = match (&self.pkcs11_pin_file, std::env::var("HALLMARK_PKCS11_PIN")) {
                    _ if PIN_FROM_QUORUM.get().is_some() => zeroize::Zeroizing::new(
                        PIN_FROM_QUORUM
                            .get()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                    ),
                    (_, Ok(p)) => zeroize::Zeroizing::new(p),
                    (Some(f), Err(_)) => {
                        let raw = zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                            InstallError::Config(format!(
                                "cannot read the PKCS#11 PIN file {}: {e} (or give M custodians' --pin-share files)",
                                f.display()
                            ))
                        })?);
                        zeroize::Zeroizing::new(raw.trim_end().to_string())
                    }
                    (None, Err(_)) => {
                        return Err(InstallError::Config(
                            "the PKCS#11 user PIN: give M custodians' --pin-share files, or set HALLMARK_PKCS11_PIN or keys.pkcs11_pin_file"
                                .into(),
                        ));
                    }
                };
                Ok(Some(hallmark_keys::custody::TokenConfig {
                    module,
                    token,
                    pin,
                }))
            }
            other => Err(InstallError::Config(format!(
                "keys.backend {other:?}: use software or pkcs11"
            ))),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// Public base URL written into certificates (CDP, AIA).
    pub base_url: String,
    /// SHA-256 (hex) of the admin API token. The token itself is never stored.
    /// (Missing, it reads as empty, which validation refuses; `admin-token
    /// rotate` writes a new one.)
    #[serde(default)]
    pub admin_token_sha256: String,
    /// Also serve HTTPS here, with a server certificate from this CA whose
    /// key lives in the key store (issued and renewed automatically).
    #[serde(default)]
    pub https_listen: Option<String>,
    /// DNS names in that certificate.
    #[serde(default = "d_https_names")]
    pub https_names: Vec<String>,
    /// Serve the admin API (and everything else) over mutual TLS here:
    /// every client must present a certificate from this installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_https_listen: Option<String>,
    /// SHA-256 fingerprints (hex) of client certificates that may use the
    /// admin API on that listener instead of the token; managed with
    /// `hallmark admin-cert`. Each must be a certificate issued here, not
    /// expired, not revoked, from a CA that is not revoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_client_certs: Vec<String>,
    /// Where the admin API (`/api/v1`) is served besides the admin
    /// mutual-TLS listener (which always serves it): `loopback` (the
    /// default) to clients connecting from a loopback address only,
    /// `admin-tls` nowhere else, `everywhere` on every listener (the bearer
    /// token then crosses the network, on plain HTTP too).
    #[serde(default)]
    pub admin_api: AdminApi,
    /// Validity of the server's own TLS certificate, in minutes; a running
    /// server renews it when a third is left and presents the new one
    /// without a restart.
    #[serde(default = "d_https_cert_minutes")]
    pub https_cert_minutes: u64,
    /// Seconds a client has to send a request's header; also how long a
    /// keep-alive connection may wait idle for its next request.
    #[serde(default = "d_header_read")]
    pub header_read_timeout_secs: u64,
    /// Seconds a request (its body included) has to be received and
    /// answered; beyond, 408.
    #[serde(default = "d_request")]
    pub request_timeout_secs: u64,
    /// Seconds a TLS handshake may take.
    #[serde(default = "d_handshake")]
    pub tls_handshake_timeout_secs: u64,
    /// Connections open at once on each listener; at the limit the one idle
    /// longest is closed to make room (see SECURITY.md). Each needs a
    /// file descriptor: the open-files limit must allow this many on every
    /// listener.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
}

fn d_header_read() -> u64 {
    10
}
fn d_request() -> u64 {
    30
}
fn d_handshake() -> u64 {
    10
}
fn d_max_connections() -> usize {
    4096
}

/// See [`ServerConfig::admin_api`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminApi {
    #[default]
    Loopback,
    AdminTls,
    Everywhere,
}

fn d_https_cert_minutes() -> u64 {
    90 * 24 * 60
}

/// The shortest TLS certificate validity accepted: the maintenance loop
/// looks every few seconds, so it must have time to renew.
pub const MIN_HTTPS_CERT_MINUTES: u64 = 1;

fn d_https_names() -> Vec<String> {
    vec!["hallmark.localhost".into()]
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` (relative to the data directory) or `postgres://…`.
    /// Better without a password: see `password_file`.
    pub url: String,
    /// A file (relative to the data directory) holding the PostgreSQL
    /// password, put into the URL when it has none; else
    /// `$HALLMARK_DATABASE_PASSWORD_FILE`, else `$HALLMARK_DATABASE_PASSWORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    pub default_issuer: String,
    #[serde(default)]
    pub cps_uri: Option<String>,
    #[serde(default = "d_crl_hours")]
    pub crl_validity_hours: u64,
    #[serde(default = "d_shard_days")]
    pub crl_shard_days: u64,
    #[serde(default = "d_ocsp_hours")]
    pub ocsp_validity_hours: u64,
    #[serde(default = "d_signer_days")]
    pub ocsp_signer_days: u64,
    /// OCSP signatures made live (for requests with a nonce, several
    /// CertIDs, or a serial not pre-signed), at most, per second; requests
    /// beyond get the answer that costs no signature (see SECURITY.md).
    #[serde(default = "d_live_signatures")]
    pub ocsp_live_signatures_per_second: u32,
}

fn d_live_signatures() -> u32 {
    500
}

fn d_crl_hours() -> u64 {
    168
}
fn d_shard_days() -> u64 {
    90
}
fn d_ocsp_hours() -> u64 {
    96
}
fn d_signer_days() -> u64 {
    30
}

impl Config {
    /// Opens the installation's key custody as configured (key store, token,
    /// RSA padding).
    pub fn open_keys(
        &self,
        dir: &Path,
        pass: &hallmark_keys::Passphrase,
    ) -> Result<hallmark_keys::custody::Custody, InstallError> {
        Ok(hallmark_keys::custody::Custody::open(
            &dir.join(KEYSTORE_FILE),
            pass,
            self.keys.token()?.as_ref(),
            self.keys.rsa_padding()?,
        )?)
    }

    /// Connects to `database_url`, or else to the configured database.
    pub async fn connect(
        &self,
        dir: &Path,
        database_url: Option<&str>,
    ) -> Result<hallmark_store::Store, InstallError> {
        let url = database_url
            .map(str::to_string)
            .unwrap_or_else(|| self.database_url(dir));
        let url = self.with_password(dir, &url)?;
        Ok(hallmark_store::Store::connect(&url).await?)
    }

    pub fn load(dir: &Path) -> Result<Self, InstallError> {
        let c = Self::read(dir)?;
        c.validate().map_err(|e| match e {
            InstallError::Config(m) => {
                InstallError::Config(format!("{}: {m}", dir.join(CONFIG_FILE).display()))
            }
            e => e,
        })?;
        Ok(c)
    }

    /// Reads the file without validating what it says (for a change that
    /// may be what makes it valid again, e.g. `admin-token rotate` over a
    /// broken token digest).
    fn read(dir: &Path) -> Result<Self, InstallError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            InstallError::Config(format!(
                "cannot read {}: {e}; run `hallmark init --data-dir {}` first",
                path.display(),
                dir.display()
            ))
        })?;
        let mut c: Config = toml::from_str(&text)
            .map_err(|e| InstallError::Config(format!("{}: {e}", path.display())))?;
        // Fingerprints as `admin-cert` writes them (lower-case hex): an
        // operator may have pasted one with colons or in upper case.
        for fp in &mut c.server.admin_client_certs {
            *fp = normalise_fingerprint(fp);
        }
        if c.version != 1 {
            return Err(InstallError::Config(format!(
                "{}: unsupported config version {}; this hallmark reads version 1",
                path.display(),
                c.version
            )));
        }
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), InstallError> {
        if !(self.server.base_url.starts_with("http://")
            || self.server.base_url.starts_with("https://"))
        {
            return Err(InstallError::Config(
                "server.base_url must start with http:// or https://".into(),
            ));
        }
        if self.server.base_url.ends_with('/') {
            return Err(InstallError::Config(
                "server.base_url must not end with '/'".into(),
            ));
        }
        if self.ca.crl_shard_days == 0
            || self.ca.crl_validity_hours == 0
            || self.ca.ocsp_validity_hours == 0
        {
            return Err(InstallError::Config(
                "CRL and OCSP periods must be positive".into(),
            ));
        }
        if !is_sha256_hex(&self.server.admin_token_sha256) {
            return Err(InstallError::Config(
                "server.admin_token_sha256 must be 64 hex digits: the SHA-256 of the admin token; \
                 `hallmark admin-token rotate` writes a new token's"
                    .into(),
            ));
        }
        if let Some(bad) = self
            .server
            .admin_client_certs
            .iter()
            .find(|f| !is_sha256_hex(&normalise_fingerprint(f)))
        {
            return Err(InstallError::Config(format!(
                "server.admin_client_certs: {bad:?} is not a SHA-256 fingerprint (64 hex digits); \
                 add certificates with `hallmark admin-cert add --cert FILE`"
            )));
        }
        if self.server.header_read_timeout_secs == 0
            || self.server.request_timeout_secs == 0
            || self.server.tls_handshake_timeout_secs == 0
            || self.server.max_connections == 0
        {
            return Err(InstallError::Config(
                "server.header_read_timeout_secs, request_timeout_secs, tls_handshake_timeout_secs \
                 and max_connections must be positive"
                    .into(),
            ));
        }
        if !(1..=24).contains(&self.ra.email_link_hours) {
            return Err(InstallError::Config(
                "ra.email_link_hours must be between 1 and 24 (S/MIME Baseline Requirements 3.2.2.2)"
                    .into(),
            ));
        }
        if self.ra.purge_incomplete_after_days == 0 {
            return Err(InstallError::Config(
                "ra.purge_incomplete_after_days must be at least 1".into(),
            ));
        }
        if self.ra.remind_every_minutes == 0
            || self
                .ra
                .remind_before_expiry_days
                .iter()
                .any(|d| !(1..=3650).contains(d))
        {
            return Err(InstallError::Config(
                "ra.remind_every_minutes must be positive and each of ra.remind_before_expiry_days between 1 and 3650"
                    .into(),
            ));
        }
        if self.mail.lease_secs < 6 {
            return Err(InstallError::Config(
                "mail.lease_secs must be at least 6 (the SMTP conversation gets a third of it)"
                    .into(),
            ));
        }
        if let Some(url) = &self.mail.smtp
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(InstallError::Config(format!(
                "mail.smtp {url:?} must start with smtp:// or smtps://, e.g. smtp://127.0.0.1:25 or smtps://mail.example.hk:465"
            )));
        }
        if self.server.https_cert_minutes < MIN_HTTPS_CERT_MINUTES {
            return Err(InstallError::Config(format!(
                "server.https_cert_minutes must be at least {MIN_HTTPS_CERT_MINUTES}"
            )));
        }
        if self.server.https_names.is_empty() {
            return Err(InstallError::Config(
                "server.https_names must name at least one DNS name".into(),
            ));
        }
        if let Some(bad) = self
            .server
            .https_names
            .iter()
            .find(|n| !hallmark_pki::lint::valid_dns_name(&n.to_ascii_lowercase()))
        {
            return Err(InstallError::Config(format!(
                "server.https_names: {bad:?} is not a DNS name with a dot (IP addresses are not supported \
                 in the server certificate yet; give a name, e.g. hallmark.example.hk)"
            )));
        }
        Ok(())
    }

    /// A PostgreSQL URL without a password gets the one from
    /// `database.password_file`, `$HALLMARK_DATABASE_PASSWORD_FILE` or
    /// `$HALLMARK_DATABASE_PASSWORD` (so that it need not be on a command
    /// line or in hallmark.toml); other URLs are returned as they are.
    pub fn with_password(&self, dir: &Path, url: &str) -> Result<String, InstallError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(url.to_string());
        };
        if !matches!(scheme, "postgres" | "postgresql") {
            return Ok(url.to_string());
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (userinfo, host) = match rest[..authority_end].rsplit_once('@') {
            Some((u, _)) if u.contains(':') => return Ok(url.to_string()),
            Some((u, h)) => (Some(u), h),
            None => (None, &rest[..authority_end]),
        };
        let file = self
            .database
            .password_file
            .as_ref()
            .map(|f| dir.join(f))
            .or_else(|| std::env::var_os("HALLMARK_DATABASE_PASSWORD_FILE").map(Into::into));
        let password = match file {
            Some(f) => zeroize::Zeroizing::new(
                std::fs::read_to_string(&f)
                    .map_err(|e| {
                        InstallError::Config(format!(
                            "cannot read the database password file {}: {e}",
                            f.display()
                        ))
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            None => match std::env::var("HALLMARK_DATABASE_PASSWORD") {
                Ok(p) => zeroize::Zeroizing::new(p),
                Err(_) => return Ok(url.to_string()),
            },
        };
        let user = match userinfo {
            Some(u) => u.to_string(),
            None => {
                return Err(InstallError::Config(
                    "a database password was given, but the PostgreSQL URL names no user \
                     (postgres://USER@HOST/DB)"
                        .into(),
                ));
            }
        };
        let encoded: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Ok(format!(
            "{scheme}://{user}:{encoded}@{host}{}",
            &rest[authority_end..]
        ))
    }

    /// The database URL with a relative SQLite path resolved against `dir`.
    pub fn database_url(&self, dir: &Path) -> String {
        match self.database.url.strip_prefix("sqlite://") {
            Some(p) if !p.starts_with('/') => format!("sqlite://{}", dir.join(p).display()),
            _ => self.database.url.clone(),
        }
    }

    pub fn ca_settings(&self) -> hallmark_ca::Settings {
        hallmark_ca::Settings {
            base_url: self.server.base_url.clone(),
            cps_uri: self.ca.cps_uri.clone(),
            crl_validity_secs: self.ca.crl_validity_hours * 3600,
            crl_shard_secs: self.ca.crl_shard_days * 86_400,
            ocsp_validity_secs: self.ca.ocsp_validity_hours * 3600,
            ocsp_signer_secs: self.ca.ocsp_signer_days * 86_400,
        }
    }

    /// Changes the configuration in `dir` under an exclusive lock
    /// (`hallmark.toml.lock`): read, changed by `change`, written back
    /// atomically, so that two commands changing it at once do not lose
    /// either change. Nothing is written when `change` fails.
    pub fn update<T>(
        dir: &Path,
        change: impl FnOnce(&mut Config) -> Result<T, InstallError>,
    ) -> Result<T, InstallError> {
        let lock_path = dir.join(format!("{CONFIG_FILE}.lock"));
        let _lock = hallmark_keys::lock_file(&lock_path).map_err(|e| {
            InstallError::Config(format!("cannot lock {}: {e}", lock_path.display()))
        })?;
        // Read as it is; what is saved must be valid.
        let mut cfg = Config::read(dir)?;
        let out = change(&mut cfg)?;
        cfg.validate().map_err(|e| match e {
            InstallError::Config(m) => {
                InstallError::Config(format!("{}: {m}", dir.join(CONFIG_FILE).display()))
            }
            e => e,
        })?;
        cfg.save(dir)?;
        Ok(out)
    }

    pub fn save(&self, dir: &Path) -> Result<(), InstallError> {
        let text = toml::to_string_pretty(self).map_err(|e| InstallError::Config(e.to_string()))?;
        let path = dir.join(CONFIG_FILE);
        hallmark_keys::write_file_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|e| InstallError::Config(format!("cannot write {}: {e}", path.display())))
    }
}

/// A certificate fingerprint as the configuration keeps it: lower-case hex
/// without separators (`AB:CD:…` is accepted on input).
pub fn normalise_fingerprint(fp: &str) -> String {
    fp.trim().to_ascii_lowercase().replace(':', "")
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceremony;

    /// A fresh installation (SQLite, software keys, a fast KDF) in `dir`.
    async fn installation(dir: &Path) {
        let mut opts = ceremony::InitOptions::software(
            "CN=Config Root,C=HK",
            "CN=Config Issuing,C=HK",
            "127.0.0.1:0",
        );
        opts.root_algorithm = hallmark_crypto::KeyAlgorithm::EcP256;
        opts.kdf = hallmark_keys::KdfParams::danger_insecure_for_tests();
        hallmark_keys::danger_allow_weak_kdf();
        let pass = hallmark_keys::Passphrase::new("config test passphrase".into()).unwrap();
        ceremony::init(dir, &opts, &pass, 1_800_000_000)
            .await
            .unwrap();
    }

    /// Commands changing the configuration at once lose none of the
    /// changes (each reads, changes and writes under the config lock).
    #[tokio::test]
    async fn concurrent_config_changes_are_all_kept() {
        let tmp = hallmark_testkit::temp::TempDir::new("cfg-lock");
        let dir = tmp.join("data");
        installation(&dir).await;
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..5 {
                        Config::update(&dir, |c| {
                            c.server.admin_client_certs.push(format!("{w:02x}{i:062x}"));
                            Ok(())
                        })
                        .unwrap();
                        if i == 2 {
                            ceremony::rotate_admin_token(&dir).unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(
            Config::load(&dir).unwrap().server.admin_client_certs.len(),
            40
        );
        // A change that fails writes nothing.
        let before = std::fs::read(dir.join(CONFIG_FILE)).unwrap();
        let e = Config::update(&dir, |c| {
            c.server.admin_client_certs.clear();
            Err::<(), _>(InstallError::Invalid("no".into()))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read(dir.join(CONFIG_FILE)).unwrap(), before);
    }
}
