//! The OCSP responder service: answers from a cache of pre-signed responses,
//! so a query for a known certificate costs a hash-map lookup and no
//! signature. Misses are signed once and cached; requests with a nonce or
//! several CertIDs are signed live.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use hallmark_ca::ocsp::{IssuerHashes, Responder};
use hallmark_pki::crl::Reason;
use hallmark_pki::ocsp::{self, CertId, CertStatus, HashAlg, ResponseStatus, SingleResponse};
use hallmark_store::{Store, StoreError};

const SHARDS: usize = 16;

/// A cached response. Every response ends with the responder's certificate
/// (the same for all of an issuer's responses), so only what comes before it
/// is kept: a third of the memory per certificate.
struct Entry {
    head: Box<[u8]>,
    /// The certificate field that follows `head` (shared by all of a
    /// responder's entries; kept per entry so an entry never meets another
    /// responder's certificate).
    tail: Option<Arc<[u8]>>,
    /// Re-sign after this time: half-way to nextUpdate (RFC 5019 §6.2 asks
    /// responses to be refreshed before they expire).
    refresh_at: u64,
}

/// A cached response's key: the issuer's index among the slots, the CertID's
/// hash algorithm and the serial.
type Key = (u16, HashAlg, Vec<u8>);

/// Invalidations remembered per shard (about 4 MiB in all): enough for a
/// revocation storm of thousands a second while a response is being signed.
const TOMBSTONES_PER_SHARD: usize = 4096;

/// One shard of the cache, with the invalidations of its serials: a
/// response signed from a status read before its serial was invalidated is
/// not cached, while responses for other serials still are.
#[derive(Default)]
struct Shard {
    entries: HashMap<Key, Entry>,
    /// Recent invalidations: (issuer index, serial) → the generation it made.
    tombstones: HashMap<(u16, Vec<u8>), u64>,
    order: VecDeque<((u16, Vec<u8>), u64)>,
    /// The newest generation among tombstones no longer kept: a response
    /// whose status was read before it is refused whatever its serial.
    forgotten: u64,
}

impl Shard {
    /// Whether a serial was (or may have been) invalidated after
    /// `generation` was read.
    fn invalidated_since(&self, idx: u16, serial: &[u8], generation: u64) -> bool {
        self.forgotten > generation
            || self
                .tombstones
                .get(&(idx, serial.to_vec()))
                .is_some_and(|g| *g > generation)
    }

    fn bury(&mut self, idx: u16, serial: Vec<u8>, generation: u64) {
        for h in [HashAlg::Sha1, HashAlg::Sha256] {
            self.entries.remove(&(idx, h, serial.clone()));
        }
        self.tombstones.insert((idx, serial.clone()), generation);
        self.order.push_back(((idx, serial), generation));
        while self.order.len() > TOMBSTONES_PER_SHARD {
            let Some((key, g)) = self.order.pop_front() else {
                break;
            };
            if self.tombstones.get(&key) == Some(&g) {
                self.tombstones.remove(&key);
            }
            self.forgotten = self.forgotten.max(g);
        }
    }
}

pub struct IssuerSlot {
    pub id: String,
    pub hashes: IssuerHashes,
    pub responder: Responder,
    /// The responder-certificate field that ends each of its responses.
    certs_field: Arc<[u8]>,
}

impl IssuerSlot {
    pub fn new(id: &str, hashes: IssuerHashes, responder: Responder) -> Self {
        let certs_field = ocsp::certs_field(&responder.cert_der).into();
        Self {
            id: id.to_string(),
            hashes,
            responder,
            certs_field,
        }
    }
}

pub struct OcspService {
    issuers: RwLock<Arc<Vec<IssuerSlot>>>,
    cache: Vec<RwLock<Shard>>,
    store: Store,
    validity_secs: u64,
    /// Bumped by every invalidation, which leaves it in its shard's
    /// tombstones: a response signed from a status read before its serial's
    /// invalidation is not cached (it might predate the revocation).
    generation: AtomicU64,
}

impl OcspService {
    pub fn new(store: Store, issuers: Vec<IssuerSlot>, validity_secs: u64) -> Self {
        Self {
            issuers: RwLock::new(Arc::new(issuers)),
            cache: (0..SHARDS).map(|_| RwLock::default()).collect(),
            store,
            validity_secs,
            generation: AtomicU64::new(0),
        }
    }

