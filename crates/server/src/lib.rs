//! The HTTP surface: OCSP (RFC 6960 / RFC 5019), CRL and CA certificate
//! publication, and the admin JSON API under `/api/v1`, over HTTP, HTTPS
//! and a mutual-TLS admin listener, and the serve loop that runs them.
//! Only this crate knows HTTP: it maps requests onto the CA service
//! (`hallmark-authority`) and the status services (`hallmark-status`), and
//! their errors onto RFC 9457 problem details, once, here.
//!
//! May touch: the network (its listeners), the CA service's public API.
//! Must not: reach into the store or key custody, or decide policy (what
//! may be issued or revoked is the CA service's to say).

mod api;
pub mod conn;
pub mod problem;
pub mod serve;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use hallmark_authority::{AdminApi, Authority, AuthorityError, system_now};
use hallmark_pki::ocsp::MAX_REQUEST_BYTES;
use hallmark_store::crls::FULL_CRL;

pub use api::fuzz_bodies;
pub use problem::Problem;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Authority>,
    pub ra: Arc<hallmark_ra::Ra>,
}

/// Which listener a router is for: the admin mutual-TLS listener always
/// serves the admin API, the others as `server.admin_api` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// HTTP and HTTPS, which face relying parties.
    Public,
    /// The admin mutual-TLS listener.
    AdminTls,
}

pub fn router(auth: Arc<Authority>, ra: Arc<hallmark_ra::Ra>, listener: Listener) -> Router {
    let mode = auth.server_config().admin_api;
    let state = AppState {
        auth,
        ra: ra.clone(),
    };
    let api = match (listener, mode) {
        (Listener::AdminTls, _) | (_, AdminApi::Everywhere) => api::router(),
        (Listener::Public, AdminApi::Loopback) => {
            api::router().layer(axum::middleware::from_fn(loopback_only))
        }
        (Listener::Public, AdminApi::AdminTls) => Router::new()
            .route("/", any(api_elsewhere))
            .route("/{*rest}", any(api_elsewhere)),
    };
    let ocsp = Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/", post(ocsp_post))
        .route("/ocsp/{*req}", get(ocsp_get))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES));
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
        .route("/crl/{file}", get(crl_full))
        .route("/crl/{issuer}/{file}", get(crl_shard))
        .route("/ca/{file}", get(ca_cert))
        .route("/ca/{subject}/cross/{file}", get(cross_cert))
        .merge(ocsp)
        .nest("/api/v1", api)
        .nest("/ra", hallmark_web::router(ra))
        .route(
            "/ra/",
            get(|| async { axum::response::Redirect::permanent("/ra") }),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { Problem::not_found("no such resource; see /api/v1/openapi.json") })
        .with_state(state)
}

/// The admin API on a public listener with `admin_api = "loopback"`: only
/// for connections from this machine (the bearer token must not cross the
/// network in the clear). The peer address comes from the listener, never
/// from a header a client could set.
async fn loopback_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let local = peer.is_some_and(|ip| match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        ip => ip.is_loopback(),
    });
    if local {
        next.run(req).await
    } else {
        Problem::new(
            StatusCode::NOT_FOUND,
            "admin-api-elsewhere",
            "Not found",
            "the admin API is served on this listener only to clients on the server's own machine \
             (server.admin_api = \"loopback\"); use the admin mutual-TLS listener",
        )
        .into_response()
    }
}

async fn api_elsewhere() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "admin-api-elsewhere",
        "Not found",
        "the admin API is not served on this listener: it is on the admin mutual-TLS listener \
         (server.admin_api = \"admin-tls\")",
    )
}

/// 405 as a problem; the router adds the `Allow` header.
async fn method_not_allowed(method: axum::http::Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed here; the Allow header lists what is"),
    )
}

fn ocsp_reply(bytes: Bytes, note: Option<String>, cacheable: bool) -> Response {
    if let Some(n) = note {
        tracing::debug!(reason = %n, "OCSP request refused");
    }
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ocsp-response"),
    );
    if cacheable {
        // RFC 5019 §6.2: let HTTP caches hold GET responses for a while.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600, no-transform"),
        );
    }
    r
}

async fn ocsp_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        // Oversized or unreadable: still an OCSP answer (RFC 6960 §2.3).
        return ocsp_reply(
            Bytes::copy_from_slice(&hallmark_pki::ocsp::error_response(
                hallmark_pki::ocsp::ResponseStatus::MalformedRequest,
            )),
            Some("request body too large or unreadable".into()),
            false,
        );
    };
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && ct.as_bytes() != b"application/ocsp-request"
    {
        return Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            "Unsupported media type",
            "send OCSP requests as application/ocsp-request",
        )
        .into_response();
    }
    let (bytes, note) = s.auth.ocsp().answer(&body, system_now()).await;
    ocsp_reply(bytes, note, false)
}

/// RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 encoding of the DER request}.
async fn ocsp_get(State(s): State<AppState>, Path(req): Path<String>) -> Response {
    if req.len() > MAX_REQUEST_BYTES * 2 {
        return ocsp_reply(
            Bytes::copy_from_slice(&hallmark_pki::ocsp::error_response(
                hallmark_pki::ocsp::ResponseStatus::MalformedRequest,
            )),
            Some("request too long".into()),
            false,
        );
    }
    let Some(der) = hallmark_pki::ocsp::decode_get_path(&req) else {
        return ocsp_reply(
            Bytes::copy_from_slice(&hallmark_pki::ocsp::error_response(
                hallmark_pki::ocsp::ResponseStatus::MalformedRequest,
            )),
            Some("path is not base64".into()),
            false,
        );
    };
    let (bytes, note) = s.auth.ocsp().answer(&der, system_now()).await;
    let ok = note.is_none();
    ocsp_reply(bytes, note, ok)
}

