//! Staff accounts and their browser sessions. People sign in with their
//! own account (a password hashed with Argon2id and a TOTP code, RFC 6238);
//! machines keep the admin token and client certificates. Five failures in
//! a row lock an account for 15 minutes; a TOTP code is accepted once. A
//! session is a random token in a cookie, kept only as its hash, bound to
//! the browser's user agent, with its own CSRF token, and it expires.

use argon2::{Algorithm, Argon2, Params, Version};
use hallmark_store::staff::{self as reg, SessionRow, StaffRow};
use zeroize::Zeroizing;

use crate::{Ra, RaError, Result, Text};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Officer,
    Supervisor,
    Administrator,
    Auditor,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "officer" => Self::Officer,
            "supervisor" => Self::Supervisor,
            "administrator" => Self::Administrator,
            "auditor" => Self::Auditor,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::Supervisor => "supervisor",
            Self::Administrator => "administrator",
            Self::Auditor => "auditor",
        }
    }
    /// Officers and supervisors handle applications.
    pub fn handles_applications(self) -> bool {
        matches!(self, Self::Officer | Self::Supervisor)
    }
}

/// A signed-in member of staff.
#[derive(Clone, Debug)]
pub struct Staff {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub centre: Option<String>,
}

impl Staff {
    /// How the audit log names them.
    pub fn actor(&self) -> String {
        format!("staff:{}", self.username)
    }
}

/// Sign-in failures in a row before the account locks.
pub const MAX_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_SECS: i64 = 15 * 60;
/// The default lifetime of a session.
pub const SESSION_SECS: i64 = 8 * 3600;
const TOTP_STEP: u64 = 30;

/// OWASP's Argon2id minimum (19 MiB, 2 passes, 1 lane).
fn argon2() -> Result<Argon2<'static>> {
    let p = Params::new(19 * 1024, 2, 1, Some(32)).map_err(|e| RaError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

fn hash_password(password: &str, salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    argon2()?
        .hash_password_into(password.as_bytes(), salt, &mut out[..])
        .map_err(|e| RaError::Internal(e.to_string()))?;
    Ok(out)
}

/// RFC 4648 base32 without padding (what authenticator apps read).
pub fn base32(bytes: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The RFC 6238 code (6 digits, HMAC-SHA-1) for time step `step`.
pub fn totp(secret: &[u8], step: u64) -> String {
    let mac = hallmark_crypto::hmac_sha1(secret, &step.to_be_bytes());
    let off = (mac[19] & 0x0f) as usize;
    let n = u32::from_be_bytes([mac[off] & 0x7f, mac[off + 1], mac[off + 2], mac[off + 3]]);
    format!("{:06}", n % 1_000_000)
}

/// A staff account to add.
pub struct NewStaff<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub centre: Option<&'a str>,
    pub password: &'a str,
}

/// A new account's TOTP secret, shown once.
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

fn wrong_credentials() -> RaError {
    RaError::Unauthorised(Text::new(
        "The username, password or one-time code is wrong.",
        "用戶名稱、密碼或一次性驗證碼不正確。",
    ))
}

/// A username is 1 to 32 of a-z, 0-9, '.', '_' and '-'.
pub(crate) fn check_username(username: &str) -> Result<()> {
    if username.is_empty()
        || username.len() > 32
        || !username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(RaError::invalid(
            "username",
            "A username is 1 to 32 of a-z, 0-9, '.', '_' and '-'.",
            "用戶名稱須為 1 至 32 個 a-z、0-9、「.」、「_」或「-」。",
        ));
    }
    Ok(())
}

fn totp_aad(username: &str) -> String {
    format!("ra-staff-totp:{username}")
}

