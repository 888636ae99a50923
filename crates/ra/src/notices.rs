//! Notices to people: the link that proves an e-mail address, and
//! reminders before a certificate expires, by e-mail or, for holders who
//! gave only a postal address, as a printed letter.
//!
//! A notice is queued in the outbox (`hallmark_store::outbox`) in the same
//! transaction as its cause, under a key that names it (`expiry-30d:
//! issuer:serial`, `email-confirm:reference:n`): two processes, or one
//! restarted, cannot queue it twice. Delivery then claims it with a lease
//! and marks it sent. A process killed between the SMTP server's "250" and
//! that mark sends it once more after the lease, with the same Message-ID
//! (from the key), which is how a receiving mailbox recognises the copy;
//! a letter is written to a file named by its key, so a second delivery
//! overwrites it with the same letter.

use std::io::Write;

use hallmark_store::AnyConnection;
use hallmark_store::outbox::OutboxRow;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::person::{Personal, civil_date};
use crate::{Ra, RaError, Result};

/// What a notice says and to whom, sealed in the outbox.
#[derive(Serialize, Deserialize)]
#[serde(tag = "medium", rename_all = "lowercase")]
pub(crate) enum Content {
    Email {
        to: String,
        subject: String,
        body: String,
    },
    Letter {
        name_zh: String,
        name_en: String,
        address: String,
        subject: String,
        zh: Vec<String>,
        en: Vec<String>,
    },
}

impl Content {
    fn medium(&self) -> &'static str {
        match self {
            Self::Email { .. } => "email",
            Self::Letter { .. } => "letter",
        }
    }

    /// To the holder's e-mail address if there is one, else by letter;
    /// None if there is neither (a phone number only).
    pub(crate) fn to(
        p: &Personal,
        subject: String,
        zh: Vec<String>,
        en: Vec<String>,
    ) -> Option<Self> {
        if let Some(to) = &p.email {
            let body = format!(
                "{}\n\n{}\n\n{}\n\n{}\n",
                format_args!("{}：", p.name_zh),
                zh.join("\n\n"),
                format_args!("Dear {},", p.name_en),
                en.join("\n\n"),
            );
            return Some(Self::Email {
                to: to.clone(),
                subject,
                body,
            });
        }
        p.address.as_ref().map(|a| Self::Letter {
            name_zh: p.name_zh.clone(),
            name_en: p.name_en.clone(),
            address: a.clone(),
            subject,
            zh,
            en,
        })
    }
}

/// What one delivery run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
}

/// A notice is tried this many times (backing off from a minute to six
/// hours) before it is given up.
pub const MAX_ATTEMPTS: i64 = 12;
/// Notices claimed at once: a process killed while sending leaves at most
/// these to wait for the lease.
const CLAIM_BATCH: i64 = 4;

fn outbox_aad(key: &str) -> String {
    format!("outbox:{key}")
}

