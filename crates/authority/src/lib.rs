//! The CA service: the running certification authority that the HTTP
//! server, the CLI and the capabilities to come (the registration
//! authority, ACME, the eID) call. It owns the store, key custody and the
//! CA (`hallmark-ca`), and it is the only caller of the CA's issuance: the
//! issuance gate ([`Authority::issue`]) refuses what a revoked CA would
//! issue, then hands the request to the CA, which lints, records the
//! serial and linted TBS, signs, compares and stores through the
//! [`ledger`]. It revokes (storing the revocation with its audit entry and
//! the CRLs it makes due in one transaction, then having OCSP answer it and
//! the status services publish its CRLs), keeps the CA hierarchy's own
//! certificates (a revoked issuing CA, an offline root's imported CRL),
//! renews its delegated OCSP signers and its TLS certificate, follows
//! admin-access changes, and runs the background maintenance of a server.
//!
//! May touch: the store, key custody (through [`Custody`], locked per
//! operation: signers are handed out, never key bytes), the data
//! directory's configuration (read through `hallmark-install`). Must not:
//! know HTTP (the server maps its errors to problem details), parse command
//! lines, or hold registration workflows (applications, identity checks:
//! those go in a crate of their own that calls this one). This crate is
//! where the wall clock is read ([`system_now`]); everything else takes
//! time as an argument.

mod admin;
pub mod anchor;
pub mod batch;
mod datakeys;
mod hierarchy;
pub mod ledger;
pub mod maintenance;
mod renewal;
mod revocation;
#[cfg(test)]
mod testing;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use hallmark_ca::{Ca, CaError, IssuerKey, Settings};
use hallmark_crypto::Signer;
use hallmark_install::config::Config;
use hallmark_install::{InstallError, ceremony};
use hallmark_keys::custody::{Custody, TokenConfig};
use hallmark_keys::{KdfParams, KeyError, Passphrase};
use hallmark_status::{CrlPublisher, OcspService, StatusError};
use hallmark_store::audit::{self, AuditReport};
use hallmark_store::certificates::CertRow;
use hallmark_store::crls::CrlRow;
use hallmark_store::issuers::IssuerRow;
use hallmark_store::{Backend, Store, StoreError};

pub use admin::AdminAccess;
pub use datakeys::DataKey;
pub use hallmark_ca::{IssueRequest, Issued, KeySource, one_time_pin};
/// The request and result types of [`Authority::issue`], for its callers.
pub use hallmark_install::config::{AdminApi, MailConfig, RaConfig, RegistryConfig, ServerConfig};
pub use hallmark_status::CrlInfo;
use ledger::{KeyStoreSealer, StoreLedger};
pub use revocation::normalise_serial;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The installation's configuration is missing or wrong.
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
    /// The request cannot be done as asked; the message says why.
    #[error("{0}")]
    Invalid(String),
}