    /// Caches `bytes` unless its serial was invalidated since `generation`
    /// was read (checked under the shard's write lock, which invalidation
    /// also takes). Entries are refreshed at half their validity and never
    /// served past their nextUpdate.
    fn cache_put(
        &self,
        slot: &IssuerSlot,
        key: Key,
        bytes: &[u8],
        generation: u64,
        refresh_at: u64,
    ) -> bool {
        let entry = match bytes.strip_suffix(&slot.certs_field[..]) {
            Some(head) => Entry {
                head: head.into(),
                tail: Some(slot.certs_field.clone()),
                refresh_at,
            },
            None => Entry {
                head: bytes.into(),
                tail: None,
                refresh_at,
            },
        };
        let Ok(mut m) = self.cache[Self::shard(&key.2)].write() else {
            return false;
        };
        if m.invalidated_since(key.0, &key.2, generation) {
            return false;
        }
        // Signed by a responder that has since been replaced: the cache was
        // cleared after the replacement, and must stay without its answers.
        let current = self.issuers();
        if !current
            .get(usize::from(key.0))
            .is_some_and(|c| Arc::ptr_eq(&c.certs_field, &slot.certs_field))
        {
            return false;
        }
        m.entries.insert(key, entry);
        true
    }

    fn refresh_at(&self, slot: &IssuerSlot, now: u64) -> u64 {
        (now + self.validity_secs / 2).min(slot.responder.not_after)
    }

    /// The current invalidation generation; read it before reading statuses.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Replaces the responders (after an OCSP signer renewal) and drops
    /// every cached response signed by the old ones. The responders are
    /// replaced before the cache is cleared: a response signed by an old one
    /// that is cached after the clear is refused by [`Self::cache_put`].
    pub fn set_issuers(&self, issuers: Vec<IssuerSlot>) {
        if let Ok(mut g) = self.issuers.write() {
            *g = Arc::new(issuers);
        }
        for s in &self.cache {
            if let Ok(mut m) = s.write() {
                m.entries.clear();
            }
        }
    }

    pub fn issuers(&self) -> Arc<Vec<IssuerSlot>> {
        self.issuers.read().map(|g| g.clone()).unwrap_or_default()
    }

    fn shard(serial: &[u8]) -> usize {
        serial.last().copied().unwrap_or(0) as usize % SHARDS
    }

    /// Drops the cached responses for a serial (after a revocation).
    pub fn invalidate(&self, issuer_id: &str, serial_hex: &str) {
        let Some(serial) = hallmark_pki::unhex(serial_hex) else {
            return;
        };
        let issuers = self.issuers();
        let Some(idx) = issuers.iter().position(|i| i.id == issuer_id) else {
            return;
        };
        let Some(idx) = cache_index(idx) else {
            return;
        };
        if let Ok(mut m) = self.cache[Self::shard(&serial)].write() {
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            m.bury(idx, serial, generation);
        }
    }

    pub fn cached_len(&self) -> usize {
        self.cache
            .iter()
            .map(|s| s.read().map(|m| m.entries.len()).unwrap_or(0))
            .sum()
    }

