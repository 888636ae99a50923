//! Key recovery: the escrowed key of an encipherment certificate (the
//! seeds' backup copy, kept so that a holder who lost the key can still
//! decrypt what was sent to them) is delivered again to its holder, under
//! dual control. An officer with the holder in front of them requests it;
//! a supervisor of the same office who is not that officer approves, and
//! a PIN mailer with a new one-time PIN is printed; the holder collects a
//! new PKCS#12 under that PIN, once. Each step is audited.
//!
//! Only escrowed keys can be recovered, and only encipherment profiles
//! escrow: a signing key is never kept, so no one can sign in a holder's
//! name with a recovered key.

use hallmark_store::cards::{self, RecoveryChange, RecoveryRow};
use serde_json::json;

use crate::applications::{
    Collected, MAX_PIN_FAILURES, PIN_KIND, new_id, normalise_pin, normalise_reference,
};
use crate::mailer::PinMailer;
use crate::staff::{Role, Staff};
use crate::{Ra, RaError, Result, Text};

/// Bound into each recovery PIN's MAC, apart from activation PINs.
fn recovery_pin_message(id: &str, pin: &str) -> String {
    format!("recovery:{id}:{pin}")
}

fn not_found() -> RaError {
    RaError::NotFound(Text::new(
        "There is no such key recovery.",
        "沒有此密碼匙恢復申請。",
    ))
}

impl Ra {
    pub async fn recovery(&self, id: &str) -> Result<RecoveryRow> {
        self.store()
            .recovery(&normalise_reference(id))
            .await?
            .ok_or_else(not_found)
    }

    /// Recoveries waiting for a supervisor (or in `state`), newest first.
    pub async fn recoveries(&self, state: Option<&str>) -> Result<Vec<RecoveryRow>> {
        Ok(self.store().recoveries(state, 200).await?)
    }

