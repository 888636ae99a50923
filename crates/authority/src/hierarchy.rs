//! The CA hierarchy's own certificates as the running service sees them:
//! which CAs are revoked (and issue nothing more), revoking a subordinate
//! CA, and importing the CRL an offline root signed elsewhere.

use hallmark_pki::crl::Reason;
use hallmark_status::CrlInfo;
use hallmark_store::certificates::CertRow;
use hallmark_store::crls::{self as stored, FULL_CRL};
use hallmark_store::issuers::IssuerRow;
use hallmark_store::{StoreError, audit};

use crate::revocation::offered;
use crate::{Authority, AuthorityError, Result};

impl Authority {
    /// The CA certificates this installation recorded (its own, and those
    /// of CAs it certified) as (CA id, parent id, serial hex).
    async fn ca_certificates(&self) -> Result<Vec<(IssuerRow, String, String)>> {
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
        row: &IssuerRow,
        parent: &str,
        serial: &str,
    ) -> Result<()> {
        let c = hallmark_pki::cert::parse(&row.cert)?;
        let v = c.tbs_certificate().validity();
        let not_after = hallmark_pki::time::unix(&v.not_after);
        hallmark_store::certificates::record_ca_certificate(
            tx,
            &hallmark_store::certificates::NewCert {
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
            AuthorityError::Invalid(format!(
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
            None => return Err(AuthorityError::Invalid(format!("no CA named {id:?}"))),
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
                .crls
                .publish_after_revocation_logged(&parent, revoked.shard, now)
                .await;
        }
        Ok((revoked, listed))
    }

    /// Publishes a full CRL signed elsewhere: an offline root's, brought
    /// over from the root machine (`crl generate --issuer root --full-only
    /// --out FILE` there). It must be signed by the CA's key, carry a
    /// cRLNumber above the one published, and not have expired.
    pub async fn import_crl(
        &self,
        issuer_id: &str,
        bytes: &[u8],
        actor: &str,
        now: u64,
    ) -> Result<CrlInfo> {
        let der = hallmark_pki::pem::decode("X509 CRL", bytes)?;
        let issuer = self
            .store
            .issuers()
            .await?
            .into_iter()
            .find(|i| i.id == issuer_id)
            .ok_or_else(|| AuthorityError::Invalid(format!("no CA named {issuer_id:?}")))?;
        if self.ca.issuer(Some(issuer_id)).is_ok() {
            return Err(AuthorityError::Invalid(format!(
                "{issuer_id:?} signs its CRLs here (its key is in this key store): \
                 `hallmark crl generate --issuer {issuer_id}` makes them"
            )));
        }
        let got = hallmark_pki::crl::check_received(&der, &issuer.cert, now)?;
        if got.next_update.is_some_and(|n| n <= now) {
            return Err(AuthorityError::Invalid(format!(
                "this CRL expired at {}; generate a fresh one on the root machine",
                hallmark_pki::time::rfc3339(got.next_update.unwrap_or_default())
            )));
        }
        let _held = self.crls.hold_full_lane().await;
        let mut tx = self.store.begin().await?;
        if let Some(published) = stored::crl_number(&mut tx, issuer_id, FULL_CRL).await?
            && published >= got.number as i64
        {
            return Err(AuthorityError::Invalid(format!(
                "CRL number {} is not newer than the one published ({published})",
                got.number
            )));
        }
        // CAs of this installation that the CRL revokes (an offline root
        // revoked the issuing CA): recorded, so that they issue no more.
        let mut cas_revoked = Vec::new();
        for (row, parent, serial) in self.ca_certificates().await? {
            let Some((_, at, reason)) = got
                .revoked
                .iter()
                .find(|(s, _, _)| parent == issuer_id && hallmark_pki::hex(s) == serial)
            else {
                continue;
            };
            self.file_ca_certificate(&mut tx, &row, &parent, &serial)
                .await?;
            match hallmark_store::revocations::revoke(
                &mut tx,
                &parent,
                &serial,
                *at as i64,
                *reason as i64,
                now as i64,
            )
            .await
            {
                Ok(_) => cas_revoked.push(row.id.clone()),
                Err(StoreError::Conflict(_)) => {} // revoked here already
                Err(e) => return Err(e.into()),
            }
        }
        if !stored::put_crl(
            &mut tx,
            issuer_id,
            FULL_CRL,
            got.number as i64,
            got.this_update as i64,
            got.next_update.unwrap_or(got.this_update) as i64,
            &der,
        )
        .await?
        {
            return Err(AuthorityError::Invalid(format!(
                "CRL number {} is not newer than the one published",
                got.number
            )));
        }
        // Revocations by this CA are on the CRL it made: nothing is owed.
        stored::clear_all_crls_due(&mut tx, issuer_id).await?;
        audit::record(
            &mut tx,
            self.store.backend(),
            now as i64,
            actor,
            "crl.import",
            serde_json::json!({"issuer": issuer_id, "number": got.number, "entries": got.revoked.len(),
                "cas_revoked": cas_revoked, "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(&der))})
            .to_string(),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        if !cas_revoked.is_empty() {
            tracing::warn!(cas = ?cas_revoked, "the imported CRL revokes CAs of this installation; they issue no more");
            self.refresh_revoked_cas().await?;
        }
        Ok(CrlInfo {
            issuer: issuer_id.into(),
            shard: FULL_CRL,
            number: got.number as i64,
            entries: got.revoked.len(),
            bytes: der.len(),
            published: true,
        })
    }
}
