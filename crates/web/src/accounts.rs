//! Staff accounts on the console (administrators only): every account
//! with its state, a form to propose one, and a second administrator's
//! approval, which shows the new account's initial password and TOTP
//! secret once; an administrator may disable an account at once. The
//! registration authority enforces the rules (`hallmark_ra::accounts`);
//! the page offers only what it would allow.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hallmark_authority::system_now;
use hallmark_ra::accounts::Proposal;
use hallmark_ra::{Role, Staff};
use serde::{Deserialize, Serialize};

use crate::staff::{CsrfBody, signed_in, signed_in_post, staff_view};
use crate::{Web, date_time, field_of, lang, status_of};

#[derive(Serialize)]
struct AccountView {
    username: String,
    display_name: String,
    role: String,
    centre: String,
    state: String,
    proposed_by: String,
    approved_by: String,
    created: String,
    can_approve: bool,
    can_disable: bool,
}

#[derive(Default, Deserialize, Serialize)]
pub(crate) struct ProposeBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    centre: String,
}

struct Shown<'a> {
    status: StatusCode,
    error: Option<String>,
    error_field: &'static str,
    notice: Option<String>,
    form: &'a ProposeBody,
}

async fn page(web: &Web, staff: &Staff, csrf: &str, l: &str, shown: Shown<'_>) -> Response {
    let rows = match web.ra.staff_accounts(staff).await {
        Ok(r) => r,
        Err(e) => return (status_of(&e), e.message(l)).into_response(),
    };
    let me = staff.actor();
    let accounts: Vec<AccountView> = rows
        .into_iter()
        .map(|r| AccountView {
            can_approve: r.state == "proposed" && r.proposed_by.as_deref() != Some(me.as_str()),
            can_disable: r.state != "disabled" && r.username != staff.username,
            username: r.username,
            display_name: r.display_name,
            role: r.role,
            centre: r.centre.unwrap_or_default(),
            state: r.state,
            proposed_by: r.proposed_by.unwrap_or_default(),
            approved_by: r.approved_by.unwrap_or_default(),
            created: date_time(r.created_at),
        })
        .collect();
    web.page(
        shown.status,
        "accounts.html",
        l,
        "/ra/staff/accounts",
        minijinja::context! {
            staff => crate::v(staff_view(staff)), csrf => csrf,
            accounts => crate::v(accounts), error => shown.error,
            error_field => shown.error_field, notice => shown.notice,
            form => crate::v(shown.form),
        },
    )
}

pub(crate) async fn accounts(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = ProposeBody::default();
    let shown = Shown {
        status: StatusCode::OK,
        error: None,
        error_field: "",
        notice: None,
        form: &form,
    };
    page(&web, &staff, &csrf, l, shown).await
}

pub(crate) async fn propose(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(body): Form<ProposeBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(&body.role) else {
        let e = hallmark_ra::RaError::invalid("role", "Choose a role.", "請選擇職級。");
        let shown = Shown {
            status: status_of(&e),
            error: Some(e.message(l)),
            error_field: field_of(&e),
            notice: None,
            form: &body,
        };
        return page(&web, &staff, &csrf, l, shown).await;
    };
    let proposal = Proposal {
        username: body.username.trim(),
        display_name: &body.display_name,
        role,
        centre: Some(body.centre.as_str()),
    };
    let empty = ProposeBody::default();
    let shown = match web.ra.propose_staff(proposal, &staff, system_now()).await {
        Ok(()) => {
            let word = crate::i18n::words(l)
                .get("account_proposed_note")
                .copied()
                .unwrap_or("");
            Shown {
                status: StatusCode::OK,
                error: None,
                error_field: "",
                notice: Some(format!("{}: {word}", body.username.trim())),
                form: &empty,
            }
        }
        Err(e) => Shown {
            status: status_of(&e),
            error: Some(e.message(l)),
            error_field: field_of(&e),
            notice: None,
            form: &body,
        },
    };
    page(&web, &staff, &csrf, l, shown).await
}

pub(crate) async fn approve(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match web.ra.approve_staff(&username, &staff, system_now()).await {
        Ok(a) => web.page(
            StatusCode::OK,
            "account_approved.html",
            l,
            "/ra/staff/accounts",
            minijinja::context! {
                staff => crate::v(staff_view(&staff)), csrf => csrf,
                username => a.username, password => a.initial_password.as_str(),
                secret => a.enrolment.secret_base32, uri => a.enrolment.otpauth_uri,
            },
        ),
        Err(e) => {
            let form = ProposeBody::default();
            let shown = Shown {
                status: status_of(&e),
                error: Some(e.message(l)),
                error_field: "",
                notice: None,
                form: &form,
            };
            page(&web, &staff, &csrf, l, shown).await
        }
    }
}

pub(crate) async fn disable(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Form(body): Form<CsrfBody>,
) -> Response {
    let l = lang(&headers);
    let (staff, csrf) = match signed_in_post(&web, &headers, &body.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = ProposeBody::default();
    let shown = match web.ra.disable_staff(&username, &staff, system_now()).await {
        Ok(()) => {
            let word = crate::i18n::words(l)
                .get("account_disabled_note")
                .copied()
                .unwrap_or("");
            Shown {
                status: StatusCode::OK,
                error: None,
                error_field: "",
                notice: Some(format!("{username}: {word}")),
                form: &form,
            }
        }
        Err(e) => Shown {
            status: status_of(&e),
            error: Some(e.message(l)),
            error_field: "",
            notice: None,
            form: &form,
        },
    };
    page(&web, &staff, &csrf, l, shown).await
}
