//! Collection: the holder brings the reference and the PIN mailer's PIN
//! and receives the key and certificate as a PKCS#12 under that PIN, once.
//! On most channels the key is generated and the certificate issued now;
//! for a campaign they were made before the holder came, and the waiting
//! key is delivered and deleted.

use hallmark_authority::{IssueRequest, KeySource};
use hallmark_crypto::KeyAlgorithm;
use hallmark_store::registration::{self as reg, ApplicationRow, Change};
use serde_json::json;
use zeroize::Zeroizing;

use crate::applications::{
    Collected, MAX_PIN_FAILURES, PIN_KIND, Status, normalise_reference, pin_message, subject_of,
};
use crate::{Ra, RaError, Result, Text};

impl Ra {
    /// The holder collects the certificate with the mailer's PIN: the key
    /// is generated centrally and delivered once as a PKCS#12 under that
    /// PIN. Wrong PINs count; the fifth spends the PIN.
    pub async fn collect(&self, reference: &str, pin: &str, now: u64) -> Result<Collected> {
        let (row, mac, pin) = self.check_pin(reference, pin, now).await?;
        let reference = row.reference.clone();
        let now_i = now as i64;
        if let (Some(issuer), Some(serial)) = (row.issuer.clone(), row.serial.clone()) {
            // Issued in a campaign batch: the key waits, sealed.
            return self.collect_issued(row, &issuer, &serial, &pin, now).await;
        }
        // Spend the PIN first: two collections at once cannot both issue.
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            &reference,
            "approved",
            "activating",
            Change {
                pin_mac: Some(None),
                ..Change::default()
            },
            now_i,
        )
        .await?;
        hallmark_store::commit(tx).await?;
        let a = self.open_row(row)?;
        let issued = self
            .authority()
            .issue(
                IssueRequest {
                    profile: a.profile.clone(),
                    issuer: None,
                    subject: subject_of(&a.personal),
                    // The address goes in only once its mailbox is proven.
                    emails: a.proven_emails(),
                    dns_names: Vec::new(),
                    validity_days: None,
                    validity_secs: None,
                    key: KeySource::GenerateUnderPin(KeyAlgorithm::EcP256, pin.clone()),
                    actor: format!("ra:{reference}"),
                },
                now,
            )
            .await;
        let issued = match issued {
            Ok(i) => i,
            Err(e) => {
                // Give the PIN back: nothing was issued.
                let mut tx = self.store().begin().await?;
                reg::transition(
                    &mut tx,
                    &reference,
                    "activating",
                    "approved",
                    Change {
                        pin_mac: Some(Some(&mac)),
                        ..Change::default()
                    },
                    now_i,
                )
                .await?;
                hallmark_store::commit(tx).await?;
                return Err(e.into());
            }
        };
        let pkcs12 = issued
            .pkcs12
            .map(|(p, _)| p)
            .ok_or_else(|| RaError::Internal("central key generation gave no PKCS#12".into()))?;
        self.step(
            &reference,
            (Status::Activating, Status::Activated),
            Change {
                issuer: Some(&issued.issuer),
                serial: Some(&issued.serial_hex),
                ..Change::default()
            },
            ("holder", "ra.certificate.collect"),
            json!({"reference": reference, "issuer": issued.issuer, "serial": issued.serial_hex}),
            now,
        )
        .await?;
        Ok(Collected {
            pkcs12,
            issuer: issued.issuer,
            serial_hex: issued.serial_hex,
        })
    }

    /// The approved application whose mailer PIN this is, the PIN's MAC
    /// and the PIN as printed (grouping and case ignored). A wrong PIN
    /// counts and the fifth spends it, with its audit entry either way.
    pub(crate) async fn check_pin(
        &self,
        reference: &str,
        pin: &str,
        now: u64,
    ) -> Result<(ApplicationRow, Vec<u8>, Zeroizing<String>)> {
        let wrong = || {
            RaError::Unauthorised(Text::new(
                "The reference or PIN is wrong.",
                "申請編號或個人密碼不正確。",
            ))
        };
        let reference = normalise_reference(reference);
        let pin = crate::applications::normalise_pin(pin);
        let Some(row) = self.store().application(&reference).await? else {
            return Err(wrong());
        };
        let Some(mac) = row.pin_mac.clone().filter(|_| row.status == "approved") else {
            return Err(RaError::Unauthorised(Text::new(
                "There is no PIN to use for this application: it is not approved yet, already collected, or its PIN was spent. Ask the registration office for a new PIN mailer.",
                "此申請沒有可用的個人密碼（尚未批核、已下載或密碼已失效）。請向登記處申請新的密碼信封。",
            )));
        };
        let now_i = now as i64;
        if !self
            .vault
            .lookup_matches(PIN_KIND, &pin_message(&reference, &pin), &mac)
        {
            let mut tx = self.store().begin().await?;
            let failures = reg::pin_failure(&mut tx, &reference).await?;
            let spent = failures >= MAX_PIN_FAILURES;
            if spent {
                reg::transition(
                    &mut tx,
                    &reference,
                    "approved",
                    "approved",
                    Change {
                        pin_mac: Some(None),
                        ..Change::default()
                    },
                    now_i,
                )
                .await?;
            }
            hallmark_store::audit::record(
                &mut tx,
                self.store().backend(),
                now_i,
                "holder",
                "ra.pin.wrong",
                json!({"reference": reference, "failures": failures, "spent": spent}),
            )
            .await?;
            hallmark_store::commit(tx).await?;
            if spent {
                return Err(RaError::Unauthorised(Text::new(
                    "Too many wrong PINs: this PIN no longer works. Ask the registration office for a new PIN mailer.",
                    "個人密碼錯誤次數過多，此密碼已失效。請向登記處申請新的密碼信封。",
                )));
            }
            return Err(wrong());
        }
        Ok((row, mac, pin))
    }

    /// Delivers a certificate issued in a batch with its waiting key, as a
    /// PKCS#12 under the PIN; the PIN is spent and the key deleted in the
    /// same transaction, so it is delivered once.
    async fn collect_issued(
        &self,
        row: ApplicationRow,
        issuer: &str,
        serial: &str,
        pin: &Zeroizing<String>,
        now: u64,
    ) -> Result<Collected> {
        let reference = row.reference.clone();
        let batch = row.batch.clone();
        let sealed = self.store().waiting_key(&reference).await?.ok_or_else(|| {
            RaError::Conflict(Text::new(
                "This certificate's key was already delivered.",
                "此證書的密碼匙已經交付。",
            ))
        })?;
        let pkcs8 = self
            .vault
            .open_bytes(&crate::campaign::key_aad(&reference), &sealed)?;
        let a = self.open_row(row)?;
        let cert = self.authority().certificate(Some(issuer), serial).await?;
        let cert_der = cert
            .cert
            .ok_or_else(|| RaError::Internal(format!("certificate {serial} is not stored")))?;
        let ca = self
            .authority()
            .signing_ca(issuer)
            .ok_or_else(|| RaError::Internal(format!("issuing CA {issuer} is not loaded")))?;
        let chain: Vec<&[u8]> = vec![&cert_der, &ca.cert_der];
        let pkcs12 = hallmark_pki::pkcs12::build(&pkcs8, &chain, &subject_of(&a.personal), pin)
            .map_err(|e| RaError::Internal(e.to_string()))?;
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            &reference,
            "approved",
            "activated",
            Change {
                pin_mac: Some(None),
                ..Change::default()
            },
            now as i64,
        )
        .await?;
        hallmark_store::campaign::clear_key(&mut tx, &reference).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            "holder",
            "ra.certificate.collect",
            json!({"reference": reference, "issuer": issuer, "serial": serial, "batch": batch}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(Collected {
            pkcs12,
            issuer: issuer.into(),
            serial_hex: serial.into(),
        })
    }
}