    /// Answers a DER OCSP request. Never fails: errors become OCSP error
    /// statuses, as RFC 6960 §2.3 requires.
    pub async fn answer(&self, req: &[u8], now: u64) -> (Bytes, Option<String>) {
        let parsed = match ocsp::parse_request(req) {
            Ok(p) => p,
            Err(e) => {
                return (
                    Bytes::copy_from_slice(&ocsp::error_response(ResponseStatus::MalformedRequest)),
                    Some(e.to_string()),
                );
            }
        };
        let issuers = self.issuers();
        let mut slots = Vec::with_capacity(parsed.cert_ids.len());
        for id in &parsed.cert_ids {
            match issuers.iter().position(|i| i.hashes.matches(id)) {
                Some(i) => slots.push(i),
                None => {
                    return (
                        Bytes::copy_from_slice(&ocsp::error_response(ResponseStatus::Unauthorized)),
                        Some("CertID names an issuer this responder does not serve".into()),
                    );
                }
            }
        }
        // All CertIDs must be for one issuer: one responder signs the answer.
        if slots.iter().any(|s| *s != slots[0]) {
            return (
                Bytes::copy_from_slice(&ocsp::error_response(ResponseStatus::MalformedRequest)),
                Some("CertIDs for several issuers in one request".into()),
            );
        }
        let slot = &issuers[slots[0]];
        let index = cache_index(slots[0]);
        if let Some(index) = index
            && parsed.nonce.is_none()
            && parsed.cert_ids.len() == 1
        {
            let id = &parsed.cert_ids[0];
            let key = (index, id.hash, id.serial.clone());
            if let Ok(m) = self.cache[Self::shard(&id.serial)].read()
                && let Some(e) = m.entries.get(&key)
                && now < e.refresh_at
            {
                let tail = e.tail.as_deref().unwrap_or_default();
                return (Bytes::from([&e.head[..], tail].concat()), None);
            }
            let generation = self.generation();
            return match self.sign_fresh(slot, &parsed.cert_ids, None, now).await {
                Ok((bytes, known)) => {
                    if known {
                        let refresh = self.refresh_at(slot, now);
                        self.cache_put(slot, key, &bytes, generation, refresh);
                    }
                    (bytes, None)
                }
                Err(e) => (
                    Bytes::copy_from_slice(&ocsp::error_response(ResponseStatus::InternalError)),
                    Some(e),
                ),
            };
        }
        match self
            .sign_fresh(slot, &parsed.cert_ids, parsed.nonce.as_ref(), now)
            .await
        {
            Ok((bytes, _)) => (bytes, None),
            Err(e) => (
                Bytes::copy_from_slice(&ocsp::error_response(ResponseStatus::InternalError)),
                Some(e),
            ),
        }
    }

