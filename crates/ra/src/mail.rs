//! Outgoing e-mail over SMTP (`lettre`, rustls): the `[mail]` section of
//! `hallmark.toml` names the submission server and the From address; the
//! password comes from `$HALLMARK_SMTP_PASSWORD` or `mail.password_file`,
//! never from the file itself.

use std::time::Duration;

use hallmark_authority::MailConfig;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MessageBuilder};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use crate::{RaError, Result};

/// Why a message was not sent: `permanent` ones are not tried again.
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

/// The connection to the submission server (none: mail waits).
pub struct Postman {
    /// How long a claimed notice is held (`mail.lease_secs`).
    pub lease_secs: u32,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    /// The right-hand side of Message-IDs.
    domain: String,
}

/// Splits `user@` off an SMTP URL's authority.
fn split_user(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((user, host)) => (
            format!("{scheme}://{host}{}", &rest[end..]),
            Some(user.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

impl Postman {
    pub fn new(cfg: &MailConfig) -> Result<Self> {
        let from: Mailbox = cfg
            .from
            .as_deref()
            .unwrap_or("Hallmark e-Cert <no-reply@localhost>")
            .parse()
            .map_err(|e| RaError::Internal(format!("mail.from is not an address: {e}")))?;
        let domain = from.email.domain().to_string();
        let transport = match &cfg.smtp {
            None => None,
            Some(url) => {
                let (url, user) = split_user(url);
                if user.as_deref().is_some_and(|u| u.contains(':')) {
                    return Err(RaError::Internal(
                        "mail.smtp must not hold a password: give it in $HALLMARK_SMTP_PASSWORD or mail.password_file".into(),
                    ));
                }
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                    .map_err(|e| RaError::Internal(format!("mail.smtp {url:?}: {e}")))?
                    .timeout(Some(Duration::from_secs(u64::from(cfg.lease_secs / 3))));
                if let Some(user) = user {
                    let password = password(cfg)?.ok_or_else(|| {
                        RaError::Internal(format!(
                            "mail.smtp names the user {user:?}: give the password in $HALLMARK_SMTP_PASSWORD or mail.password_file"
                        ))
                    })?;
                    b = b.credentials(Credentials::new(user, password.to_string()));
                }
                Some(b.build())
            }
        };
        Ok(Self {
            lease_secs: cfg.lease_secs,
            transport,
            from,
            domain,
        })
    }

    /// Whether a server is configured (otherwise e-mail waits in the outbox).
    pub fn configured(&self) -> bool {
        self.transport.is_some()
    }

    /// The Message-ID a notice with this key carries, every time it is sent.
    pub fn message_id(&self, dedup_key: &str) -> String {
        let h = hallmark_crypto::sha256(dedup_key.as_bytes());
        let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("<{hex}.hallmark@{}>", self.domain)
    }

    pub async fn send(
        &self,
        dedup_key: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> std::result::Result<(), SendError> {
        let Some(transport) = &self.transport else {
            return Err(SendError {
                permanent: false,
                message: "mail.smtp is not set".into(),
            });
        };
        let to: Mailbox = to.parse().map_err(|e| SendError {
            permanent: true,
            message: format!("not an address: {e}"),
        })?;
        let msg: Message = MessageBuilder::new()
            .message_id(Some(self.message_id(dedup_key)))
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| SendError {
                permanent: true,
                message: e.to_string(),
            })?;
        transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            })
    }
}

fn password(cfg: &MailConfig) -> Result<Option<Zeroizing<String>>> {
    if let Ok(p) = std::env::var("HALLMARK_SMTP_PASSWORD") {
        return Ok(Some(Zeroizing::new(p)));
    }
    match &cfg.password_file {
        None => Ok(None),
        Some(f) => std::fs::read_to_string(f)
            .map(|s| Some(Zeroizing::new(s.trim_end_matches(['\r', '\n']).to_string())))
            .map_err(|e| {
                RaError::Internal(format!(
                    "cannot read mail.password_file {}: {e}",
                    f.display()
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_split_off_and_a_password_in_the_url_refused() {
        assert_eq!(
            split_user("smtp://ecert@mail.example:587?tls=required"),
            (
                "smtp://mail.example:587?tls=required".to_string(),
                Some("ecert".to_string())
            )
        );
        assert_eq!(split_user("smtp://127.0.0.1:25").1, None);
        let cfg = MailConfig {
            smtp: Some("smtp://a:secret@127.0.0.1:25".into()),
            ..MailConfig::default()
        };
        let e = Postman::new(&cfg).err().unwrap().to_string();
        assert!(e.contains("must not hold a password"), "{e}");
    }

    #[test]
    fn a_notice_keeps_its_message_id() {
        let p = Postman::new(&MailConfig::default()).unwrap();
        assert!(!p.configured());
        assert_eq!(p.message_id("k"), p.message_id("k"));
        assert_ne!(p.message_id("k"), p.message_id("k2"));
        assert!(p.message_id("k").ends_with("@localhost>"));
    }
}