fn der_response(content_type: &'static str, der: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, der).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn crl_full(
    State(s): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, Problem> {
    let issuer = file
        .strip_suffix(".crl")
        .ok_or_else(|| Problem::not_found("CRLs are served as /crl/ISSUER.crl"))?;
    serve_crl(&s, issuer, FULL_CRL).await
}

async fn crl_shard(
    State(s): State<AppState>,
    Path((issuer, file)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let shard: i64 = file
        .strip_suffix(".crl")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| Problem::not_found("shard CRLs are served as /crl/ISSUER/N.crl"))?;
    serve_crl(&s, &issuer, shard).await
}

async fn serve_crl(s: &AppState, issuer: &str, shard: i64) -> Result<Response, Problem> {
    match s.auth.crl(issuer, shard).await {
        Ok(c) => Ok(der_response("application/pkix-crl", c.der)),
        Err(AuthorityError::Store(hallmark_store::StoreError::NotFound(_))) => {
            // Only what is published is served: a GET never makes the CA
            // sign (CRLs are made at start, on schedule, after revocations,
            // and for a new partition at its first certificate's issuance).
            let crls = s.auth.crls();
            let known = s
                .auth
                .ca_records()
                .await
                .is_ok_and(|all| all.iter().any(|i| i.id == issuer));
            Err(Problem::not_found(if !known {
                format!("no CA named {issuer:?}")
            } else if crls.live_partitions(issuer, system_now()).is_none() {
                // A CA whose key is elsewhere (an offline root) publishes
                // the CRLs its operator imports.
                format!(
                    "no CRL of {issuer:?} has been published here yet: its key is elsewhere; \
                     its operator publishes one with `hallmark crl import --issuer {issuer}`"
                )
            } else if shard == FULL_CRL {
                format!("the CRL of {issuer:?} is not published yet")
            } else {
                format!(
                    "no CRL partition {shard} of {issuer:?} is published: no certificate names it"
                )
            }))
        }
        Err(e) => Err(e.into()),
    }
}

async fn ca_cert(State(s): State<AppState>, Path(file): Path<String>) -> Result<Response, Problem> {
    let (id, pem) = cert_file(&file).ok_or_else(|| {
        Problem::not_found("CA certificates are served as /ca/ISSUER.crt (DER) or .pem")
    })?;
    let rows = s.auth.ca_records().await?;
    let row = rows
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| Problem::not_found(format!("no CA named {id:?}")))?;
    Ok(cert_response(row.cert, pem))
}

/// A certificate as DER (`application/pkix-cert`) or PEM.
fn cert_response(der: Vec<u8>, pem: bool) -> Response {
    if pem {
        let mut r = (
            StatusCode::OK,
            hallmark_pki::pem::encode("CERTIFICATE", &der),
        )
            .into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        );
        r
    } else {
        der_response("application/pkix-cert", der)
    }
}

/// `.crt` (DER) or `.pem` file name → (stem, is PEM).
fn cert_file(file: &str) -> Option<(&str, bool)> {
    match (file.strip_suffix(".crt"), file.strip_suffix(".pem")) {
        (Some(id), _) => Some((id, false)),
        (_, Some(id)) => Some((id, true)),
        _ => None,
    }
}

/// Cross-certificates from a root re-key: `/ca/SUBJECT/cross/SIGNER.crt` is
/// root SUBJECT certified by root SIGNER, for relying parties that trust
/// only SIGNER.
async fn cross_cert(
    State(s): State<AppState>,
    Path((subject, file)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (signer, pem) = cert_file(&file).ok_or_else(|| {
        Problem::not_found(
            "cross-certificates are served as /ca/SUBJECT/cross/SIGNER.crt (DER) or .pem",
        )
    })?;
    let der = s
        .auth
        .cross_certificate(signer, &subject)
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!("no cross-certificate of {subject:?} by {signer:?}"))
        })?;
    Ok(cert_response(der, pem))
}

async fn index(State(s): State<AppState>) -> Html<String> {
    let base = &s.auth.server_config().base_url;
    let mut items = String::new();
    if let Ok(rows) = s.auth.ca_records().await {
        for r in rows {
            let subj = html_escape(&r.subject);
            items.push_str(&format!(
                "<li><b>{subj}</b> ({id}): <a href=\"/ca/{id}.crt\">certificate</a> · <a href=\"/ca/{id}.pem\">PEM</a> · <a href=\"/crl/{id}.crl\">CRL</a></li>\n",
                id = html_escape(&r.id)
            ));
        }
    }
    let crosses = s.auth.cross_certificates().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot list cross-certificates");
        Vec::new()
    });
    for (signer, subject) in crosses {
        items.push_str(&format!(
            "<li>cross-certificate: {subject} certified by {signer}: <a href=\"/ca/{subject}/cross/{signer}.crt\">certificate</a> · <a href=\"/ca/{subject}/cross/{signer}.pem\">PEM</a></li>\n",
            subject = html_escape(&subject),
            signer = html_escape(&signer)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"zh-Hant\"><head><meta charset=\"utf-8\"><title>Hallmark 核證機關</title></head><body>\
         <h1>Hallmark 核證機關 / certification authority</h1><ul>{items}</ul>\
         <p><a href=\"/ra\">電子證書服務 e-Cert services</a>: apply, track, collect; staff sign-in</p>\
         <p>OCSP: <code>{base}/ocsp</code> · API: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a></p></body></html>"
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
