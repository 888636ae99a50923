//! Fees: what a holder pays once the free period after collection ends
//! (`[ra.fees.TYPE]`), through a payment provider: a checkout page at the
//! provider, then signed webhooks saying what happened, which may arrive
//! twice or late (a payment only moves forward, so neither changes
//! anything); a PDF receipt once captured. The built-in [`TestProvider`]
//! behaves like a hosted checkout: its page (`/ra/pay/test/ID`) pays or
//! declines, and it signs its webhooks with HMAC-SHA-256.

use hallmark_pki::crl::Reason;
use hallmark_store::payments::{self as pay, PaymentRow};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::applications::{Application, REF_ALPHABET, Status};
use crate::{Ra, RaError, Result, Text};

/// A payment provider: where the holder pays, and how its webhooks are
/// authenticated.
pub trait PaymentProvider: Send + Sync {
    /// The provider's page for paying `payment_id`.
    fn checkout_url(&self, payment_id: &str) -> String;
    /// Whether `signature` (hex) is the provider's over `body`.
    fn verify(&self, body: &[u8], signature: &str) -> bool;
}

/// The built-in provider for demos and tests.
pub struct TestProvider {
    secret: zeroize::Zeroizing<Vec<u8>>,
    base_url: String,
}

impl TestProvider {
    pub fn new(secret: Vec<u8>, base_url: &str) -> Self {
        Self {
            secret: zeroize::Zeroizing::new(secret),
            base_url: base_url.to_string(),
        }
    }

    /// The signature the provider puts on a webhook.
    pub fn sign(&self, body: &[u8]) -> String {
        hallmark_pki::hex(&hallmark_crypto::hmac_sha256(&self.secret, body))
    }
}

impl PaymentProvider for TestProvider {
    fn checkout_url(&self, payment_id: &str) -> String {
        format!("{}/ra/pay/test/{payment_id}", self.base_url)
    }
    fn verify(&self, body: &[u8], signature: &str) -> bool {
        hallmark_crypto::constant_time_eq(self.sign(body).as_bytes(), signature.trim().as_bytes())
    }
}

/// A webhook's body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Event {
    /// `captured`, `declined` or `refunded`.
    pub event: String,
    pub payment: String,
    pub amount_cents: i64,
}

/// What a collected certificate owes.
#[derive(Clone, Debug, Serialize)]
pub struct FeeDue {
    pub amount_cents: i64,
    /// `HK$100.00`.
    pub amount: String,
    /// When the free period ends (Unix time) and as a date.
    pub due_at: i64,
    pub due_on: String,
    /// The captured payment, if paid.
    pub receipt_no: Option<i64>,
    pub paid_on: Option<String>,
}

pub fn hkd(cents: i64) -> String {
    format!("HK${}.{:02}", cents / 100, cents % 100)
}

fn new_id() -> Result<String> {
    let mut raw = [0u8; 10];
    hallmark_crypto::fill_random(&mut raw)?;
    let s: String = raw
        .iter()
        .map(|b| REF_ALPHABET[(*b as usize) % REF_ALPHABET.len()] as char)
        .collect();
    Ok(format!("PAY-{}-{}", &s[..5], &s[5..]))
}

impl Ra {
    /// The fee of a collected certificate, if its type has one.
    pub async fn fee_due(&self, a: &Application) -> Result<Option<FeeDue>> {
        let Some(fee) = self.auth.ra_config().fees.get(&a.profile) else {
            return Ok(None);
        };
        let (Status::Activated, Some(issuer), Some(serial), false) =
            (a.status, &a.issuer, &a.serial, a.lost)
        else {
            return Ok(None);
        };
        let cert = self.store().get_cert(Some(issuer), serial).await?;
        let due_at = cert.not_before + i64::from(fee.free_days) * 86_400;
        let paid = self
            .store()
            .payments_of(&a.reference)
            .await?
            .into_iter()
            .find(|p| p.status == "captured");
        let amount_cents = fee.amount_cents as i64;
        Ok(Some(FeeDue {
            amount_cents,
            amount: hkd(amount_cents),
            due_at,
            due_on: crate::person::civil_time(due_at)[..10].to_string(),
            receipt_no: paid.as_ref().and_then(|p| p.receipt_no),
            paid_on: paid.map(|p| crate::person::civil_time(p.updated_at)[..10].to_string()),
        }))
    }

