//! Web pages for people: applicants and holders (apply, track, collect
//! the certificate with the PIN) and registration staff (sign in, the
//! approval queue, counter applications, approval, PIN mailers).
//! Server-rendered with minijinja, in Traditional Chinese (the default) and
//! English, loading nothing from outside the server; every form carries a
//! CSRF token and every page strict security headers.
//!
//! May touch: the registration authority's public API (`hallmark-ra`).
//! Must not: decide policy (who may approve what is the registration
//! authority's to say), reach the store, or log personal data.

mod accounts;
mod batches;
mod i18n;
mod public;
mod recoveries;
mod staff;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hallmark_ra::{Ra, RaError};
use minijinja::Environment;
use serde::Serialize;

/// The templates, compiled into the binary.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    (
        "form_fields.html",
        include_str!("../templates/form_fields.html"),
    ),
    ("home.html", include_str!("../templates/home.html")),
    ("apply.html", include_str!("../templates/apply.html")),
    ("status.html", include_str!("../templates/status.html")),
    ("track.html", include_str!("../templates/track.html")),
    ("collect.html", include_str!("../templates/collect.html")),
    ("email.html", include_str!("../templates/email.html")),
    ("lost.html", include_str!("../templates/lost.html")),
    ("renew.html", include_str!("../templates/renew.html")),
    ("test_pay.html", include_str!("../templates/test_pay.html")),
    (
        "statistics.html",
        include_str!("../templates/statistics.html"),
    ),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("queue.html", include_str!("../templates/queue.html")),
    ("batches.html", include_str!("../templates/batches.html")),
    ("accounts.html", include_str!("../templates/accounts.html")),
    (
        "recoveries.html",
        include_str!("../templates/recoveries.html"),
    ),
    (
        "account_approved.html",
        include_str!("../templates/account_approved.html"),
    ),
    (
        "application.html",
        include_str!("../templates/application.html"),
    ),
];

const CSS: &str = include_str!("../static/site.css");

/// Form bodies are small; anything bigger is refused before parsing.
const MAX_FORM_BYTES: usize = 16 * 1024;

pub(crate) struct Web {
    ra: Arc<Ra>,
    env: Environment<'static>,
    /// Cookies get `Secure` when the public address is HTTPS.
    secure: bool,
    collect_url: String,
    session_secs: i64,
}

/// The pages, to be nested under `/ra`.
pub fn router<S: Clone + Send + Sync + 'static>(ra: Arc<Ra>) -> Router<S> {
    let mut env = Environment::new();
    for (name, src) in TEMPLATES {
        // The templates are part of the binary: a broken one is a bug that
        // the tests of this crate catch.
        if let Err(e) = env.add_template(name, src) {
            tracing::error!(template = name, error = %e, "template does not compile");
        }
    }
    let base = ra.authority().server_config().base_url.clone();
    let web = Arc::new(Web {
        secure: base.starts_with("https://"),
        collect_url: format!("{base}/ra/collect"),
        session_secs: i64::from(ra.authority().ra_config().session_minutes) * 60,
        ra,
        env,
    });
    Router::new()
        .route("/", get(public::home))
        .route("/lang", get(public::switch_lang))
        .route("/static/site.css", get(css))
        .route("/apply", get(public::apply_form).post(public::apply))
        .route("/track", get(public::track_form).post(public::track))
        .route("/collect", get(public::collect_form).post(public::collect))
        .route(
            "/email",
            get(public::email_form).post(public::email_confirm),
        )
        .route("/email/resend", post(public::email_resend))
        .route("/appointment", post(public::appointment))
        .route("/my-data", post(public::my_data))
        .route("/pay", post(public::pay))
        .route("/receipt", post(public::receipt))
        .route(
            "/pay/test/{id}",
            get(public::test_checkout).post(public::test_outcome),
        )
        .route("/payments/webhook", post(public::payment_webhook))
        .route(
            "/staff/sign-in",
            get(staff::sign_in_form).post(staff::sign_in),
        )
        .route("/staff/sign-out", post(staff::sign_out))
        .route("/staff/queue", get(staff::queue))
        .route("/staff/statistics", get(staff::statistics))
        .route("/staff/batches", get(batches::batches))
        .route("/staff/batches/{id}/approve", post(batches::approve))
        .route(
            "/staff/accounts",
            get(accounts::accounts).post(accounts::propose),
        )
        .route(
            "/staff/accounts/{username}/approve",
            post(accounts::approve),
        )
        .route(
            "/staff/accounts/{username}/disable",
            post(accounts::disable),
        )
        .route(
            "/staff/recoveries",
            get(recoveries::recoveries).post(recoveries::request),
        )
        .route("/staff/recoveries/{id}/approve", post(recoveries::approve))
        .route("/staff/recoveries/{id}/cancel", post(recoveries::cancel))
        .route(
            "/staff/counter",
            get(staff::counter_form).post(staff::counter),
        )
        .route("/staff/applications/{reference}", get(staff::application))
        .route(
            "/staff/applications/{reference}/approve",
            post(staff::approve),
        )
        .route(
            "/staff/applications/{reference}/mailer",
            post(staff::mailer),
        )
        .route("/staff/applications/{reference}/lost", post(staff::lost))
        .route(
            "/staff/applications/{reference}/lost/confirm",
            post(staff::lost_confirm),
        )
        .route("/lost", get(public::lost_form).post(public::lost))
        .route("/renew", get(public::renew_form).post(public::renew))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// Strict headers on every page: nothing from elsewhere, no framing, no
