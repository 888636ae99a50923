//! Pages for applicants and holders: no account, a CSRF cookie per browser.
//! (Over 700 lines, not split yet: every public page's handler, and the
//! handlers share `csrf`, `blank_form`, `status_page` and `track_refused`,
//! so the split is one module per page group, `public/{apply,status,
//! appointments,fees,renewal}.rs` over a `public/mod.rs` holding those,
//! a change of its own that no slice so far had the time to test alone.)

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hallmark_authority::system_now;
use hallmark_ra::person::Form as PersonForm;
use hallmark_ra::{Application, Channel};
use serde::{Deserialize, Serialize};

use crate::{Web, cookies, csrf_refused, field_of, lang, see_other, status_of};

const CSRF_COOKIE: &str = "hm_csrf";

/// The browser's CSRF token, and the cookie to set if it had none.
fn csrf(web: &Web, headers: &HeaderMap) -> (String, Option<String>) {
    match cookies(headers).get(CSRF_COOKIE) {
        Some(v) if v.len() == 32 => (v.clone(), None),
        _ => {
            let v = crate::random_hex(16);
            let c = web.cookie(CSRF_COOKIE, &v, None);
            (v, Some(c))
        }
    }
}

fn csrf_ok(headers: &HeaderMap, given: &str) -> bool {
    cookies(headers).get(CSRF_COOKIE).is_some_and(|c| {
        !c.is_empty() && hallmark_crypto::constant_time_eq(c.as_bytes(), given.as_bytes())
    })
}

