//! Tests of CRL publication: numbering and dates, lanes, batches, debts.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::lanes::{Batch, CrlsDue};
use super::*;
use crate::testing::{CrlSetup, T0, revoke};

/// A CRL made after another (here: by a caller that read the clock
/// earlier and waited for the lock) has a higher number and a thisUpdate
/// no earlier.
#[tokio::test]
async fn later_crls_are_never_dated_earlier() {
    let s = CrlSetup::new("crl-order").await;
    let mut seen = Vec::new();
    for at in [T0 + 200, T0 + 100, T0 + 300] {
        let info = s.crls.generate_crl("issuing", FULL_CRL, at).await.unwrap();
        assert!(info.published);
        let row = s.store.get_crl("issuing", FULL_CRL).await.unwrap();
        let got =
            hallmark_pki::crl::check_received(&row.der, &s.issuing.cert_der, T0 + 300).unwrap();
        assert_eq!(got.number, info.number as u64);
        seen.push((got.number, got.this_update));
    }
    assert!(seen[0].0 < seen[1].0 && seen[1].0 < seen[2].0, "{seen:?}");
    assert_eq!(
        seen.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![T0 + 200, T0 + 200, T0 + 300]
    );
    // Another process on the same database (a CLI command beside the
    // server), its clock behind: its CRL is numbered after and dated
    // no earlier either.
    let other = s.other_process();
    let info = other
        .generate_crl("issuing", FULL_CRL, T0 + 250)
        .await
        .unwrap();
    assert!(info.number > seen[2].0 as i64);
    let row = s.store.get_crl("issuing", FULL_CRL).await.unwrap();
    assert_eq!(row.this_update, (T0 + 300) as i64);
}

/// Concurrent revocations share CRL generations (fewer than one per
/// revocation), and the published CRL lists every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_revocations_share_crl_generations() {
    let s = CrlSetup::new("crl-burst").await;
    let mut serials = s.issue(8).await;
    let before = s.store.audit_details("crl.generate").await.unwrap().len();
    // Hold the CRL lock (as a long CRL generation would) until every
    // revocation is committed and waiting for its CRL.
    let held = (
        s.crls.lanes.partitions.lock.lock().await,
        s.crls.lanes.full.lock.lock().await,
    );
    let tasks: Vec<_> = serials
        .iter()
        .map(|serial| {
            let (crls, store, serial) = (s.crls.clone(), s.store.clone(), serial.clone());
            tokio::spawn(async move {
                let shard = revoke(&store, "issuing", &serial, T0 + 10).await;
                crls.publish_after_revocation("issuing", shard, T0 + 10, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    while s.crls.lanes.full.due.lock().unwrap().queued < 8 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    let made = s.store.audit_details("crl.generate").await.unwrap().len() - before;
    // One generation for all: the full CRL and the (one) shard; one at a
    // time would make 16.
    assert_eq!(made, 2, "{made} CRLs made for 8 revocations");
    let row = s.store.get_crl("issuing", FULL_CRL).await.unwrap();
    let got = hallmark_pki::crl::check_received(&row.der, &s.issuing.cert_der, T0 + 10).unwrap();
    let mut listed: Vec<String> = got
        .revoked
        .iter()
        .map(|(serial, _, _)| hallmark_pki::hex(serial))
        .collect();
    listed.sort();
    serials.sort();
    assert_eq!(listed, serials);
    assert_eq!(s.crls.publish_due_crls(T0 + 11).await.unwrap(), 0);
}

/// A revocation another process stored without publishing its CRLs (a
/// CLI command whose CRL generation failed, a crash) is published by a
/// server's poll once the grace period is over, and the debt is paid.
#[tokio::test]
async fn crls_owed_by_another_process_are_published() {
    let s = CrlSetup::new("crl-debt").await;
    let serial = s.issue(1).await.remove(0);
    s.crls.generate_crls(None, None, T0 + 1).await.unwrap();
    // The other process: revoked, committed, then gone.
    revoke(&s.store, "issuing", &serial, T0 + 10).await;
    // Two debts: the certificate's partition and the full CRL.
    assert_eq!(s.store.crls_due(None, None).await.unwrap().len(), 2);
    let listed = async || {
        let row = s.store.get_crl("issuing", FULL_CRL).await.unwrap();
        hallmark_pki::crl::check_received(&row.der, &s.issuing.cert_der, T0 + 30)
            .unwrap()
            .revoked
            .iter()
            .any(|(r, _, _)| hallmark_pki::hex(r) == serial)
    };
    // Within the grace period it is left to the process that revoked.
    assert_eq!(s.crls.publish_due_crls(T0 + 15).await.unwrap(), 0);
    assert!(!listed().await);
    // After it: the full CRL and the certificate's shard.
    assert_eq!(s.crls.publish_due_crls(T0 + 21).await.unwrap(), 2);
    assert!(listed().await);
    assert!(s.store.crls_due(None, None).await.unwrap().is_empty());
    assert_eq!(s.crls.publish_due_crls(T0 + 30).await.unwrap(), 0);
}

/// A revocation's partition CRL is out without waiting for the full CRL
/// (held up here by its lane's lock, as a long full CRL would hold it);
/// the full CRL follows. When the partition is held up too, the wait
/// ends after the time given, and the CRLs follow.
#[tokio::test]
async fn a_revocation_waits_for_its_partition_not_the_full_crl() {
    let s = CrlSetup::new("crl-lanes").await;
    let serials = s.issue(2).await;
    s.crls.generate_crls(None, None, T0 + 1).await.unwrap();
    // (A partition CRL is not a complete one, which `check_received`
    // takes: its DER is searched for the serial's bytes.)
    let listed = async |shard: i64, serial: &str| {
        let row = s.store.get_crl("issuing", shard).await.unwrap();
        let bytes = hallmark_pki::unhex(serial).unwrap();
        row.der.windows(bytes.len()).any(|w| w == bytes)
    };
    let eventually = async |shard: i64, serial: &str| {
        for _ in 0..500 {
            if listed(shard, serial).await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("CRL {shard} never listed {serial}");
    };

    let held = s.crls.lanes.full.lock.lock().await;
    let shard = revoke(&s.store, "issuing", &serials[0], T0 + 10).await;
    let wait = std::time::Duration::from_secs(30);
    assert!(
        s.crls
            .publish_waiting_at_most("issuing", shard, T0 + 10, wait)
            .await
    );
    assert!(listed(shard, &serials[0]).await);
    assert!(!listed(FULL_CRL, &serials[0]).await);
    drop(held);
    eventually(FULL_CRL, &serials[0]).await;

    let held = s.crls.lanes.partitions.lock.lock().await;
    let shard = revoke(&s.store, "issuing", &serials[1], T0 + 11).await;
    let short = std::time::Duration::from_millis(200);
    assert!(
        !s.crls
            .publish_waiting_at_most("issuing", shard, T0 + 11, short)
            .await
    );
    assert!(!listed(shard, &serials[1]).await);
    drop(held);
    eventually(shard, &serials[1]).await;
    eventually(FULL_CRL, &serials[1]).await;
}

/// A batch that ends without finishing (its task cancelled, or a
/// failure) puts what it did not publish back in the queue.
#[test]
fn an_unfinished_crl_batch_goes_back_to_the_queue() {
    let due = Mutex::new(CrlsDue::default());
    let work: BTreeSet<(String, i64)> = [
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
