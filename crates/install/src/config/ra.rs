//! The registration authority's sections of `hallmark.toml`: `[ra]`
//! (sessions, reminders, fees, retention), `[ra.registry]` (a remote
//! population registry) and `[mail]` (outgoing e-mail).

use serde::{Deserialize, Serialize};

/// Outgoing e-mail (address confirmations, reminders). Without `smtp`
/// nothing is sent: notices wait in the outbox until it is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The submission server: `smtp://host:port` (plain, e.g. a relay on
    /// the same host), `smtp://host:587?tls=required` (STARTTLS) or
    /// `smtps://host:465`, optionally with `user@` before the host. The
    /// password is never here: it comes from `$HALLMARK_SMTP_PASSWORD` or
    /// the file named by `password_file`.
    #[serde(default)]
    pub smtp: Option<String>,
    /// The From address, e.g. `Hallmark e-Cert <ecert@example.hk>`.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// How long a process sending a notice holds it: one that dies while
    /// sending leaves it to another after this long. The SMTP conversation
    /// is given a third of it, so a live sender never loses its claim.
    #[serde(default = "d_lease_secs")]
    pub lease_secs: u32,
}

fn d_lease_secs() -> u32 {
    90
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp: None,
            from: None,
            password_file: None,
            lease_secs: d_lease_secs(),
        }
    }
}

impl MailConfig {
    pub(super) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The registration authority's pages and sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaConfig {
    /// How long a staff member's browser session lasts.
    #[serde(default = "d_session_minutes")]
    pub session_minutes: u32,
    /// Reminders before a certificate expires, in days before its notAfter
    /// (each sent once per certificate).
    #[serde(default = "d_remind_days")]
    pub remind_before_expiry_days: Vec<u32>,
    /// How often `serve` looks for reminders that are due.
    #[serde(default = "d_remind_minutes")]
    pub remind_every_minutes: u32,
    /// How long the link that proves an e-mail address works (the S/MIME
    /// Baseline Requirements allow at most 24 hours).
    #[serde(default = "d_email_link_hours")]
    pub email_link_hours: u32,
    /// Applications that never complete (not collected) are deleted this
    /// many days after their last change.
    #[serde(default = "d_purge_days")]
    pub purge_incomplete_after_days: u32,
    /// Fees per certificate type: what is paid once the free period after
    /// collection ends (the seeds: a 3-year certificate, the first year
    /// free). A type without an entry is free.
    #[serde(default = "d_fees")]
    pub fees: std::collections::BTreeMap<String, Fee>,
    /// The secret the payment provider signs its webhooks with (a file
    /// holding it); without one the built-in test provider uses a key
    /// derived from key custody.
    #[serde(default)]
    pub payment_webhook_secret_file: Option<std::path::PathBuf>,
    /// Days before the free period ends that the holder is reminded to pay.
    #[serde(default = "d_fee_remind_days")]
    pub remind_before_fee_days: u32,
    /// Days after the free period ends before an unpaid certificate is
    /// revoked (cessationOfOperation), with a notice.
    #[serde(default = "d_unpaid_grace_days")]
    pub unpaid_grace_days: u32,
    /// A remote population registry answering over HTTP(S); without it
    /// the registry imported with `hallmark registry import` answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryConfig>,
}

/// A population registry service (`[ra.registry]`): Hallmark posts the
/// particulars to check to `url` and reads the answers (the protocol is in
/// docs/registry-api.md). It is given `timeout_ms` per attempt and
/// `attempts` attempts; when it cannot answer, applications wait in
/// awaiting-registry and are asked about again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `https://host[:port]/path` (or `http://` for a service on the same
    /// host or network segment).
    pub url: String,
    #[serde(default = "d_registry_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "d_registry_attempts")]
    pub attempts: u32,
    /// A file holding the bearer token Hallmark presents (never in this
    /// file).
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// The CA certificates (PEM) that the registry's TLS certificate
    /// chains to; the system's roots if absent.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn d_registry_timeout_ms() -> u64 {
    3000
}
fn d_registry_attempts() -> u32 {
    3
}

fn d_fee_remind_days() -> u32 {
    30
}
fn d_unpaid_grace_days() -> u32 {
    30
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fee {
    /// In Hong Kong cents.
    pub amount_cents: u64,
    /// Days after collection before the fee is due.
    pub free_days: u32,
}

fn d_fees() -> std::collections::BTreeMap<String, Fee> {
    [(
        "personal".to_string(),
        Fee {
            amount_cents: 10_000,
            free_days: 365,
        },
    )]
    .into()
}

fn d_purge_days() -> u32 {
    180
}

fn d_session_minutes() -> u32 {
    480
}
fn d_remind_days() -> Vec<u32> {
    vec![30, 7]
}
fn d_remind_minutes() -> u32 {
    60
}
fn d_email_link_hours() -> u32 {
    24
}

impl Default for RaConfig {
    fn default() -> Self {
        Self {
            session_minutes: d_session_minutes(),
            remind_before_expiry_days: d_remind_days(),
            remind_every_minutes: d_remind_minutes(),
            email_link_hours: d_email_link_hours(),
            purge_incomplete_after_days: d_purge_days(),
            fees: d_fees(),
            payment_webhook_secret_file: None,
            remind_before_fee_days: d_fee_remind_days(),
            unpaid_grace_days: d_unpaid_grace_days(),
            registry: None,
        }
    }
}

impl RaConfig {
    pub(super) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
