//! The background work of a running server: audit checkpoints, OCSP
//! signer renewal, OCSP pre-signing, scheduled CRLs, and, every 5 seconds,
//! admin-access changes, revocations made by other processes, revoked CAs
//! and CRLs owed after revocations.

use std::sync::Arc;
use std::time::Duration;

use hallmark_status::RevocationFollower;

use crate::{Authority, system_now};

/// Starts the background tasks on the current Tokio runtime; they run as
/// long as it does.
pub fn spawn(auth: Arc<Authority>) {
    let a = auth.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = a.checkpoint(system_now()).await {
                tracing::error!(error = %e, "audit checkpoint failed");
            }
            if let Err(e) = a.ensure_ocsp_signers(system_now()).await {
                tracing::error!(error = %e, "OCSP signer renewal failed");
            }
        }
    });
    let a = auth.clone();
    tokio::spawn(async move {
        // Pre-sign OCSP responses at start, then again at a quarter of their
        // validity, so cached answers are always refreshed well before
        // nextUpdate.
        let period = (a.settings().ocsp_validity_secs / 4).max(60);
        let mut tick = tokio::time::interval(Duration::from_secs(period));
        loop {
            tick.tick().await;
            match a.presign_ocsp(system_now()).await {
                Ok(n) => tracing::info!(responses = n, "pre-signed OCSP responses"),
                Err(e) => tracing::error!(error = %e, "pre-signing OCSP responses failed"),
            }
        }
    });
    let a = auth.clone();
    tokio::spawn(async move {
        // Regenerate CRLs at half their validity.
        let period = (a.settings().crl_validity_secs / 2).max(60);
        let mut tick = tokio::time::interval(Duration::from_secs(period));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = a.crls().generate_crls(None, None, system_now()).await {
                tracing::error!(error = %e, "scheduled CRL generation failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut follower = RevocationFollower::new(system_now() as i64);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            // First: a rotated (leaked) token must stop working promptly.
            match auth.reload_admin_access().await {
                Ok(true) => {
                    tracing::info!("admin token or client certificates changed: now in force")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the admin access from the config failed; keeping the previous one")
                }
            }
            if let Err(e) = follower
                .poll(&auth.store, &auth.ocsp, system_now() as i64)
                .await
            {
                tracing::warn!(error = %e, "polling for revocations failed");
            }
            if let Err(e) = auth.refresh_revoked_cas().await {
                tracing::warn!(error = %e, "reading revoked CAs failed");
            }
            match auth.crls().publish_due_crls(system_now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(crls = n, "published CRLs owed after revocations"),
                Err(e) => {
                    tracing::error!(error = %e, "publishing CRLs owed after revocations failed; retrying in 5 s")
                }
            }
        }
    });
}
