//! Applications, from submission to the collected certificate:
//!
//! ```text
//! submit ─► awaiting-registry ─(registry confirms)─► awaiting-approval
//!                                                        │ approve (not by who entered it)
//!                                                        ▼
//!            activated ◄─ activating ◄─(PIN)─ approved ◄─┘ print PIN mailer (new PIN each time)
//! ```
//!
//! Every move is one transaction with its audit entry, conditional on the
//! state it leaves, so two officers acting at once cannot both succeed.
//! Collection with the PIN is in `collect.rs`; the e-mail proof is the
//! next to move out (to `email.rs`).

use hallmark_store::registration::{self as reg, ApplicationRow, Change};
use serde_json::json;

use crate::hkid::Hkid;
use crate::mailer::PinMailer;
use crate::person::{Form, Personal};
use crate::registry::Answer;
use crate::staff::{Role, Staff};
use crate::{Ra, RaError, Result, Text};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Online pre-registration by the applicant.
    Online,
    /// At a registration centre's counter, entered by an officer.
    Counter,
    /// A partner bank's officers, for the bank's own profile.
    Partner,
    /// A self-service kiosk (renewal only).
    Kiosk,
    /// Imported in a batch (e.g. at ID card replacement centres).
    Campaign,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Counter => "counter",
            Self::Partner => "partner",
            Self::Kiosk => "kiosk",
            Self::Campaign => "campaign",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "online" => Self::Online,
            "counter" => Self::Counter,
            "partner" => Self::Partner,
            "kiosk" => Self::Kiosk,
            "campaign" => Self::Campaign,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    AwaitingRegistry,
    AwaitingApproval,
    Approved,
    Activating,
    Activated,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingRegistry => "awaiting-registry",
            Self::AwaitingApproval => "awaiting-approval",
            Self::Approved => "approved",
            Self::Activating => "activating",
            Self::Activated => "activated",
            Self::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "awaiting-registry" => Self::AwaitingRegistry,
            "awaiting-approval" => Self::AwaitingApproval,
            "approved" => Self::Approved,
            "activating" => Self::Activating,
            "activated" => Self::Activated,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }
    /// What the applicant is told.
    pub fn describe(self) -> Text {
        match self {
            Self::AwaitingRegistry => Text::new(
                "Received; your particulars are being checked against the population registry.",
                "已收到；正與人口登記資料核對你的個人資料。",
            ),
            Self::AwaitingApproval => Text::new(
                "Checked; waiting for a registration officer's approval.",
                "核對完成；等待登記主任批核。",
            ),
            Self::Approved => Text::new(
                "Approved; your PIN mailer is on its way.",
                "已批核；個人密碼信封正寄出。",
            ),
            Self::Activating => Text::new(
                "Your certificate is being issued.",
                "正在簽發你的電子證書。",
            ),
            Self::Activated => Text::new(
                "Your certificate was issued and collected.",
                "你的電子證書已簽發及下載。",
            ),
            Self::Rejected => Text::new("Rejected.", "申請不獲接納。"),
        }
    }
}

/// An application with its particulars opened.
#[derive(Clone, Debug)]
pub struct Application {
    pub reference: String,
    pub channel: Channel,
    pub centre: Option<String>,
    pub profile: String,
    pub status: Status,
    pub registry: String,
    pub entered_by: String,
    pub approved_by: Option<String>,
    pub personal: Personal,
    pub pin_set: bool,
    pub pin_failures: i64,
    pub mailers: i64,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub created_at: i64,
    /// The e-mail address is to go into the certificate and its mailbox
    /// has not been proven yet.
    pub email_pending: bool,
    pub email_confirmed: bool,
    /// The officer whose paper lost report awaits a supervisor.
    pub lost_requested_by: Option<String>,
    /// The certificate was reported lost and revoked.
    pub lost: bool,
    /// When the applicant opted in to marketing, if they did.
    pub marketing_at: Option<i64>,
}

impl Application {
    /// The addresses that go into the certificate: the e-mail address if
    /// the applicant asked for it and proved the mailbox.
    pub fn proven_emails(&self) -> Vec<String> {
        self.personal
            .email
            .clone()
            .filter(|_| self.personal.email_in_certificate && self.email_confirmed)
            .into_iter()
            .collect()
    }
}

