//! `hallmark ca`: the CA hierarchy (list, show, add, rollover, re-key the
//! root, the offline root's sign-request and import, revoke a CA).

use std::path::PathBuf;
use std::str::FromStr;

use clap::Subcommand;
use hallmark_authority::system_now;
use hallmark_crypto::KeyAlgorithm;
use hallmark_install::{Config, ceremony};

use crate::cert::parse_reason;
use crate::operator::{actor, record};
use crate::unlock::{open, pass};
use crate::{Global, Res, s};

#[derive(Subcommand)]
pub enum CaCmd {
    /// List the CAs.
    List,
    /// Revoke a subordinate CA's certificate (compromise, retirement): it
    /// goes on its parent's CRL and the CA issues nothing more. Run where
    /// the parent CA is (an offline root's machine, then `crl import`).
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Print a CA certificate (PEM).
    Show { id: String },
    /// Key rollover: a new issuing CA (new key) under the root becomes the
    /// default; the old one keeps answering OCSP and signing CRLs for what it
    /// issued until its certificates expire.
    Rollover {
        /// Id of the new issuing CA.
        #[arg(long)]
        new_id: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "p256")]
        key: String,
        #[arg(long, default_value_t = 3653)]
        days: u32,
    },
    /// Re-key the root: a new root with a new key, cross-certified both ways
    /// with the current root (writes new root and cross-certificates to --out-dir).
    RekeyRoot {
        #[arg(long)]
        new_id: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "p384")]
        key: String,
        #[arg(long, default_value_t = 7305)]
        days: u32,
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// On the offline root: sign an issuing CA's CSR.
    SignRequest {
        #[arg(long)]
        id: String,
        /// Subject of the issuing CA (the CSR's subject is not used).
        #[arg(long)]
        subject: String,
        #[arg(long)]
        csr: PathBuf,
        /// Where to write the issuing CA certificate (PEM).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 3653)]
        days: u32,
    },
    /// On the online machine: install the issuing CA certificate the root signed.
    Import {
        #[arg(long)]
        id: String,
        #[arg(long)]
        cert: PathBuf,
    },
    /// Add an issuing CA under the root (needs the root key).
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        subject: String,
        /// The root to sign under (default: the oldest root).
        #[arg(long)]
        parent: Option<String>,
        #[arg(long, default_value = "p256")]
        key: String,
        #[arg(long, default_value_t = 3653)]
        days: u32,
    },
}

