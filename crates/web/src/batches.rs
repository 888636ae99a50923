//! Campaign batches on the staff console: every batch with its
//! applications by stage, and a supervisor's approval of a whole batch,
//! under the same rules as `hallmark campaign approve` (a supervisor of the
//! batch's centre who did not import it; the RA refuses anyone else).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hallmark_authority::system_now;
use hallmark_ra::{RaError, Role, Staff};
use serde::Serialize;

use crate::staff::{CsrfBody, signed_in, signed_in_post, staff_view};
use crate::{Web, date_time, lang, status_of};

/// Batches shown, newest first.
const BATCHES_SHOWN: i64 = 100;

#[derive(Default, Serialize)]
struct BatchView {
    id: String,
    centre: String,
    importing: bool,
    created: String,
    rows: i64,
    to_check: i64,
    unconfirmed: i64,
    awaiting: i64,
    to_issue: i64,
    issued: i64,
    collected: i64,
    entered_by: String,
    approved_by: String,
    can_approve: bool,
}

async fn views(web: &Web, staff: &Staff) -> hallmark_ra::Result<Vec<BatchView>> {
    let mut out = Vec::new();
    for b in web.ra.authority().store().batches(BATCHES_SHOWN).await? {
        let counts = web.ra.authority().store().batch_counts(&b.id).await?;
        let mut v = BatchView {
            id: b.id,
            centre: b.centre.clone().unwrap_or_default(),
            importing: b.state != "imported",
            created: date_time(b.created_at),
            rows: b.rows_imported,
            entered_by: b.entered_by.clone(),
            approved_by: b.approved_by.unwrap_or_default(),
            ..BatchView::default()
        };
        for (status, registry, issued, n) in counts {
            match (status.as_str(), registry.as_str(), issued) {
                ("awaiting-registry", "pending", _) => v.to_check += n,
                ("awaiting-registry", _, _) => v.unconfirmed += n,
                ("awaiting-approval", _, _) => v.awaiting += n,
                ("approved", _, false) => v.to_issue += n,
                ("approved", _, true) => v.issued += n,
                ("activated", _, _) => v.collected += n,
                _ => {}
            }
        }
        // Only offered where it would be allowed; the RA decides anyway.
        v.can_approve = staff.role == Role::Supervisor
            && v.awaiting > 0
            && !v.importing
            && b.entered_by != staff.actor()
            && (staff.centre.is_none() || staff.centre == b.centre);
        out.push(v);
    }
    Ok(out)
}

async fn page(
    web: &Web,
    staff: &Staff,
    csrf: &str,
    l: &str,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    match views(web, staff).await {
        Ok(batches) => web.page(
            status,
            "batches.html",
            l,
            "/ra/staff/batches",
            minijinja::context! {
                staff => crate::v(staff_view(staff)), csrf => csrf,
                batches => crate::v(batches), error => error, notice => notice,
            },
        ),
        Err(e) => (status_of(&e), e.message(l)).into_response(),
    }
}

fn sees_batches(staff: &Staff) -> Result<(), RaError> {
    if staff.role.handles_applications() {
        return Ok(());
    }
    Err(RaError::Forbidden(hallmark_ra::Text::new(
        "Your role does not see campaign batches.",
        "你的職級不可查看批次申請。",
    )))
}

pub(crate) async fn batches(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = sees_batches(&staff) {
        return (status_of(&e), e.message(l)).into_response();
    }
    page(&web, &staff, &csrf, l, StatusCode::OK, None, None).await
}

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
    let (status, error, notice) = match web.ra.approve_campaign(&id, &staff, system_now()).await {
        Ok(r) => {
            let word = crate::i18n::words(l)
                .get("batch_approved_note")
                .copied()
                .unwrap_or("");
            (
                StatusCode::OK,
                None,
                Some(format!("{id}: {word} {}", r.done)),
            )
        }
        Err(e) => (status_of(&e), Some(e.message(l)), None),
    };
    page(&web, &staff, &csrf, l, status, error, notice).await
}