fn ymd(secs: i64) -> String {
    let (y, m, d) = civil_date(secs.max(0) as u64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// SMTP replies quote the recipient's address; the outbox and the log keep
/// the reply without it.
fn without_addresses(s: &str) -> String {
    s.split_whitespace()
        .map(|w| if w.contains('@') { "<address>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Ra {
    /// Queues a notice in the caller's transaction; `false` if one with
    /// this key was queued before.
    pub(crate) async fn queue_notice(
        &self,
        tx: &mut AnyConnection,
        key: &str,
        content: &Content,
        now: u64,
    ) -> Result<bool> {
        let (sealed, version) = self.vault.seal(&outbox_aad(key), content)?;
        Ok(
            hallmark_store::outbox::enqueue(
                tx,
                key,
                content.medium(),
                &sealed,
                version,
                now as i64,
            )
            .await?,
        )
    }

    /// The e-mail that carries the random value proving an address.
    pub(crate) fn email_confirmation(
        &self,
        p: &Personal,
        reference: &str,
        token: &str,
        expires: i64,
    ) -> Result<Content> {
        let to = p
            .email
            .clone()
            .ok_or_else(|| RaError::Internal("no e-mail address to confirm".into()))?;
        let link = format!(
            "{}/ra/email?r={reference}&t={token}",
            self.auth.server_config().base_url
        );
        let until = format!("{} UTC", crate::person::civil_time(expires));
        Ok(Content::Email {
            to,
            subject: "確認你的電子郵件地址 Confirm your e-mail address".into(),
            body: format!(
                "{}：\n\n你申請的電子證書（申請編號 {reference}）會載有此電子郵件地址。請開啟以下連結並按「確認」，證明此郵箱屬於你：\n\n{link}\n\n連結於 {until} 前有效。如你沒有提出申請，請忽略此郵件。\n\nDear {},\n\nThe e-Cert you applied for (reference {reference}) will carry this e-mail address. Open the link above and press \"Confirm\" to prove that this mailbox is yours. It works until {until}. If you did not apply, ignore this message.\n",
                p.name_zh, p.name_en
            ),
        })
    }

    /// Sends (or prints) what is due in the outbox, until nothing is due.
    /// E-mail waits while `mail.smtp` is not set.
    pub async fn deliver(&self, now: u64) -> Result<Delivery> {
        let mut d = Delivery::default();
        let email = self.postman.configured();
        loop {
            // A long run keeps its leases measured from the time it claims.
            let now = now.max(hallmark_authority::system_now());
            let batch = self
                .store()
                .claim_outbox(
                    now as i64,
                    i64::from(self.postman.lease_secs),
                    CLAIM_BATCH,
                    email,
                )
                .await?;
            if batch.is_empty() {
                return Ok(d);
            }
            for row in batch {
                match self.deliver_one(&row).await {
                    Ok(()) => {
                        if self
                            .store()
                            .outbox_sent(row.id, &row.claim, now as i64)
                            .await?
                        {
                            d.sent += 1;
                        }
                    }
                    Err((permanent, why)) => {
                        let why = without_addresses(&why);
                        let give_up = permanent || row.attempts >= MAX_ATTEMPTS;
                        let retry_at = (!give_up).then(|| {
                            now as i64 + (60_i64 << (row.attempts - 1).clamp(0, 9)).min(21_600)
                        });
                        tracing::warn!(key = %row.dedup_key, attempts = row.attempts, error = %why, give_up, "a notice was not delivered");
                        self.store()
                            .outbox_failed(row.id, &row.claim, &why, retry_at)
                            .await?;
                        if give_up {
                            d.failed += 1;
                            self.auth
                                .record(
                                    "ra",
                                    "ra.notice.failed",
                                    json!({"key": row.dedup_key, "attempts": row.attempts, "error": why}),
                                )
                                .await?;
                        } else {
                            d.retrying += 1;
                        }
                    }
                }
            }
        }
    }

    async fn deliver_one(&self, row: &OutboxRow) -> std::result::Result<(), (bool, String)> {
        let content: Content = self
            .vault
            .open(&outbox_aad(&row.dedup_key), &row.sealed)
            .map_err(|e| (true, e.to_string()))?;
        match content {
            Content::Email { to, subject, body } => self
                .postman
                .send(&row.dedup_key, &to, &subject, &body)
                .await
                .map_err(|e| (e.permanent, e.message)),
            Content::Letter {
                name_zh,
                name_en,
                address,
                subject,
                zh,
                en,
            } => {
                let pdf = crate::mailer::Letter {
                    name_zh: &name_zh,
                    name_en: &name_en,
                    address: &address,
                    dated: &ymd(hallmark_authority::system_now() as i64),
                    subject: &subject,
                    zh: &zh,
                    en: &en,
                }
                .pdf()
                .map_err(|e| (false, e.to_string()))?;
                self.write_letter(&row.dedup_key, &pdf)
                    .map_err(|e| (false, format!("cannot write the letter: {e}")))
            }
        }
    }

    /// Where printed letters wait for the print room: one PDF per notice,
    /// named by its key.
    pub fn letters_dir(&self) -> std::path::PathBuf {
        self.auth.data_dir().join("letters")
    }

    fn write_letter(&self, key: &str, pdf: &[u8]) -> std::io::Result<()> {
        let dir = self.letters_dir();
        std::fs::create_dir_all(&dir)?;
        let name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(pdf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(format!("{name}.pdf")))?;
        std::fs::File::open(&dir)?.sync_all()
    }

    /// Queues the reminders that are due: for each of
    /// `ra.remind_before_expiry_days`, every collected certificate that
    /// expires within that many days (and not within the next shorter
    /// period, which has its own) and has not had that reminder; and the
    /// day before each counter appointment. Returns how many were queued.
    pub async fn remind(&self, now: u64) -> Result<usize> {
        let mut days = self.auth.ra_config().remind_before_expiry_days.clone();
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        let now = now as i64;
        let base = self.auth.server_config().base_url.clone();
        let mut queued = 0;
        for (i, d) in days.iter().enumerate() {
            let shorter = days.get(i + 1).copied().unwrap_or(0);
            let (from, to) = (
                now + i64::from(shorter) * 86_400,
                now + i64::from(*d) * 86_400,
            );
            let prefix = format!("expiry-{d}d:");
            let mut after = (i64::MIN, String::new());
            loop {
                let rows = self
                    .store()
                    .expiring_without_notice(from, to, &prefix, (after.0, &after.1), 200)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = (last.not_after, last.serial.clone());
                let mut tx = self.store().begin().await?;
                let mut refs = Vec::new();
                for r in &rows {
                    let p: Personal = self
                        .vault
                        .open(&crate::applications::app_aad(&r.reference), &r.sealed)?;
                    let date = ymd(r.not_after);
                    let Some(c) = Content::to(
                        &p,
                        "電子證書即將到期 Your e-Cert expires soon".into(),
                        vec![format!(
                            "你的電子證書（序號 {}）將於 {date} 到期。請於到期前於 {base}/ra 續期，以免服務中斷。",
                            r.serial
                        )],
                        vec![format!(
                            "Your e-Cert (serial {}) expires on {date}. Renew it before then at {base}/ra so that it keeps working.",
                            r.serial
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
                        json!({"before_expiry_days": d, "count": refs.len(), "references": refs}),
                    )
                    .await?;
                }
                match hallmark_store::commit(tx).await {
                    Ok(()) => queued += refs.len(),
                    // Another process queued the same batch first.
                    Err(hallmark_store::StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        queued += self.remind_appointments(now).await?;
        queued += self.remind_fees(now).await?;
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cut_from_smtp_replies() {
        assert_eq!(
            without_addresses("550 5.1.1 <chan@example.hk>: Recipient address rejected"),
            "550 5.1.1 <address> Recipient address rejected"
        );
    }
}
