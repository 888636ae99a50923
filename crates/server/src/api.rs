//! The admin JSON API (`/api/v1`). Every route but the OpenAPI document
//! requires the admin bearer token.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hallmark_authority::system_now;
use hallmark_ca::{IssueRequest, KeySource};
use hallmark_pki::crl::Reason;
use hallmark_store::certificates::CertRow;
use serde::Deserialize;

use crate::tls::ClientCert;
use crate::{AppState, Problem};

/// Largest API request body: a CSR is at most 16 KiB DER (~22 KiB PEM).
const MAX_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/certificates", post(issue).get(list))
        .route("/certificates/{serial}", get(show))
        .route("/certificates/{serial}/revoke", post(revoke))
        .route("/crls", post(generate_crls))
        .route("/ra/applications", post(ra_submit))
        .route("/ra/applications/{reference}", get(ra_show))
        .method_not_allowed_fallback(crate::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Proof that the request carried the admin token, or came over mutual TLS
/// with an allowed client certificate; `actor` names who, for the audit log.
pub struct Admin {
    pub actor: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        // RFC 6750 §3: a 401 names the scheme it wants.
        let refused = |detail: &'static str| {
            let mut r = Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
                detail,
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"hallmark\""),
            );
            r
        };
        let unauthorized = || refused("send the admin token as `Authorization: Bearer <token>`");
        if let Some(value) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            // The scheme name is case-insensitive (RFC 9110 §11.1).
            let token = value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token)
                .ok_or_else(unauthorized)?;
            let digest = hallmark_crypto::sha256(token.trim().as_bytes());
            let expected = hallmark_pki::unhex(&s.auth.admin_access().token_sha256)
                .filter(|d| d.len() == 32)
                .unwrap_or_default();
            return if hallmark_crypto::constant_time_eq(&digest, &expected) {
                Ok(Admin {
                    actor: "api:admin".into(),
                })
            } else {
                Err(refused(
                    "the admin token is not the one in force (a token replaced by `hallmark admin-token rotate` \
                     stops working within seconds)",
                ))
            };
        }
        // Mutual TLS: a client certificate the TLS layer verified against
        // this installation's CAs, allowed by fingerprint, still issued
        // here and not revoked (looked up at each request).
        let Some(ClientCert(der)) = parts.extensions.get::<ClientCert>() else {
            return Err(unauthorized());
        };
        let fp = hallmark_pki::hex(&hallmark_crypto::sha256(der));
        if !s.auth.admin_access().client_certs.contains(&fp) {
            return Err(unauthorized());
        }
        match s.auth.stored_certificate(der).await {
            // TLS checked expiry at the full handshake only (not on
            // resumption or a long-lived connection): checked again here,
            // with the revocation of the certificate and of its CA.
            Ok(Some(row))
                if row.status == "issued"
                    && row.revoked_at.is_none()
                    && row.not_after >= system_now() as i64
                    && !s.auth.is_revoked_ca(&row.issuer)
                    && row.cert.as_deref() == Some(der.as_slice()) =>
            {
                Ok(Admin {
                    actor: format!("api:cert:{} ({})", row.subject, row.serial),
                })
            }
            _ => Err(unauthorized()),
        }
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    profile: String,
    subject: String,
    csr: String,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    dns_names: Vec<String>,
    #[serde(default)]
    validity_days: Option<u32>,
    #[serde(default)]
    issuer: Option<String>,
}

fn cert_json(r: &CertRow) -> serde_json::Value {
    serde_json::json!({
        "serial": r.serial,
        "issuer": r.issuer,
        "status": if r.revoked_at.is_some() { "revoked" } else { r.status.as_str() },
        "profile": r.profile,
        "subject": r.subject,
        "not_before": hallmark_pki::time::rfc3339(r.not_before.max(0) as u64),
        "not_after": hallmark_pki::time::rfc3339(r.not_after.max(0) as u64),
        "revoked_at": r.revoked_at.map(|t| hallmark_pki::time::rfc3339(t.max(0) as u64)),
        "revocation_reason": r.reason.and_then(|c| Reason::from_code(c as u8)).map(|r| r.name()),
        "certificate": r.cert.as_ref().map(|c| hallmark_pki::pem::encode("CERTIFICATE", c)),
    })
}

/// For the fuzz targets: reads `data` as each admin API operation reads
/// its request body (and, as text, as a serial), with no HTTP and no store.
#[doc(hidden)]
pub fn fuzz_bodies(data: &[u8]) {
    let body = || Ok(Bytes::copy_from_slice(data));
    let _ = json_body::<IssueBody>(body());
    let _ = json_body::<RevokeBody>(body());
    let _ = json_body::<RaApplicationBody>(body());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hallmark_authority::normalise_serial(text);
        let _: Result<ListQuery, _> = serde_json::from_str(text);
    }
}

fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Request too large",
                format!("request bodies are limited to {MAX_BODY} bytes"),
            )
        } else {
            Problem::bad_request("malformed", r.body_text())
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request("malformed-json", format!("request body: {e}")))
}

async fn issue(
    admin: Admin,
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let b: IssueBody = json_body(body)?;
    let issued = s
        .auth
        .issue(
            IssueRequest {
                profile: b.profile,
                issuer: b.issuer,
                subject: b.subject,
                emails: b.emails,
                dns_names: b.dns_names,
                validity_days: b.validity_days,
                validity_secs: None,
                key: KeySource::Csr(b.csr.into_bytes()),
                actor: admin.actor,
            },
            system_now(),
        )
        .await?;
    let chain = s
        .auth
        .signing_ca(&issued.issuer)
        .map(|i| hallmark_pki::pem::encode("CERTIFICATE", &i.cert_der))
        .unwrap_or_default();
    let body = serde_json::json!({
        "serial": issued.serial_hex,
        "issuer": issued.issuer,
        "not_after": hallmark_pki::time::rfc3339(issued.not_after),
        "certificate": hallmark_pki::pem::encode("CERTIFICATE", &issued.cert_der),
        "chain": [chain],
    });
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/v1/certificates/{}", issued.serial_hex),
        )],
        Json(body),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    #[serde(default)]
    issuer: Option<String>,
}