fn with_cookie(mut r: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie
        && let Ok(v) = c.parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A form page with nothing typed yet, and the browser's CSRF token.
fn blank_form(
    web: &Web,
    headers: &HeaderMap,
    template: &str,
    path: &str,
    form: impl Serialize,
) -> Response {
    let l = lang(headers);
    let (token, set) = csrf(web, headers);
    with_cookie(
        web.page(
            StatusCode::OK,
            template,
            l,
            path,
            minijinja::context! { csrf => token, form => crate::v(form) },
        ),
        set,
    )
}

/// The tracking form again, with why the reference and date of birth
/// were refused.
fn track_refused(web: &Web, l: &str, body: &TrackBody, e: &hallmark_ra::RaError) -> Response {
    web.page(
        status_of(e),
        "track.html",
        l,
        "/ra/track",
        minijinja::context! {
            csrf => body.csrf.clone(), form => crate::v(body), error => e.message(l),
        },
    )
}

pub(crate) async fn home(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    web.page(StatusCode::OK, "home.html", lang(&headers), "/ra", ())
}

#[derive(Deserialize)]
pub(crate) struct LangQuery {
    to: String,
    #[serde(default)]
    back: String,
}

/// Switches the language and goes back to the page (a local path only).
pub(crate) async fn switch_lang(
    State(web): State<Arc<Web>>,
    Query(q): Query<LangQuery>,
) -> Response {
    let to = if q.to == "en" { "en" } else { "zh" };
    let local = q.back.starts_with("/ra") && !q.back.contains("//") && !q.back.contains('\\');
    let back = if local { q.back.as_str() } else { "/ra" };
    let mut r = see_other(back);
    if let Ok(v) = web.cookie("hm_lang", to, Some(365 * 86_400)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The application form as typed, for re-showing it after an error.
#[derive(Clone, Default, Deserialize, Serialize)]
pub(crate) struct ApplyBody {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub id_number: String,
    #[serde(default)]
    pub name_zh: String,
    #[serde(default)]
    pub name_en: String,
    #[serde(default)]
    pub date_of_birth: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub email_in_certificate: Option<String>,
    #[serde(default)]
    pub marketing_consent: Option<String>,
}

impl ApplyBody {
    pub(crate) fn person(&self) -> PersonForm {
        PersonForm {
            id_number: self.id_number.clone(),
            name_zh: self.name_zh.clone(),
            name_en: self.name_en.clone(),
            date_of_birth: self.date_of_birth.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            address: self.address.clone(),
            email_in_certificate: self.email_in_certificate.clone(),
            marketing_consent: self.marketing_consent.clone(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct AppView {
    reference: String,
    name_en: String,
    status: &'static str,
    status_text: String,
    email_pending: bool,
    email_confirmed: bool,
    marketing: bool,
}

pub(crate) fn app_view(a: &Application, lang: &str) -> AppView {
    AppView {
        reference: a.reference.clone(),
        name_en: a.personal.name_en.clone(),
        status: a.status.as_str(),
        status_text: if a.lost {
            hallmark_ra::Text::new(
                "Your certificate was reported lost and is revoked.",
                "你的證書已報失並已撤銷。",
            )
            .get(lang)
            .to_string()
        } else {
            a.status.describe().get(lang).to_string()
        },
        email_pending: a.email_pending,
        email_confirmed: a.email_confirmed,
        marketing: a.marketing_at.is_some(),
    }
}

pub(crate) async fn apply_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let (token, set) = csrf(&web, &headers);
    let heading = if l == "en" {
        "Apply for a personal e-Cert"
    } else {
        "申請個人電子證書"
    };
    with_cookie(
        web.page(StatusCode::OK, "apply.html", l, "/ra/apply", minijinja::context! {
            csrf => token, form => crate::v(ApplyBody::default()), heading => heading, action => "/ra/apply",
        }),
        set,
    )
}

pub(crate) async fn apply(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<ApplyBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    let profile = if body.profile.is_empty() {
        "personal"
    } else {
        body.profile.as_str()
    };
    match web
        .ra
        .submit(
            &body.person(),
            profile,
            Channel::Online,
            None,
            "applicant",
            system_now(),
        )
        .await
    {
        Ok(a) => {
            let heading = if l == "en" {
                "Application received"
            } else {
                "已收到申請"
            };
            web.page(
                StatusCode::OK,
                "status.html",
                l,
                "/ra/apply",
                minijinja::context! {
                    app => crate::v(app_view(&a, l)), fresh => true, heading => heading,
                },
            )
        }
        Err(e) => {
            let heading = if l == "en" {
                "Apply for a personal e-Cert"
            } else {
                "申請個人電子證書"
            };
            web.page(
                status_of(&e),
                "apply.html",
                l,
                "/ra/apply",
                minijinja::context! {
                    csrf => body.csrf.clone(), form => crate::v(&body), error => e.message(l),
                    error_field => field_of(&e), heading => heading, action => "/ra/apply",
                },
            )
        }
    }
}

#[derive(Default, Deserialize, Serialize)]
pub(crate) struct TrackBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    date_of_birth: String,
}

pub(crate) async fn track_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    blank_form(
        &web,
        &headers,
        "track.html",
        "/ra/track",
        TrackBody::default(),
    )
}

pub(crate) async fn track(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<TrackBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    match web.ra.track(&body.reference, &body.date_of_birth).await {
        Ok(a) => status_page(&web, l, &a, &body, StatusCode::OK, None, None).await,
        Err(e) => track_refused(&web, l, &body, &e),
    }
}

#[derive(Default, Deserialize, Serialize)]
pub(crate) struct CollectBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reference: String,
    #[serde(default, skip_serializing)]
    pin: String,
}

pub(crate) async fn collect_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    blank_form(
        &web,
        &headers,
        "collect.html",
        "/ra/collect",
        CollectBody::default(),
    )
}

/// The PKCS#12 as a download, once.
pub(crate) async fn collect(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<CollectBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    let name = hallmark_ra::applications::normalise_reference(&body.reference);
    // A key recovery's mailer gives its recovery number instead.
    let collected = if name.starts_with("KR-") {
        web.ra
            .collect_recovery(&name, &body.pin, system_now())
            .await
    } else {
        web.ra.collect(&name, &body.pin, system_now()).await
    };
    match collected {
        Ok(c) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/x-pkcs12".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.p12\""),
                ),
            ],
            c.pkcs12,
        )
            .into_response(),
        Err(e) => web.page(
            status_of(&e),
            "collect.html",
            l,
            "/ra/collect",
            minijinja::context! {
                csrf => body.csrf.clone(), form => crate::v(&body), error => e.message(l),
            },
        ),
    }
}

#[derive(Default, Deserialize, Serialize)]
pub(crate) struct EmailBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    r: String,
    #[serde(default)]
    t: String,
}

