//! The key ceremony: creates the data directory, the key store, the root and
//! issuing CA keys and certificates, the audit key, the configuration and the
//! profiles; and adds issuing CAs under an existing root later.

use std::path::Path;

use hallmark_ca::IssuerKey;
use hallmark_ca::hierarchy;
use hallmark_crypto::KeyAlgorithm;
use hallmark_keys::custody::Custody;
use hallmark_keys::{KdfParams, Passphrase};
use hallmark_store::Store;
use hallmark_store::audit::{self, AuditEvent};
use hallmark_store::issuers::{self, IssuerRow};
use zeroize::Zeroizing;

use crate::config::{self, CaConfig, Config, DatabaseConfig, ServerConfig};
use crate::{InstallError, Result};

pub const AUDIT_KEY: &str = "audit";
pub const ROOT_ID: &str = "root";

pub fn ca_key_label(id: &str) -> String {
    format!("ca-{id}")
}

pub struct InitOptions {
    pub root_subject: String,
    pub issuing_subject: String,
    pub issuing_id: String,
    pub root_algorithm: KeyAlgorithm,
    pub issuing_algorithm: KeyAlgorithm,
    pub root_days: u32,
    pub issuing_days: u32,
    /// Certificate-policy OID arc; profile policies sit under it.
    pub policy_arc: String,
    pub cps_uri: Option<String>,
    pub listen: String,
    pub base_url: String,
    pub database_url: Option<String>,
    pub root_only: bool,
    /// Where the signing keys live (software store or a PKCS#11 token).
    pub keys: config::KeysConfig,
    /// Online half of an offline-root installation: the root certificate
    /// (DER) to trust, and where to write the issuing CA's CSR for the root
    /// to sign (`ca sign-request` there, `ca import` here).
    pub external_root: Option<(Vec<u8>, std::path::PathBuf)>,
    pub kdf: KdfParams,
}

impl InitOptions {
    /// A root and an issuing CA `issuing` with software keys, on the
    /// default SQLite database, with the defaults of `hallmark init` (P-384
    /// root for 20 years, P-256 issuing CA for 10, the example policy arc);
    /// change the fields that differ.
    pub fn software(root_subject: &str, issuing_subject: &str, listen: &str) -> Self {
        Self {
            root_subject: root_subject.into(),
            issuing_subject: issuing_subject.into(),
            issuing_id: "issuing".into(),
            root_algorithm: KeyAlgorithm::EcP384,
            issuing_algorithm: KeyAlgorithm::EcP256,
            root_days: 7305,
            issuing_days: 3653,
            policy_arc: "1.3.6.1.4.1.59999.1".into(),
            cps_uri: None,
            listen: listen.into(),
            base_url: format!("http://{listen}"),
            database_url: None,
            root_only: false,
            keys: config::KeysConfig {
                backend: "software".into(),
                ..Default::default()
            },
            external_root: None,
            kdf: KdfParams::default(),
        }
    }
}

pub struct InitOutput {
    pub admin_token: Zeroizing<String>,
    pub root_cert: Vec<u8>,
    pub issuing_cert: Option<Vec<u8>>,
    /// For an external root: the CSR written for the root to sign.
    pub issuing_csr: Option<Vec<u8>>,
}

fn new_admin_token() -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 32]);
    hallmark_crypto::fill_random(&mut raw[..]).map_err(|e| InstallError::Invalid(e.to_string()))?;
    Ok(Zeroizing::new(format!(
        "hm_{}",
        hallmark_pki::hex(&raw[..])
    )))
}

/// Replaces the admin token in `dir`'s config with a new one; returns it
/// (only its digest is stored).
pub fn rotate_admin_token(dir: &Path) -> Result<Zeroizing<String>> {
    let token = new_admin_token()?;
    Config::update(dir, |cfg| {
        cfg.server.admin_token_sha256 = token_digest(&token);
        Ok(())
    })?;
    Ok(token)
}

