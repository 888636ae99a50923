//! The registration authority: the e-Cert service as people meet it. A
//! person applies (online, at a counter, through a partner bank, in a
//! campaign), is checked against the population registry, an officer
//! approves (never the one who entered the application: dual control), a
//! sealed PIN mailer is printed, and with its PIN the holder collects the
//! certificate.
//!
//! May touch: its own tables in the store (`hallmark_store::registration`,
//! `hallmark_store::outbox`), the SMTP server of `[mail]` (`mail`), the
//! data directory's `letters/` (printed notices),
//! the CA service's public API (issue, revoke, data keys for sealing
//! personal data), the population registry (through [`registry::Registry`]).
//! Must not: know HTTP (the web crate maps requests and errors), sign
//! anything itself, reach the CA or key custody except through
//! `hallmark-authority`, or keep personal data in the clear (everything
//! personal is sealed by [`vault::Vault`]).

pub mod accounts;
pub mod applications;
pub mod appointments;
pub mod campaign;
pub mod card;
mod collect;
pub mod fees;
pub mod hkid;
pub mod lost;
pub mod mail;
pub mod mailer;
pub mod notices;
pub mod person;
pub mod privacy;
pub mod recovery;
pub mod registry;
pub mod registry_http;
pub mod renewal;
pub mod staff;
pub mod statistics;
pub mod vault;

use std::sync::Arc;

use hallmark_authority::{Authority, AuthorityError};
use hallmark_store::StoreError;

pub use applications::{Application, Channel, Status};
pub use person::{Personal, Text};
pub use staff::{Role, Staff};

/// Errors carry their message in both languages where a person reads them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaError {
    /// Bad input in a form field; nothing was saved.
    #[error("{field}: {}", .message.en)]
    Invalid { field: &'static str, message: Text },
    /// The action is not allowed to this person (dual control, role).
    #[error("{}", .0.en)]
    Forbidden(Text),
    /// Wrong credentials or PIN, or a locked account.
    #[error("{}", .0.en)]
    Unauthorised(Text),
    #[error("{}", .0.en)]
    NotFound(Text),
    /// The state moved on (another officer acted first).
    #[error("{}", .0.en)]
    Conflict(Text),
    /// The population registry cannot be asked now; the application waits.
    #[error("the population registry is unavailable: {0}")]
    RegistryDown(String),
    /// A device at the counter (a smart card) failed; nothing was kept.
    #[error("{}", .0.en)]
    Device(Text),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for RaError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(Text::same(m)),
            StoreError::Conflict(m) => Self::Conflict(Text::same(m)),
            other => Self::Authority(AuthorityError::Store(other)),
        }
    }
}

impl From<hallmark_crypto::CryptoError> for RaError {
    fn from(e: hallmark_crypto::CryptoError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl RaError {
    pub fn invalid(field: &'static str, en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: Text::new(en, zh),
        }
    }

    /// The message in `lang` ("zh" or "en").
    pub fn message(&self, lang: &str) -> String {
        match self {
            Self::Invalid { message, .. }
            | Self::Forbidden(message)
            | Self::Unauthorised(message)
            | Self::NotFound(message)
            | Self::Conflict(message)
            | Self::Device(message) => message.get(lang).to_string(),
            Self::RegistryDown(_) => Text::new(
                "The population registry cannot be reached; your application is kept and will be checked when it is back.",
                "暫時未能連接人口登記資料庫；你的申請已保存，恢復後會再核對。",
            )
            .get(lang)
            .to_string(),
            Self::Authority(_) | Self::Internal(_) => Text::new(
                "Something went wrong on our side; nothing was changed. Please try again later.",
                "系統出現問題，資料沒有更改。請稍後再試。",
            )
            .get(lang)
            .to_string(),
        }
    }
}

pub type Result<T, E = RaError> = std::result::Result<T, E>;

/// The registration authority, opened over a running CA service.
pub struct Ra {
    auth: Arc<Authority>,
    vault: vault::Vault,
    registry: Box<dyn registry::Registry>,
    postman: mail::Postman,
    /// Where fees are paid (the built-in test provider for now).
    payments: Box<dyn fees::PaymentProvider>,
    test_provider: fees::TestProvider,
}

impl Ra {
    /// Opens the registration authority with the registry service of
    /// `[ra.registry]`, or else the built-in registry (the records
    /// imported with `hallmark registry import`).
    pub async fn open(auth: Arc<Authority>) -> Result<Arc<Self>> {
        let vault = vault::Vault::load(&auth).await?;
        let registry: Box<dyn registry::Registry> = match &auth.ra_config().registry {
            Some(c) => Box::new(registry_http::HttpRegistry::new(c)?),
            None => Box::new(registry::Builtin::new(auth.store().clone())),
        };
        let postman = mail::Postman::new(auth.mail_config())?;
        let secret = match &auth.ra_config().payment_webhook_secret_file {
            Some(f) => std::fs::read(f)
                .map(|s| s.trim_ascii().to_vec())
                .map_err(|e| {
                    RaError::Internal(format!(
                        "cannot read ra.payment_webhook_secret_file {}: {e}",
                        f.display()
                    ))
                })?,
            None => vault.lookup_hash("payments-webhook", "test-provider"),
        };
        let base = &auth.server_config().base_url;
        let payments = Box::new(fees::TestProvider::new(secret.clone(), base));
        let test_provider = fees::TestProvider::new(secret, base);
        Ok(Arc::new(Self {
            auth,
            vault,
            registry,
            postman,
            payments,
            test_provider,
        }))
    }

    pub fn authority(&self) -> &Arc<Authority> {
        &self.auth
    }

    pub fn vault(&self) -> &vault::Vault {
        &self.vault
    }

    fn store(&self) -> &hallmark_store::Store {
        self.auth.store()
    }
}