pub async fn run(g: &Global, c: CaCmd) -> Res {
    match c {
        CaCmd::List => {
            let auth = open(g).await?;
            for r in auth.ca_records().await.map_err(s)? {
                let role = if r.is_root { "root" } else { "issuing" };
                let fp = hallmark_pki::hex(&hallmark_crypto::sha256(&r.cert));
                outln!("{:<12} {role:<8} {}  sha256:{fp}", r.id, r.subject);
            }
            Ok(())
        }
        CaCmd::Revoke { id, reason } => {
            let r = parse_reason(&reason)?;
            let auth = open(g).await?;
            let (row, listed) = auth
                .revoke_ca(&id, r, &actor(), system_now())
                .await
                .map_err(s)?;
            outln!(
                "revoked CA {id:?} (serial {} under {}, {})",
                row.serial,
                row.issuer,
                r.name()
            );
            if !listed {
                eprintln!(
                    "warning: no CRL lists it yet: {}'s key is not here. Relying parties still accept {id:?} until \
                     `hallmark ca revoke {id} --reason {}` is run where {} is (e.g. the offline root machine) \
                     and its CRL is published (`crl generate --issuer {} --full-only --out FILE`, then `crl import`)",
                    row.issuer,
                    r.name(),
                    row.issuer,
                    row.issuer
                );
            }
            auth.checkpoint(system_now()).await.map_err(s)?;
            Ok(())
        }
        CaCmd::Show { id } => {
            let auth = open(g).await?;
            let rows = auth.ca_records().await.map_err(s)?;
            let r = rows
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| format!("no CA with id {id:?}; see `hallmark ca list`"))?;
            out!("{}", hallmark_pki::pem::encode("CERTIFICATE", &r.cert));
            Ok(())
        }
        CaCmd::Rollover {
            new_id,
            subject,
            key,
            days,
        } => {
            let p = pass(g, false)?;
            let alg = KeyAlgorithm::from_str(&key).map_err(s)?;
            let cfg = Config::load(&g.data_dir).map_err(s)?;
            let old = cfg.ca.default_issuer.clone();
            let cert = ceremony::add_issuer(
                &g.data_dir,
                &p,
                g.database_url.as_deref(),
                &ceremony::NewIssuer::new(&new_id, &subject, alg, days),
                system_now(),
            )
            .await
            .map_err(s)?;
            note_capped(&cert, days, system_now());
            Config::update(&g.data_dir, |cfg| {
                cfg.ca.default_issuer = new_id.clone();
                Ok(())
            })
            .map_err(s)?;
            // The switch is a configuration change: audited at the next start,
            // and here with what it means.
            let auth = open(g).await?;
            record(
                &auth,
                &actor(),
                "ca.rollover",
                serde_json::json!({"from": old, "to": new_id,
                            "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(&cert))}),
            )
            .await?;
            auth.checkpoint(system_now()).await.map_err(s)?;
            out!("{}", hallmark_pki::pem::encode("CERTIFICATE", &cert));
            eprintln!(
                "new certificates are issued by {new_id:?}; {old:?} keeps serving OCSP and CRLs for its own; restart `hallmark serve`"
            );
            Ok(())
        }
        CaCmd::SignRequest {
            id,
            subject,
            csr,
            out,
            days,
        } => {
            let p = pass(g, false)?;
            let csr =
                std::fs::read(&csr).map_err(|e| format!("cannot read {}: {e}", csr.display()))?;
            let cert = ceremony::sign_request(
                &g.data_dir,
                &p,
                g.database_url.as_deref(),
                &ceremony::NewIssuer::new(&id, &subject, KeyAlgorithm::EcP256, days),
                &csr,
                system_now(),
            )
            .await
            .map_err(s)?;
            note_capped(&cert, days, system_now());
            std::fs::write(&out, hallmark_pki::pem::encode("CERTIFICATE", &cert))
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            eprintln!(
                "signed issuing CA {id:?}; take {} to the online machine and run `hallmark ca import`",
                out.display()
            );
            Ok(())
        }
        CaCmd::Import { id, cert } => {
            let p = pass(g, false)?;
            let bytes =
                std::fs::read(&cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
            let der = hallmark_pki::pem::decode("CERTIFICATE", &bytes).map_err(s)?;
            ceremony::import_issuer(
                &g.data_dir,
                &p,
                g.database_url.as_deref(),
                &id,
                &der,
                system_now(),
            )
            .await
            .map_err(s)?;
            eprintln!("issuing CA {id:?} installed");
            Ok(())
        }
        CaCmd::RekeyRoot {
            new_id,
            subject,
            key,
            days,
            out_dir,
        } => {
            let p = pass(g, false)?;
            let alg = KeyAlgorithm::from_str(&key).map_err(s)?;
            let out = ceremony::rekey_root(
                &g.data_dir,
                &p,
                g.database_url.as_deref(),
                &ceremony::NewIssuer::new(&new_id, &subject, alg, days),
                system_now(),
            )
            .await
            .map_err(s)?;
            std::fs::create_dir_all(&out_dir)
                .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
            for (name, der) in [
                (format!("{new_id}.pem"), &out.new_root),
                (format!("cross-{new_id}-by-old.pem"), &out.new_by_old),
                (format!("cross-old-by-{new_id}.pem"), &out.old_by_new),
            ] {
                std::fs::write(
                    out_dir.join(&name),
                    hallmark_pki::pem::encode("CERTIFICATE", der),
                )
                .map_err(|e| format!("cannot write {name}: {e}"))?;
            }
            eprintln!(
                "new root {new_id:?} and both cross-certificates written to {}",
                out_dir.display()
            );
            Ok(())
        }
        CaCmd::Add {
            id,
            subject,
            parent,
            key,
            days,
        } => {
            let p = pass(g, false)?;
            let alg = KeyAlgorithm::from_str(&key).map_err(s)?;
            let cert = ceremony::add_issuer(
                &g.data_dir,
                &p,
                g.database_url.as_deref(),
                &ceremony::NewIssuer::new(&id, &subject, alg, days).under(parent.as_deref()),
                system_now(),
            )
            .await
            .map_err(s)?;
            out!("{}", hallmark_pki::pem::encode("CERTIFICATE", &cert));
            note_capped(&cert, days, system_now());
            eprintln!("issuing CA {id:?} added; restart `hallmark serve` to use it");
            Ok(())
        }
    }
}

/// Says so when a CA certificate ends before the `days` asked for (a CA
/// never outlives the one that certifies it).
fn note_capped(cert: &[u8], days: u32, now: u64) {
    if let Ok(c) = hallmark_pki::cert::parse(cert) {
        let end = hallmark_pki::time::unix(&c.tbs_certificate().validity().not_after);
        if end + 86_400 < now + u64::from(days) * 86_400 {
            eprintln!(
                "note: valid until {} only, not {days} days: a CA certificate cannot outlive its issuer's",
                hallmark_pki::time::rfc3339(end)
            );
        }
    }
}