impl Ra {
    /// Adds a staff account (an operator's command, audited as `actor`).
    /// Only while fewer than two administrators are active: the operator
    /// enrols the first two, and from then on every account is proposed
    /// by one administrator and approved by another
    /// ([`Ra::propose_staff`], [`Ra::approve_staff`]).
    pub async fn add_staff(&self, new: NewStaff<'_>, actor: &str, now: u64) -> Result<Enrolment> {
        let NewStaff {
            username,
            display_name,
            role,
            centre,
            password,
        } = new;
        if self
            .store()
            .active_staff_with_role(Role::Administrator.as_str())
            .await?
            >= 2
        {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: this installation has its administrators, so a new account is proposed by one administrator on the console's Accounts page and approved by another.",
                "雙重控制：本系統已有管理員，新帳戶須由一名管理員於控制台「帳戶」頁建議，再由另一名管理員批准。",
            )));
        }
        check_username(username)?;
        let (stored, totp_sealed, enrolment) = self.credentials(username, password)?;
        let row = StaffRow {
            username: username.into(),
            display_name: display_name.into(),
            role: role.as_str().into(),
            centre: centre.map(str::to_string),
            password: stored,
            totp_sealed,
            totp_last_step: 0,
            failures: 0,
            locked_until: 0,
            state: "active".into(),
            proposed_by: None,
            approved_by: Some(actor.into()),
            created_at: now as i64,
        };
        let mut tx = self.store().begin().await?;
        reg::insert_staff(&mut tx, &row, now as i64).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            actor,
            "ra.staff.add",
            serde_json::json!({"username": username, "role": role.as_str(), "centre": centre}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(enrolment)
    }

    /// A password's stored form (Argon2id salt ‖ hash), a new TOTP secret
    /// sealed for `username`, and the enrolment to hand to the person.
    pub(crate) fn credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(Vec<u8>, Vec<u8>, Enrolment)> {
        if password.chars().count() < 12 {
            return Err(RaError::invalid(
                "password",
                "A staff password has at least 12 characters.",
                "職員密碼最少 12 個字元。",
            ));
        }
        let mut salt = [0u8; 16];
        hallmark_crypto::fill_random(&mut salt)?;
        let mut stored = salt.to_vec();
        stored.extend_from_slice(&hash_password(password, &salt)?[..]);
        let mut secret = Zeroizing::new([0u8; 20]);
        hallmark_crypto::fill_random(&mut secret[..])?;
        let (totp_sealed, _) = self
            .vault
            .seal(&totp_aad(username), &hallmark_pki::hex(&secret[..]))?;
        let b32 = base32(&secret[..]);
        Ok((
            stored,
            totp_sealed,
            Enrolment {
                otpauth_uri: format!(
                    "otpauth://totp/Hallmark:{username}?secret={b32}&issuer=Hallmark&algorithm=SHA1&digits=6&period=30"
                ),
                secret_base32: b32,
            },
        ))
    }

    /// Checks a password and TOTP code; on success opens a session bound to
    /// `agent` and returns its cookie token and CSRF token.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        code: &str,
        agent: &str,
        lifetime_secs: i64,
        now: u64,
    ) -> Result<(String, String)> {
        let row = self.store().staff(username).await?;
        // Unknown, proposed and disabled accounts are refused alike, after
        // the same work as for a real account, so timing does not tell.
        let Some(row) = row.filter(|r| r.state == "active") else {
            let _ = hash_password(password, &[0u8; 16]);
            return Err(wrong_credentials());
        };
        let now_i = now as i64;
        if row.locked_until > now_i {
            let minutes = (row.locked_until - now_i + 59) / 60;
            return Err(RaError::Unauthorised(Text::new(
                format!(
                    "Too many failed sign-ins: this account is locked for {minutes} more minute(s)."
                ),
                format!("登入失敗次數過多：帳戶已鎖定，請於 {minutes} 分鐘後再試。"),
            )));
        }
        let ok_password = row.password.len() == 48 && {
            let salt: [u8; 16] = row.password[..16]
                .try_into()
                .map_err(|_| RaError::Internal("bad salt".into()))?;
            hallmark_crypto::constant_time_eq(
                &hash_password(password, &salt)?[..],
                &row.password[16..],
            )
        };
        let secret_hex: Zeroizing<String> =
            Zeroizing::new(self.vault.open(&totp_aad(username), &row.totp_sealed)?);
        let secret = Zeroizing::new(hallmark_pki::unhex(&secret_hex).unwrap_or_default());
        let step_now = now / TOTP_STEP;
        let code = code.trim();
        let step = [step_now.saturating_sub(1), step_now, step_now + 1]
            .into_iter()
            .find(|s| {
                hallmark_crypto::constant_time_eq(totp(&secret, *s).as_bytes(), code.as_bytes())
            });
        let mut tx = self.store().begin().await?;
        let Some(step) = step.filter(|_| ok_password) else {
            let lock = (row.failures + 1 >= MAX_FAILURES).then_some(now_i + LOCK_SECS);
            reg::login_failure(&mut tx, username, lock).await?;
            hallmark_store::audit::record(
                &mut tx,
                self.store().backend(),
                now_i,
                &format!("staff:{username}"),
                "ra.staff.sign-in-failed",
                serde_json::json!({"locked": lock.is_some()}),
            )
            .await?;
            hallmark_store::commit(tx).await?;
            return Err(wrong_credentials());
        };
        reg::login_success(&mut tx, username, step as i64)
            .await
            .map_err(|_| wrong_credentials())?;
        let mut token = [0u8; 32];
        hallmark_crypto::fill_random(&mut token)?;
        let token = hallmark_pki::hex(&token);
        let mut csrf = [0u8; 16];
        hallmark_crypto::fill_random(&mut csrf)?;
        let csrf = hallmark_pki::hex(&csrf);
        reg::insert_session(
            &mut tx,
            &hallmark_crypto::sha256(token.as_bytes()),
            &SessionRow {
                username: username.into(),
                csrf: csrf.clone(),
                agent_hash: hallmark_crypto::sha256(agent.as_bytes()).to_vec(),
                expires_at: now_i + lifetime_secs,
            },
            now_i,
        )
        .await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now_i,
            &format!("staff:{username}"),
            "ra.staff.sign-in",
            serde_json::json!({"expires_at": now_i + lifetime_secs}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok((token, csrf))
    }

    /// The member of staff and CSRF token of a live session from this
    /// browser; `None` if the session is unknown, expired or from another
    /// browser.
    pub async fn session(
        &self,
        token: &str,
        agent: &str,
        now: u64,
    ) -> Result<Option<(Staff, String)>> {
        let h = hallmark_crypto::sha256(token.as_bytes());
        let Some(s) = self.store().session(&h).await? else {
            return Ok(None);
        };
        if s.expires_at <= now as i64
            || !hallmark_crypto::constant_time_eq(
                &s.agent_hash,
                &hallmark_crypto::sha256(agent.as_bytes()),
            )
        {
            return Ok(None);
        }
        let Some(row) = self
            .store()
            .staff(&s.username)
            .await?
            .filter(|r| r.state == "active")
        else {
            return Ok(None);
        };
        let role = Role::parse(&row.role)
            .ok_or_else(|| RaError::Internal(format!("bad role {}", row.role)))?;
        Ok(Some((
            Staff {
                username: row.username,
                display_name: row.display_name,
                role,
                centre: row.centre,
            },
            s.csrf,
        )))
    }

    /// A member of staff acting from the command line: the same password,
    /// TOTP, lockout and audit as a sign-in on the console, with a session
    /// that ends when the command does.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        code: &str,
        now: u64,
    ) -> Result<Staff> {
        const AGENT: &str = "hallmark-cli";
        let (token, _) = self
            .sign_in(username, password, code, AGENT, 300, now)
            .await?;
        let staff = self.session(&token, AGENT, now).await;
        self.sign_out(&token).await?;
        staff?
            .map(|(s, _)| s)
            .ok_or_else(|| RaError::Internal("the session just opened is gone".into()))
    }

    pub async fn sign_out(&self, token: &str) -> Result<()> {
        self.store()
            .end_session(&hallmark_crypto::sha256(token.as_bytes()))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238() {
        // RFC 6238 Appendix B, SHA-1 (8 digits there; the last 6 here).
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(totp(secret, t / 30), code[2..]);
        }
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }
}
