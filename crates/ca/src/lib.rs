//! The certification authority: builds, lints and signs certificates, CRLs
//! and OCSP responses. It never touches the database: it records through the
//! narrow [`Ledger`] trait (serial + linted TBS before signing, the signed
//! certificate after), following Boulder's issuance cycle.

pub mod hierarchy;
pub mod issue;
pub mod ocsp;
pub mod revocation;

use std::collections::BTreeMap;
use std::sync::Arc;

use hallmark_crypto::Signer;
use hallmark_pki::profile::Profile;
use hallmark_pki::{PkiError, cert, ext};

pub use issue::{IssueRequest, Issued, KeySource, Prepared, Signed, one_time_pin};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    #[error("unknown issuing CA {0:?}")]
    UnknownIssuer(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("signing failed: {0}")]
    Signing(#[from] hallmark_crypto::CryptoError),
    #[error("the signed certificate does not match the linted one")]
    SignedMismatch,
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("serial collision persisted after {0} attempts")]
    SerialCollision(u32),
}

pub type Result<T, E = CaError> = std::result::Result<T, E>;

/// What the CA writes down. Implemented over storage by the RA.
pub trait Ledger: Send + Sync {
    /// Records a serial and its linted TBS before it is signed. Errs with
    /// [`LedgerError::SerialTaken`] if the serial exists for this issuer.
    fn reserve(&self, c: Pending) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Records the signed certificate (and a sealed escrowed key).
    fn finalize(&self, f: Final) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("serial already used")]
    SerialTaken,
    #[error("{0}")]
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct Pending {
    pub issuer: String,
    pub serial_hex: String,
    pub profile: String,
    pub subject: String,
    pub tbs: Vec<u8>,
    pub not_before: u64,
    pub not_after: u64,
    pub shard: i64,
    pub created_at: u64,
}

#[derive(Clone, Debug)]
pub struct Final {
    pub issuer: String,
    pub serial_hex: String,
    pub cert: Vec<u8>,
    pub escrow: Option<Vec<u8>>,
    pub actor: String,
    pub profile: String,
    pub subject: String,
}

/// Seals escrowed private keys (implemented by key custody).
pub trait Sealer: Send + Sync {
    fn seal(&self, context: &str, secret: &[u8]) -> Result<Vec<u8>, String>;
}

/// Policy-level settings shared by every issuer.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Public base URL, e.g. `http://127.0.0.1:8080`, used in CDP and AIA.
    pub base_url: String,
    pub cps_uri: Option<String>,
    /// CRL nextUpdate − thisUpdate.
    pub crl_validity_secs: u64,
    /// Width of a CRL partition, by certificate expiry.
    pub crl_shard_secs: u64,
    /// OCSP response nextUpdate − thisUpdate.
    pub ocsp_validity_secs: u64,
    /// Validity of delegated OCSP signing certificates.
    pub ocsp_signer_secs: u64,
}

impl Settings {
    /// Settings for tests and examples: a CA at `base_url`, CRLs and OCSP
    /// responses valid a day, CRL partitions of 90 days, responders of 30.
    pub fn example(base_url: &str) -> Self {
        Self {
            base_url: base_url.into(),
            cps_uri: None,
            crl_validity_secs: 86_400,
            crl_shard_secs: 86_400 * 90,
            ocsp_validity_secs: 86_400,
            ocsp_signer_secs: 86_400 * 30,
        }
    }

    pub fn ca_cert_url(&self, issuer: &str) -> String {
        format!("{}/ca/{issuer}.crt", self.base_url)
    }
    pub fn crl_url(&self, issuer: &str) -> String {
        format!("{}/crl/{issuer}.crl", self.base_url)
    }
    pub fn shard_crl_url(&self, issuer: &str, shard: i64) -> String {
        format!("{}/crl/{issuer}/{shard}.crl", self.base_url)
    }
    pub fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.base_url)
    }
    /// Certificates are partitioned by when they expire, so a partition stops
    /// growing once its window has passed and empties when its certificates
    /// have all expired.
    pub fn shard_of(&self, not_after: u64) -> i64 {
        (not_after / self.crl_shard_secs.max(1)) as i64
    }
}

/// An issuing (or root) CA: its certificate and the signer for its key.
#[derive(Clone)]
pub struct IssuerKey {
    pub id: String,
    pub cert_der: Vec<u8>,
    pub name_der: Vec<u8>,
    pub spki_der: Vec<u8>,
    pub key_id: Vec<u8>,
    pub not_before: u64,
    pub not_after: u64,
    pub is_root: bool,
    pub signer: Arc<dyn Signer>,
    /// The signer's signature AlgorithmIdentifier (with its RSA padding).
    pub sig_alg: spki::AlgorithmIdentifierOwned,
}