/// What the holder collects with the PIN.
pub struct Collected {
    pub pkcs12: Vec<u8>,
    pub issuer: String,
    pub serial_hex: String,
}

/// Wrong PINs before the PIN is spent and a new mailer is needed.
pub const MAX_PIN_FAILURES: i64 = 5;

/// The profiles an application may ask for.
/// `encipherment` certificates' keys are escrowed, so they can be
/// recovered under dual control (see [`crate::recovery`]).
pub const PROFILES: &[&str] = &["personal", "encipherment"];

pub(crate) const PIN_KIND: &str = "pin";
pub(crate) const REF_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

pub(crate) fn new_reference() -> Result<String> {
    new_id("HM")
}

/// A new random identifier `PREFIX-XXXX-XXXX-XXXX` (60 bits).
pub(crate) fn new_id(prefix: &str) -> Result<String> {
    let mut raw = [0u8; 12];
    hallmark_crypto::fill_random(&mut raw)?;
    let s: String = raw
        .iter()
        .map(|b| REF_ALPHABET[(*b as usize) % REF_ALPHABET.len()] as char)
        .collect();
    Ok(format!("{prefix}-{}-{}-{}", &s[..4], &s[4..8], &s[8..]))
}

/// A PIN as printed on a mailer, as typed (grouping and case forgiven).
pub(crate) fn normalise_pin(pin: &str) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(
        pin.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

/// Canonical reference as typed (case, spaces and dashes forgiven).
pub fn normalise_reference(s: &str) -> String {
    let c: String = s
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if c.len() == 14 && (c.starts_with("HM") || c.starts_with("KR")) {
        format!("{}-{}-{}-{}", &c[..2], &c[2..6], &c[6..10], &c[10..])
    } else {
        c
    }
}

/// The subject name of a holder's certificate.
pub(crate) fn subject_of(p: &Personal) -> String {
    format!("CN={},C=HK", p.name_en)
}

pub(crate) fn app_aad(reference: &str) -> String {
    format!("ra-application:{reference}")
}

pub(crate) fn pin_message(reference: &str, pin: &str) -> String {
    format!("{reference}\0{pin}")
}

fn not_found() -> RaError {
    RaError::NotFound(Text::new(
        "No application with this reference.",
        "找不到此申請編號。",
    ))
}

impl Ra {
    pub(crate) fn open_row(&self, r: ApplicationRow) -> Result<Application> {
        let personal: Personal = self.vault.open(&app_aad(&r.reference), &r.sealed)?;
        Ok(Application {
            channel: Channel::parse(&r.channel)
                .ok_or_else(|| RaError::Internal(format!("bad channel {}", r.channel)))?,
            status: Status::parse(&r.status)
                .ok_or_else(|| RaError::Internal(format!("bad status {}", r.status)))?,
            reference: r.reference,
            centre: r.centre,
            profile: r.profile,
            registry: r.registry,
            entered_by: r.entered_by,
            approved_by: r.approved_by,
            pin_set: r.pin_mac.is_some(),
            pin_failures: r.pin_failures,
            mailers: r.mailers,
            issuer: r.issuer,
            serial: r.serial,
            created_at: r.created_at,
            email_pending: personal.email_in_certificate && r.email_confirmed_at.is_none(),
            email_confirmed: r.email_confirmed_at.is_some(),
            lost_requested_by: r.lost_requested_by,
            lost: r.lost_at.is_some(),
            marketing_at: r.marketing_at,
            personal,
        })
    }

    /// Takes an application: validates the form, asks the registry, and
    /// stores it sealed with its audit entry. A registry that is down
    /// leaves it waiting, not lost.
    pub async fn submit(
        &self,
        form: &Form,
        profile: &str,
        channel: Channel,
        centre: Option<&str>,
        actor: &str,
        now: u64,
    ) -> Result<Application> {
        let personal = form.validate(now)?;
        if !PROFILES.contains(&profile) {
            return Err(RaError::invalid(
                "profile",
                format!("Choose a certificate type: {}.", PROFILES.join(", ")),
                format!("請選擇證書類別：{}。", PROFILES.join("、")),
            ));
        }
        let (status, registry) = match self.registry.check(&self.vault, &personal).await {
            Ok(Answer::Confirmed) => (Status::AwaitingApproval, "confirmed"),
            Ok(a) => (Status::AwaitingRegistry, a.as_str()),
            Err(RaError::RegistryDown(why)) => {
                tracing::warn!(%why, "population registry unavailable; application kept");
                (Status::AwaitingRegistry, "pending")
            }
            Err(e) => return Err(e),
        };
        let id_hash = self
            .vault
            .lookup_hash(crate::registry::RESIDENT, &personal.id_number);
        for _ in 0..3 {
            let reference = new_reference()?;
            let (sealed, key_version) = self.vault.seal(&app_aad(&reference), &personal)?;
            let proof = if personal.email_in_certificate {
                Some(self.email_proof(&personal, &reference, 1, now)?)
            } else {
                None
            };
            let row = ApplicationRow {
                reference: reference.clone(),
                channel: channel.as_str().into(),
                centre: centre.map(str::to_string),
                profile: profile.into(),
                id_hash: id_hash.clone(),
                sealed,
                key_version,
                status: status.as_str().into(),
                registry: registry.into(),
                entered_by: actor.into(),
                created_at: now as i64,
                updated_at: now as i64,
                email_mac: proof.as_ref().map(|p| p.mac.clone()),
                email_expires: proof.as_ref().map_or(0, |p| p.expires),
                email_sends: i64::from(proof.is_some()),
                marketing_at: form.marketing_consent.is_some().then_some(now as i64),
                ..ApplicationRow::default()
            };
            let mut tx = self.store().begin().await?;
            match reg::insert_application(&mut tx, &row).await {
                Err(hallmark_store::StoreError::Conflict(_)) => continue,
                other => other?,
            }
            if let Some(p) = &proof {
                self.queue_notice(&mut tx, &p.key, &p.content, now).await?;
            }
            hallmark_store::audit::record(
                &mut tx,
                self.store().backend(),
                now as i64,
                actor,
                "ra.application.submit",
                json!({"reference": reference, "channel": channel.as_str(), "centre": centre, "registry": registry}),
            )
            .await?;
            hallmark_store::commit(tx).await?;
            return self.open_row(row);
        }
        Err(RaError::Internal("no free application reference".into()))
    }

    pub async fn application(&self, reference: &str) -> Result<Application> {
        let r = self
            .store()
            .application(&normalise_reference(reference))
            .await?
            .ok_or_else(not_found)?;
        self.open_row(r)
    }

    /// What an applicant may see of their application: only with the
    /// right date of birth (an unknown reference and a wrong date answer
    /// alike).
    pub async fn track(&self, reference: &str, date_of_birth: &str) -> Result<Application> {
        let a = self.application(reference).await.map_err(|_| not_found())?;
        let dob = crate::person::check_date(date_of_birth, (9999, 12, 31)).unwrap_or_default();
        if !hallmark_crypto::constant_time_eq(dob.as_bytes(), a.personal.date_of_birth.as_bytes()) {
            return Err(not_found());
        }
        Ok(a)
    }

    /// The officers' queue: applications waiting for approval, oldest first.
    pub async fn queue(
        &self,
        status: Status,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Application>> {
        let rows = self
            .store()
            .applications_in(status.as_str(), after, limit)
            .await?;
        rows.into_iter().map(|r| self.open_row(r)).collect()
    }

    pub(crate) fn may_handle(staff: &Staff, a: &Application) -> Result<()> {
        if !staff.role.handles_applications() {
            return Err(RaError::Forbidden(Text::new(
                format!("A {} does not handle applications.", staff.role.as_str()),
                "你的職級不可處理申請。",
            )));
        }
        // A partner bank's officers handle only their bank's applications.
        if a.channel == Channel::Partner && staff.centre != a.centre {
            return Err(RaError::Forbidden(Text::new(
                "This application belongs to another partner's registration office.",
                "此申請屬於另一合作夥伴的登記處。",
            )));
        }
        Ok(())
    }

    /// Approves an application. Dual control: whoever entered it cannot.
    pub async fn approve(&self, reference: &str, staff: &Staff, now: u64) -> Result<Application> {
        let a = self.application(reference).await?;
        Self::may_handle(staff, &a)?;
        if a.entered_by == staff.actor() {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: an application must be approved by someone other than the officer who entered it.",
                "雙重控制：申請須由輸入申請以外的另一名人員批核。",
            )));
        }
        if a.email_pending {
            return Err(RaError::Conflict(Text::new(
                "The applicant asked for the e-mail address in the certificate and has not yet confirmed it through the link sent to it; approve once it is confirmed.",
                "申請人要求在證書載入電子郵件地址，但尚未透過寄往該地址的連結確認；請於確認後再批核。",
            )));
        }
        if a.status != Status::AwaitingApproval || a.registry != "confirmed" {
            return Err(RaError::Conflict(Text::new(
                format!(
                    "This application is {}, not awaiting approval.",
                    a.status.as_str()
                ),
                "此申請並非待批核狀態。",
            )));
        }
        self.step(
            &a.reference,
            (Status::AwaitingApproval, Status::Approved),
            Change {
                approved_by: Some(&staff.actor()),
                ..Change::default()
            },
            (&staff.actor(), "ra.application.approve"),
            json!({"reference": a.reference, "entered_by": a.entered_by, "centre": staff.centre}),
            now,
        )
        .await?;
        self.application(&a.reference).await
    }

    /// Prints a PIN mailer for an approved application: a new one-time PIN
    /// (any earlier mailer's PIN stops working), kept only as a MAC.
    pub async fn print_mailer(
        &self,
        reference: &str,
        staff: &Staff,
        activate_url: &str,
        now: u64,
    ) -> Result<Vec<u8>> {
        let a = self.application(reference).await?;
        Self::may_handle(staff, &a)?;
        if a.status != Status::Approved {
            return Err(RaError::Conflict(Text::new(
                format!(
                    "A PIN mailer is printed for an approved application; this one is {}.",
                    a.status.as_str()
                ),
                "只可為已批核的申請列印密碼信封。",
            )));
        }
        let pin =
            hallmark_authority::one_time_pin().map_err(|e| RaError::Internal(e.to_string()))?;
        let mac = self
            .vault
            .lookup_hash(PIN_KIND, &pin_message(&a.reference, &pin));
        let code = crate::lost::new_code()?;
        let revoke_mac = self.revoke_mac(&a.reference, &code);
        let (y, m, d) = crate::person::civil_date(now);
        let pdf = PinMailer {
            reference: &a.reference,
            name_zh: &a.personal.name_zh,
            name_en: &a.personal.name_en,
            masked_id: &Hkid::parse(&a.personal.id_number)
                .map(|h| h.masked())
                .unwrap_or_default(),
            address: a.personal.address.as_deref(),
            pin: &pin,
            revocation_code: Some(&code),
            recovery_of: None,
            activate_url,
            printed_on: &format!("{y:04}-{m:02}-{d:02}"),
            mailer_number: a.mailers + 1,
        }
        .pdf()?;
        self.step(
            &a.reference,
            (Status::Approved, Status::Approved),
            Change {
                pin_mac: Some(Some(&mac)),
                revoke_mac: Some(&revoke_mac),
                new_mailer: true,
                ..Change::default()
            },
            (&staff.actor(), "ra.mailer.print"),
            json!({"reference": a.reference, "mailer": a.mailers + 1}),
            now,
        )
        .await?;
        Ok(pdf)
    }
}