    /// Starts paying the fee: a new payment, and the provider's page for it.
    pub async fn start_payment(
        &self,
        reference: &str,
        date_of_birth: &str,
        now: u64,
    ) -> Result<String> {
        let a = self.track(reference, date_of_birth).await?;
        let Some(due) = self.fee_due(&a).await? else {
            return Err(RaError::Conflict(Text::new(
                "Nothing is to be paid on this application.",
                "此申請毋須繳費。",
            )));
        };
        if due.receipt_no.is_some() {
            return Err(RaError::Conflict(Text::new(
                "The fee is paid already.",
                "費用已繳付。",
            )));
        }
        let row = PaymentRow {
            id: new_id()?,
            reference: a.reference.clone(),
            amount_cents: due.amount_cents,
            status: "created".into(),
            receipt_no: None,
            created_at: now as i64,
            updated_at: now as i64,
        };
        let mut tx = self.store().begin().await?;
        pay::insert_payment(&mut tx, &row).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            "applicant",
            "ra.payment.start",
            json!({"reference": a.reference, "payment": row.id, "amount_cents": row.amount_cents}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(self.payments.checkout_url(&row.id))
    }

    /// The provider's page: what is being paid.
    pub async fn payment(&self, id: &str) -> Result<PaymentRow> {
        self.store()
            .payment(id)
            .await?
            .ok_or_else(|| RaError::NotFound(Text::new("No such payment.", "找不到此付款。")))
    }

    /// A webhook from the provider. Returns whether it changed anything (a
    /// duplicate or a late event does not).
    pub async fn payment_event(&self, body: &[u8], signature: &str, now: u64) -> Result<bool> {
        if !self.payments.verify(body, signature) {
            return Err(RaError::Unauthorised(Text::same(
                "the webhook signature does not verify",
            )));
        }
        let e: Event = serde_json::from_slice(body).map_err(|e| {
            RaError::invalid("body", format!("not a payment event: {e}"), "不是付款事件")
        })?;
        let p = self.payment(&e.payment).await?;
        let (from, to) = match e.event.as_str() {
            "captured" | "declined" => ("created", e.event.as_str()),
            "refunded" => ("captured", "refunded"),
            other => {
                return Err(RaError::invalid(
                    "event",
                    format!("unknown event {other:?}"),
                    "未知事件",
                ));
            }
        };
        if e.event == "captured" && e.amount_cents != p.amount_cents {
            return Err(RaError::invalid(
                "amount_cents",
                format!(
                    "captured {} but {} was asked",
                    e.amount_cents, p.amount_cents
                ),
                "金額不符",
            ));
        }
        let mut tx = self.store().begin().await?;
        let moved = pay::advance(&mut tx, &p.id, from, to, now as i64).await?;
        if moved {
            hallmark_store::audit::record(
                &mut tx,
                self.store().backend(),
                now as i64,
                "payments",
                &format!("ra.payment.{to}"),
                json!({"reference": p.reference, "payment": p.id, "amount_cents": e.amount_cents}),
            )
            .await?;
        }
        hallmark_store::commit(tx).await?;
        if !moved {
            tracing::info!(payment = %p.id, event = %e.event, status = %p.status, "payment event ignored (duplicate or late)");
        }
        Ok(moved)
    }

    /// The built-in test provider's side: the holder pressed pay or
    /// decline on its page, and it sends its webhook.
    pub async fn test_provider_outcome(&self, id: &str, pay_it: bool, now: u64) -> Result<String> {
        let p = self.payment(id).await?;
        let body = serde_json::to_vec(&Event {
            event: if pay_it { "captured" } else { "declined" }.into(),
            payment: p.id.clone(),
            amount_cents: p.amount_cents,
        })
        .map_err(|e| RaError::Internal(e.to_string()))?;
        let sig = self.test_provider.sign(&body);
        self.payment_event(&body, &sig, now).await?;
        Ok(p.reference)
    }

    /// The receipt of the captured payment, as a PDF.
    pub async fn receipt(&self, reference: &str, date_of_birth: &str) -> Result<Vec<u8>> {
        let a = self.track(reference, date_of_birth).await?;
        let p = self
            .store()
            .payments_of(&a.reference)
            .await?
            .into_iter()
            .find(|p| p.status == "captured")
            .ok_or_else(|| {
                RaError::NotFound(Text::new("No payment has been received.", "尚未收到付款。"))
            })?;
        let no = p.receipt_no.unwrap_or_default();
        let date = crate::person::civil_time(p.updated_at)[..10].to_string();
        let amount = hkd(p.amount_cents);
        crate::mailer::Letter {
            name_zh: &a.personal.name_zh,
            name_en: &a.personal.name_en,
            address: a.personal.address.as_deref().unwrap_or(""),
            dated: &date,
            subject: &format!("收據 Receipt No. {no:08}"),
            zh: &[
                format!(
                    "已收到你就電子證書（申請編號 {}）繳付的費用 {amount}。",
                    a.reference
                ),
                format!("付款編號 {}，收款日期 {date}。", p.id),
            ],
            en: &[
                format!(
                    "Received with thanks: {amount} for your e-Cert (reference {}).",
                    a.reference
                ),
                format!("Payment {} received on {date}.", p.id),
            ],
        }
        .pdf()
    }
}

impl Ra {
    /// Queues a reminder for each unpaid certificate whose free period
    /// ends within `ra.remind_before_fee_days`.
    pub(crate) async fn remind_fees(&self, now: i64) -> Result<usize> {
        let cfg = self.auth.ra_config();
        let base = self.auth.server_config().base_url.clone();
        let mut queued = 0;
        for (profile, fee) in &cfg.fees {
            let free = i64::from(fee.free_days) * 86_400;
            let window = i64::from(cfg.remind_before_fee_days) * 86_400;
            // The free period ends at not_before + free: within the window
            // from now, and not over yet.
            let range = (now - free, now - free + window);
            let prefix = "fee-due:";
            let mut after = (i64::MIN, String::new());
            loop {
                let rows = self
                    .store()
                    .unpaid(profile, range, Some(prefix), (after.0, &after.1), 200)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = (last.not_before, last.serial.clone());
                let mut tx = self.store().begin().await?;
                let mut refs = Vec::new();
                for r in &rows {
                    let p: crate::Personal = self
                        .vault
                        .open(&crate::applications::app_aad(&r.reference), &r.sealed)?;
                    let ends = crate::person::civil_time(r.not_before + free)[..10].to_string();
                    let amount = hkd(fee.amount_cents as i64);
                    let Some(c) = crate::notices::Content::to(
                        &p,
                        "電子證書費用 Your e-Cert fee".into(),
                        vec![format!(
                            "你的電子證書（序號 {}）的免費期於 {ends} 屆滿。請於 {base}/ra/track 網上繳付 {amount}（申請編號 {}）；逾期未繳，證書將被撤銷。",
                            r.serial, r.reference
                        )],
                        vec![format!(
                            "The free period of your e-Cert (serial {}) ends on {ends}. Pay {amount} online at {base}/ra/track (reference {}); a certificate left unpaid is revoked.",
                            r.serial, r.reference
                        )],
                    ) else {
                        continue;
                    };
                    let key = format!("{prefix}{}:{}", r.issuer, r.serial);
                    if self.queue_notice(&mut tx, &key, &c, now as u64).await? {
                        refs.push(r.reference.clone());
                    }
                }
                if !refs.is_empty() {
                    hallmark_store::audit::record(
                        &mut tx,
                        self.store().backend(),
                        now,
                        "ra",
                        "ra.reminder.queue",
                        json!({"fee_due": refs}),
                    )
                    .await?;
                }
                hallmark_store::commit(tx).await?;
                queued += refs.len();
            }
        }
        Ok(queued)
    }