/// The page the confirmation link opens: it confirms nothing by itself (a
/// mail scanner following links must not prove a mailbox), the button
/// does.
pub(crate) async fn email_form(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<EmailBody>,
) -> Response {
    let l = lang(&headers);
    let (token, set) = csrf(&web, &headers);
    with_cookie(
        web.page(
            StatusCode::OK,
            "email.html",
            l,
            "/ra/email",
            minijinja::context! { csrf => token, r => q.r, token => q.t },
        ),
        set,
    )
}

pub(crate) async fn email_confirm(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<EmailBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    match web.ra.confirm_email(&body.r, &body.t, system_now()).await {
        Ok(a) => {
            let heading = if l == "en" {
                "E-mail address confirmed"
            } else {
                "電郵地址已確認"
            };
            web.page(
                StatusCode::OK,
                "status.html",
                l,
                "/ra/email",
                minijinja::context! { app => crate::v(app_view(&a, l)), heading => heading, confirmed => true },
            )
        }
        Err(e) => web.page(
            status_of(&e),
            "email.html",
            l,
            "/ra/email",
            minijinja::context! { csrf => body.csrf.clone(), r => body.r, token => body.t, error => e.message(l) },
        ),
    }
}

/// A new confirmation link, from the status page.
pub(crate) async fn email_resend(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<TrackBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    match web
        .ra
        .resend_email(&body.reference, &body.date_of_birth, system_now())
        .await
    {
        Ok(a) => {
            status_page(
                &web,
                l,
                &a,
                &body,
                StatusCode::OK,
                Some(
                    crate::i18n::words(l)
                        .get("email_resent")
                        .copied()
                        .unwrap_or(""),
                ),
                None,
            )
            .await
        }
        Err(e) => track_refused(&web, l, &body, &e),
    }
}

#[derive(Default, Deserialize, Serialize)]
pub(crate) struct LostBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reference: String,
    #[serde(default, skip_serializing)]
    code: String,
}

pub(crate) async fn lost_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    blank_form(&web, &headers, "lost.html", "/ra/lost", LostBody::default())
}

/// The holder reports a loss with the mailer's revocation code.
pub(crate) async fn lost(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<LostBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    match web
        .ra
        .report_lost(&body.reference, &body.code, system_now())
        .await
    {
        Ok(a) => web.page(
            StatusCode::OK,
            "lost.html",
            l,
            "/ra/lost",
            minijinja::context! { done => true, reference => a.reference },
        ),
        Err(e) => web.page(
            status_of(&e),
            "lost.html",
            l,
            "/ra/lost",
            minijinja::context! {
                csrf => body.csrf.clone(), form => crate::v(&body), error => e.message(l),
            },
        ),
    }
}

/// The applicant's status page after tracking: the application, the
/// e-mail confirmation, and the counter appointment (booked, or the free
/// slots to book), with the tracking details carried in the forms.
async fn status_page(
    web: &Web,
    l: &str,
    a: &Application,
    body: &TrackBody,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> Response {
    let heading = if l == "en" {
        "Application status"
    } else {
        "申請狀態"
    };
    let open = matches!(
        a.status,
        hallmark_ra::Status::AwaitingRegistry
            | hallmark_ra::Status::AwaitingApproval
            | hallmark_ra::Status::Approved
    );
    // The appointment part is an extra: if it cannot be read, the rest
    // of the page still shows (and the error is logged).
    let booking = if open {
        web.ra
            .booking_of(&a.reference)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "reading the booking failed"))
            .ok()
            .flatten()
    } else {
        None
    };
    let slots = if open {
        web.ra
            .free_slots(system_now())
            .await
            .inspect_err(|e| tracing::error!(error = %e, "reading the free slots failed"))
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                booking.as_ref().is_none_or(|b| {
                    (b.centre.as_str(), b.starts_at) != (s.centre.as_str(), s.starts_at)
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let fee = web
        .ra
        .fee_due(a)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "reading the fee failed"))
        .ok()
        .flatten();
    web.page(
        status,
        "status.html",
        l,
        "/ra/track",
        minijinja::context! {
            app => crate::v(app_view(a, l)), heading => heading, fee => crate::v(fee),
            csrf => body.csrf.clone(), date_of_birth => body.date_of_birth.clone(),
            appointments => open, booking => crate::v(booking), slots => crate::v(slots),
            notice => notice, error => error,
        },
    )
}

