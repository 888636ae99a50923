//! The registration authority: the only caller of the CA. It owns the
//! workflow around issuance (approved requests in, certificates out),
//! revocation policy, CRL publication, the OCSP service and the key ceremony,
//! and it is where storage, key custody and the CA meet.

pub mod backup;
pub mod ceremony;
pub mod config;
pub mod crls;
pub mod ledger;
pub mod ocsp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hallmark_ca::ocsp::{IssuerHashes, Responder};
use hallmark_ca::{Ca, CaError, IssueRequest, Issued, IssuerKey};
use hallmark_crypto::{KeyAlgorithm, Signer};
use hallmark_keys::custody::Custody;
use hallmark_keys::{KeyError, Passphrase};
use hallmark_pki::crl::Reason;
use hallmark_pki::profile::Profile;
use hallmark_store::audit;
use hallmark_store::certs::{self, CertRow};
use hallmark_store::{Store, StoreError};

pub use config::Config;
pub use crls::CrlInfo;
use ledger::{KeyStoreSealer, StoreLedger};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaError {
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
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = RaError> = std::result::Result<T, E>;

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

/// Everything a running Hallmark needs, assembled from a data directory.
pub struct Authority {
    pub dir: PathBuf,
    pub config: Config,
    pub store: Store,
    pub ca: Ca<StoreLedger>,
    pub ocsp: Arc<ocsp::OcspService>,
    keys: Arc<Mutex<Custody>>,
    audit_signer: Arc<dyn Signer>,
    /// CRLs owed after revocations, in two lanes (see `crls`).
    lanes: crls::Lanes,
    /// CAs whose own certificate is revoked: they issue nothing more.
    revoked_cas: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Who may use the admin API, as last read from the config file.
    admin: std::sync::RwLock<Arc<AdminAccess>>,
    /// Changes of the admin access in force but not yet audited.
    admin_unaudited: Mutex<Vec<serde_json::Value>>,
}

/// Who may use the admin API: the token's digest and the allowed client
/// certificates' fingerprints (read from the config file, so that a running
/// server follows `admin-token rotate` and `admin-cert add|remove`).
#[derive(Debug, PartialEq, Eq)]
pub struct AdminAccess {
    pub token_sha256: String,
    pub client_certs: Vec<String>,
}

impl AdminAccess {
    fn of(cfg: &Config) -> Arc<Self> {
        Arc::new(Self {
            token_sha256: cfg.server.admin_token_sha256.clone(),
            client_certs: cfg
                .server
                .admin_client_certs
                .iter()
                .map(|f| config::normalise_fingerprint(f))
                .collect(),
        })
    }
}

/// Validity of the server's own TLS certificate.
const TLS_CERT_DAYS: u32 = 90;

/// Keys made by automatic renewals.
#[derive(Debug, PartialEq)]
enum RenewedKey {
    Ocsp,
    Tls,
}

/// A new label for a renewal's key, in the shape `retired_key_made_at`
/// reads: the kind, the CA (for an OCSP signer), the time, and a random
/// part, so that two processes renewing in the same second never take (or
/// remove) each other's key.
fn renewal_label(kind: RenewedKey, ca: &str, now: u64) -> Result<String> {
    let mut rnd = [0u8; 4];
    hallmark_crypto::fill_random(&mut rnd).map_err(|e| RaError::Invalid(e.to_string()))?;
    let rnd = hallmark_pki::hex(&rnd);
    Ok(match kind {
        RenewedKey::Ocsp => format!("ocsp-{ca}-{now}-{rnd}"),
        RenewedKey::Tls => format!("tls-{now}-{rnd}"),
    })
}

/// What a renewal's key label says: `ocsp-{CA}-{unix time}[-{random}]` or
/// `tls-{unix time}[-{random}]`; None for every other key (CA keys, the
/// audit key), which are never removed here.
fn retired_key_made_at(label: &str) -> Option<(RenewedKey, u64)> {
    let (kind, rest) = if let Some(r) = label.strip_prefix("ocsp-") {
        (RenewedKey::Ocsp, r)
    } else if let Some(r) = label.strip_prefix("tls-") {
        (RenewedKey::Tls, r)
    } else {
        return None;
    };
    let mut parts = rest.rsplit('-');
    let last = parts.next()?;
    let is_time = |p: &str| p.len() >= 9 && p.bytes().all(|b| b.is_ascii_digit());
    let time = if last.len() == 8 && last.bytes().all(|b| b.is_ascii_hexdigit()) {
        parts.next().filter(|p| is_time(p))?
    } else if is_time(last) {
        last
    } else {
        return None;
    };
    // An OCSP label also names its CA before the time.
    if kind == RenewedKey::Ocsp && parts.next().is_none() {
        return None;
    }
    Some((kind, time.parse().ok()?))
}

/// Certificates read and pre-signed at a time.
const PRESIGN_PAGE: usize = 1024;

/// Pending rows older than this are abandoned at start-up: no live issuance
/// takes that long, so their certificates were never handed out.
const ABANDON_AFTER_SECS: i64 = 600;

pub fn load_profiles(dir: &Path) -> Result<BTreeMap<String, Profile>> {
    let path = dir.join(config::PROFILES_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| RaError::Config(format!("cannot read {}: {e}", path.display())))?;
    Ok(hallmark_pki::profile::parse_profiles(&text)?)
}

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
        let profiles = load_profiles(dir)?;
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
            return Err(RaError::Config(format!(
                "issuing CA {:?} is not installed: if its CSR went to an offline root, import the signed certificate with `hallmark ca import --id {} --cert FILE`",
                config.ca.default_issuer, config.ca.default_issuer
            )));
        }
        let audit_signer = keys.signer(ceremony::AUDIT_KEY)?;
        let stored_audit = store.get_setting("audit.spki").await?;
        if stored_audit.as_deref() != Some(hallmark_pki::hex(audit_signer.spki_der()).as_str()) {
            return Err(RaError::Config(
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
        let ocsp = Arc::new(ocsp::OcspService::new(
            store.clone(),
            Vec::new(),
            settings.ocsp_validity_secs,
        ));
        let auth = Self {
            dir: dir.into(),
            config,
            store,
            ca,
            ocsp,
            keys,
            audit_signer,
            lanes: Default::default(),
            revoked_cas: Default::default(),
            admin: std::sync::RwLock::new(admin),
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
            .map_err(|_| RaError::Invalid("the key store lock is poisoned".into()))
    }

    /// Audits a change of the configuration or profiles since the last start.
    async fn record_config_change(&self, now: u64) -> Result<()> {
        let mut h = hallmark_crypto::Sha256::default();
        for f in [config::CONFIG_FILE, config::PROFILES_FILE] {
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

    /// Makes sure every issuing CA has a delegated OCSP signer with at least
    /// a third of its validity left, renewing (new key, new certificate) when
    /// not. Call at start-up and periodically.
    pub async fn ensure_ocsp_signers(&self, now: u64) -> Result<bool> {
        let settings = &self.ca.settings;
        let mut slots = Vec::new();
        let mut changed = false;
        for issuer in self.ca.issuers().filter(|i| !i.is_root) {
            let key_setting = format!("ocsp.{}.key", issuer.id);
            let cert_setting = format!("ocsp.{}.cert", issuer.id);
            let current = match (
                self.store.get_setting(&key_setting).await?,
                self.store.get_setting(&cert_setting).await?,
            ) {
                (Some(label), Some(cert_hex)) => {
                    let signer = self.keys()?.signer(&label);
                    match (signer, hallmark_pki::unhex(&cert_hex)) {
                        (Ok(s), Some(cert)) => Some(Responder::new(&issuer.id, cert, s)?),
                        _ => None,
                    }
                }
                _ => None,
            };
            // A revoked CA's signer is not renewed: it answers for what the
            // CA issued until it expires, and no relying party accepts the
            // CA's chain any more.
            let revoked_ca = self.is_revoked_ca(&issuer.id);
            let fresh = current.filter(|r| {
                let remaining = r.not_after.saturating_sub(now);
                remaining > settings.ocsp_signer_secs / 3
                    || r.not_after >= issuer.not_after
                    || (revoked_ca && r.not_after > now)
            });
            let responder = match fresh {
                Some(r) => r,
                None if revoked_ca => continue,
                None => {
                    let label = renewal_label(RenewedKey::Ocsp, &issuer.id, now)?;
                    let signer = {
                        let mut ks = self.keys()?;
                        ks.generate(&label, KeyAlgorithm::EcP256)?
                    };
                    let cert = match hallmark_ca::hierarchy::ocsp_signer_certificate(
                        issuer,
                        signer.spki_der(),
                        now,
                        settings.ocsp_signer_secs,
                        settings,
                    ) {
                        Ok(c) => c,
                        Err(e) => {
                            // Do not leave an unused key behind.
                            if let Ok(mut ks) = self.keys.lock() {
                                let _ = ks.remove(&label);
                            }
                            return Err(e.into());
                        }
                    };
                    let mut tx = self.store.begin().await?;
                    hallmark_store::put_setting(&mut tx, &key_setting, &label).await?;
                    hallmark_store::put_setting(&mut tx, &cert_setting, &hallmark_pki::hex(&cert))
                        .await?;
                    audit::record(
                        &mut tx,
                        self.store.backend(),
                        now as i64,
                        "system",
                        "ocsp.signer.renew",
                        serde_json::json!({"issuer": issuer.id, "key": label,
                                "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(&cert))})
                        .to_string(),
                    )
                    .await?;
                    hallmark_store::commit(tx).await?;
                    changed = true;
                    Responder::new(&issuer.id, cert, signer)?
                }
            };
            slots.push(ocsp::IssuerSlot::new(
                &issuer.id,
                IssuerHashes::of(issuer)?,
                responder,
            ));
        }
        // Also when another process sharing the database and key store
        // renewed a signer: this one answers with the current signer too
        // (the replaced key is removed once its certificate has expired).
        let installed = self.ocsp.issuers();
        let same = installed.len() == slots.len()
            && installed
                .iter()
                .zip(&slots)
                .all(|(a, b)| a.id == b.id && a.responder.cert_der == b.responder.cert_der);
        if changed || !same {
            self.ocsp.set_issuers(slots);
        }
        if let Err(e) = self.prune_retired_keys(now).await {
            tracing::warn!(error = %e, "removing retired OCSP and TLS keys failed");
        }
        Ok(changed)
    }

    /// Removes the keys of OCSP signers and TLS certificates that were
    /// replaced and whose certificates have expired (each renewal makes a
    /// new key; on a token, objects are a limited resource). Keys in use,
    /// and keys younger than the longest such certificate, are kept.
    async fn prune_retired_keys(&self, now: u64) -> Result<Vec<String>> {
        let mut current = std::collections::HashSet::new();
        if let Some(l) = self.store.get_setting("tls.key").await? {
            current.insert(l);
        }
        for issuer in self.ca.issuers() {
            if let Some(l) = self
                .store
                .get_setting(&format!("ocsp.{}.key", issuer.id))
                .await?
            {
                current.insert(l);
            }
        }
        // Only in the installation's own key store: a token partition may
        // be shared with other installations or applications, whose keys
        // can carry labels of the same shape.
        if self.key_backend() != "software" {
            return Ok(Vec::new());
        }
        // Certificates of a key made at time t expire by t + lifetime; a
        // week more for clocks, and for a lifetime shortened since.
        let margin = 7 * 86_400;
        let expired =
            |t: u64, lifetime: u64| t.saturating_add(lifetime).saturating_add(margin) < now;
        let retired: Vec<String> = self
            .keys()?
            .list()
            .into_iter()
            .map(|(label, _)| label)
            .filter(|label| !current.contains(label))
            .filter(|label| match retired_key_made_at(label) {
                Some((RenewedKey::Ocsp, t)) => expired(t, self.ca.settings.ocsp_signer_secs),
                Some((RenewedKey::Tls, t)) => expired(t, TLS_CERT_DAYS as u64 * 86_400),
                None => false,
            })
            .collect();
        if retired.is_empty() {
            return Ok(retired);
        }
        // The audit entry names exactly the keys removed, also when a
        // removal fails part of the way.
        let mut removed = Vec::new();
        let mut failure = None;
        {
            let mut ks = self.keys()?;
            for label in retired {
                match ks.remove(&label) {
                    Ok(()) => removed.push(label),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if !removed.is_empty() {
            self.store
                .record(
                    now as i64,
                    "system",
                    "key.retire",
                    serde_json::json!({"keys": removed}),
                )
                .await?;
            tracing::info!(keys = ?removed, "removed retired OCSP and TLS keys");
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(removed),
        }
    }

    /// The server's own TLS certificate chain and key (a `server` profile
    /// certificate from the default issuer, key in the key store), issued or
    /// renewed when a third of its validity is left.
    pub async fn tls_identity(&self, now: u64) -> Result<(Vec<Vec<u8>>, Arc<dyn Signer>)> {
        let issuer = self.ca.issuer(None)?.clone();
        if let (Some(label), Some(cert_hex)) = (
            self.store.get_setting("tls.key").await?,
            self.store.get_setting("tls.cert").await?,
        ) {
            let signer = self.keys()?.signer(&label);
            if let (Ok(signer), Some(cert)) = (signer, hallmark_pki::unhex(&cert_hex)) {
                let c = hallmark_pki::cert::parse(&cert)?;
                let v = c.tbs_certificate().validity();
                let (nb, na) = (
                    hallmark_pki::time::unix(&v.not_before),
                    hallmark_pki::time::unix(&v.not_after),
                );
                if na.saturating_sub(now) > (na - nb) / 3
                    && signer.spki_der()
                        == der::Encode::to_der(c.tbs_certificate().subject_public_key_info())
                            .unwrap_or_default()
                {
                    return Ok((vec![cert, issuer.cert_der.clone()], signer));
                }
            }
        }
        let label = renewal_label(RenewedKey::Tls, "", now)?;
        let signer = self.keys()?.generate(&label, KeyAlgorithm::EcP256)?;
        let names = self.config.server.https_names.clone();
        let issued = match self
            .issue(
                IssueRequest {
                    profile: "server".into(),
                    issuer: None,
                    subject: format!("CN={}", names[0]),
                    emails: Vec::new(),
                    dns_names: names,
                    validity_days: Some(TLS_CERT_DAYS),
                    key: hallmark_ca::KeySource::Custody(signer.spki_der().to_vec()),
                    actor: "system".into(),
                },
                now,
            )
            .await
        {
            Ok(i) => i,
            Err(e) => {
                let _ = self.keys()?.remove(&label);
                return Err(e);
            }
        };
        let mut tx = self.store.begin().await?;
        hallmark_store::put_setting(&mut tx, "tls.key", &label).await?;
        hallmark_store::put_setting(&mut tx, "tls.cert", &hallmark_pki::hex(&issued.cert_der))
            .await?;
        hallmark_store::commit(tx).await?;
        Ok((vec![issued.cert_der, issuer.cert_der], signer))
    }

    pub async fn issue(&self, req: IssueRequest, now: u64) -> Result<Issued> {
        let issuer = &self.ca.issuer(req.issuer.as_deref())?.id;
        if self.is_revoked_ca(issuer) {
            return Err(RaError::Invalid(format!(
                "issuing CA {issuer:?} is revoked and issues nothing more; make a new one with `hallmark ca rollover`"
            )));
        }
        Ok(self.ca.issue(req, now).await?)
    }

    /// The CA certificates this installation recorded (its own, and those
    /// of CAs it certified) as (CA id, parent id, serial hex).
    async fn ca_certificates(&self) -> Result<Vec<(certs::IssuerRow, String, String)>> {
        let mut out = Vec::new();
        for row in self.store.issuers().await? {
            if let Some(parent) = row.parent.clone() {
                let c = hallmark_pki::cert::parse(&row.cert)?;
                let serial = hallmark_pki::hex(c.tbs_certificate().serial_number().as_bytes());
                out.push((row, parent, serial));
            }
        }
        Ok(out)
    }

    /// Files a CA's certificate as an issued certificate of its parent, so
    /// that it can be revoked and listed on the parent's CRLs.
    async fn file_ca_certificate(
        &self,
        tx: &mut hallmark_store::AnyConnection,
        row: &certs::IssuerRow,
        parent: &str,
        serial: &str,
    ) -> Result<()> {
        let c = hallmark_pki::cert::parse(&row.cert)?;
        let v = c.tbs_certificate().validity();
        let not_after = hallmark_pki::time::unix(&v.not_after);
        certs::record_ca_certificate(
            tx,
            &certs::NewCert {
                issuer: parent.into(),
                serial: serial.into(),
                profile: "ca".into(),
                subject: row.subject.clone(),
                tbs: Vec::new(),
                not_before: hallmark_pki::time::unix(&v.not_before) as i64,
                not_after: not_after as i64,
                shard: self.ca.settings.shard_of(not_after),
                created_at: row.created_at,
            },
            &row.cert,
        )
        .await?;
        Ok(())
    }

    /// Revokes `(issuer, serial)` now and records `action` with `details`
    /// in the same transaction.
    #[allow(clippy::too_many_arguments)]
    async fn revoke_audited(
        &self,
        tx: &mut hallmark_store::AnyConnection,
        (issuer, serial): (&str, &str),
        reason: Reason,
        actor: &str,
        now: u64,
        action: &str,
        details: serde_json::Value,
    ) -> Result<CertRow> {
        let row = certs::revoke(tx, issuer, serial, now as i64, reason as i64, now as i64).await?;
        audit::record(
            tx,
            self.store.backend(),
            now as i64,
            actor,
            action,
            details.to_string(),
        )
        .await?;
        Ok(row)
    }

    /// Who may use the admin API (as last read).
    pub fn admin_access(&self) -> Arc<AdminAccess> {
        match self.admin.read() {
            Ok(a) => a.clone(),
            // Nobody, rather than whoever was allowed before.
            Err(_) => Arc::new(AdminAccess {
                token_sha256: String::new(),
                client_certs: Vec::new(),
            }),
        }
    }

    /// Reads who may use the admin API from the config file again; says
    /// whether it changed. `serve` calls it with each poll.
    ///
    /// The moment a change takes effect in this process is audited too (the
    /// command that made it audited the change itself). A change takes
    /// effect even when the audit log cannot be written (a leaked token
    /// must stop working): its entry is then written with a later poll.
    pub async fn reload_admin_access(&self) -> Result<bool> {
        let fresh = AdminAccess::of(&Config::load(&self.dir)?);
        let changed = {
            let mut cur = self
                .admin
                .write()
                .map_err(|_| RaError::Invalid("admin access lock poisoned".into()))?;
            (**cur != *fresh).then(|| {
                let before = std::mem::replace(&mut *cur, fresh.clone());
                serde_json::json!({
                    "token_changed": before.token_sha256 != fresh.token_sha256,
                    "client_certs": fresh.client_certs,
                    "at": system_now(),
                })
            })
        };
        let mut pending = std::mem::take(
            &mut *self
                .admin_unaudited
                .lock()
                .map_err(|_| RaError::Invalid("admin access lock poisoned".into()))?,
        );
        pending.extend(changed.clone());
        while let Some(details) = pending.first().cloned() {
            if let Err(e) = self
                .store
                .record(
                    system_now() as i64,
                    "system",
                    "config.admin-access.reload",
                    details,
                )
                .await
            {
                tracing::warn!(error = %e, "the new admin access is in force, but auditing it failed; retried with the next poll");
                if let Ok(mut p) = self.admin_unaudited.lock() {
                    pending.append(&mut p);
                    *p = pending;
                }
                return Ok(changed.is_some());
            }
            pending.remove(0);
        }
        Ok(changed.is_some())
    }

    /// Whether the CA's own certificate is revoked (as last read).
    pub fn is_revoked_ca(&self, id: &str) -> bool {
        self.revoked_cas.read().map_or(true, |r| r.contains(id))
    }

    /// Reads which CAs have had their certificate revoked (here or by
    /// another process: `serve` calls it with each poll for revocations).
    pub async fn refresh_revoked_cas(&self) -> Result<()> {
        let mut revoked = std::collections::HashSet::new();
        for (row, parent, serial) in self.ca_certificates().await? {
            match self.store.get_cert(Some(&parent), &serial).await {
                Ok(c) if c.revoked_at.is_some() => {
                    revoked.insert(row.id);
                }
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Ok(mut r) = self.revoked_cas.write() {
            *r = revoked;
        }
        Ok(())
    }

    /// Revokes a subordinate CA's certificate (a compromised or retired
    /// issuing CA): recorded as a certificate of its parent, listed on the
    /// parent's CRLs (regenerated here when the parent's key is), and the CA
    /// issues nothing more. Run where the parent's records are (for an
    /// offline root, on the root machine, then `crl import` its CRL online).
    /// The flag says whether a CRL listing it was made here (not when the
    /// parent's key is elsewhere).
    pub async fn revoke_ca(
        &self,
        id: &str,
        reason: Reason,
        actor: &str,
        now: u64,
    ) -> Result<(CertRow, bool)> {
        offered(reason)?;
        let root = || {
            RaError::Invalid(format!(
                "{id:?} is a root: no CRL can revoke a root; retire it by taking it out of trust stores"
            ))
        };
        // Only CAs with a parent have a certificate to revoke.
        let (row, parent, serial) = match self
            .ca_certificates()
            .await?
            .into_iter()
            .find(|(r, _, _)| r.id == id)
        {
            Some((row, ..)) if row.is_root => return Err(root()),
            Some(found) => found,
            None if self.store.issuers().await?.iter().any(|r| r.id == id) => return Err(root()),
            None => return Err(RaError::Invalid(format!("no CA named {id:?}"))),
        };
        let mut tx = self.store.begin().await?;
        self.file_ca_certificate(&mut tx, &row, &parent, &serial)
            .await?;
        let revoked = self
            .revoke_audited(
                &mut tx,
                (&parent, &serial),
                reason,
                actor,
                now,
                "ca.revoke",
                serde_json::json!({"ca": id, "issuer": parent, "serial": serial, "reason": reason.name()}),
            )
            .await?;
        hallmark_store::commit(tx).await?;
        if let Ok(mut r) = self.revoked_cas.write() {
            r.insert(id.to_string());
        }
        let mut listed = false;
        if self.ca.issuer(Some(&parent)).is_ok() {
            listed = self
                .publish_after_revocation_logged(&parent, revoked.shard, now)
                .await;
        }
        Ok((revoked, listed))
    }

    /// Revokes a certificate, then refreshes its OCSP response and the CRLs
    /// that list it.
    pub async fn revoke(
        &self,
        serial_hex: &str,
        reason: Reason,
        actor: &str,
        now: u64,
    ) -> Result<CertRow> {
        let row = self.revoke_stored(serial_hex, reason, actor, now).await?;
        // Publish promptly: the revoked certificate's partition, then the
        // full CRL. The revocation is already stored; a CRL failure is
        // retried and must not make the caller think it was not.
        self.publish_after_revocation_logged(&row.issuer, row.shard, now)
            .await;
        Ok(row)
    }

    /// Stores a revocation (with its audit entry and the CRLs it makes
    /// due) and has OCSP answer it at once.
    async fn revoke_stored(
        &self,
        serial_hex: &str,
        reason: Reason,
        actor: &str,
        now: u64,
    ) -> Result<CertRow> {
        let serial_hex = normalise_serial(serial_hex)?;
        offered(reason)?;
        let found = self.store.get_cert(None, &serial_hex).await?;
        let mut tx = self.store.begin().await?;
        let row = self
            .revoke_audited(
                &mut tx,
                (&found.issuer, &serial_hex),
                reason,
                actor,
                now,
                "certificate.revoke",
                serde_json::json!({"issuer": found.issuer, "serial": serial_hex, "reason": reason.name()}),
            )
            .await?;
        hallmark_store::commit(tx).await?;
        self.ocsp.invalidate(&row.issuer, &row.serial);
        Ok(row)
    }

    /// Pre-signs the OCSP responses of every live certificate (in the
    /// background of `serve`, at start and again before responses age), so
    /// that no query for an issued certificate waits for a signature.
    pub async fn presign_ocsp(&self, now: u64) -> Result<usize> {
        Ok(self.ocsp.presign_all(now, PRESIGN_PAGE).await?)
    }

    /// Signs the head of the audit chain if it moved.
    pub async fn checkpoint(&self, now: u64) -> Result<Option<i64>> {
        Ok(self
            .store
            .checkpoint(now as i64, self.audit_signer.as_ref())
            .await?)
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

/// Refuses reasons a revocation may not give (see [`Reason::OFFERED`]).
fn offered(reason: Reason) -> Result<()> {
    if Reason::OFFERED.contains(&reason) {
        return Ok(());
    }
    Err(RaError::Invalid(format!(
        "{} is not offered: a revocation here is final and cannot be released; use one of {}",
        reason.name(),
        Reason::OFFERED.map(|r| r.name()).join(", ")
    )))
}

/// Accepts serials as hex with or without colons or 0x, any case, and
/// returns the stored form (lower-case hex of the INTEGER contents).
pub fn normalise_serial(s: &str) -> Result<String> {
    // Any spelling of the number: upper or lower case, colons, 0x, an odd
    // number of digits, leading zeros. Stored serials are the contents of a
    // positive DER INTEGER: no redundant leading zero octet, and one where
    // the top bit is set.
    let digits: String = s
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let even = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    let mut bytes = hallmark_pki::unhex(&even).ok_or_else(|| {
        RaError::Invalid(format!(
            "{s:?} is not a serial number: give it in hexadecimal, e.g. 3f:a2:... or 3fa2..."
        ))
    })?;
    while bytes.len() > 1 && bytes[0] == 0 && bytes[1] < 0x80 {
        bytes.remove(0);
    }
    if bytes[0] >= 0x80 {
        bytes.insert(0, 0);
    }
    if bytes.len() > 21 {
        return Err(RaError::Invalid(format!(
            "serial {s:?} is longer than 20 octets"
        )));
    }
    Ok(hallmark_pki::hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crls::{Batch, CrlsDue};
    use hallmark_store::certs::FULL_CRL;

    #[test]
    fn renewal_labels_say_when_their_key_was_made() {
        for (kind, ca) in [(RenewedKey::Ocsp, "issuing-2"), (RenewedKey::Tls, "")] {
            let label = renewal_label(kind, ca, 1_763_900_000).unwrap();
            let (read, at) = retired_key_made_at(&label).unwrap();
            assert_eq!(at, 1_763_900_000, "{label}");
            assert_eq!(label.starts_with("ocsp-"), read == RenewedKey::Ocsp);
        }
        assert_eq!(
            retired_key_made_at("ocsp-issuing-1763900000-0a1b2c3d"),
            Some((RenewedKey::Ocsp, 1_763_900_000))
        );
        assert_eq!(
            retired_key_made_at("ocsp-ca-with-dashes-1763900000"),
            Some((RenewedKey::Ocsp, 1_763_900_000))
        );
        assert_eq!(
            retired_key_made_at("tls-1763900000-0a1b2c3d"),
            Some((RenewedKey::Tls, 1_763_900_000))
        );
        assert_eq!(
            retired_key_made_at("tls-1763900000"),
            Some((RenewedKey::Tls, 1_763_900_000))
        );
        // CA keys, the audit key and anything unexpected are never retired.
        for other in [
            "ca-issuing",
            "ca-ocsp-1763900000",
            "audit",
            "ocsp-1763900000",
            "ocsp-issuing-0a1b2c3d",
            "tls-",
            "tls-12-0a1b2c3d",
            "external:issuing",
        ] {
            assert_eq!(retired_key_made_at(other), None, "{other}");
        }
    }

    /// An OCSP signer is renewed when a third of its validity is left; the
    /// key it replaced is removed once its certificate has expired (and the
    /// removal audited); a revoked CA's signer is not renewed.
    #[tokio::test]
    async fn ocsp_signers_renew_and_retired_keys_go() {
        let (dir, pass, t0) = installation("renew").await;
        let auth = Authority::open(&dir, &pass, None).await.unwrap();
        let ocsp_keys = |auth: &Authority| -> Vec<String> {
            let mut k: Vec<String> = auth
                .key_labels()
                .into_iter()
                .map(|(l, _)| l)
                .filter(|l| l.starts_with("ocsp-"))
                .collect();
            k.sort();
            k
        };
        let first = ocsp_keys(&auth);
        assert_eq!(first.len(), 1, "{first:?}");
        let day = 86_400;

        // 21 of 30 days gone: renewed, the old key kept (its certificate
        // is still valid, and other processes may still sign with it).
        let other = Authority::open(&dir, &pass, None).await.unwrap();
        assert!(auth.ensure_ocsp_signers(t0 + 21 * day).await.unwrap());
        let second = ocsp_keys(&auth);
        assert_eq!(second.len(), 2, "{second:?}");
        // Another process on the same installation takes the new signer up
        // without renewing it again.
        let responder = |a: &Authority| a.ocsp.issuers()[0].responder.cert_der.clone();
        assert_ne!(responder(&other), responder(&auth));
        assert!(!other.ensure_ocsp_signers(t0 + 21 * day).await.unwrap());
        assert_eq!(responder(&other), responder(&auth));
        drop(other);
        // Day 38: the first certificate has been expired for over a week;
        // its key goes.
        assert!(!auth.ensure_ocsp_signers(t0 + 31 * day).await.unwrap());
        assert_eq!(ocsp_keys(&auth), second);
        assert!(!auth.ensure_ocsp_signers(t0 + 38 * day).await.unwrap());
        let left = ocsp_keys(&auth);
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(!left.contains(&first[0]), "{left:?}");
        let retired = auth.store.audit_details("key.retire").await.unwrap();
        assert!(
            retired.len() == 1 && retired[0].contains(&first[0]),
            "{retired:?}"
        );

        // Revoked, the CA keeps its signer until it expires, without renewal.
        auth.revoke_ca(
            "issuing",
            Reason::CessationOfOperation,
            "test",
            t0 + 39 * day,
        )
        .await
        .unwrap();
        assert!(!auth.ensure_ocsp_signers(t0 + 45 * day).await.unwrap());
        assert_eq!(ocsp_keys(&auth), left);
        assert!(!auth.ensure_ocsp_signers(t0 + 60 * day).await.unwrap());
        assert_eq!(ocsp_keys(&auth), left);
        drop(auth);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A CRL made after another (here: by a caller that read the clock
    /// earlier and waited for the lock) has a higher number and a thisUpdate
    /// no earlier.
    #[tokio::test]
    async fn later_crls_are_never_dated_earlier() {
        let (dir, pass, t0) = installation("crl-order").await;
        let auth = Authority::open(&dir, &pass, None).await.unwrap();
        let mut seen = Vec::new();
        for at in [t0 + 200, t0 + 100, t0 + 300] {
            let info = auth.generate_crl("issuing", FULL_CRL, at).await.unwrap();
            assert!(info.published);
            let row = auth.store.get_crl("issuing", FULL_CRL).await.unwrap();
            let issuer = auth.ca.issuer(Some("issuing")).unwrap();
            let got =
                hallmark_pki::crl::check_received(&row.der, &issuer.cert_der, t0 + 300).unwrap();
            assert_eq!(got.number, info.number as u64);
            seen.push((got.number, got.this_update));
        }
        assert!(seen[0].0 < seen[1].0 && seen[1].0 < seen[2].0, "{seen:?}");
        assert_eq!(
            seen.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![t0 + 200, t0 + 200, t0 + 300]
        );
        // Another process on the same database (a CLI command beside the
        // server), its clock behind: its CRL is numbered after and dated
        // no earlier either.
        let other = Authority::open(&dir, &pass, None).await.unwrap();
        let info = other
            .generate_crl("issuing", FULL_CRL, t0 + 250)
            .await
            .unwrap();
        assert!(info.number > seen[2].0 as i64);
        let row = other.store.get_crl("issuing", FULL_CRL).await.unwrap();
        assert_eq!(row.this_update, (t0 + 300) as i64);
        drop(other);
        drop(auth);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Concurrent revocations share CRL generations (fewer than one per
    /// revocation), and the published CRL lists every one of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_revocations_share_crl_generations() {
        let (dir, pass, t0) = installation("crl-burst").await;
        let auth = Authority::open(&dir, &pass, None).await.unwrap();
        let mut serials = Vec::new();
        for i in 0..8 {
            serials.push(issue_personal(&auth, i, t0).await);
        }
        let before = auth
            .store
            .audit_details("crl.generate")
            .await
            .unwrap()
            .len();
        // Hold the CRL lock (as a long CRL generation would) until every
        // revocation is committed and waiting for its CRL.
        let held = (
            auth.lanes.partitions.lock.lock().await,
            auth.lanes.full.lock.lock().await,
        );
        let tasks: Vec<_> = serials
            .iter()
            .map(|serial| {
                let (auth, serial) = (auth.clone(), serial.clone());
                tokio::spawn(async move {
                    auth.revoke(&serial, Reason::KeyCompromise, "test", t0 + 10)
                        .await
                        .unwrap()
                })
            })
            .collect();
        while auth.lanes.full.due.lock().unwrap().queued < 8 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let made = auth
            .store
            .audit_details("crl.generate")
            .await
            .unwrap()
            .len()
            - before;
        // One generation for all: the full CRL and the (one) shard; one at a
        // time would make 16.
        assert_eq!(made, 2, "{made} CRLs made for 8 revocations");
        let row = auth.store.get_crl("issuing", FULL_CRL).await.unwrap();
        let issuer = auth.ca.issuer(Some("issuing")).unwrap();
        let got = hallmark_pki::crl::check_received(&row.der, &issuer.cert_der, t0 + 10).unwrap();
        let mut listed: Vec<String> = got
            .revoked
            .iter()
            .map(|(serial, _, _)| hallmark_pki::hex(serial))
            .collect();
        listed.sort();
        serials.sort();
        assert_eq!(listed, serials);
        assert_eq!(auth.publish_due_crls(t0 + 11).await.unwrap(), 0);
        drop(auth);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issues a `personal` certificate for a key made in the key store;
    /// returns its serial.
    async fn issue_personal(auth: &Authority, i: usize, now: u64) -> String {
        let spki = auth
            .keys()
            .unwrap()
            .generate(&format!("holder-{i}"), KeyAlgorithm::EcP256)
            .unwrap()
            .spki_der()
            .to_vec();
        auth.issue(
            IssueRequest {
                profile: "personal".into(),
                issuer: None,
                subject: format!("CN=Holder {i},C=HK"),
                emails: Vec::new(),
                dns_names: Vec::new(),
                validity_days: None,
                key: hallmark_ca::KeySource::Custody(spki),
                actor: "test".into(),
            },
            now,
        )
        .await
        .unwrap()
        .serial_hex
    }

    /// A revocation another process stored without publishing its CRLs (a
    /// CLI command whose CRL generation failed, a crash) is published by a
    /// server's poll once the grace period is over, and the debt is paid.
    #[tokio::test]
    async fn crls_owed_by_another_process_are_published() {
        let (dir, pass, t0) = installation("crl-debt").await;
        let auth = Authority::open(&dir, &pass, None).await.unwrap();
        let serial = issue_personal(&auth, 0, t0).await;
        auth.generate_crls(None, None, t0 + 1).await.unwrap();
        // The other process: revoked, committed, then gone.
        let mut tx = auth.store.begin().await.unwrap();
        certs::revoke(
            &mut tx,
            "issuing",
            &serial,
            (t0 + 10) as i64,
            1,
            (t0 + 10) as i64,
        )
        .await
        .unwrap();
        hallmark_store::commit(tx).await.unwrap();
        // Two debts: the certificate's partition and the full CRL.
        assert_eq!(auth.store.crls_due(None, None).await.unwrap().len(), 2);
        let listed = async |auth: &Authority| {
            let row = auth.store.get_crl("issuing", FULL_CRL).await.unwrap();
            let issuer = auth.ca.issuer(Some("issuing")).unwrap();
            hallmark_pki::crl::check_received(&row.der, &issuer.cert_der, t0 + 30)
                .unwrap()
                .revoked
                .iter()
                .any(|(s, _, _)| hallmark_pki::hex(s) == serial)
        };
        // Within the grace period it is left to the process that revoked.
        assert_eq!(auth.publish_due_crls(t0 + 15).await.unwrap(), 0);
        assert!(!listed(&auth).await);
        // After it: the full CRL and the certificate's shard.
        assert_eq!(auth.publish_due_crls(t0 + 21).await.unwrap(), 2);
        assert!(listed(&auth).await);
        assert!(auth.store.crls_due(None, None).await.unwrap().is_empty());
        assert_eq!(auth.publish_due_crls(t0 + 30).await.unwrap(), 0);
        drop(auth);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A revocation through the API answers once the certificate's
    /// partition CRL is out, without waiting for the full CRL (held up here
    /// by its lane's lock, as a long full CRL would hold it); the full CRL
    /// follows. When the partition is held up too, the answer comes after
    /// the wait given, and the CRLs follow.
    #[tokio::test]
    async fn revocation_waits_for_its_partition_not_the_full_crl() {
        let (dir, pass, t0) = installation("crl-lanes").await;
        let auth = Arc::new(Authority::open(&dir, &pass, None).await.unwrap());
        let first = issue_personal(&auth, 0, t0).await;
        let second = issue_personal(&auth, 1, t0).await;
        auth.generate_crls(None, None, t0 + 1).await.unwrap();
        // (A partition CRL is not a complete one, which `check_received`
        // takes: its DER is searched for the serial's bytes.)
        let listed = async |auth: &Authority, shard: i64, serial: &str| {
            let row = auth.store.get_crl("issuing", shard).await.unwrap();
            let bytes = hallmark_pki::unhex(serial).unwrap();
            row.der.windows(bytes.len()).any(|w| w == bytes)
        };
        let eventually = async |shard: i64, serial: &str| {
            for _ in 0..500 {
                if listed(&auth, shard, serial).await {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("CRL {shard} never listed {serial}");
        };
        let wait = std::time::Duration::from_secs(30);

        let held = auth.lanes.full.lock.lock().await;
        let (row, published) = auth
            .revoke_waiting_at_most(&first, Reason::KeyCompromise, "test", t0 + 10, wait)
            .await
            .unwrap();
        assert!(published);
        assert!(listed(&auth, row.shard, &first).await);
        assert!(!listed(&auth, FULL_CRL, &first).await);
        drop(held);
        eventually(FULL_CRL, &first).await;

        let held = auth.lanes.partitions.lock.lock().await;
        let (row, published) = auth
            .revoke_waiting_at_most(
                &second,
                Reason::KeyCompromise,
                "test",
                t0 + 11,
                std::time::Duration::from_millis(200),
            )
            .await
            .unwrap();
        assert!(!published);
        assert!(!listed(&auth, row.shard, &second).await);
        drop(held);
        eventually(row.shard, &second).await;
        eventually(FULL_CRL, &second).await;
        drop(auth);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A batch that ends without finishing (its task cancelled, or a
    /// failure) puts what it did not publish back in the queue.
    #[test]
    fn an_unfinished_crl_batch_goes_back_to_the_queue() {
        let due = Mutex::new(CrlsDue::default());
        let work: std::collections::BTreeSet<(String, i64)> = [
            ("issuing".to_string(), 3),
            ("issuing".to_string(), FULL_CRL),
        ]
        .into();
        drop(Batch {
            number: 1,
            work: Some(work.clone()),
            due: &due,
        });
        assert_eq!(due.lock().unwrap().pending, work);
        // A finished one leaves nothing.
        drop(Batch {
            number: 2,
            work: Some(Default::default()),
            due: &due,
        });
        assert_eq!(due.lock().unwrap().pending, work);
    }

    /// Commands changing the configuration at once lose none of the
    /// changes (each reads, changes and writes under the config lock).
    #[tokio::test]
    async fn concurrent_config_changes_are_all_kept() {
        let (dir, _pass, _) = installation("cfg-lock").await;
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
        let before = std::fs::read(dir.join(config::CONFIG_FILE)).unwrap();
        let e = Config::update(&dir, |c| {
            c.server.admin_client_certs.clear();
            Err::<(), _>(RaError::Invalid("no".into()))
        });
        assert!(e.is_err());
        assert_eq!(
            std::fs::read(dir.join(config::CONFIG_FILE)).unwrap(),
            before
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh installation (SQLite, software keys) in a directory of its
    /// own: (directory, passphrase, time of the ceremony).
    async fn installation(tag: &str) -> (PathBuf, Passphrase, u64) {
        let dir = std::env::temp_dir().join(format!("hm-ra-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pass = Passphrase::new("renewal test passphrase".into()).unwrap();
        let t0 = system_now();
        let opts = ceremony::InitOptions {
            root_subject: "CN=Renewal Root,C=HK".into(),
            issuing_subject: "CN=Renewal Issuing,C=HK".into(),
            issuing_id: "issuing".into(),
            root_algorithm: KeyAlgorithm::EcP256,
            issuing_algorithm: KeyAlgorithm::EcP256,
            root_days: 3650,
            issuing_days: 1825,
            policy_arc: "1.3.6.1.4.1.59999.1".into(),
            cps_uri: None,
            listen: "127.0.0.1:0".into(),
            base_url: "http://127.0.0.1".into(),
            database_url: None,
            root_only: false,
            keys: config::KeysConfig {
                backend: "software".into(),
                pkcs11_module: None,
                pkcs11_token: None,
                pkcs11_pin_file: None,
                rsa_padding: None,
            },
            external_root: None,
            kdf: hallmark_keys::KdfParams::danger_insecure_for_tests(),
        };
        ceremony::init(&dir, &opts, &pass, t0).await.unwrap();
        (dir, pass, t0)
    }

    #[test]
    fn serials_are_normalised_from_any_spelling() {
        let canonical = "0e9c2668aa";
        for spelling in [
            "0e9c2668aa",
            "0E9C2668AA",
            "0e:9c:26:68:aa",
            "0x0e9c2668aa",
            "e9c2668aa",
            "000e9c2668aa",
            " 00:0E:9C:26:68:AA ",
        ] {
            assert_eq!(normalise_serial(spelling).unwrap(), canonical, "{spelling}");
        }
        // A positive INTEGER whose top bit is set keeps (or gains) its zero octet.
        assert_eq!(normalise_serial("c3").unwrap(), "00c3");
        assert_eq!(normalise_serial("0000c3").unwrap(), "00c3");
        assert_eq!(normalise_serial("0").unwrap(), "00");
        for bad in ["", "0x", "zz", "12 34", &"7f".repeat(22)] {
            assert!(normalise_serial(bad).is_err(), "{bad:?}");
        }
    }
}