async fn show(
    _: Admin,
    State(s): State<AppState>,
    Path(serial): Path<String>,
    q: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(q) = q.map_err(|e| Problem::bad_request("invalid", e.body_text()))?;
    let serial = hallmark_authority::normalise_serial(&serial)?;
    let row = s.auth.certificate(q.issuer.as_deref(), &serial).await?;
    Ok(Json(cert_json(&row)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
    /// Cursor from the previous page: "created_at:serial".
    #[serde(default)]
    before: Option<String>,
}

async fn list(
    _: Admin,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(q) = q.map_err(|r| {
        Problem::bad_request(
            "invalid",
            format!(
                "{}; the query takes limit (1 to 1000) and before (the `next` cursor of a previous page)",
                r.body_text()
            ),
        )
    })?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(
            "invalid",
            "limit must be between 1 and 1000",
        ));
    }
    let before = match q.before {
        None => None,
        Some(c) => {
            let (t, s) = c
                .split_once(':')
                .and_then(|(t, s)| Some((t.parse::<i64>().ok()?, s.to_string())))
                // As `next` gives it: a time and a serial in lower-case hex.
                .filter(|(t, s)| {
                    *t >= 0
                        && (1..=64).contains(&s.len())
                        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                })
                .ok_or_else(|| {
                    Problem::bad_request(
                        "invalid",
                        "before must be the `next` cursor of a previous page",
                    )
                })?;
            Some((t, s))
        }
    };
    let rows = s.auth.certificates(limit, before).await?;
    let next = if rows.len() as i64 == limit {
        rows.last()
            .map(|r| format!("{}:{}", r.created_at, r.serial))
    } else {
        None
    };
    let items: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut v = cert_json(r);
            if let Some(o) = v.as_object_mut() {
                o.remove("certificate");
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items, "next": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: String,
    /// Needed when several CAs issued the serial.
    #[serde(default)]
    issuer: Option<String>,
}

async fn revoke(
    admin: Admin,
    State(s): State<AppState>,
    Path(serial): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let b: RevokeBody = json_body(body)?;
    let reason = Reason::parse(&b.reason).ok_or_else(|| {
        Problem::bad_request(
            "invalid",
            format!(
                "unknown revocation reason {:?}; use one of {}",
                b.reason,
                Reason::OFFERED.map(|r| r.name()).join(", ")
            ),
        )
    })?;
    // The answer waits (up to 2 s) for the partition CRL that the
    // certificate's CRL distribution point names; the full CRL, which
    // takes seconds at a million entries, follows in the background.
    let (row, _) = s
        .auth
        .revoke_waiting_at_most(
            (b.issuer.as_deref(), &serial),
            reason,
            &admin.actor,
            system_now(),
            std::time::Duration::from_secs(2),
        )
        .await?;
    Ok(Json(cert_json(&row)))
}

async fn generate_crls(
    _: Admin,
    State(s): State<AppState>,
) -> Result<Json<serde_json::Value>, Problem> {
    let out = s
        .auth
        .crls()
        .generate_crls(None, None, system_now())
        .await
        .map_err(hallmark_authority::AuthorityError::from)?;
    Ok(Json(serde_json::json!({ "crls": out })))
}

/// An application from a partner's or a campaign's system.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RaApplicationBody {
    /// `campaign`, `partner` or `counter`.
    channel: String,
    #[serde(default)]
    centre: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    id_number: String,
    name_zh: String,
    name_en: String,
    date_of_birth: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    email_in_certificate: bool,
}

fn ra_json(a: &hallmark_ra::Application) -> serde_json::Value {
    serde_json::json!({
        "reference": a.reference,
        "status": a.status.as_str(),
        "channel": a.channel.as_str(),
        "centre": a.centre,
        "profile": a.profile,
        "registry": a.registry,
        "email_pending": a.email_pending,
        "reported_lost": a.lost,
        "issuer": a.issuer,
        "serial": a.serial,
        "received_at": hallmark_pki::time::rfc3339(a.created_at.max(0) as u64),
    })
}

async fn ra_submit(
    admin: Admin,
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let b: RaApplicationBody = json_body(body)?;
    let channel = match hallmark_ra::Channel::parse(&b.channel) {
        Some(
            c @ (hallmark_ra::Channel::Campaign
            | hallmark_ra::Channel::Partner
            | hallmark_ra::Channel::Counter),
        ) => c,
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "A field is invalid",
                "channel: use campaign, partner or counter (online applications come through the pages)",
            ));
        }
    };
    let form = hallmark_ra::person::Form {
        id_number: b.id_number,
        name_zh: b.name_zh,
        name_en: b.name_en,
        date_of_birth: b.date_of_birth,
        phone: b.phone,
        email: b.email,
        address: b.address,
        email_in_certificate: b.email_in_certificate.then(|| "yes".to_string()),
        marketing_consent: None,
    };
    let a =
        s.ra.submit(
            &form,
            b.profile.as_deref().unwrap_or("personal"),
            channel,
            b.centre.as_deref(),
            &admin.actor,
            system_now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        ra_json(&a).to_string(),
    )
        .into_response())
}

async fn ra_show(
    _admin: Admin,
    State(s): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Response, Problem> {
    let a = s.ra.application(&reference).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        ra_json(&a).to_string(),
    )
        .into_response())
}