    async fn status(&self, issuer: &str, id: &CertId) -> Result<CertStatus, String> {
        // Serials are stored as hex of their INTEGER contents.
        match self
            .store
            .get_cert(Some(issuer), &hallmark_pki::hex(&id.serial))
            .await
        {
            Ok(row) if row.status == "issued" => {
                Ok(issued_status(row.revoked_at, row.reason.unwrap_or(0)))
            }
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(CertStatus::Unknown),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Signs a response; the flag says whether every status was known.
    async fn sign_fresh(
        &self,
        slot: &IssuerSlot,
        ids: &[CertId],
        nonce: Option<&x509_cert::ext::Extension>,
        now: u64,
    ) -> Result<(Bytes, bool), String> {
        let mut statuses = Vec::with_capacity(ids.len());
        for id in ids {
            statuses.push(self.status(&slot.id, id).await?);
        }
        let known = statuses.iter().all(|s| *s != CertStatus::Unknown);
        Ok((self.sign_with(slot, ids, &statuses, nonce, now)?, known))
    }

    fn sign_with(
        &self,
        slot: &IssuerSlot,
        ids: &[CertId],
        statuses: &[CertStatus],
        nonce: Option<&x509_cert::ext::Extension>,
        now: u64,
    ) -> Result<Bytes, String> {
        let next_update = (now + self.validity_secs).min(slot.responder.not_after);
        let singles: Vec<SingleResponse<'_>> = ids
            .iter()
            .zip(statuses)
            .map(|(id, s)| SingleResponse {
                cert_id: id,
                status: *s,
                this_update: now,
                next_update,
            })
            .collect();
        let der = slot
            .responder
            .sign(&singles, nonce, now)
            .map_err(|e| e.to_string())?;
        Ok(Bytes::from(der))
    }

    /// Pre-signs the responses of every live certificate, `page` at a time
    /// (short reads, bounded memory), signing on a blocking thread, off the
    /// threads serving requests. Returns how many were cached.
    pub async fn presign_all(self: &Arc<Self>, now: u64, page: usize) -> Result<usize, StoreError> {
        let mut total = 0;
        let ids: Vec<String> = self.issuers().iter().map(|s| s.id.clone()).collect();
        for id in ids {
            let mut after = String::new();
            let mut stalls = 0;
            loop {
                // Read before the statuses: a revocation after this point
                // keeps the page's responses out of the cache.
                let generation = self.generation();
                let rows = self.store.live_page(&id, now as i64, &after, page).await?;
                let full = rows.len() == page;
                let statuses: Vec<(String, CertStatus)> = rows
                    .into_iter()
                    .map(|(serial, revoked_at, reason)| (serial, issued_status(revoked_at, reason)))
                    .collect();
                if statuses.is_empty() {
                    break;
                }
                let (svc, issuer) = (self.clone(), id.clone());
                let (done, statuses) = tokio::task::spawn_blocking(move || {
                    let done = svc.presign(&issuer, &statuses, generation, now);
                    (done, statuses)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("OCSP pre-signing stopped: {e}")))?;
                total += done.cached;
                if done.processed < statuses.len() {
                    // Revoked meanwhile: read on from where it stopped, with
                    // fresh statuses; after several stops without progress
                    // the rest of the page is left to on-demand signing.
                    if done.processed > 0 {
                        after = statuses[done.processed - 1].0.clone();
                        stalls = 0;
                        continue;
                    }
                    if stalls < PRESIGN_STALLS {
                        stalls += 1;
                        tokio::time::sleep(PRESIGN_PAUSE).await;
                        continue;
                    }
                }
                stalls = 0;
                after = statuses[statuses.len() - 1].0.clone();
                if !full {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Pre-signs responses (SHA-1 CertIDs, as RFC 5019 clients send) for
    /// certificates whose status is known, so that their first query costs
    /// no signature either. `generation` is [`generation`](Self::generation)
    /// as read before the statuses were: at the first certificate
    /// invalidated since, it stops before signing it (see [`Presigned`]);
    /// invalidations of other serials do not stop it.
    pub fn presign(
        &self,
        issuer_id: &str,
        certs: &[(String, CertStatus)],
        generation: u64,
        now: u64,
    ) -> Presigned {
        let mut done = Presigned {
            cached: 0,
            processed: 0,
        };
        let issuers = self.issuers();
        let Some((idx, slot)) = issuers
            .iter()
            .position(|i| i.id == issuer_id)
            .and_then(|i| Some((cache_index(i)?, &issuers[i])))
        else {
            done.processed = certs.len();
            return done;
        };
        for (s, status) in certs {
            if let Some(serial) = hallmark_pki::unhex(s) {
                // Stop before signing, not only before caching, once this
                // serial was invalidated.
                if self.cache[Self::shard(&serial)]
                    .read()
                    .map_or(true, |m| m.invalidated_since(idx, &serial, generation))
                {
                    return done;
                }
                let id = CertId {
                    hash: HashAlg::Sha1,
                    issuer_name_hash: slot.hashes.sha1_name.clone(),
                    issuer_key_hash: slot.hashes.sha1_key.clone(),
                    serial: serial.clone(),
                };
                if let Ok(bytes) =
                    self.sign_with(slot, std::slice::from_ref(&id), &[*status], None, now)
                {
                    if !self.cache_put(
                        slot,
                        (idx, HashAlg::Sha1, serial),
                        &bytes,
                        generation,
                        self.refresh_at(slot, now),
                    ) {
                        return done;
                    }
                    done.cached += 1;
                }
            }
            done.processed += 1;
        }
        done
    }
}

/// An issuer's index in cache keys; responses of issuers beyond the first
/// 65,536 are signed on demand and not cached.
fn cache_index(slot: usize) -> Option<u16> {
    u16::try_from(slot).ok()
}

/// The status of an issued certificate from its stored revocation time and
/// reason code.
fn issued_status(revoked_at: Option<i64>, reason: i64) -> CertStatus {
    match revoked_at {
        Some(at) => CertStatus::Revoked {
            at: at.max(0) as u64,
            reason: Reason::from_code(reason as u8).unwrap_or(Reason::Unspecified),
        },
        None => CertStatus::Good,
    }
}

/// What [`OcspService::presign`] did with a page.
#[derive(Debug, PartialEq, Eq)]
pub struct Presigned {
    /// Responses signed and cached.
    pub cached: usize,
    /// Certificates dealt with (cached, or skipped as unsignable), from the
    /// first; fewer than the page when an invalidation stopped it.
    pub processed: usize,
}

/// Times pre-signing waits [`PRESIGN_PAUSE`] and reads a page again when an
/// invalidation stopped it before its first certificate (that certificate
/// revoked again, or more invalidations in its shard than are remembered),
/// before that page is left to on-demand signing: about a second.
const PRESIGN_STALLS: u32 = 20;
const PRESIGN_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// How far back each poll for revocations looks: a revocation's time of
/// change is taken before its commit, which can wait on locks.
const REVOCATION_LOOKBACK: i64 = 120;

/// Follows revocations made by other processes (another server, the CLI)
/// and drops their cached responses. Each revocation is dropped once: a
/// poll looks back [`REVOCATION_LOOKBACK`] seconds, and those already seen
/// are remembered for that long, so a mass revocation (a million
/// certificates of a compromised CA) is not invalidated again at every poll,
/// which would keep every pre-signing page from being cached.
pub struct RevocationFollower {
    since: i64,
    /// Revocations seen in the look-back window: a 128-bit digest of
    /// issuer and serial, with the time of change.
    seen: HashMap<u128, i64>,
}

impl RevocationFollower {
    /// Follows revocations from `now` on (and the look-back before it).
    pub fn new(now: i64) -> Self {
        Self {
            since: now,
            seen: HashMap::new(),
        }
    }

    /// One poll: drops the cached responses of revocations not seen before.
    /// Returns how many were dropped.
    pub async fn poll(
        &mut self,
        store: &Store,
        ocsp: &OcspService,
        now: i64,
    ) -> Result<usize, StoreError> {
        let from = self.since - REVOCATION_LOOKBACK;
        let mut fresh = 0;
        store
            .for_each_revoked_since(from, |issuer, serial, changed_at| {
                let mut d = hallmark_crypto::Sha256::default();
                d.update(issuer.as_bytes());
                d.update(&[0]);
                d.update(serial.as_bytes());
                let digest = d.finish();
                let mut key = [0u8; 16];
                key.copy_from_slice(&digest[..16]);
                if self
                    .seen
                    .insert(u128::from_be_bytes(key), changed_at)
                    .is_none()
                {
                    ocsp.invalidate(issuer, serial);
                    fresh += 1;
                }
            })
            .await?;
        self.since = now;
        let keep_from = now - REVOCATION_LOOKBACK;
        self.seen.retain(|_, at| *at >= keep_from);
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hallmark_ca::ocsp::{IssuerHashes, Responder};
    use hallmark_ca::{IssuerKey, Settings, hierarchy};
    use hallmark_crypto::{KeyAlgorithm, Signer, SoftwareSigner};
    use hallmark_pki::ocsp::HashAlg;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{CertStatus, IssuerSlot, OcspService, Presigned};

    fn signer() -> Arc<dyn Signer> {
        let pkcs8 = hallmark_crypto::generate_pkcs8(KeyAlgorithm::EcP256).unwrap();
        Arc::new(SoftwareSigner::from_pkcs8(KeyAlgorithm::EcP256, &pkcs8).unwrap())
    }

    /// A responder key that counts its signatures and, at the one numbered
    /// `hook_at`, runs `hook` (as a revocation landing mid-page would).
    struct Counting {
        inner: Arc<dyn Signer>,
        signs: AtomicUsize,
        hook_at: usize,
        hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
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
    fn slot(ca: &IssuerKey, now: u64) -> IssuerSlot {
        slot_with(ca, now, signer())
    }

    fn slot_with(ca: &IssuerKey, now: u64, key: Arc<dyn Signer>) -> IssuerSlot {
        let settings = Settings::example("http://ca.example");
        let cert =
            hierarchy::ocsp_signer_certificate(ca, key.spki_der(), now, 86_400 * 30, &settings)
                .unwrap();
        let responder = Responder::new(&ca.id, cert, key).unwrap();
        IssuerSlot::new(&ca.id, IssuerHashes::of(ca).unwrap(), responder)
    }

    /// A responder service over a fresh SQLite store, for a self-signed CA
    /// "ca" (its certificate kept for the issuers table); the directory is
    /// removed on drop.
    struct Setup {
        dir: std::path::PathBuf,
        store: hallmark_store::Store,
        ca: IssuerKey,
        svc: Arc<OcspService>,
        responder: Arc<Counting>,
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const NOW: u64 = 1_700_000_000;

    async fn setup(tag: &str) -> Setup {
        setup_hooked(tag, 0).await
    }

    /// [`setup`] whose responder runs a hook at its `hook_at`-th signature.
    async fn setup_hooked(tag: &str, hook_at: usize) -> Setup {
        let dir = std::env::temp_dir().join(format!("hm-ocsp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = hallmark_store::Store::connect(&format!("sqlite://{}/t.db", dir.display()))
            .await
            .unwrap();
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
            dir,
            store,
            ca,
            svc,
            responder,
        }
    }

    /// Files `serials` as issued certificates of "ca", revoking `revoked`.
    async fn issued(s: &Setup, serials: &[&str], revoked: &[&str]) {
        use hallmark_store::certs::{self, Finalize, IssuerRow, NewCert};
        let mut tx = s.store.begin().await.unwrap();
        certs::insert_issuer(
            &mut tx,
            &IssuerRow {
                id: "ca".into(),
                subject: "CN=Test CA".into(),
                cert: s.ca.cert_der.clone(),
                parent: None,
                key_label: "k".into(),
                is_root: false,
                created_at: 1,
            },
        )
        .await
        .unwrap();
        let rows: Vec<NewCert> = serials
            .iter()
            .map(|serial| NewCert {
                issuer: "ca".into(),
                serial: (*serial).into(),
                profile: "p".into(),
                subject: "CN=x".into(),
                tbs: serial.as_bytes().to_vec(),
                not_before: 1,
                not_after: i64::from(u32::MAX),
                shard: 0,
                created_at: 1,
            })
            .collect();
        certs::reserve_many(&mut tx, &rows.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        let fins: Vec<Finalize<'_>> = rows
            .iter()
            .map(|c| Finalize {
                issuer: "ca",
                serial: &c.serial,
                cert: &c.tbs,
                escrow: None,
            })
            .collect();
        certs::finalize_many(&mut tx, &fins.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        for serial in revoked {
            certs::revoke(&mut tx, "ca", serial, NOW as i64, 1, NOW as i64)
                .await
                .unwrap();
        }
        hallmark_store::commit(tx).await.unwrap();
    }

    /// A response signed by a responder that was replaced while it was being
    /// signed is not cached (the replacement cleared the cache before it
    /// arrived); one from the current responder is.
    #[tokio::test]
    async fn replaced_responder_answers_are_not_cached() {
        let Setup { ca, svc, .. } = &setup("slots").await;
        let now = NOW;
        let old = slot(ca, now);
        let current = svc.issuers();
        let put = |s: &IssuerSlot, serial: u8| {
            let mut bytes = b"response ".to_vec();
            bytes.extend_from_slice(&s.certs_field);
            svc.cache_put(
                s,
                (0, HashAlg::Sha1, vec![serial]),
                &bytes,
                svc.generation(),
                now + 60,
            )
        };
        assert!(put(&current[0], 1));
        svc.set_issuers(vec![old]);
        assert_eq!(svc.cached_len(), 0);
        assert!(!put(&current[0], 2), "an old responder's answer was cached");
        assert!(put(&svc.issuers()[0], 3));
        assert_eq!(svc.cached_len(), 1);
    }

    /// A pre-signing page whose statuses were read before one of its
    /// certificates was invalidated stops before signing that one (the
    /// caller reads on from there); read after, all are cached.
    /// Invalidations of serials outside the page (a revocation storm
    /// elsewhere) do not stop it.
    #[tokio::test]
    async fn presigning_stops_at_an_invalidated_certificate() {
        let Setup { svc, responder, .. } = &setup("presign").await;
        let page = [
            ("0a".to_string(), CertStatus::Good),
            ("0b".to_string(), CertStatus::Good),
            ("0c".to_string(), CertStatus::Good),
        ];
        let before = svc.generation();
        svc.invalidate("ca", "0b");
        let first = Presigned {
            cached: 1,
            processed: 1,
        };
        assert_eq!(svc.presign("ca", &page, before, NOW), first);
        assert_eq!(svc.cached_len(), 1);
        assert_eq!(responder.signs.load(Ordering::SeqCst), 1, "signed in vain");
        let all = Presigned {
            cached: 3,
            processed: 3,
        };
        assert_eq!(svc.presign("ca", &page, svc.generation(), NOW), all);
        assert_eq!(svc.cached_len(), 3);

        // A storm of revocations of other certificates while a page of
        // statuses is being signed.
        let before = svc.generation();
        for i in 0..1000u32 {
            svc.invalidate("ca", &format!("ff{i:04x}"));
        }
        assert_eq!(svc.presign("ca", &page, before, NOW), all);
        // Past what the shards remember, any page read before is refused.
        let before = svc.generation();
        for i in 0..(super::SHARDS * (super::TOMBSTONES_PER_SHARD + 1)) as u32 {
            svc.invalidate("ca", &format!("ee{i:06x}"));
        }
        assert_eq!(
            svc.presign("ca", &page, before, NOW),
            Presigned {
                cached: 0,
                processed: 0
            }
        );
    }

    /// A response signed on a cache miss from a status read before its
    /// serial's revocation is not cached; one for another serial is.
    #[tokio::test]
    async fn answers_read_before_their_revocation_are_not_cached() {
        let Setup { svc, .. } = &setup("tomb").await;
        let slots = svc.issuers();
        let put_with = |hash: HashAlg, serial: u8, generation: u64| {
            let mut bytes = b"response ".to_vec();
            bytes.extend_from_slice(&slots[0].certs_field);
            svc.cache_put(
                &slots[0],
                (0, hash, vec![serial]),
                &bytes,
                generation,
                NOW + 60,
            )
        };
        let put = |serial: u8, generation: u64| put_with(HashAlg::Sha256, serial, generation);
        let before = svc.generation();
        svc.invalidate("ca", "07");
        assert!(!put(7, before), "a stale answer was cached");
        assert!(put(8, before));
        assert!(put(7, svc.generation()));
        assert!(put_with(HashAlg::Sha1, 7, svc.generation()));
        // 0x17 shares 0x07's shard: invalidating one keeps the other.
        assert!(put(0x17, svc.generation()));
        assert_eq!(svc.cached_len(), 4);
        let before = svc.generation();
        svc.invalidate("ca", "17");
        assert!(put(7, before), "another serial of the shard was refused");
        assert!(!put(0x17, before));
        // Invalidation drops both hash algorithms' answers.
        svc.invalidate("ca", "07");
        assert_eq!(svc.cached_len(), 1);
        svc.invalidate("ca", "08");
        assert_eq!(svc.cached_len(), 0);
    }

    /// A revocation landing in the middle of a page, on the certificate
    /// being signed: pre-signing reads on from where it stopped (one
    /// signature wasted, the one whose answer was refused), and every live
    /// certificate ends up cached.
    #[tokio::test]
    async fn presigning_resumes_after_an_invalidation() {
        let s = setup_hooked("resume", 6).await;
        let serials: Vec<String> = (1..=10).map(|i| format!("{i:02x}")).collect();
        let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
        issued(&s, &refs, &["03"]).await;
        let weak = Arc::downgrade(&s.svc);
        let _ = s.responder.hook.set(Box::new(move || {
            if let Some(svc) = weak.upgrade() {
                svc.invalidate("ca", "06");
            }
        }));
        let cached = s.svc.presign_all(NOW, 4).await.unwrap();
        assert_eq!(cached, 10);
        assert_eq!(s.svc.cached_len(), 10);
        assert_eq!(s.responder.signs.load(Ordering::SeqCst), 11);
    }

    /// Revocations made elsewhere are invalidated once each, not at every
    /// poll of the look-back window; new ones still are.
    #[tokio::test]
    async fn revocations_are_followed_once() {
        let s = setup("follow").await;
        issued(&s, &["0a", "0b", "0c"], &["0a", "0b"]).await;
        let (store, svc) = (&s.store, &s.svc);
        let now = NOW as i64;
        let mut follower = super::RevocationFollower::new(now);
        let g0 = svc.generation();
        assert_eq!(follower.poll(store, svc, now + 5).await.unwrap(), 2);
        assert_eq!(svc.generation(), g0 + 2);
        // Still in the look-back window: not invalidated again.
        assert_eq!(follower.poll(store, svc, now + 10).await.unwrap(), 0);
        assert_eq!(svc.generation(), g0 + 2);
        let mut tx = store.begin().await.unwrap();
        hallmark_store::certs::revoke(&mut tx, "ca", "0c", now + 10, 1, now + 10)
            .await
            .unwrap();
        hallmark_store::commit(tx).await.unwrap();
        assert_eq!(follower.poll(store, svc, now + 15).await.unwrap(), 1);
        assert_eq!(svc.generation(), g0 + 3);
    }
}