/// The installation's errors are the service's, kind for kind.
impl From<InstallError> for AuthorityError {
    fn from(e: InstallError) -> Self {
        match e {
            InstallError::Config(m) => Self::Config(m),
            InstallError::Keys(k) => Self::Keys(k),
            InstallError::Store(s) => Self::Store(s),
            InstallError::Ca(c) => Self::Ca(c),
            InstallError::Pki(p) => Self::Pki(p),
            InstallError::Invalid(m) => Self::Invalid(m),
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// The status services' errors are the service's, kind for kind.
impl From<StatusError> for AuthorityError {
    fn from(e: StatusError) -> Self {
        match e {
            StatusError::Store(s) => Self::Store(s),
            StatusError::Ca(c) => Self::Ca(c),
            StatusError::Invalid(m) => Self::Invalid(m),
            other => Self::Invalid(other.to_string()),
        }
    }
}

pub type Result<T, E = AuthorityError> = std::result::Result<T, E>;

/// The wall clock, read in one place (everything else takes time as an argument).
#[allow(clippy::disallowed_methods)]
pub fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn i64_now() -> i64 {
    system_now() as i64
}

/// A CA id given by a caller (`--issuer`, the API's `issuer`), checked
/// for the shape `init` allows before it reaches the database.
pub(crate) fn check_issuer_id(issuer: Option<&str>) -> Result<()> {
    match issuer {
        Some(id) => ceremony::check_id(id).map_err(|e| AuthorityError::Invalid(e.to_string())),
        None => Ok(()),
    }
}

/// Everything a running Hallmark needs, assembled from a data directory.
pub struct Authority {
    dir: PathBuf,
    config: Config,
    store: Store,
    ca: Ca<StoreLedger>,
    ocsp: Arc<OcspService>,
    crls: Arc<CrlPublisher>,
    keys: Arc<Mutex<Custody>>,
    audit_signer: Arc<dyn Signer>,
    /// CAs whose own certificate is revoked: they issue nothing more.
    revoked_cas: RwLock<HashSet<String>>,
    /// Who may use the admin API, as last read from the config file.
    admin: RwLock<Arc<AdminAccess>>,
    /// Changes of the admin access in force but not yet audited.
    admin_unaudited: Mutex<Vec<serde_json::Value>>,
}

/// Certificates read and pre-signed at a time.
const PRESIGN_PAGE: usize = 1024;

/// Pending rows older than this are abandoned at start-up: no live issuance
/// takes that long, so their certificates were never handed out.
const ABANDON_AFTER_SECS: i64 = 600;

impl Authority {
    pub async fn open(
        dir: &Path,
        pass: &Passphrase,
        database_url: Option<&str>,
    ) -> Result<Arc<Self>> {
        Self::open_with(dir, pass, database_url, false).await
    }

    /// As [`open`](Self::open); `danger_abort_after_sign` injects a crash
    /// between signing and storing (tests of atomicity only).
    pub async fn open_with(
        dir: &Path,
        pass: &Passphrase,
        database_url: Option<&str>,
        danger_abort_after_sign: bool,
    ) -> Result<Arc<Self>> {
        let config = Config::load(dir)?;
        let admin = AdminAccess::of(&config);
        let profiles = hallmark_install::load_profiles(dir)?;
        let keys = config.open_keys(dir, pass)?;
        let store = config.connect(dir, database_url).await?;
        let now = system_now();

        let abandoned = store
            .abandon_pending(now as i64 - ABANDON_AFTER_SECS, now as i64)
            .await?;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "pending certificates from an interrupted issuance were abandoned"
            );
            store
                .record(
                    now as i64,
                    "system",
                    "certificate.abandon",
                    format!("{{\"count\":{abandoned}}}"),
                )
                .await?;
        }

        let mut issuers = Vec::new();
        for row in store.issuers().await? {
            match keys.signer(&row.key_label) {
                Ok(s) => issuers.push(IssuerKey::new(&row.id, row.cert.clone(), s, row.is_root)?),
                Err(KeyError::NotFound(_)) if row.is_root || row.id != config.ca.default_issuer => {
                    // An offline root, or a CA signed here for another machine.
                    tracing::info!(issuer = %row.id, "CA key is not in this key store; not signing for it");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !config.ca.default_issuer.is_empty()
            && !issuers.iter().any(|i| i.id == config.ca.default_issuer)
        {
            return Err(AuthorityError::Config(format!(
                "issuing CA {:?} is not installed: if its CSR went to an offline root, import the signed certificate with `hallmark ca import --id {} --cert FILE`",
                config.ca.default_issuer, config.ca.default_issuer
            )));
        }
        let audit_signer = keys.signer(ceremony::AUDIT_KEY)?;
        let stored_audit = store.get_setting("audit.spki").await?;
        if stored_audit.as_deref() != Some(hallmark_pki::hex(audit_signer.spki_der()).as_str()) {
            return Err(AuthorityError::Config(
                "the audit key in the key store is not the one recorded in the database".into(),
            ));
        }

        let keys = Arc::new(Mutex::new(keys));
        let settings = config.ca_settings();
        let writer = hallmark_store::writer::Writer::spawn(store.clone(), i64_now);
        let mut ca = Ca::new(
            settings.clone(),
            profiles,
            issuers,
            config.ca.default_issuer.clone(),
            StoreLedger { writer },
            Arc::new(KeyStoreSealer(keys.clone())),
        );
        ca.danger_abort_after_sign = danger_abort_after_sign;
        let ocsp = Arc::new(
            OcspService::new(store.clone(), Vec::new(), settings.ocsp_validity_secs)
                .with_live_budget(config.ca.ocsp_live_signatures_per_second),
        );
        let crls = Arc::new(CrlPublisher::new(
            store.clone(),
            ca.issuers().cloned(),
            settings.clone(),
            system_now,
        ));
        let auth = Self {
            dir: dir.into(),
            config,
            store,
            ca,
            ocsp,
            crls,
            keys,
            audit_signer,
            revoked_cas: Default::default(),
            admin: RwLock::new(admin),
            admin_unaudited: Mutex::new(Vec::new()),
        };
        auth.refresh_revoked_cas().await?;
        auth.record_config_change(now).await?;
        auth.ensure_ocsp_signers(now).await?;
        Ok(Arc::new(auth))
    }

    /// The key store, locked for one operation.
    fn keys(&self) -> Result<std::sync::MutexGuard<'_, Custody>> {
        self.keys
            .lock()
            .map_err(|_| AuthorityError::Invalid("the key store lock is poisoned".into()))
    }

    /// Opens a certificate's escrowed key (sealed at issuance under the
    /// key store's master key, bound to this issuer and serial). Only the
    /// registration authority's key recovery, under dual control, calls it.
    pub fn open_escrow(
        &self,
        issuer: &str,
        serial_hex: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        Ok(self
            .keys()?
            .open_sealed(&format!("escrow:{issuer}:{serial_hex}"), sealed)?)
    }

    /// Audits a change of the configuration or profiles since the last start.
    async fn record_config_change(&self, now: u64) -> Result<()> {
        let mut h = hallmark_crypto::Sha256::default();
        for f in [
            hallmark_install::config::CONFIG_FILE,
            hallmark_install::config::PROFILES_FILE,
        ] {
            h.update(&std::fs::read(self.dir.join(f)).unwrap_or_default());
        }
        let digest = hallmark_pki::hex(&h.finish());
        if self.store.get_setting("config.sha256").await?.as_deref() != Some(digest.as_str()) {
            let mut tx = self.store.begin().await?;
            hallmark_store::put_setting(&mut tx, "config.sha256", &digest).await?;
            audit::record(
                &mut tx,
                self.store.backend(),
                now as i64,
                "system",
                "config.load",
                format!("{{\"sha256\":\"{digest}\"}}"),
            )
            .await?;
            hallmark_store::commit(tx).await?;
        }
        Ok(())
    }

    pub async fn issue(&self, req: IssueRequest, now: u64) -> Result<Issued> {
        let issuer = &self.ca.issuer(req.issuer.as_deref())?.id;
        if self.is_revoked_ca(issuer) {
            return Err(AuthorityError::Invalid(format!(
                "issuing CA {issuer:?} is revoked and issues nothing more; make a new one with `hallmark ca rollover`"
            )));
        }
        let issued = self.ca.issue(req, now).await?;
        // The certificate's CRL distribution point answers from now on. A
        // failure here leaves the certificate issued (it is stored and
        // signed); its partition CRL then comes with the next scheduled
        // generation.
        if let Err(e) = self
            .crls
            .ensure_partition(&issued.issuer, issued.not_after, now)
            .await
        {
            tracing::error!(error = %e, issuer = %issued.issuer, "cannot publish the new certificate's partition CRL");
        }
        Ok(issued)
    }

    /// Pre-signs the OCSP responses of every live certificate (in the
    /// background of `serve`, at start and again before responses age), so
    /// that no query for an issued certificate waits for a signature.
    pub async fn presign_ocsp(&self, now: u64) -> Result<usize> {
        Ok(self.ocsp.presign_all(now, PRESIGN_PAGE).await?)
    }

    /// Signs the head of the audit chain if it moved, and anchors the
    /// latest checkpoint in the data directory (see [`anchor`]).
    pub async fn checkpoint(&self, now: u64) -> Result<Option<i64>> {
        let made = self
            .store
            .checkpoint(now as i64, self.audit_signer.as_ref())
            .await?;
        self.anchor_audit_head().await?;
        Ok(made)
    }

    pub fn audit_spki(&self) -> Vec<u8> {
        self.audit_signer.spki_der().to_vec()
    }

    /// `software` or `pkcs11`.
    pub fn key_backend(&self) -> &'static str {
        self.keys.lock().map(|k| k.backend()).unwrap_or("unknown")
    }

    /// Signs and verifies a test message with every key (`hallmark keys test`).
    pub fn test_keys(&self) -> Result<Vec<(String, std::result::Result<(), String>)>> {
        let keys = self.keys()?;
        Ok(keys
            .list()
            .into_iter()
            .map(|(label, _)| {
                let r = keys
                    .signer(&label)
                    .map_err(|e| e.to_string())
                    .and_then(|s| {
                        let msg = b"hallmark keys test";
                        let sig = s.sign(msg).map_err(|e| e.to_string())?;
                        let alg = s.signature_algorithm();
                        hallmark_crypto::verify_signature(
                            s.spki_der(),
                            alg.oid,
                            alg.parameters.as_ref().map(Into::into),
                            msg,
                            &sig,
                        )
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                    });
                (label, r)
            })
            .collect())
    }

    pub fn key_labels(&self) -> Vec<(String, String)> {
        self.keys.lock().map(|k| k.list()).unwrap_or_default()
    }
}

/// Reads: what front ends show and check, without reaching into the store.
impl Authority {
    /// The data directory.
    /// The store, for the capabilities' own tables (the registration
    /// authority's applications, the eID's people); certificates and
    /// revocations change only through this service.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The policy settings every issuer shares (URLs, CRL and OCSP periods).
    pub fn settings(&self) -> &Settings {
        &self.ca.settings
    }

    /// The id of the CA that issues when a request names none.
    pub fn default_issuer(&self) -> &str {
        self.ca.default_issuer()
    }

    /// The registration authority's settings from `hallmark.toml`.
    pub fn ra_config(&self) -> &RaConfig {
        &self.config.ra
    }

    /// Certificates issued from `from` on, per (profile, UTC day), for
    /// the statistics that front ends show.
    pub async fn issued_per_day(&self, from: i64) -> Result<Vec<(String, i64, i64)>> {
        Ok(self.store.issued_per_day(from).await?)
    }

    /// Revoked certificates per reason code.
    pub async fn revocations_by_reason(&self) -> Result<Vec<(i64, i64)>> {
        Ok(self.store.revocations_by_reason().await?)
    }

    /// Outgoing mail (`[mail]` in `hallmark.toml`).
    pub fn mail_config(&self) -> &MailConfig {
        &self.config.mail
    }

    /// The server section of the configuration (listeners, base URL).
    pub fn server_config(&self) -> &ServerConfig {
        &self.config.server
    }

    /// The PKCS#11 token and its PIN, or None for the software key store.
    pub fn key_token(&self) -> Result<Option<TokenConfig>> {
        Ok(self.config.keys.token()?)
    }

    /// The OCSP responder.
    pub fn ocsp(&self) -> &Arc<OcspService> {
        &self.ocsp
    }

    /// CRL publication.
    pub fn crls(&self) -> &Arc<CrlPublisher> {
        &self.crls
    }

    /// The certificate of a CA that signs here (its key is in this key
    /// store).
    pub fn signing_ca(&self, id: &str) -> Option<&IssuerKey> {
        self.ca.issuer(Some(id)).ok()
    }

    /// The signer of the default issuing CA (for `hallmark bench keys`).
    pub fn issuing_signer(&self) -> Result<Arc<dyn Signer>> {
        Ok(self.ca.issuer(None)?.signer.clone())
    }

    /// Every CA this installation records (its own, an offline root, CAs it
    /// certified for other machines), oldest first.
    pub async fn ca_records(&self) -> Result<Vec<IssuerRow>> {
        Ok(self.store.issuers().await?)
    }

    /// A certificate by its serial (stored form: see [`normalise_serial`]),
    /// under `issuer` if named (needed when several CAs used the serial).
    pub async fn certificate(&self, issuer: Option<&str>, serial: &str) -> Result<CertRow> {
        check_issuer_id(issuer)?;
        Ok(self.store.get_cert(issuer, serial).await?)
    }

    /// The stored row of exactly this certificate (DER), whichever of this
    /// installation's CAs issued it; None if none did.
    pub async fn stored_certificate(&self, der: &[u8]) -> Result<Option<CertRow>> {
        let Ok(cert) = hallmark_pki::cert::parse(der) else {
            return Ok(None);
        };
        let serial = hallmark_pki::hex(cert.tbs_certificate().serial_number().as_bytes());
        for ca in self.store.issuers().await? {
            match self.store.get_cert(Some(&ca.id), &serial).await {
                Ok(row) if row.cert.as_deref() == Some(der) => return Ok(Some(row)),
                Ok(_) | Err(hallmark_store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// A page of certificates, newest first, before a (created_at, serial)
    /// cursor.
    pub async fn certificates(
        &self,
        limit: i64,
        before: Option<(i64, String)>,
    ) -> Result<Vec<CertRow>> {
        Ok(self.store.list_certs(limit, before).await?)
    }

    /// The published CRL of an issuer's partition (or its full CRL).
    pub async fn crl(&self, issuer: &str, shard: i64) -> Result<CrlRow> {
        Ok(self.store.get_crl(issuer, shard).await?)
    }

    /// The cross-certificate of root `subject` by root `signer` (from a
    /// root re-key), if there is one.
    pub async fn cross_certificate(&self, signer: &str, subject: &str) -> Result<Option<Vec<u8>>> {
        let Some(hex) = self
            .store
            .get_setting(&format!("cross.{signer}.{subject}"))
            .await?
        else {
            return Ok(None);
        };
        hallmark_pki::unhex(&hex).map(Some).ok_or_else(|| {
            AuthorityError::Config(format!(
                "stored cross-certificate cross.{signer}.{subject} is not hex"
            ))
        })
    }

    /// The cross-certificates there are, as (signer, subject).
    pub async fn cross_certificates(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .store
            .settings_with_prefix("cross.")
            .await?
            .into_iter()
            .filter_map(|(key, _)| {
                let (signer, subject) = key["cross.".len()..].split_once('.')?;
                Some((signer.to_string(), subject.to_string()))
            })
            .collect())
    }

    /// Appends one audit entry (a CLI action, a quorum's presence).
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        Ok(self
            .store
            .record(system_now() as i64, actor, action, details)
            .await?)
    }

    /// Re-computes the audit chain and checks its signed checkpoints;
    /// `progress` hears how many entries are verified.
    pub async fn verify_audit(&self, progress: impl FnMut(i64)) -> Result<AuditReport> {
        let mut report = self
            .store
            .verify_audit(&self.audit_spki(), progress)
            .await?;
        let (anchor, finding) = self.check_anchor().await?;
        report.findings.extend(finding);
        report.anchor = anchor.map(|a| (a.seq, a.hash));
        Ok(report)
    }

    /// Which database the installation runs on.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Writes an encrypted backup of the installation to `out` (see
    /// `hallmark_install::backup`); returns its size.
    pub async fn backup(&self, pass: &Passphrase, out: &Path, kdf: KdfParams) -> Result<u64> {
        Ok(hallmark_install::backup::create(&self.dir, &self.store, pass, out, kdf).await?)
    }
}