/// A random value sent to an e-mail address, and the notice carrying it.
struct EmailProof {
    mac: Vec<u8>,
    expires: i64,
    key: String,
    content: crate::notices::Content,
}

/// E-mail confirmations per application (the first and four resends).
pub const MAX_EMAIL_SENDS: i64 = 5;
const EMAIL_KIND: &str = "email";

impl Ra {
    /// Moves an application from one status to another with its audit
    /// entry, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn step(
        &self,
        reference: &str,
        (from, to): (Status, Status),
        change: Change<'_>,
        (actor, action): (&str, &str),
        details: serde_json::Value,
        now: u64,
    ) -> Result<()> {
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            reference,
            from.as_str(),
            to.as_str(),
            change,
            now as i64,
        )
        .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            actor,
            action,
            details,
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// A new random value for the `n`th confirmation e-mail (130 bits,
    /// above the 112 the S/MIME Baseline Requirements ask), kept as a MAC.
    fn email_proof(&self, p: &Personal, reference: &str, n: i64, now: u64) -> Result<EmailProof> {
        let mut raw = [0u8; 26];
        hallmark_crypto::fill_random(&mut raw)?;
        let token: String = raw
            .iter()
            .map(|b| REF_ALPHABET[(*b as usize) % REF_ALPHABET.len()] as char)
            .collect();
        let expires = now as i64 + i64::from(self.auth.ra_config().email_link_hours) * 3600;
        Ok(EmailProof {
            mac: self
                .vault
                .lookup_hash(EMAIL_KIND, &pin_message(reference, &token)),
            expires,
            key: format!("email-confirm:{reference}:{n}"),
            content: self.email_confirmation(p, reference, &token, expires)?,
        })
    }

    /// The applicant follows the link sent to the address: the mailbox is
    /// proven. A wrong, spent or expired value is refused alike.
    pub async fn confirm_email(
        &self,
        reference: &str,
        token: &str,
        now: u64,
    ) -> Result<Application> {
        let refused = || {
            RaError::Unauthorised(Text::new(
                "This confirmation link is not valid: it was mistyped, has been used, or has expired. Ask for a new one on the application status page.",
                "此確認連結無效：可能有誤、已使用或已過期。請於申請狀態頁面要求新的連結。",
            ))
        };
        let reference = normalise_reference(reference);
        let Some(row) = self.store().application(&reference).await? else {
            return Err(refused());
        };
        let token: String = token.chars().filter(char::is_ascii_alphanumeric).collect();
        let ok = row.email_mac.as_deref().is_some_and(|mac| {
            self.vault
                .lookup_matches(EMAIL_KIND, &pin_message(&reference, &token), mac)
        }) && (now as i64) < row.email_expires;
        if !ok {
            return Err(refused());
        }
        let status = Status::parse(&row.status)
            .ok_or_else(|| RaError::Internal(format!("bad status {}", row.status)))?;
        self.step(
            &reference,
            (status, status),
            Change {
                email_mac: Some(None),
                email_confirmed_at: Some(now as i64),
                ..Change::default()
            },
            ("applicant", "ra.email.confirm"),
            json!({"reference": reference}),
            now,
        )
        .await?;
        self.application(&reference).await
    }

    /// Sends a new confirmation link (the old one stops working), for the
    /// applicant who proves the application is theirs with the date of
    /// birth, as [`track`](Self::track) does.
    pub async fn resend_email(
        &self,
        reference: &str,
        date_of_birth: &str,
        now: u64,
    ) -> Result<Application> {
        let a = self.track(reference, date_of_birth).await?;
        if !a.email_pending {
            return Err(RaError::Conflict(Text::new(
                "There is no e-mail address waiting to be confirmed on this application.",
                "此申請沒有待確認的電子郵件地址。",
            )));
        }
        let row = self
            .store()
            .application(&a.reference)
            .await?
            .ok_or_else(not_found)?;
        if row.email_sends >= MAX_EMAIL_SENDS {
            return Err(RaError::Forbidden(Text::new(
                "Confirmation e-mails were sent five times already; contact the registration office.",
                "確認電郵已寄出五次；請聯絡登記處。",
            )));
        }
        let proof = self.email_proof(&a.personal, &a.reference, row.email_sends + 1, now)?;
        let mut tx = self.store().begin().await?;
        reg::transition(
            &mut tx,
            &a.reference,
            a.status.as_str(),
            a.status.as_str(),
            Change {
                email_mac: Some(Some(&proof.mac)),
                email_expires: Some(proof.expires),
                email_sent: true,
                ..Change::default()
            },
            now as i64,
        )
        .await?;
        self.queue_notice(&mut tx, &proof.key, &proof.content, now)
            .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            "applicant",
            "ra.email.resend",
            json!({"reference": a.reference, "send": row.email_sends + 1}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(a)
    }
}

/// Whether `role` may see the officers' pages at all.
pub fn sees_queue(role: Role) -> bool {
    role.handles_applications() || role == Role::Auditor
}
