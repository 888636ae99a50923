//! `hallmark cert`: issue (from a CSR or with a centrally generated key),
//! revoke, show and list certificates.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Subcommand};
use hallmark_authority::system_now;
use hallmark_ca::{IssueRequest, KeySource};
use hallmark_crypto::KeyAlgorithm;
use hallmark_pki::crl::Reason;

use crate::files::create_private;
use crate::operator::actor;
use crate::unlock::open;
use crate::{Global, Res, s};

#[derive(Subcommand)]
pub enum CertCmd {
    /// Issue a certificate from a CSR or with a centrally generated key.
    Issue(IssueArgs),
    /// Revoke a certificate (final).
    Revoke {
        serial: String,
        /// keyCompromise, affiliationChanged, superseded, cessationOfOperation, …
        #[arg(long)]
        reason: String,
        /// The issuing CA's id: needed when several CAs issued the serial.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Show a certificate.
    Show {
        serial: String,
        /// The issuing CA's id: needed when several CAs issued the serial.
        #[arg(long)]
        issuer: Option<String>,
        /// Print the certificate as PEM.
        #[arg(long)]
        pem: bool,
    },
    /// List certificates, newest first.
    List {
        /// How many (1 to 10,000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
}

#[derive(Args)]
pub struct IssueArgs {
    #[arg(long)]
    pub profile: String,
    /// Subject (RFC 4514), e.g. "CN=CHAN Tai Man,C=HK".
    #[arg(long, default_value = "")]
    pub subject: String,
    #[arg(long, conflicts_with = "generate_key")]
    pub csr: Option<PathBuf>,
    /// Generate the key here and deliver it in a PKCS#12 with a one-time PIN.
    #[arg(long, requires = "p12_out")]
    pub generate_key: bool,
    /// Key type for --generate-key.
    #[arg(long, default_value = "p256")]
    pub key_type: String,
    /// Where the PKCS#12 of a generated key goes (with --generate-key).
    #[arg(long, requires = "generate_key")]
    pub p12_out: Option<PathBuf>,
    /// E-mail address for subjectAltName (only if the applicant chose so).
    #[arg(long = "email")]
    pub emails: Vec<String>,
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    #[arg(long)]
    pub days: Option<u32>,
    #[arg(long)]
    pub issuer: Option<String>,
    /// Write the certificate (PEM) here; otherwise print it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A revocation reason by its name, or an error that lists the names.
pub fn parse_reason(reason: &str) -> Res<Reason> {
    Reason::parse(reason).ok_or_else(|| {
        format!(
            "unknown reason {reason:?}; use one of {}",
            Reason::OFFERED.map(|r| r.name()).join(", ")
        )
    })
}

pub async fn run(g: &Global, c: CertCmd) -> Res {
    match c {
        CertCmd::Issue(a) => {
            let key = match (&a.csr, a.generate_key) {
                (Some(path), false) => KeySource::Csr(
                    std::fs::read(path)
                        .map_err(|e| format!("cannot read CSR {}: {e}", path.display()))?,
                ),
                (None, true) => {
                    KeySource::Generate(KeyAlgorithm::from_str(&a.key_type).map_err(s)?)
                }
                _ => return Err("give either --csr FILE or --generate-key --p12-out FILE".into()),
            };
            // The PKCS#12 file is created before the key is: a centrally
            // generated key is delivered once, so it must have somewhere to go.
            let p12_file = match &a.p12_out {
                Some(p) => Some((p, create_private(p)?)),
                None => None,
            };
            let discard = |why: String| {
                if let Some((p, _)) = &p12_file {
                    let _ = std::fs::remove_file(p);
                }
                why
            };
            let auth = open(g).await.map_err(discard)?;
            let issued = auth
                .issue(
                    IssueRequest {
                        profile: a.profile,
                        issuer: a.issuer,
                        subject: a.subject,
                        emails: a.emails,
                        dns_names: a.dns,
                        validity_days: a.days,
                        validity_secs: None,
                        key,
                        actor: actor(),
                    },
                    system_now(),
                )
                .await
                .map_err(|e| discard(e.to_string()))?;
            eprintln!("issued serial {} by {}", issued.serial_hex, issued.issuer);
            if let (Some((p12, pin)), Some((path, mut file))) = (&issued.pkcs12, p12_file) {
                use std::io::Write;
                if let Err(e) = file.write_all(p12).and_then(|()| file.sync_all()) {
                    let _ = std::fs::remove_file(path);
                    return Err(format!(
                        "cannot write {}: {e}; the certificate (serial {}) was issued but its key is lost: revoke it with `hallmark cert revoke {} --reason superseded` and issue again",
                        path.display(),
                        issued.serial_hex,
                        issued.serial_hex
                    ));
                }
                eprintln!(
                    "PKCS#12 written to {}; one-time PIN: {}",
                    path.display(),
                    pin.as_str()
                );
            }
            let pem = hallmark_pki::pem::encode("CERTIFICATE", &issued.cert_der);
            match &a.out {
                Some(p) => std::fs::write(p, &pem).map_err(|e| {
                    format!(
                        "cannot write {}: {e}; the certificate is issued and stored: `hallmark cert show {} --pem` prints it",
                        p.display(),
                        issued.serial_hex
                    )
                })?,
                None => out!("{pem}"),
            }
            auth.checkpoint(system_now()).await.map_err(s)?;
            Ok(())
        }
        CertCmd::Revoke {
            serial,
            reason,
            issuer,
        } => {
            let r = parse_reason(&reason)?;
            let auth = open(g).await?;
            let row = auth
                .revoke((issuer.as_deref(), &serial), r, &actor(), system_now())
                .await
                .map_err(s)?;
            outln!("revoked {} ({})", row.serial, r.name());
            auth.checkpoint(system_now()).await.map_err(s)?;
            Ok(())
        }
        CertCmd::Show {
            serial,
            pem,
            issuer,
        } => {
            let auth = open(g).await?;
            let serial = hallmark_authority::normalise_serial(&serial).map_err(s)?;
            let r = auth
                .certificate(issuer.as_deref(), &serial)
                .await
                .map_err(s)?;
            if pem {
                let c = r.cert.ok_or("this certificate was never issued")?;
                out!("{}", hallmark_pki::pem::encode("CERTIFICATE", &c));
                return Ok(());
            }
            let t = |v: i64| hallmark_pki::time::rfc3339(v.max(0) as u64);
            outln!("serial      {}", r.serial);
            outln!("issuer      {}", r.issuer);
            outln!("subject     {}", r.subject);
            outln!("profile     {}", r.profile);
            outln!(
                "status      {}",
                if r.revoked_at.is_some() {
                    "revoked"
                } else {
                    r.status.as_str()
                }
            );
            outln!("valid       {} .. {}", t(r.not_before), t(r.not_after));
            if let Some(at) = r.revoked_at {
                let reason = r
                    .reason
                    .and_then(|c| Reason::from_code(c as u8))
                    .map(|r| r.name())
                    .unwrap_or("unspecified");
                outln!("revoked     {} ({reason})", t(at));
            }
            Ok(())
        }
        CertCmd::List { limit } => {
            let auth = open(g).await?;
            for r in auth.certificates(limit, None).await.map_err(s)? {
                let st = if r.revoked_at.is_some() {
                    "revoked"
                } else {
                    r.status.as_str()
                };
                outln!("{}  {:<9} {:<14} {}", r.serial, st, r.profile, r.subject);
            }
            Ok(())
        }
    }
}