impl IssuerKey {
    pub fn new(
        id: &str,
        cert_der: Vec<u8>,
        signer: Arc<dyn Signer>,
        is_root: bool,
    ) -> Result<Self> {
        use der::Encode;
        let c = cert::parse(&cert_der)?;
        let tbs = c.tbs_certificate();
        let spki_der = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(PkiError::from)?;
        if spki_der != signer.spki_der() {
            return Err(CaError::BadRequest(format!(
                "the key of CA {id:?} does not match its certificate"
            )));
        }
        Ok(Self {
            id: id.into(),
            name_der: tbs.subject().to_der().map_err(PkiError::from)?,
            key_id: ext::key_id(&spki_der)?,
            spki_der,
            not_before: hallmark_pki::time::unix(&tbs.validity().not_before),
            not_after: hallmark_pki::time::unix(&tbs.validity().not_after),
            cert_der,
            is_root,
            sig_alg: signer.signature_algorithm(),
            signer,
        })
    }

    pub fn lint_issuer(&self) -> hallmark_pki::lint::Issuer<'_> {
        hallmark_pki::lint::Issuer {
            name_der: &self.name_der,
            key_id: &self.key_id,
            not_before: self.not_before,
            not_after: self.not_after,
            signature_algorithm: &self.sig_alg,
        }
    }

    /// Signs a linted TBS and checks that the result is what was linted and
    /// that it verifies under this CA's public key.
    pub fn sign_linted(&self, linted: &hallmark_pki::lint::LintedTbs) -> Result<Vec<u8>> {
        let sig = self.sign_checked(linted.der())?;
        let cert_der = cert::assemble(linted.der(), &self.sig_alg, &sig)?;
        if cert::tbs_bytes(&cert_der)? != linted.der() {
            return Err(CaError::SignedMismatch);
        }
        Ok(cert_der)
    }

    /// Every signature of this CA's key (certificates, CRLs) is made here.
    /// A faulty RSA-CRT signature leaks the private key (Boneh–DeMillo–
    /// Lipton), so RSA signatures are verified before they leave; RSA
    /// verification is cheap. ECDSA faults are not caught by verifying.
    pub fn sign_checked(&self, tbs: &[u8]) -> Result<Vec<u8>> {
        sign_checked(self.signer.as_ref(), tbs)
    }
}

/// Signs `msg` with `signer`, verifying an RSA signature before it is used
/// (see [`IssuerKey::sign_checked`]); for every key Hallmark signs with on
/// relying parties' behalf (CA keys, OCSP responders).
pub(crate) fn sign_checked(signer: &dyn Signer, msg: &[u8]) -> Result<Vec<u8>> {
    let sig = signer.sign(msg)?;
    if signer.key_algorithm().is_rsa() {
        let alg = signer.signature_algorithm();
        hallmark_crypto::verify_signature(
            signer.spki_der(),
            alg.oid,
            alg.parameters.as_ref().map(|p| p.into()),
            msg,
            &sig,
        )
        .map_err(|_| CaError::SignedMismatch)?;
    }
    Ok(sig)
}

/// The CA: issuers by id, profiles by name, settings.
pub struct Ca<L: Ledger> {
    pub settings: Settings,
    pub profiles: BTreeMap<String, Profile>,
    issuers: BTreeMap<String, IssuerKey>,
    default_issuer: String,
    ledger: L,
    sealer: Arc<dyn Sealer>,
    /// Fault injection for crash-consistency tests: abort the process after
    /// signing, before the certificate is stored.
    pub danger_abort_after_sign: bool,
}

impl<L: Ledger> Ca<L> {
    pub fn new(
        settings: Settings,
        profiles: BTreeMap<String, Profile>,
        issuers: Vec<IssuerKey>,
        default_issuer: String,
        ledger: L,
        sealer: Arc<dyn Sealer>,
    ) -> Self {
        Self {
            settings,
            profiles,
            issuers: issuers.into_iter().map(|i| (i.id.clone(), i)).collect(),
            default_issuer,
            ledger,
            sealer,
            danger_abort_after_sign: false,
        }
    }

    pub fn issuer(&self, id: Option<&str>) -> Result<&IssuerKey> {
        let id = id.unwrap_or(&self.default_issuer);
        if id.is_empty() {
            return Err(CaError::BadRequest(
                "this installation has no issuing CA (root only): sign issuing CAs with `hallmark ca sign-request`".into(),
            ));
        }
        self.issuers
            .get(id)
            .ok_or_else(|| CaError::UnknownIssuer(id.into()))
    }

    pub fn issuers(&self) -> impl Iterator<Item = &IssuerKey> {
        self.issuers.values()
    }

    pub fn default_issuer(&self) -> &str {
        &self.default_issuer
    }
}
