//! Key recoveries on the staff console: an officer requests the recovery
//! of an application's escrowed encipherment key (the holder and their
//! identity document in front of them); a supervisor of the same office
//! who did not request it approves and prints the recovery's PIN mailer;
//! an open recovery can be cancelled. The registration authority enforces
//! the rules (`hallmark_ra::recovery`); the page offers only what it would
//! allow.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hallmark_authority::system_now;
use hallmark_ra::{RaError, Role, Staff};
use serde::{Deserialize, Serialize};

use crate::staff::{CsrfBody, signed_in, signed_in_post, staff_view};
use crate::{Web, date_time, lang, status_of};

#[derive(Serialize)]
struct RecoveryView {
    id: String,
    reference: String,
    serial: String,
    state: String,
    requested_by: String,
    requested: String,
    approved_by: String,
    can_approve: bool,
    can_cancel: bool,
}

#[derive(Default, Deserialize)]
pub(crate) struct RequestBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reference: String,
}

fn sees_recoveries(staff: &Staff) -> Result<(), RaError> {
    if staff.role.handles_applications() {
        return Ok(());
    }
    Err(RaError::Forbidden(hallmark_ra::Text::new(
        "Your role does not handle key recoveries.",
        "你的職級不可處理密碼匙恢復。",
    )))
}

async fn page(
    web: &Web,
    (staff, csrf, l): (&Staff, &str, &str),
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    if let Err(e) = sees_recoveries(staff) {
        return (status_of(&e), e.message(l)).into_response();
    }
    let rows = match web.ra.recoveries(None).await {
        Ok(r) => r,
        Err(e) => return (status_of(&e), e.message(l)).into_response(),
    };
    let me = staff.actor();
    let recoveries: Vec<RecoveryView> = rows
        .into_iter()
        .map(|r| RecoveryView {
            can_approve: r.state == "requested"
                && staff.role == Role::Supervisor
                && r.requested_by != me
                && r.centre == staff.centre,
            can_cancel: matches!(r.state.as_str(), "requested" | "approved"),
            id: r.id,
            reference: r.reference,
            serial: r.serial,
            state: r.state,
            requested_by: r.requested_by,
            requested: date_time(r.requested_at),
            approved_by: r.approved_by.unwrap_or_default(),
        })
        .collect();
    web.page(
        status,
        "recoveries.html",
        l,
        "/ra/staff/recoveries",
        minijinja::context! {
            staff => crate::v(staff_view(staff)), csrf => csrf,
            recoveries => crate::v(recoveries), error => error, notice => notice,
        },
    )
}

pub(crate) async fn recoveries(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    page(&web, (&staff, &csrf, l), StatusCode::OK, None, None).await
}

pub(crate) async fn request(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<RequestBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (status, error, notice) = match web
        .ra
        .request_recovery(&body.reference, &staff, system_now())
        .await
    {
        Ok(r) => {
            let word = crate::i18n::words(l)
                .get("recovery_requested_note")
                .copied()
                .unwrap_or("");
            (StatusCode::OK, None, Some(format!("{}: {word}", r.id)))
        }
        Err(e) => (status_of(&e), Some(e.message(l)), None),
    };
    page(&web, (&staff, &csrf, l), status, error, notice).await
}

/// Approves and returns the recovery's PIN mailer (a PDF), once.
pub(crate) async fn approve(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match web
        .ra
        .approve_recovery(&id, &staff, &web.collect_url, system_now())
        .await
    {
        Ok(pdf) => crate::pdf_inline(
            &format!(
                "recovery-mailer-{}.pdf",
                hallmark_ra::applications::normalise_reference(&id)
            ),
            pdf,
        ),
        Err(e) => {
            page(
                &web,
                (&staff, &csrf, l),
                status_of(&e),
                Some(e.message(l)),
                None,
            )
            .await
        }
    }
}

pub(crate) async fn cancel(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (status, error, notice) = match web.ra.cancel_recovery(&id, &staff, system_now()).await {
        Ok(()) => {
            let word = crate::i18n::words(l)
                .get("recovery_cancelled_note")
                .copied()
                .unwrap_or("");
            (StatusCode::OK, None, Some(format!("{id}: {word}")))
        }
        Err(e) => (status_of(&e), Some(e.message(l)), None),
    };
    page(&web, (&staff, &csrf, l), status, error, notice).await
}
