//! RFC 9457 problem details: every error leaves the server as
//! `application/problem+json` with a stable type, a title and a detail that
//! says what to fix. Internal errors are logged, never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hallmark_authority::AuthorityError;
use hallmark_ca::CaError;
use hallmark_pki::PkiError;
use hallmark_store::StoreError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
        }
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            kind,
            "The request is invalid",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server could not complete the request; the operator's log has the details",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": format!("urn:hallmark:problem:{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (self.status, ascii_json(&body.to_string())).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    }
}

/// JSON with every character outside ASCII written as a `\uXXXX` escape
/// (RFC 8259 §7): a detail that quotes what a client sent (any Unicode) then
/// reads the same whatever charset a client guesses for the body.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

fn from_pki(e: &PkiError) -> Option<Problem> {
    Some(match e {
        PkiError::CsrSignature => Problem::bad_request("bad-csr-signature", e.to_string()),
        PkiError::Malformed { .. } => Problem::bad_request("malformed", e.to_string()),
        PkiError::TooLarge { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Request too large",
            e.to_string(),
        ),
        PkiError::Key(_) => Problem::bad_request("bad-key", e.to_string()),
        PkiError::Subject(_) => Problem::bad_request("bad-subject", e.to_string()),
        PkiError::Lint(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "lint-failed",
            "The certificate would violate its profile",
            e.to_string(),
        ),
        PkiError::Crypto(c) => Problem::bad_request("bad-key", c.to_string()),
        _ => return None,
    })
}

impl From<hallmark_ra::RaError> for Problem {
    fn from(e: hallmark_ra::RaError) -> Self {
        use hallmark_ra::RaError as E;
        let detail = e.message("en");
        match e {
            E::Invalid { field, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "A field is invalid",
                format!("{field}: {detail}"),
            ),
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail),
            E::Unauthorised(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Not authorised",
                detail,
            ),
            E::NotFound(_) => Self::not_found(detail),
            E::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            E::RegistryDown(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "registry-unavailable",
                "The population registry is unavailable",
                detail,
            ),
            E::Authority(a) => a.into(),
            other => {
                tracing::error!(error = %other, "registration authority error");
                Self::internal()
            }
        }
    }
}

impl From<AuthorityError> for Problem {
    fn from(e: AuthorityError) -> Self {
        let p = match &e {
            AuthorityError::Ca(CaError::UnknownProfile(_)) => {
                Some(Problem::bad_request("unknown-profile", e.to_string()))
            }
            AuthorityError::Ca(CaError::UnknownIssuer(_)) => {
                Some(Problem::bad_request("unknown-issuer", e.to_string()))
            }
            AuthorityError::Ca(CaError::BadRequest(d)) | AuthorityError::Invalid(d) => {
                Some(Problem::bad_request("invalid", d.clone()))
            }
            AuthorityError::Ca(CaError::Pki(p)) | AuthorityError::Pki(p) => from_pki(p),
            AuthorityError::Ca(CaError::Signing(c)) => match c {
                hallmark_crypto::CryptoError::SigningFailed | hallmark_crypto::CryptoError::Rng => {
                    None
                }
                other => Some(Problem::bad_request("bad-key", other.to_string())),
            },
            AuthorityError::Store(StoreError::NotFound(d)) => Some(Problem::not_found(d.clone())),
            AuthorityError::Store(StoreError::Conflict(d)) => Some(Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                d.clone(),
            )),
            _ => None,
        };
        p.unwrap_or_else(|| {
            tracing::error!(error = %e, "internal error");
            Problem::internal()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-ASCII in a detail (a client's Chinese or stray Unicode) is
    /// escaped, and the body still parses to the same text.
    #[test]
    fn problem_bodies_are_ascii_json() {
        for detail in [
            "issuer \"A\u{a1}\u{f01}\" is not a CA id",
            "陳大文 😀",
            "plain",
        ] {
            let body = ascii_json(&serde_json::json!({"detail": detail}).to_string());
            assert!(body.is_ascii(), "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["detail"], detail);
        }
    }
}
