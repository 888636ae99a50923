//! Lost certificates and cards. The holder reports a loss online with the
//! revocation code printed on the PIN mailer (they may have lost the card
//! and with it the certificate, so the certificate cannot be what proves
//! them), and the certificate is revoked at once with keyCompromise. A
//! paper report (a form handed in at a counter) is entered by an officer
//! and takes effect only when a supervisor, another person, confirms it.
//! Either way the revocation and the application's record of the loss are
//! one transaction.

use hallmark_pki::crl::Reason;
use hallmark_store::registration::{self as reg, Change};
use serde_json::json;

use crate::applications::{Application, Status, normalise_reference};
use crate::staff::{Role, Staff};
use crate::{Ra, RaError, Result, Text};

pub(crate) const REVOKE_KIND: &str = "revoke";

/// A revocation code: 25 characters (125 bits) of the reference alphabet,
/// in groups of five.
pub(crate) fn new_code() -> Result<String> {
    let mut raw = [0u8; 25];
    hallmark_crypto::fill_random(&mut raw)?;
    let alphabet = crate::applications::REF_ALPHABET;
    let s: Vec<char> = raw
        .iter()
        .map(|b| alphabet[(*b as usize) % alphabet.len()] as char)
        .collect();
    Ok(s.chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// A code as typed: case, spaces and dashes forgiven.
pub(crate) fn canonical_code(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn code_message(reference: &str, code: &str) -> String {
    format!("{reference}\0{}", canonical_code(code))
}

impl Ra {
    pub(crate) fn revoke_mac(&self, reference: &str, code: &str) -> Vec<u8> {
        self.vault
            .lookup_hash(REVOKE_KIND, &code_message(reference, code))
    }

    /// The holder reports the certificate lost, with the revocation code
    /// from the PIN mailer: revoked at once (keyCompromise).
    pub async fn report_lost(&self, reference: &str, code: &str, now: u64) -> Result<Application> {
        let wrong = || {
            RaError::Unauthorised(Text::new(
                "The reference or revocation code is wrong.",
                "申請編號或掛失密碼不正確。",
            ))
        };
        let reference = normalise_reference(reference);
        let row = self
            .store()
            .application(&reference)
            .await?
            .ok_or_else(wrong)?;
        let matches = row.revoke_mac.as_deref().is_some_and(|mac| {
            self.vault
                .lookup_matches(REVOKE_KIND, &code_message(&reference, code), mac)
        });
        if !matches {
            return Err(wrong());
        }
        let a = self.application(&reference).await?;
        self.revoke_for_loss(&a, "holder", json!({"channel": "online"}), now)
            .await
    }

    /// An officer enters a paper lost report; it waits for a supervisor.
    pub async fn request_lost(
        &self,
        reference: &str,
        staff: &Staff,
        now: u64,
    ) -> Result<Application> {
        let a = self.application(reference).await?;
        Self::may_handle(staff, &a)?;
        Self::revocable(&a)?;
        if a.lost_requested_by.is_some() {
            return Err(RaError::Conflict(Text::new(
                "A paper lost report is already waiting for a supervisor.",
                "已有書面掛失報告等待主任確認。",
            )));
        }
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            &a.reference,
            Status::Activated.as_str(),
            Status::Activated.as_str(),
            Change {
                lost_requested_by: Some(Some(&staff.actor())),
                ..Change::default()
            },
            now as i64,
        )
        .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &staff.actor(),
            "ra.lost.request",
            json!({"reference": a.reference, "centre": staff.centre}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        self.application(&a.reference).await
    }

    /// A supervisor other than the officer who entered it confirms a paper
    /// lost report: the certificate is revoked.
    pub async fn confirm_lost(
        &self,
        reference: &str,
        staff: &Staff,
        now: u64,
    ) -> Result<Application> {
        let a = self.application(reference).await?;
        Self::may_handle(staff, &a)?;
        let Some(requested_by) = a.lost_requested_by.clone() else {
            return Err(RaError::Conflict(Text::new(
                "There is no paper lost report to confirm on this application.",
                "此申請沒有待確認的書面掛失報告。",
            )));
        };
        if staff.role != Role::Supervisor {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: a paper lost report is confirmed by a supervisor.",
                "雙重控制：書面掛失報告須由主任確認。",
            )));
        }
        if requested_by == staff.actor() {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: the person who entered a lost report cannot also confirm it.",
                "雙重控制：輸入掛失報告的人員不可同時確認。",
            )));
        }
        self.revoke_for_loss(
            &a,
            &staff.actor(),
            json!({"channel": "paper", "requested_by": requested_by, "centre": staff.centre}),
            now,
        )
        .await
    }

    fn revocable(a: &Application) -> Result<(String, String)> {
        if a.lost {
            return Err(RaError::Conflict(Text::new(
                "This certificate was reported lost and revoked already.",
                "此證書已報失並已撤銷。",
            )));
        }
        match (a.status, &a.issuer, &a.serial) {
            (Status::Activated, Some(i), Some(s)) => Ok((i.clone(), s.clone())),
            _ => Err(RaError::Conflict(Text::new(
                "There is no collected certificate on this application to report lost.",
                "此申請沒有已下載的證書可報失。",
            ))),
        }
    }

    async fn revoke_for_loss(
        &self,
        a: &Application,
        actor: &str,
        how: serde_json::Value,
        now: u64,
    ) -> Result<Application> {
        let (issuer, serial) = Self::revocable(a)?;
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            &a.reference,
            Status::Activated.as_str(),
            Status::Activated.as_str(),
            Change {
                lost_at: Some(now as i64),
                lost_requested_by: Some(None),
                ..Change::default()
            },
            now as i64,
        )
        .await?;
        let row = self
            .auth
            .revoke_in(
                &mut tx,
                (&issuer, &serial),
                Reason::KeyCompromise,
                actor,
                now,
                json!({"issuer": issuer, "serial": serial, "reason": "keyCompromise", "reference": a.reference, "lost": how}),
            )
            .await?;
        hallmark_store::commit(tx).await?;
        self.auth.revocation_committed(&row, now).await;
        self.application(&a.reference).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_grouped_and_forgiving() {
        let c = new_code().unwrap();
        assert_eq!(c.len(), 29);
        assert_eq!(c.matches('-').count(), 4);
        assert_ne!(c, new_code().unwrap());
        assert_eq!(
            canonical_code(&c.to_lowercase().replace('-', " ")),
            c.replace('-', "")
        );
    }
}
