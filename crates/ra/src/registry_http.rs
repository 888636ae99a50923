//! A population registry service reached over HTTP(S) (`[ra.registry]`).
//! Hallmark posts the particulars to check as JSON and reads one answer
//! per person (docs/registry-api.md):
//!
//! ```text
//! POST {url}   Authorization: Bearer TOKEN   Content-Type: application/json
//! {"people": [{"id_number": "A1234563", "name_zh": "陳大文",
//!              "name_en": "CHAN Tai Man", "date_of_birth": "1980-01-31"}]}
//! 200 {"answers": ["confirmed" | "mismatch" | "unknown", …]}
//! ```
//!
//! Each attempt has a deadline for the whole exchange (connect, TLS,
//! request and answer); a refused connection, a timeout, a 5xx or a 429
//! is tried again after a short back-off, up to `attempts` times. What
//! cannot be answered is [`RaError::RegistryDown`] with what went wrong:
//! the application then waits in awaiting-registry and is asked about
//! again ([`crate::Ra::recheck_registry`]). Nothing is lost either way.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::person::Personal;
use crate::registry::{Answer, Check, CheckMany, Registry};
use crate::vault::Vault;
use crate::{RaError, Result};

/// People per request: a campaign's page is asked about in a few requests.
const PER_REQUEST: usize = 256;
/// The largest answer read (a few bytes per person).
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Serialize)]
struct Asked<'a> {
    id_number: &'a str,
    name_zh: &'a str,
    name_en: &'a str,
    date_of_birth: &'a str,
}

#[derive(Serialize)]
struct Question<'a> {
    people: Vec<Asked<'a>>,
}

#[derive(Deserialize)]
struct Answers {
    answers: Vec<String>,
}

/// The registry service of `[ra.registry]`.
pub struct HttpRegistry {
    uri: Uri,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    token: Option<Zeroizing<String>>,
    timeout: Duration,
    attempts: u32,
}

fn config_error(m: impl std::fmt::Display) -> RaError {
    RaError::Internal(format!("[ra.registry]: {m}"))
}

/// Why an attempt failed, and whether another attempt may help.
struct Failed {
    why: String,
    again: bool,
}

