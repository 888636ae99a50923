//! The OCSP responder service: answers from a cache of pre-signed responses,
//! so a query for a known certificate costs a hash-map lookup and no
//! signature. Misses are signed once and cached; what only a live signature
//! answers (a nonce, several CertIDs, an unknown serial) is signed within a
//! budget (see [`OcspService::answer`]).

mod cache;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use hallmark_ca::ocsp::{IssuerHashes, Responder};
use hallmark_pki::crl::Reason;
use hallmark_pki::ocsp::{self, CertId, CertStatus, HashAlg, ResponseStatus, SingleResponse};
use hallmark_store::{Store, StoreError};

use cache::{Entry, Key, SHARDS, Shard};

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
    live: LiveBudget,
}

impl OcspService {
    pub fn new(store: Store, issuers: Vec<IssuerSlot>, validity_secs: u64) -> Self {
        Self {
            issuers: RwLock::new(Arc::new(issuers)),
            cache: (0..SHARDS).map(|_| RwLock::default()).collect(),
            store,
            validity_secs,
            generation: AtomicU64::new(0),
            live: LiveBudget::new(DEFAULT_LIVE_SIGNATURES),
        }
    }

    /// Sets the live-signing budget: signatures a second that clients can
    /// ask for beyond cached answers (see [`Self::answer`]).
    pub fn with_live_budget(mut self, per_second: u32) -> Self {
        self.live = LiveBudget::new(per_second);
        self
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
    ///
    /// Unauthenticated clients choose what is asked, so what they can make
    /// the CA sign is bounded (the policy of large responders; SECURITY.md):
    ///
    /// - a known certificate's answer is signed once, cached, and served
    ///   from the cache until it is refreshed;
    /// - what only a live signature can answer (a nonce, several CertIDs, a
    ///   serial this CA never issued) is signed within the live budget
    ///   ([`LiveBudget`]: a rate per second and at most half the cores at
    ///   once); beyond it, a nonce is ignored (RFC 8954 §2.1, RFC 5019 §4)
    ///   and the cached answer served, an unknown serial gets an unsigned
    ///   `unauthorized` (RFC 5019 §2.2.3, as Let's Encrypt answers), and a
    ///   request of several CertIDs an unsigned `tryLater`;
    /// - every signature is made on a blocking thread, never on the threads
    ///   that serve requests (a PKCS#11 token's `C_Sign` can take
    ///   milliseconds and is serialised).
    pub async fn answer(&self, req: &[u8], now: u64) -> (Bytes, Option<String>) {
        let refuse = |status: ResponseStatus, why: &str| {
            (
                Bytes::copy_from_slice(&ocsp::error_response(status)),
                Some(why.to_string()),
            )
        };
        let parsed = match ocsp::parse_request(req) {
            Ok(p) => p,
            Err(e) => return refuse(ResponseStatus::MalformedRequest, &e.to_string()),
        };
        let issuers = self.issuers();
        let mut slots = Vec::with_capacity(parsed.cert_ids.len());
        for id in &parsed.cert_ids {
            match issuers.iter().position(|i| i.hashes.matches(id)) {
                Some(i) => slots.push(i),
                None => {
                    return refuse(
                        ResponseStatus::Unauthorized,
                        "CertID names an issuer this responder does not serve",
                    );
                }
            }
        }
        // All CertIDs must be for one issuer: one responder signs the answer.
        if slots.iter().any(|s| *s != slots[0]) {
            return refuse(
                ResponseStatus::MalformedRequest,
                "CertIDs for several issuers in one request",
            );
        }
        let at = slots[0];
        let slot = &issuers[at];
        let internal = |e: String| {
            (
                Bytes::copy_from_slice(&ocsp::error_response(ResponseStatus::InternalError)),
                Some(e),
            )
        };
        if parsed.cert_ids.len() > 1 {
            let Some(permit) = self.live.try_take() else {
                return refuse(
                    ResponseStatus::TryLater,
                    "several CertIDs need a live signature, and the live-signing budget is spent",
                );
            };
            let mut statuses = Vec::with_capacity(parsed.cert_ids.len());
            for id in &parsed.cert_ids {
                match self.status(&slot.id, id).await {
                    Ok(s) => statuses.push(s),
                    Err(e) => return internal(e),
                }
            }
            return match self
                .sign_off_thread(
                    &issuers,
                    at,
                    parsed.cert_ids,
                    statuses,
                    parsed.nonce,
                    now,
                    permit,
                )
                .await
            {
                Ok(b) => (b, None),
                Err(e) => internal(e),
            };
        }
        let id = &parsed.cert_ids[0];
        let index = cache_index(at);
        let cached = index.and_then(|index| {
            let key = (index, id.hash, id.serial.clone());
            let m = self.cache[Self::shard(&id.serial)].read().ok()?;
            let e = m.entries.get(&key).filter(|e| now < e.refresh_at)?;
            let tail = e.tail.as_deref().unwrap_or_default();
            Some(Bytes::from([&e.head[..], tail].concat()))
        });
        let generation = self.generation();
        let (plain, known) = match cached {
            Some(b) => (Some(b), true),
            None => {
                let status = match self.status(&slot.id, id).await {
                    Ok(s) => s,
                    Err(e) => return internal(e),
                };
                if status == CertStatus::Unknown {
                    (None, false)
                } else {
                    // A known certificate: signed once and cached (what a
                    // client can ask for this way is bounded by what was
                    // issued), waiting for a signing slot if need be.
                    let permit = self.live.wait_slot().await;
                    match self
                        .sign_off_thread(
                            &issuers,
                            at,
                            vec![id.clone()],
                            vec![status],
                            None,
                            now,
                            permit,
                        )
                        .await
                    {
                        Ok(bytes) => {
                            if let Some(index) = index {
                                let refresh = self.refresh_at(slot, now);
                                let key = (index, id.hash, id.serial.clone());
                                self.cache_put(slot, key, &bytes, generation, refresh);
                            }
                            (Some(bytes), true)
                        }
                        Err(e) => return internal(e),
                    }
                }
            }
        };
        if parsed.nonce.is_none()
            && let Some(b) = plain
        {
            return (b, None);
        }
        // A nonce, or a serial never issued here: a live signature, if the
        // budget allows.
        match (self.live.try_take(), plain) {
            (Some(permit), _) => {
                let status = if known {
                    match self.status(&slot.id, id).await {
                        Ok(s) => s,
                        Err(e) => return internal(e),
                    }
                } else {
                    CertStatus::Unknown
                };
                match self
                    .sign_off_thread(
                        &issuers,
                        at,
                        vec![id.clone()],
                        vec![status],
                        parsed.nonce,
                        now,
                        permit,
                    )
                    .await
                {
                    Ok(b) => (b, None),
                    Err(e) => internal(e),
                }
            }
            (None, Some(b)) => (b, None),
            (None, None) => refuse(
                ResponseStatus::Unauthorized,
                "a serial this CA never issued, and the live-signing budget is spent",
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

    /// Signs a response on a blocking thread, holding `permit` (a signing
    /// slot) until it is made.
    #[allow(clippy::too_many_arguments)]
    async fn sign_off_thread(
        &self,
        issuers: &Arc<Vec<IssuerSlot>>,
        at: usize,
        ids: Vec<CertId>,
        statuses: Vec<CertStatus>,
        nonce: Option<x509_cert::ext::Extension>,
        now: u64,
        permit: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<Bytes, String> {
        let (issuers, validity) = (issuers.clone(), self.validity_secs);
        let signed = tokio::task::spawn_blocking(move || {
            sign_with(validity, &issuers[at], &ids, &statuses, nonce.as_ref(), now)
        })
        .await
        .map_err(|e| format!("OCSP signing stopped: {e}"))?;
        drop(permit);
        signed
    }

    fn sign_with(
        &self,
        slot: &IssuerSlot,
        ids: &[CertId],
        statuses: &[CertStatus],
        nonce: Option<&x509_cert::ext::Extension>,
        now: u64,
    ) -> Result<Bytes, String> {
        sign_with(self.validity_secs, slot, ids, statuses, nonce, now)
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

fn sign_with(
    validity_secs: u64,
    slot: &IssuerSlot,
    ids: &[CertId],
    statuses: &[CertStatus],
    nonce: Option<&x509_cert::ext::Extension>,
    now: u64,
) -> Result<Bytes, String> {
    let next_update = (now + validity_secs).min(slot.responder.not_after);
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

/// What clients may make the responder sign live: at most `rate`
/// signatures a second (a bucket that holds a second's worth), and at most
/// half the cores signing at once (so that cached answers, CRLs and the API
/// keep the other half whatever is asked).
pub struct LiveBudget {
    slots: tokio::sync::Semaphore,
    rate: u32,
    /// (tokens left, unix second they were counted at, in milliseconds).
    bucket: std::sync::Mutex<(f64, u128)>,
    clock: std::time::Instant,
}

impl LiveBudget {
    pub fn new(per_second: u32) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            slots: tokio::sync::Semaphore::new((cores / 2).max(1)),
            rate: per_second,
            bucket: std::sync::Mutex::new((f64::from(per_second), 0)),
            clock: std::time::Instant::now(),
        }
    }

    /// A signing slot and a token, or None when either is spent.
    fn try_take(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = self.slots.try_acquire().ok()?;
        let ms = self.clock.elapsed().as_millis();
        let mut b = self.bucket.lock().ok()?;
        let refill = (ms.saturating_sub(b.1)) as f64 * f64::from(self.rate) / 1000.0;
        b.0 = (b.0 + refill).min(f64::from(self.rate.max(1)));
        b.1 = ms;
        if b.0 < 1.0 {
            return None;
        }
        b.0 -= 1.0;
        Some(permit)
    }

    /// A signing slot, waited for (for answers that are cached once made).
    async fn wait_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        loop {
            if let Ok(p) = self.slots.acquire().await {
                return p;
            }
        }
    }
}

/// The live-signing budget when none is configured.
pub const DEFAULT_LIVE_SIGNATURES: u32 = 500;

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