#[derive(Default, Deserialize, Serialize)]
pub(crate) struct BookBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    date_of_birth: String,
    /// `CENTRE|UNIX-TIME` of the chosen slot.
    #[serde(default)]
    slot: String,
    /// `book` or `cancel`.
    #[serde(default)]
    action: String,
}

/// Books, changes or cancels the counter appointment.
pub(crate) async fn appointment(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<BookBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    let now = system_now();
    let done = if body.action == "cancel" {
        web.ra
            .cancel(&body.reference, &body.date_of_birth, now)
            .await
            .map(|()| "booking_cancelled")
    } else {
        let (centre, at) = body.slot.rsplit_once('|').unwrap_or(("", ""));
        web.ra
            .book(
                &body.reference,
                &body.date_of_birth,
                centre,
                at.parse().unwrap_or(0),
                now,
            )
            .await
            .map(|_| "booking_done")
    };
    let track = TrackBody {
        csrf: body.csrf.clone(),
        reference: body.reference.clone(),
        date_of_birth: body.date_of_birth.clone(),
    };
    let a = match web.ra.track(&body.reference, &body.date_of_birth).await {
        Ok(a) => a,
        Err(e) => {
            return track_refused(&web, l, &track, &e);
        }
    };
    match done {
        Ok(word) => {
            let note = crate::i18n::words(l).get(word).copied();
            status_page(&web, l, &a, &track, StatusCode::OK, note, None).await
        }
        Err(e) => status_page(&web, l, &a, &track, status_of(&e), None, Some(e.message(l))).await,
    }
}

/// The applicant's data as a JSON download, or withdrawing consent to
/// marketing, from the status page.
pub(crate) async fn my_data(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<BookBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    let now = system_now();
    let track = TrackBody {
        csrf: body.csrf.clone(),
        reference: body.reference.clone(),
        date_of_birth: body.date_of_birth.clone(),
    };
    if body.action == "export" {
        return match web
            .ra
            .export(&body.reference, &body.date_of_birth, now)
            .await
        {
            Ok(v) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"my-e-cert-data.json\"".to_string(),
                    ),
                ],
                serde_json::to_vec_pretty(&v).unwrap_or_default(),
            )
                .into_response(),
            Err(e) => track_refused(&web, l, &track, &e),
        };
    }
    let done = web
        .ra
        .withdraw_marketing(&body.reference, &body.date_of_birth, now)
        .await;
    match web.ra.track(&body.reference, &body.date_of_birth).await {
        Ok(a) => match done {
            Ok(()) => {
                let note = crate::i18n::words(l).get("marketing_withdrawn").copied();
                status_page(&web, l, &a, &track, StatusCode::OK, note, None).await
            }
            Err(e) => {
                status_page(&web, l, &a, &track, status_of(&e), None, Some(e.message(l))).await
            }
        },
        Err(e) => track_refused(&web, l, &track, &e),
    }
}

#[derive(Default, Deserialize)]
pub(crate) struct RenewBody {
    #[serde(default)]
    csrf: String,
    /// The current certificate, PEM.
    #[serde(default)]
    certificate: String,
    /// The new key's CSR, PEM or base64 DER.
    #[serde(default)]
    csr: String,
    /// The CSR's DER signed with the current key, base64.
    #[serde(default)]
    signature: String,
}

pub(crate) async fn renew_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let (token, set) = csrf(&web, &headers);
    with_cookie(
        web.page(
            StatusCode::OK,
            "renew.html",
            l,
            "/ra/renew",
            minijinja::context! { csrf => token },
        ),
        set,
    )
}

/// PEM, or base64 of DER (whitespace ignored).
fn der_field(s: &str, label: &str) -> Option<Vec<u8>> {
    // OpenSSL's output may carry "Bag Attributes" lines before the PEM.
    if let Some(at) = s.find("-----BEGIN") {
        return hallmark_ra::renewal::der_of(s[at..].trim().as_bytes(), label);
    }
    let compact: String = s.split_whitespace().collect();
    <base64ct::Base64 as base64ct::Encoding>::decode_vec(&compact).ok()
}

