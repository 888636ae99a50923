//! Pages for registration staff: sign-in (password and TOTP), the approval
//! queue, counter applications, approval and PIN mailers. A session cookie
//! names a server-side session bound to the browser; every form carries the
//! session's CSRF token.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hallmark_authority::system_now;
use hallmark_ra::hkid::Hkid;
use hallmark_ra::{Application, Channel, RaError, Staff, Status};
use serde::{Deserialize, Serialize};

use crate::public::ApplyBody;
use crate::{Web, agent, cookies, csrf_refused, date_time, field_of, lang, see_other, status_of};

const SESSION_COOKIE: &str = "hm_session";
const SIGN_IN: &str = "/ra/staff/sign-in";
const QUEUE_PAGE: i64 = 50;

#[derive(Serialize)]
pub(crate) struct StaffView {
    display_name: String,
    role: &'static str,
    centre: Option<String>,
}

pub(crate) fn staff_view(s: &Staff) -> StaffView {
    StaffView {
        display_name: s.display_name.clone(),
        role: s.role.as_str(),
        centre: s.centre.clone(),
    }
}

/// The signed-in member of staff and the session's CSRF token, or a
/// redirect to the sign-in page.
pub(crate) async fn signed_in(web: &Web, headers: &HeaderMap) -> Result<(Staff, String), Response> {
    let Some(token) = cookies(headers).get(SESSION_COOKIE).cloned() else {
        return Err(see_other(SIGN_IN));
    };
    match web.ra.session(&token, &agent(headers), system_now()).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(see_other(SIGN_IN)),
        Err(e) => Err((status_of(&e), e.message(lang(headers))).into_response()),
    }
}

/// A form posted by a signed-in member of staff: the session, with the
/// form's CSRF token checked against it (refused otherwise).
pub(crate) async fn signed_in_post(
    web: &Web,
    headers: &HeaderMap,
    given_csrf: &str,
) -> Result<(Staff, String), Response> {
    let (staff, csrf) = signed_in(web, headers).await?;
    if !csrf_matches(&csrf, given_csrf) {
        return Err(csrf_refused(lang(headers)));
    }
    Ok((staff, csrf))
}

fn csrf_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && hallmark_crypto::constant_time_eq(expected.as_bytes(), given.as_bytes())
}

#[derive(Default, Deserialize, Serialize)]
pub(crate) struct SignInBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default, skip_serializing)]
    code: String,
}

const PRE_SESSION_COOKIE: &str = "hm_csrf";

