//! `hallmark audit`: the tamper-evident audit log.

use std::time::Duration;

use clap::Subcommand;

use crate::unlock::open;
use crate::{Global, Res, s};

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Re-compute the hash chain and check the signed checkpoints.
    Verify,
}

pub async fn run(g: &Global, c: AuditCmd) -> Res {
    match c {
        AuditCmd::Verify => verify(g).await,
    }
}

async fn verify(g: &Global) -> Res {
    let auth = open(g).await?;
    let bar = indicatif::ProgressBar::new_spinner().with_message("verifying audit chain");
    bar.enable_steady_tick(Duration::from_millis(120));
    let report = auth
        .verify_audit(|n| bar.set_message(format!("verified {n} entries")))
        .await
        .map_err(s)?;
    bar.finish_and_clear();
    outln!(
        "{} entries, head {}, {} signed checkpoints (last at {})",
        report.entries,
        report.head,
        report.checkpoints,
        report.last_checkpoint
    );
    if let Some((seq, hash)) = &report.anchor {
        outln!(
            "anchored head: checkpoint at entry {seq}, chain hash {hash} (keep this line in a record outside this machine)"
        );
    }
    if report.findings.is_empty() {
        outln!("audit log OK");
        Ok(())
    } else {
        for f in &report.findings {
            outln!("TAMPERED: {f}");
        }
        Err(format!(
            "the audit log fails verification ({} findings)",
            report.findings.len()
        ))
    }
}
