//! Online renewal with re-key. The holder makes a new key and its CSR,
//! and signs the CSR with the key of the certificate being renewed (the
//! proof that they hold it, as CMP's key update request is signed with
//! the old key; RFC 4210 §5.3.5): `openssl dgst -sha256 -sign old.key
//! new.csr.der`. The new certificate carries the same subject, type and
//! proven e-mail address; the old one is revoked as superseded.

use der::Encode;
use hallmark_authority::{IssueRequest, KeySource};
use hallmark_pki::crl::Reason;
use hallmark_store::registration::{self as reg, Change};
use serde_json::json;

use crate::applications::Status;
use crate::{Ra, RaError, Result, Text};

/// A renewed certificate.
pub struct Renewed {
    pub reference: String,
    pub certificate_der: Vec<u8>,
    pub serial_hex: String,
}

fn refused() -> RaError {
    RaError::Unauthorised(Text::new(
        "This renewal request is not accepted: the certificate is not a current e-Cert of this service, or the signature is not made with its key over this CSR.",
        "此續期申請不獲接納：證書並非本服務的有效電子證書，或簽署並非以其密碼匙對此證書簽署要求作出。",
    ))
}

/// PEM (any label) or DER, as pasted or uploaded.
pub fn der_of(input: &[u8], label: &str) -> Option<Vec<u8>> {
    if input.starts_with(b"-----BEGIN") {
        hallmark_pki::pem::decode(label, input).ok()
    } else {
        Some(input.to_vec())
    }
}

impl Ra {
    pub async fn renew(
        &self,
        current_der: &[u8],
        csr_der: &[u8],
        signature: &[u8],
        now: u64,
    ) -> Result<Renewed> {
        let row = self
            .auth
            .stored_certificate(current_der)
            .await?
            .ok_or_else(refused)?;
        if row.revoked_at.is_some() || row.not_after <= now as i64 || row.not_before > now as i64 {
            return Err(RaError::Conflict(Text::new(
                "This certificate is revoked or expired: it cannot renew itself. Apply for a new one.",
                "此證書已撤銷或過期，不能用以續期。請重新申請。",
            )));
        }
        let app = self
            .store()
            .application_of_certificate(&row.issuer, &row.serial)
            .await?
            .ok_or_else(refused)?;
        let cert = hallmark_pki::cert::parse(current_der).map_err(|_| refused())?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|_| refused())?;
        hallmark_crypto::verify_sha256(&spki, csr_der, signature).map_err(|_| refused())?;
        let a = self.open_row(app)?;
        if a.status != Status::Activated || a.lost {
            return Err(refused());
        }
        let issued = self
            .auth
            .issue(
                IssueRequest {
                    profile: a.profile.clone(),
                    issuer: None,
                    subject: format!("CN={},C=HK", a.personal.name_en),
                    emails: a.proven_emails(),
                    dns_names: Vec::new(),
                    validity_days: None,
                    validity_secs: None,
                    key: KeySource::Csr(csr_der.to_vec()),
                    actor: format!("ra:{}", a.reference),
                },
                now,
            )
            .await?;
        // The application now names the new certificate, and the old one
        // is superseded, in one transaction.
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            &a.reference,
            Status::Activated.as_str(),
            Status::Activated.as_str(),
            Change {
                issuer: Some(&issued.issuer),
                serial: Some(&issued.serial_hex),
                ..Change::default()
            },
            now as i64,
        )
        .await?;
        let old = self
            .auth
            .revoke_in(
                &mut tx,
                (&row.issuer, &row.serial),
                Reason::Superseded,
                "holder",
                now,
                json!({"issuer": row.issuer, "serial": row.serial, "reason": "superseded", "reference": a.reference, "renewed_by": issued.serial_hex}),
            )
            .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            "holder",
            "ra.certificate.renew",
            json!({"reference": a.reference, "old": row.serial, "new": issued.serial_hex, "issuer": issued.issuer}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        self.auth.revocation_committed(&old, now).await;
        Ok(Renewed {
            reference: a.reference,
            certificate_der: issued.cert_der,
            serial_hex: issued.serial_hex,
        })
    }
}