/// sniffing, no referrer, and personal pages never cached.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

// ------------------------------------------------------------ helpers

pub(crate) fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The page language: the `hm_lang` cookie, else the browser's first
/// choice if it is English, else Traditional Chinese.
pub(crate) fn lang(headers: &HeaderMap) -> &'static str {
    match cookies(headers).get("hm_lang").map(String::as_str) {
        Some("en") => return "en",
        Some("zh") => return "zh",
        _ => {}
    }
    let first = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .unwrap_or("");
    if first.trim().to_ascii_lowercase().starts_with("en") {
        "en"
    } else {
        "zh"
    }
}

pub(crate) fn agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if hallmark_crypto::fill_random(&mut b).is_err() {
        // Never expected; an empty token matches no form.
        return String::new();
    }
    hallmark_pki::hex(&b)
}

impl Web {
    pub(crate) fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut c = format!("{name}={value}; Path=/ra; HttpOnly; SameSite=Strict");
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }

    /// Renders `name` with the shared context (words, language, path).
    pub(crate) fn page(
        &self,
        status: StatusCode,
        name: &str,
        lang: &str,
        path: &str,
        ctx: impl Serialize,
    ) -> Response {
        let t = self.env.get_template(name).and_then(|t| {
            t.render(minijinja::context! {
                t => i18n::words(lang),
                html_lang => if lang == "en" { "en" } else { "zh-Hant-HK" },
                path => path,
                ..crate::v(&ctx)
            })
        });
        match t {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "page does not render");
                (StatusCode::INTERNAL_SERVER_ERROR, "page error").into_response()
            }
        }
    }
}

/// A PDF (a PIN mailer, a letter) shown inline as `filename`.
pub(crate) fn pdf_inline(filename: &str, pdf: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{filename}\""),
            ),
        ],
        pdf,
    )
        .into_response()
}

/// The HTTP status for an error shown on a page.
pub(crate) fn status_of(e: &RaError) -> StatusCode {
    match e {
        RaError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        RaError::Forbidden(_) => StatusCode::FORBIDDEN,
        RaError::Unauthorised(_) => StatusCode::UNAUTHORIZED,
        RaError::NotFound(_) => StatusCode::NOT_FOUND,
        RaError::Conflict(_) => StatusCode::CONFLICT,
        RaError::RegistryDown(_) | RaError::Device(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => {
            tracing::error!(error = %e, "registration authority error");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

pub(crate) fn field_of(e: &RaError) -> &'static str {
    match e {
        RaError::Invalid { field, .. } => field,
        _ => "",
    }
}

/// A serialisable value for a template.
pub(crate) fn v<T: Serialize>(x: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(x))
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A refused form (a missing or wrong CSRF token).
pub(crate) fn csrf_refused(lang: &str) -> Response {
    let msg = if lang == "en" {
        "This form has expired or did not come from this site. Go back, reload the page and try again."
    } else {
        "表格已過期或並非來自本網站。請返回並重新載入頁面後再試。"
    };
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

pub(crate) fn date_time(unix: i64) -> String {
    let (y, m, d) = hallmark_ra::person::civil_date(unix.max(0) as u64);
    let s = unix.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", s / 3600, (s / 60) % 60)
}