impl HttpRegistry {
    pub fn new(c: &hallmark_authority::RegistryConfig) -> Result<Self> {
        let uri: Uri = c
            .url
            .parse()
            .map_err(|e| config_error(format!("url {:?} is not a URL: {e}", c.url)))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(config_error("url must start with https:// or http://")),
        };
        let host = uri
            .host()
            .ok_or_else(|| config_error("url has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !(1..=600_000).contains(&c.timeout_ms) || !(1..=10).contains(&c.attempts) {
            return Err(config_error(
                "timeout_ms is 1 to 600000 and attempts 1 to 10",
            ));
        }
        let token = match &c.token_file {
            Some(f) => Some(Zeroizing::new(
                std::fs::read_to_string(f)
                    .map_err(|e| config_error(format!("cannot read {}: {e}", f.display())))?
                    .trim()
                    .to_string(),
            )),
            None => None,
        };
        let tls = if https {
            let mut roots = rustls::RootCertStore::empty();
            match &c.ca_file {
                Some(f) => {
                    use rustls::pki_types::pem::PemObject;
                    for cert in rustls::pki_types::CertificateDer::pem_file_iter(f)
                        .map_err(|e| config_error(format!("cannot read {}: {e}", f.display())))?
                    {
                        let cert = cert.map_err(|e| {
                            config_error(format!("{} is not PEM certificates: {e}", f.display()))
                        })?;
                        roots.add(cert).map_err(|e| {
                            config_error(format!("a certificate in {}: {e}", f.display()))
                        })?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            uri,
            host,
            port,
            tls,
            token,
            timeout: Duration::from_millis(c.timeout_ms),
            attempts: c.attempts,
        })
    }

    /// Asks about `people` (at most [`PER_REQUEST`]), trying again as
    /// configured.
    async fn ask(&self, people: &[Personal]) -> Result<Vec<Answer>> {
        let body = serde_json::to_vec(&Question {
            people: people
                .iter()
                .map(|p| Asked {
                    id_number: &p.id_number,
                    name_zh: &p.name_zh,
                    name_en: &p.name_en,
                    date_of_birth: &p.date_of_birth,
                })
                .collect(),
        })
        .map_err(|e| RaError::Internal(e.to_string()))?;
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << (attempt - 1).min(5))).await;
            }
            match tokio::time::timeout(self.timeout, self.once(&body)).await {
                Ok(Ok(text)) => return parse(&text, people.len()),
                Ok(Err(Failed { why, again })) => {
                    last = why;
                    if !again {
                        break;
                    }
                }
                Err(_) => {
                    last = format!("no answer within {} ms", self.timeout.as_millis());
                }
            }
            tracing::warn!(attempt = attempt + 1, why = %last, "population registry attempt failed");
        }
        Err(RaError::RegistryDown(format!(
            "{} ({} attempt(s)): {last}",
            self.uri, self.attempts
        )))
    }

    async fn once(&self, body: &[u8]) -> std::result::Result<Vec<u8>, Failed> {
        let again = |why: String| Failed { why, again: true };
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                again(format!(
                    "cannot connect to {}:{}: {e}",
                    self.host, self.port
                ))
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(tls) => {
                let name =
                    rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
                        Failed {
                            why: format!("{}: {e}", self.host),
                            again: false,
                        }
                    })?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| again(format!("TLS with {}: {e}", self.host)))?;
                self.exchange(TokioIo::new(stream), body).await
            }
            None => self.exchange(TokioIo::new(tcp), body).await,
        }
    }

    async fn exchange<T>(&self, io: T, body: &[u8]) -> std::result::Result<Vec<u8>, Failed>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let again = |why: String| Failed { why, again: true };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| again(format!("HTTP: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = self
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let authority = self
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| self.host.clone());
        let mut req = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "Hallmark registration authority");
        if let Some(t) = &self.token {
            req = req.header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", t.as_str()),
            );
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| Failed {
                why: e.to_string(),
                again: false,
            })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| again(format!("HTTP: {e}")))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| again(format!("reading the answer: {e}")))?
            .to_bytes();
        if status == StatusCode::OK {
            return Ok(bytes.to_vec());
        }
        let said: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
        Err(Failed {
            why: format!("answered {status}: {said}"),
            again: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
        })
    }
}

fn parse(text: &[u8], asked: usize) -> Result<Vec<Answer>> {
    let a: Answers = serde_json::from_slice(text).map_err(|e| {
        RaError::RegistryDown(format!(
            "the registry's answer is not what docs/registry-api.md describes: {e}"
        ))
    })?;
    if a.answers.len() != asked {
        return Err(RaError::RegistryDown(format!(
            "the registry answered {} time(s) for {asked} people",
            a.answers.len()
        )));
    }
    a.answers
        .iter()
        .map(|s| match s.as_str() {
            "confirmed" => Ok(Answer::Confirmed),
            "mismatch" => Ok(Answer::Mismatch),
            "unknown" => Ok(Answer::Unknown),
            other => Err(RaError::RegistryDown(format!(
                "the registry answered {other:?}, not confirmed, mismatch or unknown"
            ))),
        })
        .collect()
}

impl Registry for HttpRegistry {
    fn check<'a>(&'a self, _vault: &'a Vault, person: &'a Personal) -> Check<'a> {
        Box::pin(async move {
            let mut a = self.ask(std::slice::from_ref(person)).await?;
            a.pop()
                .ok_or_else(|| RaError::RegistryDown("no answer".into()))
        })
    }

    fn check_many<'a>(&'a self, _vault: &'a Vault, people: &'a [Personal]) -> CheckMany<'a> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(people.len());
            for chunk in people.chunks(PER_REQUEST) {
                out.extend(self.ask(chunk).await?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_strictly() {
        assert_eq!(
            parse(br#"{"answers":["confirmed","unknown"]}"#, 2).unwrap(),
            vec![Answer::Confirmed, Answer::Unknown]
        );
        for bad in [
            &br#"{"answers":["confirmed"]}"#[..],
            br#"{"answers":["yes","no"]}"#,
            b"<html>",
        ] {
            assert!(matches!(parse(bad, 2), Err(RaError::RegistryDown(_))));
        }
    }
}