    /// Revokes (cessationOfOperation) each certificate left unpaid past
    /// its free period and `ra.unpaid_grace_days`, telling its holder, in
    /// one transaction each. Returns how many.
    pub async fn enforce_unpaid(&self, now: u64) -> Result<usize> {
        let cfg = self.auth.ra_config();
        let mut revoked = 0;
        for (profile, fee) in &cfg.fees {
            let cutoff = now as i64 - i64::from(fee.free_days + cfg.unpaid_grace_days) * 86_400;
            loop {
                let rows = self
                    .store()
                    .unpaid(profile, (i64::MIN, cutoff), None, (i64::MIN, ""), 100)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                for r in rows {
                    let p: crate::Personal = self
                        .vault
                        .open(&crate::applications::app_aad(&r.reference), &r.sealed)?;
                    let mut tx = self.store().begin().await?;
                    let row = self
                        .auth
                        .revoke_in(
                            &mut tx,
                            (&r.issuer, &r.serial),
                            Reason::CessationOfOperation,
                            "ra",
                            now,
                            json!({"issuer": r.issuer, "serial": r.serial, "reason": "cessationOfOperation", "reference": r.reference, "unpaid": true}),
                        )
                        .await?;
                    if let Some(c) = crate::notices::Content::to(
                        &p,
                        "電子證書已撤銷 Your e-Cert is revoked".into(),
                        vec![format!(
                            "你的電子證書（序號 {}）的費用未於限期前繳付，證書已撤銷。如需新證書，請重新申請。",
                            r.serial
                        )],
                        vec![format!(
                            "The fee of your e-Cert (serial {}) was not paid in time, so the certificate is revoked. Apply again for a new one.",
                            r.serial
                        )],
                    ) {
                        self.queue_notice(
                            &mut tx,
                            &format!("fee-revoked:{}:{}", r.issuer, r.serial),
                            &c,
                            now,
                        )
                        .await?;
                    }
                    hallmark_store::commit(tx).await?;
                    self.auth.revocation_committed(&row, now).await;
                    revoked += 1;
                }
            }
        }
        Ok(revoked)
    }
}
