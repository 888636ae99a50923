//! Automatic renewals: the delegated OCSP signer of each issuing CA and the
//! server's own TLS certificate, each with a new key in key custody, and
//! the removal of the keys they replaced once their certificates expired.

use std::sync::Arc;

use hallmark_ca::IssueRequest;
use hallmark_ca::ocsp::{IssuerHashes, Responder};
use hallmark_crypto::{KeyAlgorithm, Signer};
use hallmark_status::IssuerSlot;
use hallmark_store::audit;

use crate::{Authority, AuthorityError, Result};

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
    hallmark_crypto::fill_random(&mut rnd).map_err(|e| AuthorityError::Invalid(e.to_string()))?;
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

impl Authority {
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
            slots.push(IssuerSlot::new(
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
                Some((RenewedKey::Tls, t)) => {
                    expired(t, self.config.server.https_cert_minutes * 60)
                }
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
                    validity_days: None,
                    validity_secs: Some(self.config.server.https_cert_minutes * 60),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::installation;
    use hallmark_pki::crl::Reason;

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
        let inst = installation("renew").await;
        let (dir, pass, t0) = (&inst.dir, &inst.pass, inst.t0);
        let auth = Authority::open(dir, pass, None).await.unwrap();
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
        let other = Authority::open(dir, pass, None).await.unwrap();
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
    }
}