    /// An officer asks to recover the escrowed key of an application's
    /// certificate, having seen the holder's identity document.
    pub async fn request_recovery(
        &self,
        reference: &str,
        staff: &Staff,
        now: u64,
    ) -> Result<RecoveryRow> {
        if !staff.role.handles_applications() {
            return Err(RaError::Forbidden(Text::new(
                "Only registration officers and supervisors request key recovery.",
                "只有登記主任及主管可申請恢復密碼匙。",
            )));
        }
        let a = self.application(reference).await?;
        Self::may_handle(staff, &a)?;
        let (Some(issuer), Some(serial)) = (a.issuer.clone(), a.serial.clone()) else {
            return Err(RaError::Conflict(Text::new(
                "This application has no certificate yet, so there is no key to recover.",
                "此申請尚未發出證書，沒有密碼匙可恢復。",
            )));
        };
        if self.store().escrow(&issuer, &serial).await?.is_none() {
            return Err(RaError::Forbidden(Text::new(
                "This certificate's key was not escrowed: only encipherment keys are kept, and no other key can be recovered.",
                "此證書的密碼匙沒有備份：只有加密用密碼匙會備份，其他密碼匙一概不能恢復。",
            )));
        }
        if self
            .store()
            .open_recovery(&issuer, &serial)
            .await?
            .is_some()
        {
            return Err(RaError::Conflict(Text::new(
                "A recovery of this key is already under way; finish or cancel it first.",
                "此密碼匙已有恢復申請正在處理；請先完成或取消。",
            )));
        }
        let row = RecoveryRow {
            id: new_id("KR")?,
            reference: a.reference.clone(),
            issuer,
            serial,
            state: "requested".into(),
            requested_by: staff.actor(),
            centre: staff.centre.clone(),
            requested_at: now as i64,
            ..RecoveryRow::default()
        };
        let mut tx = self.store().begin().await?;
        cards::insert_recovery(&mut tx, &row).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &staff.actor(),
            "ra.recovery.request",
            json!({"recovery": row.id, "reference": row.reference, "issuer": row.issuer,
                   "serial": row.serial, "centre": staff.centre}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        self.recovery(&row.id).await
    }

    /// A supervisor approves a recovery someone else requested; returns
    /// the PIN mailer with the new one-time PIN (kept only as a MAC).
    pub async fn approve_recovery(
        &self,
        id: &str,
        staff: &Staff,
        collect_url: &str,
        now: u64,
    ) -> Result<Vec<u8>> {
        let r = self.recovery(id).await?;
        if staff.role != Role::Supervisor {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: a key recovery is approved by a supervisor.",
                "雙重控制：密碼匙恢復須由主管批核。",
            )));
        }
        if r.requested_by == staff.actor() {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: a key recovery must be approved by someone other than the officer who requested it.",
                "雙重控制：密碼匙恢復須由提出申請以外的另一名人員批核。",
            )));
        }
        if staff.centre != r.centre {
            return Err(RaError::Forbidden(Text::new(
                "This recovery was requested at another registration office; a supervisor of that office approves it.",
                "此恢復申請由另一登記處提出，須由該登記處的主管批核。",
            )));
        }
        let a = self.application(&r.reference).await?;
        Self::may_handle(staff, &a)?;
        if r.state != "requested" {
            return Err(RaError::Conflict(Text::new(
                format!("This recovery is {}, not waiting for approval.", r.state),
                "此恢復申請並非待批核狀態。",
            )));
        }
        let pin =
            hallmark_authority::one_time_pin().map_err(|e| RaError::Internal(e.to_string()))?;
        let mac = self
            .vault
            .lookup_hash(PIN_KIND, &recovery_pin_message(&r.id, &pin));
        let (y, m, d) = crate::person::civil_date(now);
        let pdf = PinMailer {
            reference: &r.id,
            name_zh: &a.personal.name_zh,
            name_en: &a.personal.name_en,
            masked_id: &crate::hkid::Hkid::parse(&a.personal.id_number)
                .map(|h| h.masked())
                .unwrap_or_default(),
            address: a.personal.address.as_deref(),
            pin: &pin,
            revocation_code: None,
            recovery_of: Some(&r.serial),
            activate_url: collect_url,
            printed_on: &format!("{y:04}-{m:02}-{d:02}"),
            mailer_number: 1,
        }
        .pdf()?;
        let mut tx = self.store().begin().await?;
        cards::move_recovery(
            &mut tx,
            &r.id,
            ("requested", "approved"),
            RecoveryChange {
                approved_by: Some(&staff.actor()),
                pin_mac: Some(Some(&mac)),
                ..RecoveryChange::default()
            },
            now as i64,
        )
        .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &staff.actor(),
            "ra.recovery.approve",
            json!({"recovery": r.id, "reference": r.reference, "requested_by": r.requested_by,
                   "centre": staff.centre}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(pdf)
    }

    /// Cancels a recovery that was not collected (an officer or
    /// supervisor of the office).
    pub async fn cancel_recovery(&self, id: &str, staff: &Staff, now: u64) -> Result<()> {
        let r = self.recovery(id).await?;
        let a = self.application(&r.reference).await?;
        if !staff.role.handles_applications() {
            return Err(RaError::Forbidden(Text::new(
                "Only registration officers and supervisors cancel key recoveries.",
                "只有登記主任及主管可取消密碼匙恢復。",
            )));
        }
        Self::may_handle(staff, &a)?;
        if !matches!(r.state.as_str(), "requested" | "approved") {
            return Err(RaError::Conflict(Text::new(
                format!("This recovery is {} and cannot be cancelled.", r.state),
                "此恢復申請不能取消。",
            )));
        }
        let mut tx = self.store().begin().await?;
        cards::move_recovery(
            &mut tx,
            &r.id,
            (&r.state, "cancelled"),
            RecoveryChange {
                pin_mac: Some(None),
                ..RecoveryChange::default()
            },
            now as i64,
        )
        .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &staff.actor(),
            "ra.recovery.cancel",
            json!({"recovery": r.id, "reference": r.reference}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// The holder collects the recovered key with the recovery mailer's
    /// PIN: a new PKCS#12 under that PIN, once. Wrong PINs count; the
    /// fifth spends the PIN (the office cancels and requests again).
    pub async fn collect_recovery(&self, id: &str, pin: &str, now: u64) -> Result<Collected> {
        let wrong = || {
            RaError::Unauthorised(Text::new(
                "The recovery number or PIN is wrong.",
                "恢復編號或個人密碼不正確。",
            ))
        };
        let pin = normalise_pin(pin);
        let Some(r) = self.store().recovery(&normalise_reference(id)).await? else {
            return Err(wrong());
        };
        let Some(mac) = r.pin_mac.clone().filter(|_| r.state == "approved") else {
            return Err(RaError::Unauthorised(Text::new(
                "There is no PIN to use for this recovery: it is not approved, already collected, cancelled, or its PIN was spent.",
                "此恢復申請沒有可用的個人密碼（尚未批核、已下載、已取消或密碼已失效）。",
            )));
        };
        let now_i = now as i64;
        if !self
            .vault
            .lookup_matches(PIN_KIND, &recovery_pin_message(&r.id, &pin), &mac)
        {
            let mut tx = self.store().begin().await?;
            let failures = cards::recovery_pin_failure(&mut tx, &r.id).await?;
            let spent = failures >= MAX_PIN_FAILURES;
            if spent {
                cards::move_recovery(
                    &mut tx,
                    &r.id,
                    ("approved", "approved"),
                    RecoveryChange {
                        pin_mac: Some(None),
                        ..RecoveryChange::default()
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
                "ra.recovery.pin.wrong",
                json!({"recovery": r.id, "failures": failures, "spent": spent}),
            )
            .await?;
            hallmark_store::commit(tx).await?;
            return Err(wrong());
        }
        let sealed = self
            .store()
            .escrow(&r.issuer, &r.serial)
            .await?
            .ok_or_else(|| RaError::Internal(format!("the escrow of {} is gone", r.serial)))?;
        let pkcs8 = self
            .authority()
            .open_escrow(&r.issuer, &r.serial, &sealed)?;
        let cert = self
            .authority()
            .certificate(Some(&r.issuer), &r.serial)
            .await?;
        let cert_der = cert
            .cert
            .ok_or_else(|| RaError::Internal(format!("certificate {} is not stored", r.serial)))?;
        // The escrowed key must be the certificate's.
        let cert_spki = der::Encode::to_der(
            hallmark_pki::cert::parse(&cert_der)
                .map_err(|e| RaError::Internal(e.to_string()))?
                .tbs_certificate()
                .subject_public_key_info(),
        )
        .map_err(|e| RaError::Internal(e.to_string()))?;
        let alg = hallmark_crypto::classify_spki(&cert_spki)?.algorithm;
        let key = hallmark_crypto::SoftwareSigner::from_pkcs8(alg, &pkcs8)?;
        if hallmark_crypto::Signer::spki_der(&key) != cert_spki.as_slice() {
            return Err(RaError::Internal(format!(
                "the escrowed key of {} does not match its certificate",
                r.serial
            )));
        }
        let ca = self
            .authority()
            .signing_ca(&r.issuer)
            .ok_or_else(|| RaError::Internal(format!("issuing CA {} is not loaded", r.issuer)))?;
        let a = self.application(&r.reference).await?;
        let chain: Vec<&[u8]> = vec![&cert_der, &ca.cert_der];
        let pkcs12 = hallmark_pki::pkcs12::build(
            &pkcs8,
            &chain,
            &crate::applications::subject_of(&a.personal),
            &pin,
        )
        .map_err(|e| RaError::Internal(e.to_string()))?;
        let mut tx = self.store().begin().await?;
        cards::move_recovery(
            &mut tx,
            &r.id,
            ("approved", "collected"),
            RecoveryChange {
                pin_mac: Some(None),
                collected: true,
                ..RecoveryChange::default()
            },
            now_i,
        )
        .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now_i,
            "holder",
            "ra.recovery.collect",
            json!({"recovery": r.id, "reference": r.reference, "issuer": r.issuer, "serial": r.serial}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(Collected {
            pkcs12,
            issuer: r.issuer,
            serial_hex: r.serial,
        })
    }
}
