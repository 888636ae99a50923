//! The status services' test fixtures: a store in a temporary directory,
//! CAs with software keys, and certificates filed as issuance files them.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hallmark_ca::ocsp::{IssuerHashes, Responder};
use hallmark_ca::{IssuerKey, Settings, hierarchy};
use hallmark_crypto::{KeyAlgorithm, Signer, SoftwareSigner};
use hallmark_store::Store;
use hallmark_testkit::temp::TempDir;

use crate::crls::CrlPublisher;
use crate::ocsp::{IssuerSlot, OcspService};

/// A SQLite store in a directory of its own (removed with the [`TempDir`]).
pub(crate) async fn temp_store(tag: &str) -> (TempDir, Store) {
    let dir = TempDir::new(tag);
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    (dir, store)
}

pub(crate) fn signer() -> Arc<dyn Signer> {
    let pkcs8 = hallmark_crypto::generate_pkcs8(KeyAlgorithm::EcP256).unwrap();
    Arc::new(SoftwareSigner::from_pkcs8(KeyAlgorithm::EcP256, &pkcs8).unwrap())
}

/// A responder key that counts its signatures and, at the one numbered
/// `hook_at`, runs `hook` (as a revocation landing mid-page would).
pub(crate) struct Counting {
    inner: Arc<dyn Signer>,
    pub(crate) signs: AtomicUsize,
    hook_at: usize,
    pub(crate) hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Signer for Counting {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.inner.key_algorithm()
    }
    fn spki_der(&self) -> &[u8] {
        self.inner.spki_der()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, hallmark_crypto::CryptoError> {
        let n = self.signs.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.hook_at
            && let Some(hook) = self.hook.get()
        {
            hook();
        }
        self.inner.sign(msg)
    }
}

/// A slot for `ca` with a freshly certified responder.
pub(crate) fn slot(ca: &IssuerKey, now: u64) -> IssuerSlot {
    slot_with(ca, now, signer())
}

fn slot_with(ca: &IssuerKey, now: u64, key: Arc<dyn Signer>) -> IssuerSlot {
    let settings = Settings::example("http://ca.example");
    let cert = hierarchy::ocsp_signer_certificate(ca, key.spki_der(), now, 86_400 * 30, &settings)
        .unwrap();
    let responder = Responder::new(&ca.id, cert, key).unwrap();
    IssuerSlot::new(&ca.id, IssuerHashes::of(ca).unwrap(), responder)
}

/// A responder service over a fresh SQLite store, for a self-signed CA
/// "ca" (its certificate kept for the issuers table); the directory is
/// removed on drop.
pub(crate) struct Setup {
    _dir: TempDir,
    pub(crate) store: hallmark_store::Store,
    pub(crate) ca: IssuerKey,
    pub(crate) svc: Arc<OcspService>,
    pub(crate) responder: Arc<Counting>,
}

pub(crate) const NOW: u64 = 1_700_000_000;

pub(crate) async fn setup(tag: &str) -> Setup {
    setup_hooked(tag, 0).await
}

/// [`setup`] whose responder runs a hook at its `hook_at`-th signature.
pub(crate) async fn setup_hooked(tag: &str, hook_at: usize) -> Setup {
    let (dir, store) = temp_store(tag).await;
    let key = signer();
    let cert = hierarchy::root_certificate(key.as_ref(), "CN=Test CA", NOW, 3650).unwrap();
    let ca = IssuerKey::new("ca", cert, key, true).unwrap();
    let responder = Arc::new(Counting {
        inner: signer(),
        signs: AtomicUsize::new(0),
        hook_at,
        hook: std::sync::OnceLock::new(),
    });
    let svc = Arc::new(OcspService::new(
        store.clone(),
        vec![slot_with(&ca, NOW, responder.clone())],
        86_400,
    ));
    Setup {
        _dir: dir,
        store,
        ca,
        svc,
        responder,
    }
}

/// Files `serials` as issued certificates of "ca", revoking `revoked`.
pub(crate) async fn issued(s: &Setup, serials: &[&str], revoked: &[&str]) {
    file_issuer(&s.store, &s.ca, None).await;
    file_certificates(&s.store, "ca", serials, i64::from(u32::MAX), 0).await;
    for serial in revoked {
        revoke(&s.store, "ca", serial, NOW).await;
    }
}

/// Records a CA in the issuers table, as the key ceremony does.
pub(crate) async fn file_issuer(store: &Store, ca: &IssuerKey, parent: Option<&str>) {
    let mut tx = store.begin().await.unwrap();
    hallmark_store::issuers::insert_issuer(
        &mut tx,
        &hallmark_store::issuers::IssuerRow {
            id: ca.id.clone(),
            subject: format!("CN={}", ca.id),
            cert: ca.cert_der.clone(),
            parent: parent.map(str::to_string),
            key_label: format!("ca-{}", ca.id),
            is_root: ca.is_root,
            created_at: 1,
        },
    )
    .await
    .unwrap();
    hallmark_store::commit(tx).await.unwrap();
}

/// Files `serials` as issued certificates of `issuer` (each "signed" as its
/// serial's bytes), valid until `not_after`, in CRL partition `shard`.
pub(crate) async fn file_certificates(
    store: &Store,
    issuer: &str,
    serials: &[&str],
    not_after: i64,
    shard: i64,
) {
    use hallmark_store::certificates::{self, Finalize, NewCert};
    let rows: Vec<NewCert> = serials
        .iter()
        .map(|serial| NewCert {
            issuer: issuer.into(),
            serial: (*serial).into(),
            profile: "p".into(),
            subject: "CN=x".into(),
            tbs: serial.as_bytes().to_vec(),
            not_before: 1,
            not_after,
            shard,
            created_at: 1,
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    certificates::reserve_many(&mut tx, &rows.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let fins: Vec<Finalize<'_>> = rows
        .iter()
        .map(|c| Finalize {
            issuer,
            serial: &c.serial,
            cert: &c.tbs,
            escrow: None,
        })
        .collect();
    certificates::finalize_many(&mut tx, &fins.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    hallmark_store::commit(tx).await.unwrap();
}

/// Stores a revocation (keyCompromise at `at`) as the CA service does,
/// with the CRLs it makes due, and publishes nothing.
pub(crate) async fn revoke(store: &Store, issuer: &str, serial: &str, at: u64) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let row = hallmark_store::revocations::revoke(&mut tx, issuer, serial, at as i64, 1, at as i64)
        .await
        .unwrap();
    hallmark_store::commit(tx).await.unwrap();
    row.shard
}

/// Time of the CRL fixture's ceremony.
pub(crate) const T0: u64 = 1_800_000_000;

fn fixed_clock() -> u64 {
    T0
}

/// A root and an issuing CA "issuing" under it, both signing CRLs here,
/// over a fresh SQLite store.
pub(crate) struct CrlSetup {
    _dir: TempDir,
    pub(crate) store: Store,
    pub(crate) issuing: IssuerKey,
    pub(crate) settings: Settings,
    pub(crate) crls: Arc<CrlPublisher>,
}

impl CrlSetup {
    pub(crate) async fn new(tag: &str) -> Self {
        let (dir, store) = temp_store(tag).await;
        let settings = Settings::example("http://127.0.0.1");
        let root_key = signer();
        let root_cert =
            hierarchy::root_certificate(root_key.as_ref(), "CN=CRL Test Root,C=HK", T0, 3650)
                .unwrap();
        let root = IssuerKey::new("root", root_cert, root_key, true).unwrap();
        let key = signer();
        let cert = hierarchy::issuing_certificate(
            &root,
            key.spki_der(),
            "CN=CRL Test Issuing,C=HK",
            T0,
            1825,
            &settings,
        )
        .unwrap();
        let issuing = IssuerKey::new("issuing", cert, key, false).unwrap();
        file_issuer(&store, &root, None).await;
        file_issuer(&store, &issuing, Some("root")).await;
        let crls = Arc::new(CrlPublisher::new(
            store.clone(),
            [root, issuing.clone()],
            settings.clone(),
            fixed_clock,
        ));
        Self {
            _dir: dir,
            store,
            issuing,
            settings,
            crls,
        }
    }

    /// Another process on the same database: a publisher with lanes of its
    /// own.
    pub(crate) fn other_process(&self) -> CrlPublisher {
        CrlPublisher::new(
            self.store.clone(),
            [self.issuing.clone()],
            self.settings.clone(),
            fixed_clock,
        )
    }

    /// Files `n` certificates of "issuing" valid for a year (as the
    /// `personal` profile issues them); returns their serials.
    pub(crate) async fn issue(&self, n: usize) -> Vec<String> {
        let serials: Vec<String> = (0..n)
            .map(|_| hallmark_pki::hex(&hallmark_pki::random_serial().unwrap()))
            .collect();
        let not_after = T0 + 365 * 86_400;
        let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
        file_certificates(
            &self.store,
            "issuing",
            &refs,
            not_after as i64,
            self.settings.shard_of(not_after),
        )
        .await;
        serials
    }
}
