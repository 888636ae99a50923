//! Staff accounts under dual control: an administrator proposes an account
//! (who, which role, which office), a second administrator approves it,
//! and only then does it get credentials (an initial password and a TOTP
//! secret, shown once to the approver to hand over) and sign in. One
//! administrator may disable an account at once (taking access away needs
//! no second person); its sessions end with it. Every step is audited.

use hallmark_store::staff::{self as st, StaffRow};
use serde_json::json;
use zeroize::Zeroizing;

use crate::applications::REF_ALPHABET;
use crate::staff::{Enrolment, Role, Staff, check_username};
use crate::{Ra, RaError, Result, Text};

/// A proposed account.
pub struct Proposal<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub centre: Option<&'a str>,
}

/// What the approver hands to the new member of staff, once.
pub struct Approved {
    pub username: String,
    pub initial_password: Zeroizing<String>,
    pub enrolment: Enrolment,
}

fn administrators_only() -> RaError {
    RaError::Forbidden(Text::new(
        "Only administrators manage staff accounts.",
        "只有管理員可管理職員帳戶。",
    ))
}

/// An initial password: 20 characters from the reference alphabet (100
/// bits), in groups of five.
fn initial_password() -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 20]);
    hallmark_crypto::fill_random(&mut raw[..])?;
    let chars: Vec<char> = raw
        .iter()
        .map(|b| REF_ALPHABET[(*b as usize) % REF_ALPHABET.len()] as char)
        .collect();
    Ok(Zeroizing::new(
        chars
            .chunks(5)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-"),
    ))
}

impl Ra {
    /// Every staff account (administrators only).
    pub async fn staff_accounts(&self, admin: &Staff) -> Result<Vec<StaffRow>> {
        if admin.role != Role::Administrator {
            return Err(administrators_only());
        }
        Ok(self.store().staff_all().await?)
    }

    /// An administrator proposes an account; it cannot sign in until a
    /// second administrator approves it.
    pub async fn propose_staff(&self, p: Proposal<'_>, admin: &Staff, now: u64) -> Result<()> {
        if admin.role != Role::Administrator {
            return Err(administrators_only());
        }
        check_username(p.username)?;
        let name = p.display_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(RaError::invalid(
                "display_name",
                "Give the person's name (up to 100 characters).",
                "請輸入職員姓名（最多 100 個字元）。",
            ));
        }
        let centre = p.centre.map(str::trim).filter(|c| !c.is_empty());
        if p.role.handles_applications() && centre.is_none() {
            return Err(RaError::invalid(
                "centre",
                "Officers and supervisors belong to a registration centre (or partner:BANK).",
                "登記主任及主管須屬於一個登記中心（或 partner:銀行）。",
            ));
        }
        let row = StaffRow {
            username: p.username.into(),
            display_name: name.into(),
            role: p.role.as_str().into(),
            centre: centre.map(str::to_string),
            // No credentials until approved: nothing to sign in with.
            password: Vec::new(),
            totp_sealed: Vec::new(),
            totp_last_step: 0,
            failures: 0,
            locked_until: 0,
            state: "proposed".into(),
            proposed_by: Some(admin.actor()),
            approved_by: None,
            created_at: now as i64,
        };
        let mut tx = self.store().begin().await?;
        st::insert_staff(&mut tx, &row, now as i64)
            .await
            .map_err(|e| match e {
                hallmark_store::StoreError::Conflict(_) => RaError::invalid(
                    "username",
                    format!("The username {} is taken.", p.username),
                    format!("用戶名稱 {} 已被使用。", p.username),
                ),
                e => e.into(),
            })?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &admin.actor(),
            "ra.staff.propose",
            json!({"username": p.username, "role": p.role.as_str(), "centre": centre}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// A second administrator approves a proposed account: it gets its
    /// credentials, returned once.
    pub async fn approve_staff(&self, username: &str, admin: &Staff, now: u64) -> Result<Approved> {
        if admin.role != Role::Administrator {
            return Err(administrators_only());
        }
        let row = self.store().staff(username).await?.ok_or_else(|| {
            RaError::NotFound(Text::new("There is no such account.", "沒有此帳戶。"))
        })?;
        if row.state != "proposed" {
            return Err(RaError::Conflict(Text::new(
                format!(
                    "The account {username} is {}, not waiting for approval.",
                    row.state
                ),
                format!("帳戶 {username} 並非待批准狀態。"),
            )));
        }
        if row.proposed_by.as_deref() == Some(admin.actor().as_str()) {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: an account must be approved by an administrator other than the one who proposed it.",
                "雙重控制：帳戶須由建議者以外的另一名管理員批准。",
            )));
        }
        let password = initial_password()?;
        let (stored, totp_sealed, enrolment) = self.credentials(username, &password)?;
        let mut tx = self.store().begin().await?;
        st::activate_staff(&mut tx, username, (&stored, &totp_sealed), &admin.actor()).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &admin.actor(),
            "ra.staff.approve",
            json!({"username": username, "role": row.role, "centre": row.centre,
                   "proposed_by": row.proposed_by}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(Approved {
            username: username.into(),
            initial_password: password,
            enrolment,
        })
    }

    /// Disables an account at once and ends its sessions (one
    /// administrator; not their own account).
    pub async fn disable_staff(&self, username: &str, admin: &Staff, now: u64) -> Result<()> {
        if admin.role != Role::Administrator {
            return Err(administrators_only());
        }
        if username == admin.username {
            return Err(RaError::Forbidden(Text::new(
                "Administrators cannot disable their own account.",
                "管理員不可停用自己的帳戶。",
            )));
        }
        let row = self.store().staff(username).await?.ok_or_else(|| {
            RaError::NotFound(Text::new("There is no such account.", "沒有此帳戶。"))
        })?;
        let already = || {
            RaError::Conflict(Text::new(
                format!("The account {username} is already disabled."),
                format!("帳戶 {username} 已停用。"),
            ))
        };
        if row.state == "disabled" {
            return Err(already());
        }
        let mut tx = self.store().begin().await?;
        st::set_staff_state(&mut tx, username, (&row.state, "disabled"))
            .await
            .map_err(|_| already())?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &admin.actor(),
            "ra.staff.disable",
            json!({"username": username, "was": row.state}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }
}
