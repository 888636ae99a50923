//! Who may use the admin API: the token's digest and the allowed client
//! certificates, read from the configuration file so that a running server
//! follows `admin-token rotate` and `admin-cert add|remove`.

use std::sync::Arc;

use hallmark_install::Config;

use crate::{Authority, AuthorityError, Result, system_now};

/// Who may use the admin API: the token's digest and the allowed client
/// certificates' fingerprints (read from the config file, so that a running
/// server follows `admin-token rotate` and `admin-cert add|remove`).
#[derive(Debug, PartialEq, Eq)]
pub struct AdminAccess {
    pub token_sha256: String,
    pub client_certs: Vec<String>,
}

impl AdminAccess {
    pub(crate) fn of(cfg: &Config) -> Arc<Self> {
        Arc::new(Self {
            token_sha256: cfg.server.admin_token_sha256.clone(),
            client_certs: cfg
                .server
                .admin_client_certs
                .iter()
                .map(|f| hallmark_install::config::normalise_fingerprint(f))
                .collect(),
        })
    }
}

impl Authority {
    /// Who may use the admin API (as last read).
    pub fn admin_access(&self) -> Arc<AdminAccess> {
        match self.admin.read() {
            Ok(a) => a.clone(),
            // Nobody, rather than whoever was allowed before.
            Err(_) => Arc::new(AdminAccess {
                token_sha256: String::new(),
                client_certs: Vec::new(),
            }),
        }
    }

    /// Reads who may use the admin API from the config file again; says
    /// whether it changed. `serve` calls it with each poll.
    ///
    /// The moment a change takes effect in this process is audited too (the
    /// command that made it audited the change itself). A change takes
    /// effect even when the audit log cannot be written (a leaked token
    /// must stop working): its entry is then written with a later poll.
    pub async fn reload_admin_access(&self) -> Result<bool> {
        let fresh = AdminAccess::of(&Config::load(&self.dir)?);
        let changed = {
            let mut cur = self
                .admin
                .write()
                .map_err(|_| AuthorityError::Invalid("admin access lock poisoned".into()))?;
            (**cur != *fresh).then(|| {
                let before = std::mem::replace(&mut *cur, fresh.clone());
                serde_json::json!({
                    "token_changed": before.token_sha256 != fresh.token_sha256,
                    "client_certs": fresh.client_certs,
                    "at": system_now(),
                })
            })
        };
        let mut pending = std::mem::take(
            &mut *self
                .admin_unaudited
                .lock()
                .map_err(|_| AuthorityError::Invalid("admin access lock poisoned".into()))?,
        );
        pending.extend(changed.clone());
        while let Some(details) = pending.first().cloned() {
            if let Err(e) = self
                .store
                .record(
                    system_now() as i64,
                    "system",
                    "config.admin-access.reload",
                    details,
                )
                .await
            {
                tracing::warn!(error = %e, "the new admin access is in force, but auditing it failed; retried with the next poll");
                if let Ok(mut p) = self.admin_unaudited.lock() {
                    pending.append(&mut p);
                    *p = pending;
                }
                return Ok(changed.is_some());
            }
            pending.remove(0);
        }
        Ok(changed.is_some())
    }
}
