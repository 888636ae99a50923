//! `hallmark backup` and `hallmark restore`: an encrypted archive of the
//! installation, and its restore onto a new data directory.

use std::path::PathBuf;

use clap::Args;
use hallmark_authority::system_now;

use crate::operator::{actor, record};
use crate::unlock::{kdf, open, pass};
use crate::{Global, Res, s};

#[derive(Args)]
pub struct BackupArgs {
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[arg(long = "in")]
    pub input: PathBuf,
}

pub async fn backup(g: &Global, a: BackupArgs) -> Res {
    let out = a.out;
    let auth = open(g).await?;
    let p = pass(g, false)?;
    let bytes = auth.backup(&p, &out, kdf()).await.map_err(s)?;
    record(
        &auth,
        &actor(),
        "backup.create",
        serde_json::json!({"bytes": bytes}),
    )
    .await?;
    auth.checkpoint(system_now()).await.map_err(s)?;
    eprintln!(
        "encrypted backup written to {} ({bytes} bytes)",
        out.display()
    );
    if auth.backend() != hallmark_store::Backend::Sqlite {
        eprintln!(
            "it holds the configuration, profiles and key store; the database is PostgreSQL: \
                     back it up with pg_dump or a base backup (restore the database first, then `hallmark restore`)"
        );
    }
    Ok(())
}

pub async fn restore(g: &Global, a: RestoreArgs) -> Res {
    let input = a.input;
    let p = pass(g, false)?;
    let archive = hallmark_install::backup::open(&input, &p).map_err(s)?;
    // Nothing is written (no file, no schema) before the database
    // the restored installation will use is known to be right.
    if archive.has_database() {
        if g.database_url.is_some() {
            return Err(
                "this backup holds its SQLite database, restored into the data directory; \
                         run restore without --database-url (and without $HALLMARK_DATABASE_URL)"
                    .into(),
            );
        }
    } else {
        let cfg = archive.config().map_err(s)?;
        let url = g.database_url.clone().unwrap_or(cfg.database.url.clone());
        // The password from `database.password_file` or the environment, as
        // every other command takes it.
        let url = cfg.with_password(&g.data_dir, &url).map_err(s)?;
        let holds = hallmark_store::Store::holds_installation(&url)
            .await
            .map_err(|e| format!("cannot read the database {}: {e}", redact_url(&url)))?;
        if !holds {
            return Err(format!(
                "the database {} holds no Hallmark installation. This backup holds the configuration, \
                         profiles and key store only (the database is PostgreSQL): restore the database first \
                         (pg_restore, or psql from its pg_dump), then run restore again; give \
                         --database-url if it now lives elsewhere",
                redact_url(&url)
            ));
        }
    }
    let names = hallmark_install::backup::restore(&archive, &g.data_dir, g.database_url.as_deref())
        .map_err(s)?;
    // Open it once: the passphrase fits, the keys and the database agree.
    let auth = open(g).await?;
    record(
        &auth,
        &actor(),
        "backup.restore",
        serde_json::json!({"files": names}),
    )
    .await?;
    auth.checkpoint(system_now()).await.map_err(s)?;
    eprintln!(
        "restored {} into {}",
        names.join(", "),
        g.data_dir.display()
    );
    Ok(())
}

/// A database URL fit to print: without its password.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}
