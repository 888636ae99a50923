//! `hallmark crl`: generate CRLs now, or publish one signed elsewhere (an
//! offline root's).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use hallmark_authority::system_now;
use hallmark_store::crls::FULL_CRL;

use crate::operator::actor;
use crate::unlock::open;
use crate::{Global, Res, s};

#[derive(Subcommand)]
pub enum CrlCmd {
    /// Generate the full and shard CRLs now.
    Generate {
        #[arg(long)]
        issuer: Option<String>,
        /// Only the full CRL of --issuer (no shards).
        #[arg(long, requires = "issuer")]
        full_only: bool,
        /// Also write that full CRL (DER) here, e.g. to take an offline
        /// root's CRL to the online machine (`crl import`).
        #[arg(long, requires = "full_only")]
        out: Option<PathBuf>,
    },
    /// Publish a full CRL signed elsewhere (an offline root's): checked
    /// against the CA's certificate and served at its CRL address.
    Import {
        #[arg(long)]
        issuer: String,
        /// The CRL, DER or PEM.
        file: PathBuf,
    },
}

pub async fn run(g: &Global, c: CrlCmd) -> Res {
    match c {
        CrlCmd::Import { issuer, file } => {
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let auth = open(g).await?;
            let c = auth
                .import_crl(&issuer, &bytes, &actor(), system_now())
                .await
                .map_err(s)?;
            outln!(
                "{} full: CRL number {} published, {} entries, {} bytes",
                c.issuer,
                c.number,
                c.entries,
                c.bytes
            );
            auth.checkpoint(system_now()).await.map_err(s)?;
            Ok(())
        }
        CrlCmd::Generate {
            issuer,
            full_only,
            out: out_file,
        } => {
            let auth = open(g).await?;
            let spin = indicatif::ProgressBar::new_spinner().with_message("generating CRLs");
            spin.enable_steady_tick(Duration::from_millis(120));
            let out = match (&issuer, full_only) {
                (Some(i), true) => vec![
                    auth.crls()
                        .generate_crl(i, FULL_CRL, system_now())
                        .await
                        .map_err(s)?,
                ],
                _ => auth
                    .crls()
                    .generate_crls(issuer.as_deref(), None, system_now())
                    .await
                    .map_err(s)?,
            };
            spin.finish_and_clear();
            for c in out {
                let which = if c.shard < 0 {
                    "full".to_string()
                } else {
                    format!("shard {}", c.shard)
                };
                if c.published {
                    outln!(
                        "{} {which}: CRL number {}, {} entries, {} bytes",
                        c.issuer,
                        c.number,
                        c.entries,
                        c.bytes
                    );
                } else {
                    outln!(
                        "{} {which}: CRL number {} superseded by a later one made meanwhile",
                        c.issuer,
                        c.number
                    );
                }
            }
            if let (Some(path), Some(i)) = (&out_file, &issuer) {
                let crl = auth.crl(i, FULL_CRL).await.map_err(s)?;
                std::fs::write(path, &crl.der)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                eprintln!(
                    "CRL written to {}; publish it on the online machine with `hallmark crl import --issuer {i} {}`",
                    path.display(),
                    path.display()
                );
            }
            auth.checkpoint(system_now()).await.map_err(s)?;
            Ok(())
        }
    }
}
