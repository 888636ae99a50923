//! `hallmark admin-cert` and `hallmark admin-token`: who may use the admin
//! API (client certificates over mutual TLS, the bearer token).

use std::path::PathBuf;

use clap::Subcommand;
use hallmark_authority::system_now;
use hallmark_install::Config;

use crate::operator::{actor, record};
use crate::unlock::open;
use crate::{Global, Res, s};

#[derive(Subcommand)]
pub enum AdminTokenCmd {
    /// Replace the admin API token with a new one (printed once); the old
    /// one stops working within 5 seconds in a running `serve`.
    Rotate,
}

#[derive(Subcommand)]
pub enum AdminCertCmd {
    /// Allow a client certificate (issued here with clientAuth, e.g. a
    /// `personal` one) to use the admin API over mutual TLS; a running
    /// `serve` follows within 5 seconds.
    Add {
        #[arg(long)]
        cert: PathBuf,
    },
    /// List the allowed client certificates.
    List,
    /// Withdraw one, by its SHA-256 fingerprint (as `list` shows it); a
    /// running `serve` follows within 5 seconds.
    Remove { sha256: String },
}

/// For `admin-cert list`: "subject  serial S  status" of each allowed
/// certificate, by fingerprint; empty (with a warning) when the database
/// cannot be read.
async fn admin_certs_known(g: &Global, cfg: &Config) -> std::collections::HashMap<String, String> {
    let mut known = std::collections::HashMap::new();
    let store = match cfg.connect(&g.data_dir, g.database_url.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: cannot read the database ({e}); fingerprints only");
            return known;
        }
    };
    let added = store
        .audit_details("config.admin-cert.add")
        .await
        .unwrap_or_default();
    for d in added {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&d) else {
            continue;
        };
        let (Some(fp), Some(serial), Some(subject)) = (
            v["sha256"].as_str(),
            v["serial"].as_str(),
            v["subject"].as_str(),
        ) else {
            continue;
        };
        let status = match store.get_cert(None, serial).await {
            Ok(c) if c.revoked_at.is_some() => "REVOKED",
            Ok(c) if c.not_after < system_now() as i64 => "EXPIRED",
            Ok(_) => "valid",
            Err(_) => "not found",
        };
        known.insert(
            fp.to_string(),
            format!("{subject}  serial {serial}  {status}"),
        );
    }
    known
}

/// Manages the client certificates allowed on the admin listener.
pub async fn admin_cert(g: &Global, c: AdminCertCmd) -> Res {
    let cfg = Config::load(&g.data_dir).map_err(s)?;
    match c {
        AdminCertCmd::List => {
            // Who each is, from the audit entry that allowed it, and where
            // the certificate stands now (no passphrase needed).
            let known = admin_certs_known(g, &cfg).await;
            for fp in &cfg.server.admin_client_certs {
                match known.get(fp) {
                    Some(who) => outln!("{fp}  {who}"),
                    None => outln!("{fp}"),
                }
            }
            Ok(())
        }
        AdminCertCmd::Add { cert } => {
            let bytes =
                std::fs::read(&cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
            let blocks = bytes
                .windows(27)
                .filter(|w| *w == b"-----BEGIN CERTIFICATE-----")
                .count();
            if blocks > 1 {
                return Err(format!(
                    "{} holds {blocks} certificates; give the admin's client certificate alone, without its chain",
                    cert.display()
                ));
            }
            let der = hallmark_pki::pem::decode("CERTIFICATE", &bytes)
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let parsed =
                hallmark_pki::cert::parse(&der).map_err(|e| format!("{}: {e}", cert.display()))?;
            // What the certificate is first (a CA certificate given by
            // mistake is named as such), then whether it is one of ours.
            if hallmark_pki::cert::is_ca(&parsed).map_err(s)? {
                return Err(format!(
                    "{} is a CA certificate; give the admin's own client certificate (an end-entity \
                     certificate with clientAuth, e.g. from the `personal` profile)",
                    cert.display()
                ));
            }
            if !hallmark_pki::cert::has_eku(&parsed, &const_oid::db::rfc5280::ID_KP_CLIENT_AUTH)
                .map_err(s)?
            {
                return Err(format!(
                    "{} has no clientAuth extended key usage (a server certificate?), so TLS clients cannot use \
                     it; give an end-entity certificate from a profile with clientAuth (e.g. `personal`)",
                    cert.display()
                ));
            }
            let serial = hallmark_pki::hex(parsed.tbs_certificate().serial_number().as_bytes());
            let auth = open(g).await?;
            let row = match auth.stored_certificate(&der).await {
                Ok(Some(row)) => row,
                Ok(None) => {
                    return Err(format!(
                        "{} was not issued by this installation; admin client certificates must be issued here \
                         (e.g. `hallmark cert issue --profile personal --generate-key …`)",
                        cert.display()
                    ));
                }
                Err(e) => return Err(e.to_string()),
            };
            if row.cert.as_deref() != Some(der.as_slice())
                || row.revoked_at.is_some()
                || row.not_after < system_now() as i64
            {
                return Err(format!(
                    "{} is not a valid certificate of this installation (revoked, expired, or not the one issued with serial {serial})",
                    cert.display()
                ));
            }
            let fp = hallmark_pki::hex(&hallmark_crypto::sha256(&der));
            Config::update(&g.data_dir, |cfg| {
                if !cfg.server.admin_client_certs.contains(&fp) {
                    cfg.server.admin_client_certs.push(fp.clone());
                }
                Ok(())
            })
            .map_err(s)?;
            record(
                &auth,
                &actor(),
                "config.admin-cert.add",
                serde_json::json!({"sha256": fp, "serial": serial, "subject": row.subject}),
            )
            .await?;
            outln!("{fp}");
            eprintln!(
                "allowed {} ({}) on the admin listener (`serve --admin-https-listen`); a running server follows within 5 seconds",
                row.subject, serial
            );
            Ok(())
        }
        AdminCertCmd::Remove { sha256 } => {
            let fp = hallmark_install::config::normalise_fingerprint(&sha256);
            Config::update(&g.data_dir, |cfg| {
                let before = cfg.server.admin_client_certs.len();
                cfg.server.admin_client_certs.retain(|f| *f != fp);
                if cfg.server.admin_client_certs.len() == before {
                    return Err(hallmark_install::InstallError::Invalid(format!(
                        "{fp} is not an allowed admin certificate; see `hallmark admin-cert list`"
                    )));
                }
                Ok(())
            })
            .map_err(s)?;
            let auth = open(g).await?;
            record(
                &auth,
                &actor(),
                "config.admin-cert.remove",
                serde_json::json!({"sha256": fp}),
            )
            .await?;
            eprintln!("removed; a running server refuses it within 5 seconds");
            Ok(())
        }
    }
}

/// Replaces the admin API token.
pub async fn admin_token(g: &Global, c: AdminTokenCmd) -> Res {
    match c {
        AdminTokenCmd::Rotate => {
            // Rotated first: this is also how a broken token digest in
            // hallmark.toml is repaired (opening the installation would
            // refuse the file). The token is printed whatever follows.
            let token = hallmark_install::ceremony::rotate_admin_token(&g.data_dir).map_err(s)?;
            outln!("{}", token.as_str());
            eprintln!(
                "the new admin token is printed above, once: store it now; the old one stops working within 5 seconds"
            );
            let audited = match open(g).await {
                Ok(auth) => {
                    record(
                        &auth,
                        &actor(),
                        "config.admin-token.rotate",
                        serde_json::json!({}),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            audited.map_err(|e| {
                format!("the token was rotated, but the audit log could not record it: {e}")
            })
        }
    }
}