pub fn token_digest(token: &str) -> String {
    hallmark_pki::hex(&hallmark_crypto::sha256(token.as_bytes()))
}

/// Runs the ceremony into `dir`, which must not hold a key store yet.
pub async fn init(
    dir: &Path,
    opts: &InitOptions,
    pass: &Passphrase,
    now: u64,
) -> Result<InitOutput> {
    if dir.join(config::KEYSTORE_FILE).exists() || dir.join(config::CONFIG_FILE).exists() {
        return Err(InstallError::Config(format!(
            "{} already holds a Hallmark installation; choose another --data-dir",
            dir.display()
        )));
    }
    check_id(&opts.issuing_id)?;
    if opts.issuing_id == ROOT_ID {
        return Err(InstallError::Invalid(format!(
            "the CA id {ROOT_ID:?} is the root's; choose another --issuing-id"
        )));
    }
    const_oid::ObjectIdentifier::new(&opts.policy_arc)
        .map_err(|e| InstallError::Config(format!("--policy-arc {:?}: {e}", opts.policy_arc)))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| InstallError::Config(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }

    let profiles = hallmark_pki::profile::DEFAULT_PROFILES.replace("{arc}", &opts.policy_arc);
    hallmark_pki::profile::parse_profiles(&profiles)?;

    let token = new_admin_token()?;
    let cfg = Config {
        version: 1,
        server: ServerConfig {
            listen: opts.listen.clone(),
            base_url: opts.base_url.trim_end_matches('/').to_string(),
            admin_token_sha256: token_digest(&token),
            https_listen: None,
            https_names: vec!["hallmark.localhost".into()],
            admin_https_listen: None,
            admin_client_certs: Vec::new(),
            admin_api: config::AdminApi::default(),
            https_cert_minutes: 90 * 24 * 60,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            tls_handshake_timeout_secs: 10,
            max_connections: 4096,
        },
        database: DatabaseConfig {
            url: opts
                .database_url
                .clone()
                .unwrap_or_else(|| "sqlite://hallmark.db".into()),
            password_file: None,
        },
        ca: CaConfig {
            default_issuer: if opts.root_only {
                String::new()
            } else {
                opts.issuing_id.clone()
            },
            cps_uri: opts.cps_uri.clone(),
            crl_validity_hours: 168,
            crl_shard_days: 90,
            ocsp_validity_hours: 96,
            ocsp_signer_days: 30,
            ocsp_live_signatures_per_second: 500,
        },
        keys: opts.keys.clone(),
        ra: config::RaConfig::default(),
        mail: config::MailConfig::default(),
    };
    cfg.validate()?;
    let settings = cfg.ca_settings();

    let mut ks = Custody::create(
        &dir.join(config::KEYSTORE_FILE),
        pass,
        opts.kdf,
        cfg.keys.token()?.as_ref(),
        cfg.keys.rsa_padding()?,
    )?;
    let store = Store::connect(&cfg.with_password(dir, &cfg.database_url(dir))?).await?;
    if !store.issuers().await?.is_empty() {
        return Err(InstallError::Config(
            "the database already holds CAs; use an empty database for a new installation".into(),
        ));
    }

    let audit_signer = ks.generate(AUDIT_KEY, KeyAlgorithm::EcP256)?;
    let mut tx = store.begin().await?;
    hallmark_store::put_setting(
        &mut tx,
        "audit.spki",
        &hallmark_pki::hex(audit_signer.spki_der()),
    )
    .await?;

    if let Some((root_cert, csr_out)) = &opts.external_root {
        // The root lives elsewhere: record its certificate, make the issuing
        // key here and ask the root to sign it.
        let c = hallmark_pki::cert::parse(root_cert)?;
        let spki = der::Encode::to_der(c.tbs_certificate().subject_public_key_info())
            .map_err(hallmark_pki::PkiError::from)?;
        hallmark_pki::cert::verify_signed_by(root_cert, &spki).map_err(|_| {
            InstallError::Invalid("--root-cert is not a self-signed CA certificate".into())
        })?;
        let root_subject = hallmark_pki::subject::display(c.tbs_certificate().subject());
        issuers::insert_issuer(
            &mut tx,
            &IssuerRow {
                id: ROOT_ID.into(),
                subject: root_subject.clone(),
                cert: root_cert.clone(),
                parent: None,
                key_label: ca_key_label(ROOT_ID),
                is_root: true,
                created_at: now as i64,
            },
        )
        .await?;
        let signer = ks.generate(&ca_key_label(&opts.issuing_id), opts.issuing_algorithm)?;
        let csr = hallmark_pki::csr::build(
            &hallmark_pki::subject::parse(&opts.issuing_subject)?,
            signer.as_ref(),
        )?;
        std::fs::write(
            csr_out,
            hallmark_pki::pem::encode("CERTIFICATE REQUEST", &csr),
        )
        .map_err(|e| InstallError::Config(format!("cannot write {}: {e}", csr_out.display())))?;
        audit::record(
            &mut tx,
            store.backend(),
            now as i64,
            "ceremony",
            "ca.init.external-root",
            serde_json::json!({"root": root_subject, "issuer": opts.issuing_id,
                    "root_sha256": hallmark_pki::hex(&hallmark_crypto::sha256(root_cert))})
            .to_string(),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        store.checkpoint(now as i64, audit_signer.as_ref()).await?;
        cfg.save(dir)?;
        std::fs::write(dir.join(config::PROFILES_FILE), profiles)
            .map_err(|e| InstallError::Config(format!("cannot write profiles: {e}")))?;
        return Ok(InitOutput {
            admin_token: token,
            root_cert: root_cert.clone(),
            issuing_cert: None,
            issuing_csr: Some(csr),
        });
    }

    let root_signer = ks.generate(&ca_key_label(ROOT_ID), opts.root_algorithm)?;
    let root_cert = hierarchy::root_certificate(
        root_signer.as_ref(),
        &opts.root_subject,
        now,
        opts.root_days,
    )?;
    let root = IssuerKey::new(ROOT_ID, root_cert.clone(), root_signer, true)?;
    issuers::insert_issuer(
        &mut tx,
        &IssuerRow {
            id: ROOT_ID.into(),
            subject: opts.root_subject.clone(),
            cert: root_cert.clone(),
            parent: None,
            key_label: ca_key_label(ROOT_ID),
            is_root: true,
            created_at: now as i64,
        },
    )
    .await?;
    let mut events = vec![AuditEvent::new(
        "ceremony",
        "ca.init.root",
        serde_json::json!({"issuer": ROOT_ID, "subject": opts.root_subject, "algorithm": opts.root_algorithm.name(),
            "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(&root_cert))})
        .to_string(),
    )];

    let mut issuing_cert = None;
    if !opts.root_only {
        let signer = ks.generate(&ca_key_label(&opts.issuing_id), opts.issuing_algorithm)?;
        let cert = hierarchy::issuing_certificate(
            &root,
            signer.spki_der(),
            &opts.issuing_subject,
            now,
            opts.issuing_days,
            &settings,
        )?;
        issuers::insert_issuer(
            &mut tx,
            &IssuerRow {
                id: opts.issuing_id.clone(),
                subject: opts.issuing_subject.clone(),
                cert: cert.clone(),
                parent: Some(ROOT_ID.into()),
                key_label: ca_key_label(&opts.issuing_id),
                is_root: false,
                created_at: now as i64,
            },
        )
        .await?;
        events.push(AuditEvent::new(
            "ceremony",
            "ca.init.issuing",
            serde_json::json!({"issuer": opts.issuing_id, "subject": opts.issuing_subject,
                "algorithm": opts.issuing_algorithm.name(),
                "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(&cert))})
            .to_string(),
        ));
        issuing_cert = Some(cert);
    }
    audit::append(&mut tx, store.backend(), now as i64, &events).await?;
    hallmark_store::commit(tx).await?;
    store.checkpoint(now as i64, audit_signer.as_ref()).await?;

    cfg.save(dir)?;
    std::fs::write(dir.join(config::PROFILES_FILE), profiles)
        .map_err(|e| InstallError::Config(format!("cannot write profiles: {e}")))?;
    Ok(InitOutput {
        admin_token: token,
        root_cert,
        issuing_cert,
        issuing_csr: None,
    })
}

/// An issuing CA to add under the root.
pub struct NewIssuer<'a> {
    pub id: &'a str,
    pub subject: &'a str,
    pub algorithm: KeyAlgorithm,
    pub days: u32,
    /// The root to sign under (default: the oldest root).
    pub parent: Option<&'a str>,
}

impl<'a> NewIssuer<'a> {
    /// The CA `id` named `subject`, with a new `algorithm` key, valid for
    /// `days`, under the oldest root.
    pub fn new(id: &'a str, subject: &'a str, algorithm: KeyAlgorithm, days: u32) -> Self {
        Self {
            id,
            subject,
            algorithm,
            days,
            parent: None,
        }
    }

    /// The same under the root `parent` (none: the oldest).
    pub fn under(self, parent: Option<&'a str>) -> Self {
        Self { parent, ..self }
    }
}

/// What the CA-changing ceremonies (`ca add`, `ca sign-request`,
/// `ca import`) share: the installation, opened, and its root.
struct Installation {
    cfg: Config,
    ks: Custody,
    store: Store,
    root: IssuerRow,
}

impl Installation {
    /// Opens the installation in `dir` for adding the CA `id`, which must be
    /// a fresh, well-formed id.
    async fn open(
        dir: &Path,
        pass: &Passphrase,
        database_url: Option<&str>,
        id: &str,
        root_id: Option<&str>,
    ) -> Result<Self> {
        check_id(id)?;
        let cfg = Config::load(dir)?;
        let ks = cfg.open_keys(dir, pass)?;
        let store = cfg.connect(dir, database_url).await?;
        let rows = store.issuers().await?;
        if rows.iter().any(|r| r.id == id) {
            return Err(InstallError::Invalid(format!(
                "a CA with id {id:?} already exists"
            )));
        }
        let root = rows
            .into_iter()
            .find(|r| r.is_root && root_id.is_none_or(|want| r.id == want))
            .ok_or_else(|| match root_id {
                Some(want) => InstallError::Invalid(format!("no root CA with id {want:?}")),
                None => InstallError::Config("no root CA in the database".into()),
            })?;
        Ok(Self {
            cfg,
            ks,
            store,
            root,
        })
    }

    /// The root as a signing CA; fails where the root key is kept elsewhere.
    fn root_signing_key(&self, elsewhere: &str) -> Result<IssuerKey> {
        let signer = self.ks.signer(&self.root.key_label).map_err(|_| {
            InstallError::Config(format!(
                "the root key is not in this key store: {elsewhere}"
            ))
        })?;
        Ok(IssuerKey::new(
            &self.root.id,
            self.root.cert.clone(),
            signer,
            true,
        )?)
    }

    /// Records a new issuing CA and its audit entry in one transaction, then
    /// signs the audit head.
    async fn record(
        &self,
        id: &str,
        subject: &str,
        cert: &[u8],
        key_label: String,
        action: &str,
        now: u64,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        issuers::insert_issuer(
            &mut tx,
            &IssuerRow {
                id: id.into(),
                subject: subject.into(),
                cert: cert.to_vec(),
                parent: Some(self.root.id.clone()),
                key_label,
                is_root: false,
                created_at: now as i64,
            },
        )
        .await?;
        audit::record(
            &mut tx,
            self.store.backend(),
            now as i64,
            "ceremony",
            action,
            serde_json::json!({"issuer": id, "subject": subject,
                    "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(cert))})
            .to_string(),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        self.store
            .checkpoint(now as i64, self.ks.signer(AUDIT_KEY)?.as_ref())
            .await?;
        Ok(())
    }
}

/// Adds an issuing CA under the root (the root key must be in the key store).
pub async fn add_issuer(
    dir: &Path,
    pass: &Passphrase,
    database_url: Option<&str>,
    new: &NewIssuer<'_>,
    now: u64,
) -> Result<Vec<u8>> {
    let mut inst = Installation::open(dir, pass, database_url, new.id, new.parent).await?;
    let root =
        inst.root_signing_key("sign the request on the offline root machine (`ca sign-request`)")?;
    let label = ca_key_label(new.id);
    let signer = inst.ks.generate(&label, new.algorithm)?;
    let cert = hierarchy::issuing_certificate(
        &root,
        signer.spki_der(),
        new.subject,
        now,
        new.days,
        &inst.cfg.ca_settings(),
    )?;
    inst.record(new.id, new.subject, &cert, label, "ca.add", now)
        .await?;
    Ok(cert)
}

/// On the offline root: signs an issuing CA's CSR with the root key and
/// records the new CA (its key stays with the requester).
pub async fn sign_request(
    dir: &Path,
    pass: &Passphrase,
    database_url: Option<&str>,
    new: &NewIssuer<'_>,
    csr: &[u8],
    now: u64,
) -> Result<Vec<u8>> {
    let inst = Installation::open(dir, pass, database_url, new.id, new.parent).await?;
    let root = inst.root_signing_key("run `ca sign-request` where the root key is")?;
    let verified = hallmark_pki::csr::verify(csr)?;
    let cert = hierarchy::issuing_certificate(
        &root,
        &verified.spki_der,
        new.subject,
        now,
        new.days,
        &inst.cfg.ca_settings(),
    )?;
    inst.record(
        new.id,
        new.subject,
        &cert,
        format!("external:{}", new.id),
        "ca.sign-request",
        now,
    )
    .await?;
    Ok(cert)
}

/// On the online machine: installs the issuing CA certificate the offline
/// root signed, after checking it certifies our key and chains to the root.
pub async fn import_issuer(
    dir: &Path,
    pass: &Passphrase,
    database_url: Option<&str>,
    id: &str,
    cert: &[u8],
    now: u64,
) -> Result<()> {
    let inst = Installation::open(dir, pass, database_url, id, None).await?;
    let root_spki = der::Encode::to_der(
        hallmark_pki::cert::parse(&inst.root.cert)?
            .tbs_certificate()
            .subject_public_key_info(),
    )
    .map_err(hallmark_pki::PkiError::from)?;
    hallmark_pki::cert::verify_signed_by(cert, &root_spki).map_err(|_| {
        InstallError::Invalid("the certificate is not signed by this installation's root".into())
    })?;
    hallmark_pki::lint::check_ca_certificate(cert, &inst.root.cert, now).map_err(|e| {
        InstallError::Invalid(format!(
            "the certificate cannot serve as an issuing CA: {e}"
        ))
    })?;
    let label = ca_key_label(id);
    let signer = inst.ks.signer(&label).map_err(|_| {
        InstallError::Invalid(format!(
            "no key {label:?} in the key store: was the CSR made here?"
        ))
    })?;
    // IssuerKey::new checks that the certificate certifies our key.
    IssuerKey::new(id, cert.to_vec(), signer, false)?;
    let subject = hallmark_pki::subject::display(
        hallmark_pki::cert::parse(cert)?.tbs_certificate().subject(),
    );
    inst.record(id, &subject, cert, label, "ca.import", now)
        .await
}

/// The certificates a root re-key produces.
pub struct RootRekey {
    pub new_root: Vec<u8>,
    /// The old root certifies the new root's key (for relying parties that
    /// trust only the old root).
    pub new_by_old: Vec<u8>,
    /// The new root certifies the old root's key (for those that trust only
    /// the new one).
    pub old_by_new: Vec<u8>,
}

/// Re-keys the root: a new self-signed root with a new key, and a
/// cross-certificate each way so that relying parties keep validating
/// whichever root they trust. The old root stays, for what it signed.
pub async fn rekey_root(
    dir: &Path,
    pass: &Passphrase,
    database_url: Option<&str>,
    new: &NewIssuer<'_>,
    now: u64,
) -> Result<RootRekey> {
    let mut inst = Installation::open(dir, pass, database_url, new.id, new.parent).await?;
    let old = inst.root_signing_key("re-key where the root key is")?;
    let label = ca_key_label(new.id);
    let signer = inst.ks.generate(&label, new.algorithm)?;
    let new_root = hierarchy::root_certificate(signer.as_ref(), new.subject, now, new.days)?;
    let new_key = IssuerKey::new(new.id, new_root.clone(), signer, true)?;
    let settings = inst.cfg.ca_settings();
    let new_by_old = hierarchy::cross_certificate(&old, &new_key, now, new.days, &settings)?;
    let old_by_new = hierarchy::cross_certificate(&new_key, &old, now, new.days, &settings)?;
    let mut tx = inst.store.begin().await?;
    issuers::insert_issuer(
        &mut tx,
        &IssuerRow {
            id: new.id.into(),
            subject: new.subject.into(),
            cert: new_root.clone(),
            parent: None,
            key_label: label,
            is_root: true,
            created_at: now as i64,
        },
    )
    .await?;
    for (from, to, c) in [
        (&old.id, &new_key.id, &new_by_old),
        (&new_key.id, &old.id, &old_by_new),
    ] {
        hallmark_store::put_setting(
            &mut tx,
            &format!("cross.{from}.{to}"),
            &hallmark_pki::hex(c),
        )
        .await?;
        // Filed as a certificate of the root that signed it, so that it can
        // be revoked (`cert revoke SERIAL --issuer FROM`) and go on that
        // root's CRL.
        let parsed = hallmark_pki::cert::parse(c)?;
        let t = parsed.tbs_certificate();
        let not_after = hallmark_pki::time::unix(&t.validity().not_after);
        hallmark_store::certificates::record_ca_certificate(
            &mut tx,
            &hallmark_store::certificates::NewCert {
                issuer: from.clone(),
                serial: hallmark_pki::hex(t.serial_number().as_bytes()),
                profile: "cross".into(),
                subject: hallmark_pki::subject::display(t.subject()),
                tbs: Vec::new(),
                not_before: hallmark_pki::time::unix(&t.validity().not_before) as i64,
                not_after: not_after as i64,
                shard: settings.shard_of(not_after),
                created_at: now as i64,
            },
            c,
        )
        .await?;
    }
    audit::record(
        &mut tx,
        inst.store.backend(),
        now as i64,
        "ceremony",
        "ca.rekey-root",
        serde_json::json!({"from": old.id, "to": new.id, "subject": new.subject,
                "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(&new_root)),
                "cross_sha256": [hallmark_pki::hex(&hallmark_crypto::sha256(&new_by_old)),
                                 hallmark_pki::hex(&hallmark_crypto::sha256(&old_by_new))]})
        .to_string(),
    )
    .await?;
    hallmark_store::commit(tx).await?;
    inst.store
        .checkpoint(now as i64, inst.ks.signer(AUDIT_KEY)?.as_ref())
        .await?;
    Ok(RootRekey {
        new_root,
        new_by_old,
        old_by_new,
    })
}

/// The shape of a CA id (it goes into URLs, key labels and settings keys).
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(InstallError::Invalid(format!(
            "CA id {id:?}: a CA id uses 1 to 64 ASCII letters, digits and '-' \
             (it goes into URLs, key labels and settings)"
        )));
    }
    Ok(())
}