pub(crate) async fn sign_in_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let token = crate::random_hex(16);
    let mut r = web.page(
        StatusCode::OK,
        "sign_in.html",
        l,
        SIGN_IN,
        minijinja::context! {
            csrf => token.clone(), form => crate::v(SignInBody::default()),
        },
    );
    if let Ok(v) = web.cookie(PRE_SESSION_COOKIE, &token, None).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub(crate) async fn sign_in(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<SignInBody>,
) -> Response {
    let l = lang(&headers);
    let expected = cookies(&headers)
        .get(PRE_SESSION_COOKIE)
        .cloned()
        .unwrap_or_default();
    if !csrf_matches(&expected, &body.csrf) {
        return csrf_refused(l);
    }
    match web
        .ra
        .sign_in(
            &body.username,
            &body.password,
            &body.code,
            &agent(&headers),
            web.session_secs,
            system_now(),
        )
        .await
    {
        Ok((token, _csrf)) => {
            let mut r = see_other("/ra/staff/queue");
            if let Ok(v) = web
                .cookie(SESSION_COOKIE, &token, Some(web.session_secs))
                .parse()
            {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => web.page(
            status_of(&e),
            "sign_in.html",
            l,
            SIGN_IN,
            minijinja::context! {
                csrf => body.csrf.clone(), form => crate::v(&body), error => e.message(l),
            },
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfBody {
    #[serde(default)]
    pub(crate) csrf: String,
}

pub(crate) async fn sign_out(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<CsrfBody>,
) -> Response {
    if let Err(r) = signed_in_post(&web, &headers, &body.csrf).await {
        return r;
    }
    if let Some(token) = cookies(&headers).get(SESSION_COOKIE)
        && let Err(e) = web.ra.sign_out(token).await
    {
        return (status_of(&e), e.message(lang(&headers))).into_response();
    }
    let mut r = see_other(SIGN_IN);
    if let Ok(v) = web.cookie(SESSION_COOKIE, "", Some(0)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Serialize)]
struct Row {
    reference: String,
    name_zh: String,
    name_en: String,
    masked_id: String,
    channel: &'static str,
    received: String,
}

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    #[serde(default)]
    after: Option<String>,
}

pub(crate) async fn queue(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if staff.role == hallmark_ra::Role::Administrator {
        // Administrators manage accounts; they handle no applications.
        return crate::see_other("/ra/staff/accounts");
    }
    if !hallmark_ra::applications::sees_queue(staff.role) {
        let e = RaError::Forbidden(hallmark_ra::Text::new(
            "Your role does not see the application queue.",
            "你的職級不可查看申請隊列。",
        ));
        return (status_of(&e), e.message(l)).into_response();
    }
    // Keyset paging: `after` is "created_at/reference" of the last row.
    let after = q.after.as_deref().and_then(|a| {
        let (t, r) = a.split_once('/')?;
        Some((t.parse::<i64>().ok()?, r.to_string()))
    });
    let apps = web
        .ra
        .queue(
            Status::AwaitingApproval,
            after.as_ref().map(|(t, r)| (*t, r.as_str())),
            QUEUE_PAGE,
        )
        .await;
    let apps = match apps {
        Ok(a) => a,
        Err(e) => return (status_of(&e), e.message(l)).into_response(),
    };
    let next = (apps.len() as i64 == QUEUE_PAGE)
        .then(|| {
            apps.last()
                .map(|a| format!("{}/{}", a.created_at, a.reference))
        })
        .flatten();
    let rows: Vec<Row> = apps
        .iter()
        .map(|a| Row {
            reference: a.reference.clone(),
            name_zh: a.personal.name_zh.clone(),
            name_en: a.personal.name_en.clone(),
            masked_id: Hkid::parse(&a.personal.id_number)
                .map(|h| h.masked())
                .unwrap_or_default(),
            channel: a.channel.as_str(),
            received: date_time(a.created_at),
        })
        .collect();
    web.page(StatusCode::OK, "queue.html", l, "/ra/staff/queue", minijinja::context! {
        staff => crate::v(staff_view(&staff)), csrf => csrf, apps => crate::v(&rows), next => next,
    })
}

#[derive(Serialize)]
struct Detail {
    reference: String,
    status: &'static str,
    status_text: String,
    registry: String,
    id_display: String,
    name_zh: String,
    name_en: String,
    date_of_birth: String,
    phone: String,
    email: String,
    /// "", "pending" or "confirmed": whether the address goes into the
    /// certificate, and whether its mailbox is proven.
    email_in_certificate: &'static str,
    address: String,
    channel: &'static str,
    centre: Option<String>,
    entered_by: String,
    approved_by: Option<String>,
    mailers: i64,
    issuer: Option<String>,
    serial: Option<String>,
    lost_requested_by: Option<String>,
    lost: bool,
}

fn detail(a: &Application, l: &str) -> Detail {
    Detail {
        reference: a.reference.clone(),
        status: a.status.as_str(),
        status_text: a.status.describe().get(l).to_string(),
        registry: a.registry.clone(),
        id_display: Hkid::parse(&a.personal.id_number)
            .map(|h| h.display())
            .unwrap_or_default(),
        name_zh: a.personal.name_zh.clone(),
        name_en: a.personal.name_en.clone(),
        date_of_birth: a.personal.date_of_birth.clone(),
        phone: a.personal.phone.clone(),
        email: a.personal.email.clone().unwrap_or_default(),
        email_in_certificate: match (a.personal.email_in_certificate, a.email_confirmed) {
            (false, _) => "",
            (true, false) => "pending",
            (true, true) => "confirmed",
        },
        address: a.personal.address.clone().unwrap_or_default(),
        channel: a.channel.as_str(),
        centre: a.centre.clone(),
        entered_by: a.entered_by.clone(),
        approved_by: a.approved_by.clone(),
        mailers: a.mailers,
        issuer: a.issuer.clone(),
        serial: a.serial.clone(),
        lost_requested_by: a.lost_requested_by.clone(),
        lost: a.lost,
    }
}

/// Who is looking at an application page, and in which language.
struct Viewer<'a> {
    staff: &'a Staff,
    csrf: &'a str,
    lang: &'a str,
}

async fn application_page(
    web: &Web,
    v: Viewer<'_>,
    reference: &str,
    status: StatusCode,
    error: Option<String>,
    notice: Option<&str>,
) -> Response {
    let Viewer {
        staff,
        csrf,
        lang: l,
    } = v;
    match web.ra.application(reference).await {
        Ok(a) => web.page(
            status,
            "application.html",
            l,
            &format!("/ra/staff/applications/{}", a.reference),
            minijinja::context! {
                staff => crate::v(staff_view(staff)), csrf => csrf, app => crate::v(detail(&a, l)),
                error => error, notice => notice,
            },
        ),
        Err(e) => (status_of(&e), e.message(l)).into_response(),
    }
}

pub(crate) async fn application(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !hallmark_ra::applications::sees_queue(staff.role) {
        return (StatusCode::FORBIDDEN, "forbidden").into_response();
    }
    application_page(
        &web,
        Viewer {
            staff: &staff,
            csrf: &csrf,
            lang: l,
        },
        &reference,
        StatusCode::OK,
        None,
        None,
    )
    .await
}

/// A button on an application page: signed in, CSRF checked, then `act`;
/// the page again with `note` (a word key) or the refusal.
async fn act_on(
    web: &Web,
    headers: &HeaderMap,
    reference: &str,
    body: &CsrfBody,
    note: &str,
    act: impl AsyncFnOnce(&Staff) -> hallmark_ra::Result<Application>,
) -> Response {
    let l = lang(headers);
    let (staff, csrf) = match signed_in_post(web, headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (status, error, note) = match act(&staff).await {
        Ok(_) => (
            StatusCode::OK,
            None,
            crate::i18n::words(l).get(note).copied(),
        ),
        Err(e) => (status_of(&e), Some(e.message(l)), None),
    };
    application_page(
        web,
        Viewer {
            staff: &staff,
            csrf: &csrf,
            lang: l,
        },
        reference,
        status,
        error,
        note,
    )
    .await
}

pub(crate) async fn approve(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    act_on(
        &web,
        &headers,
        &reference,
        &body,
        "approved_note",
        async |s: &Staff| web.ra.approve(&reference, s, system_now()).await,
    )
    .await
}

/// An officer enters a paper lost report.
pub(crate) async fn lost(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    act_on(
        &web,
        &headers,
        &reference,
        &body,
        "lost_requested_note",
        async |s: &Staff| web.ra.request_lost(&reference, s, system_now()).await,
    )
    .await
}

/// A supervisor confirms it: the certificate is revoked.
pub(crate) async fn lost_confirm(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    act_on(
        &web,
        &headers,
        &reference,
        &body,
        "lost_revoked_note",
        async |s: &Staff| web.ra.confirm_lost(&reference, s, system_now()).await,
    )
    .await
}

/// The PIN mailer PDF (a new PIN each time).
pub(crate) async fn mailer(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match web
        .ra
        .print_mailer(&reference, &staff, &web.collect_url, system_now())
        .await
    {
        Ok(pdf) => crate::pdf_inline(
            &format!(
                "pin-mailer-{}.pdf",
                hallmark_ra::applications::normalise_reference(&reference)
            ),
            pdf,
        ),
        Err(e) => {
            application_page(
                &web,
                Viewer {
                    staff: &staff,
                    csrf: &csrf,
                    lang: l,
                },
                &reference,
                status_of(&e),
                Some(e.message(l)),
                None,
            )
            .await
        }
    }
}

pub(crate) async fn counter_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let heading = crate::i18n::words(l)
        .get("counter_title")
        .copied()
        .unwrap_or_default();
    web.page(StatusCode::OK, "apply.html", l, "/ra/staff/counter", minijinja::context! {
        staff => crate::v(staff_view(&staff)), csrf => csrf, form => crate::v(ApplyBody::default()),
        heading => heading, action => "/ra/staff/counter",
    })
}

/// An officer enters an application for a person at the counter; another
/// officer approves it.
pub(crate) async fn counter(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<ApplyBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let heading = crate::i18n::words(l)
        .get("counter_title")
        .copied()
        .unwrap_or_default();
    if !staff.role.handles_applications() {
        return (StatusCode::FORBIDDEN, "forbidden").into_response();
    }
    let profile = if body.profile.is_empty() {
        "personal"
    } else {
        body.profile.as_str()
    };
    let channel = if staff
        .centre
        .as_deref()
        .is_some_and(|c| c.starts_with("partner:"))
    {
        Channel::Partner
    } else {
        Channel::Counter
    };
    match web
        .ra
        .submit(&body.person(), profile, channel, staff.centre.as_deref(), &staff.actor(), system_now())
        .await
    {
        Ok(a) => see_other(&format!("/ra/staff/applications/{}", a.reference)),
        Err(e) => web.page(status_of(&e), "apply.html", l, "/ra/staff/counter", minijinja::context! {
            staff => crate::v(staff_view(&staff)), csrf => csrf, form => crate::v(&body), error => e.message(l),
            error_field => field_of(&e), heading => heading, action => "/ra/staff/counter",
        }),
    }
}

/// Bar colours, one per certificate type (enough contrast on white).
const PALETTE: [&str; 6] = [
    "#1b5e8c", "#c2571a", "#2e7d32", "#6a1b9a", "#8d6e00", "#455a64",
];

/// One row of a horizontal bar chart, in SVG user units: the label at the
/// left, the bar from x = 170 up to 600 for the largest row.
#[derive(Serialize)]
struct Bar {
    label: String,
    total: i64,
    y: f64,
    /// Where the total is written, after the bar.
    end: f64,
    segments: Vec<Segment>,
}

#[derive(Serialize)]
struct Segment {
    x: f64,
    width: f64,
    colour: &'static str,
}

const BAR_X: f64 = 170.0;
const BAR_WIDTH: f64 = 400.0;
const ROW: f64 = 26.0;

fn bars(rows: &[(String, Vec<i64>)]) -> Vec<Bar> {
    let max = rows
        .iter()
        .map(|(_, c)| c.iter().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    rows.iter()
        .enumerate()
        .map(|(row, (label, counts))| {
            let mut x = BAR_X;
            let segments = counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| {
                    let width = (*n as f64 / max * BAR_WIDTH).max(1.0);
                    let s = Segment {
                        x,
                        width,
                        colour: PALETTE[i % PALETTE.len()],
                    };
                    x += width;
                    s
                })
                .collect();
            Bar {
                label: label.clone(),
                total: counts.iter().sum(),
                y: row as f64 * ROW,
                end: x + 6.0,
                segments,
            }
        })
        .collect()
}

/// The statistics page: charts drawn on the server as inline SVG.
pub(crate) async fn statistics(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let st = match web.ra.statistics(system_now()).await {
        Ok(s) => s,
        Err(e) => return (status_of(&e), e.message(l)).into_response(),
    };
    let months = bars(
        &st.months
            .iter()
            .map(|m| (m.month.clone(), m.counts.clone()))
            .collect::<Vec<_>>(),
    );
    let legend: Vec<(String, &str)> = st
        .profiles
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), PALETTE[i % PALETTE.len()]))
        .collect();
    let revocations = bars(
        &st.revocations
            .iter()
            .map(|(r, n)| (r.clone(), vec![*n]))
            .collect::<Vec<_>>(),
    );
    let channels = bars(
        &st.channels
            .iter()
            .map(|(c, all, collected)| (c.clone(), vec![*collected, all - collected]))
            .collect::<Vec<_>>(),
    );
    let words = crate::i18n::words(l);
    let channel_legend = [
        (words.get("collected").copied().unwrap_or(""), PALETTE[0]),
        (
            words.get("not_collected").copied().unwrap_or(""),
            PALETTE[1],
        ),
    ];
    web.page(
        StatusCode::OK,
        "statistics.html",
        l,
        "/ra/staff/statistics",
        minijinja::context! {
            staff => crate::v(staff_view(&staff)), csrf => csrf,
            months => crate::v(months), legend => crate::v(legend), issued_total => st.issued_total,
            revocations => crate::v(revocations), channels => crate::v(channels),
            channel_legend => crate::v(channel_legend),
        },
    )
}