/// The renewed certificate as a PEM download.
pub(crate) async fn renew(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<RenewBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    let fields = (
        der_field(&body.certificate, "CERTIFICATE"),
        der_field(&body.csr, "CERTIFICATE REQUEST"),
        der_field(&body.signature, "SIGNATURE"),
    );
    let result = match fields {
        (Some(cert), Some(csr), Some(sig)) => web.ra.renew(&cert, &csr, &sig, system_now()).await,
        _ => Err(hallmark_ra::RaError::invalid(
            "certificate",
            "Paste the current certificate (PEM), the new CSR (PEM or base64) and the signature (base64).",
            "請貼上現有證書（PEM）、新的證書簽署要求（PEM 或 base64）及簽署（base64）。",
        )),
    };
    match result {
        Ok(r) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    "application/pem-certificate-chain".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}-{}.pem\"",
                        r.reference, r.serial_hex
                    ),
                ),
            ],
            hallmark_pki::pem::encode("CERTIFICATE", &r.certificate_der),
        )
            .into_response(),
        Err(e) => {
            let (token, set) = csrf(&web, &headers);
            with_cookie(
                web.page(
                    status_of(&e),
                    "renew.html",
                    l,
                    "/ra/renew",
                    minijinja::context! { csrf => token, error => e.message(l) },
                ),
                set,
            )
        }
    }
}

/// Pays the fee: to the provider's page.
pub(crate) async fn pay(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<TrackBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    match web
        .ra
        .start_payment(&body.reference, &body.date_of_birth, system_now())
        .await
    {
        Ok(url) => see_other(&url),
        Err(e) => match web.ra.track(&body.reference, &body.date_of_birth).await {
            Ok(a) => status_page(&web, l, &a, &body, status_of(&e), None, Some(e.message(l))).await,
            Err(e) => track_refused(&web, l, &body, &e),
        },
    }
}

/// The receipt PDF.
pub(crate) async fn receipt(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<TrackBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    match web.ra.receipt(&body.reference, &body.date_of_birth).await {
        Ok(pdf) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"receipt.pdf\"".to_string(),
                ),
            ],
            pdf,
        )
            .into_response(),
        Err(e) => track_refused(&web, l, &body, &e),
    }
}

#[derive(Default, Deserialize)]
pub(crate) struct OutcomeBody {
    #[serde(default)]
    csrf: String,
    /// `pay` or `decline`.
    #[serde(default)]
    outcome: String,
}

/// The built-in test provider's checkout page.
pub(crate) async fn test_checkout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let l = lang(&headers);
    let (token, set) = csrf(&web, &headers);
    let page = match web.ra.payment(&id).await {
        Ok(p) => web.page(
            StatusCode::OK,
            "test_pay.html",
            l,
            "/ra/pay/test",
            minijinja::context! {
                csrf => token, id => p.id, amount => hallmark_ra::fees::hkd(p.amount_cents), status => p.status,
            },
        ),
        Err(e) => (status_of(&e), e.message(l)).into_response(),
    };
    with_cookie(page, set)
}

pub(crate) async fn test_outcome(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(body): Form<OutcomeBody>,
) -> Response {
    let l = lang(&headers);
    if !csrf_ok(&headers, &body.csrf) {
        return csrf_refused(l);
    }
    let paid = body.outcome == "pay";
    match web.ra.test_provider_outcome(&id, paid, system_now()).await {
        Ok(reference) => web.page(
            StatusCode::OK,
            "test_pay.html",
            l,
            "/ra/pay/test",
            minijinja::context! { done => true, paid => paid, reference => reference },
        ),
        Err(e) => (status_of(&e), e.message(l)).into_response(),
    }
}

/// Webhooks from the payment provider (signed; no cookie, no CSRF).
pub(crate) async fn payment_webhook(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let sig = headers
        .get("hallmark-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match web.ra.payment_event(&body, sig, system_now()).await {
        Ok(applied) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "applied": applied }).to_string(),
        )
            .into_response(),
        Err(e) => (
            status_of(&e),
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::json!({ "type": "about:blank", "title": "webhook refused", "status": status_of(&e).as_u16(), "detail": e.message("en") })
                .to_string(),
        )
            .into_response(),
    }
}
