//! The applicant's rights over their data (the seeds' privacy paper):
//! marketing of value-added services only by explicit, recorded,
//! withdrawable opt-in; a download of everything the registration
//! authority holds about an application (JSON); and applications that
//! never complete deleted after `ra.purge_incomplete_after_days`.

use hallmark_store::registration::{self as reg, Change};
use serde_json::json;

use crate::{Ra, RaError, Result, Text};

impl Ra {
    /// Withdraws consent to marketing, at once.
    pub async fn withdraw_marketing(
        &self,
        reference: &str,
        date_of_birth: &str,
        now: u64,
    ) -> Result<()> {
        let a = self.track(reference, date_of_birth).await?;
        if a.marketing_at.is_none() {
            return Err(RaError::Conflict(Text::new(
                "There is no consent to marketing to withdraw.",
                "沒有可撤回的推廣同意。",
            )));
        }
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            &a.reference,
            a.status.as_str(),
            a.status.as_str(),
            Change {
                marketing_at: Some(None),
                ..Change::default()
            },
            now as i64,
        )
        .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            "applicant",
            "ra.marketing.withdraw",
            json!({"reference": a.reference}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// Everything held about an application, for its applicant.
    pub async fn export(
        &self,
        reference: &str,
        date_of_birth: &str,
        now: u64,
    ) -> Result<serde_json::Value> {
        let a = self.track(reference, date_of_birth).await?;
        let booking = self.booking_of(&a.reference).await?;
        let p = &a.personal;
        let v = json!({
            "reference": a.reference,
            "exported_at": crate::person::civil_time(now as i64) + " UTC",
            "particulars": {
                "id_number": p.id_number,
                "name_zh": p.name_zh,
                "name_en": p.name_en,
                "date_of_birth": p.date_of_birth,
                "phone": p.phone,
                "email": p.email,
                "postal_address": p.address,
                "email_in_certificate": p.email_in_certificate,
            },
            "application": {
                "channel": a.channel.as_str(),
                "centre": a.centre,
                "certificate_type": a.profile,
                "status": a.status.as_str(),
                "registry_check": a.registry,
                "entered_by": a.entered_by,
                "approved_by": a.approved_by,
                "received_at": crate::person::civil_time(a.created_at) + " UTC",
                "email_confirmed": a.email_confirmed,
                "pin_mailers_printed": a.mailers,
            },
            "certificate": a.serial.as_ref().map(|s| json!({"issuer": a.issuer, "serial": s, "reported_lost": a.lost})),
            "appointment": booking.map(|b| json!({"code": b.code, "centre": b.centre, "hong_kong_time": b.label})),
            "marketing_consent_since": a.marketing_at.map(|t| crate::person::civil_time(t) + " UTC"),
        });
        self.auth
            .record(
                "applicant",
                "ra.data.export",
                json!({"reference": a.reference}),
            )
            .await?;
        Ok(v)
    }

    /// Deletes applications that never completed and were last changed
    /// more than `ra.purge_incomplete_after_days` ago; returns how many.
    pub async fn purge(&self, now: u64) -> Result<usize> {
        let days = i64::from(self.auth.ra_config().purge_incomplete_after_days);
        let before = now as i64 - days * 86_400;
        let mut total = 0;
        loop {
            let mut tx = self.store().begin().await?;
            let gone = reg::purge_incomplete(&mut tx, before, 500).await?;
            if gone.is_empty() {
                return Ok(total);
            }
            hallmark_store::audit::record(
                &mut tx,
                self.store().backend(),
                now as i64,
                "ra",
                "ra.purge",
                json!({"older_than_days": days, "count": gone.len(), "references": gone}),
            )
            .await?;
            hallmark_store::commit(tx).await?;
            total += gone.len();
        }
    }
}
