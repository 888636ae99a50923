//! Tests of the responder's cache: what may be cached, when pre-signing
//! stops and resumes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hallmark_pki::ocsp::HashAlg;

use super::{CertStatus, IssuerSlot, Presigned, cache};
use crate::testing::{NOW, Setup, issued, setup, setup_hooked, slot};

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
    for i in 0..(cache::SHARDS * (cache::TOMBSTONES_PER_SHARD + 1)) as u32 {
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
