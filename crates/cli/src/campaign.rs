//! `hallmark campaign …`: bulk applications (e.g. at ID card replacement
//! centres), imported, checked, approved and issued by batch. Each step
//! prints what it did, how long it took and the process's peak memory.

use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;
use hallmark_authority::system_now;

use crate::operator::actor;
use crate::ra::{StaffArgs, open_ra};
use crate::{Global, Res, s};

#[derive(Subcommand)]
pub enum CampaignCmd {
    /// Write synthetic campaign applications (the residents `hallmark
    /// registry synth` writes for the same seed, with contact details) as
    /// a campaign CSV: no real personal data.
    Synth {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The CSV file to write (standard output if absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a campaign CSV (header
    /// `id_number,name_zh,name_en,date_of_birth,phone,email,address`) as one
    /// batch entered by a registration officer; prints the batch's id.
    Import {
        /// The CSV file ("-" for standard input).
        file: PathBuf,
        #[command(flatten)]
        staff: StaffArgs,
    },
    /// Check a batch against the population registry.
    Check { batch: String },
    /// Approve every confirmed application of a batch (a supervisor, not
    /// the officer who imported it).
    Approve {
        batch: String,
        #[command(flatten)]
        staff: StaffArgs,
    },
    /// Issue the certificates of a batch's approved applications with
    /// centrally generated keys.
    Issue {
        batch: String,
        /// Certificates per transaction (1 to 65,536); more is faster and
        /// takes more memory (about 1.5 KiB each, twice over).
        #[arg(long, default_value_t = hallmark_ra::campaign::ISSUE_PAGE)]
        page: i64,
    },
    /// Print the first PIN mailer of a batch's issued applications (PDFs
    /// named LINE-REFERENCE.pdf, for the print run), by an officer.
    Mailers {
        batch: String,
        /// The directory to write them to (created if absent).
        #[arg(long)]
        out: PathBuf,
        /// At most this many (the rest wait for the next run).
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        #[command(flatten)]
        staff: StaffArgs,
    },
    /// A batch's applications by status (every batch if none is named).
    Status { batch: Option<String> },
    /// Delete an interrupted import and its applications.
    Discard { batch: String },
}

/// The process's peak resident memory so far, in MiB (Linux).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn took(what: &str, n: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{what}: {n} in {secs:.2} s ({:.0}/s), peak memory {:.0} MiB",
        n as f64 / secs.max(1e-9),
        peak_mib()
    );
}

fn bar(what: &'static str) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new_spinner().with_message(what)
}

fn synth(count: u64, seed: u64, out: Option<&std::path::Path>) -> Res {
    let started = Instant::now();
    match out {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            hallmark_ra::campaign::write_synthetic(std::io::BufWriter::new(f), seed, count)
                .map_err(s)?;
        }
        None => hallmark_ra::campaign::write_synthetic(std::io::stdout().lock(), seed, count)
            .map_err(s)?,
    }
    took("synthetic applications written", count, started);
    Ok(())
}

pub async fn run(g: &Global, c: CampaignCmd) -> Res {
    let msg = |e: hallmark_ra::RaError| e.message("en");
    match c {
        CampaignCmd::Synth { count, seed, out } => synth(count, seed, out.as_deref())?,
        CampaignCmd::Import { file, staff } => {
            let ra = open_ra(g).await?;
            let officer = staff.sign_in(&ra).await?;
            let input: Box<dyn Read> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(&file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
                )
            };
            let started = Instant::now();
            let b = bar("importing applications");
            let r = ra
                .import_campaign(
                    BufReader::with_capacity(1 << 16, input),
                    &officer,
                    system_now(),
                    |n| b.set_position(n),
                )
                .await
                .map_err(msg)?;
            b.finish_and_clear();
            took("applications imported", r.done, started);
            outln!("{}", r.batch);
        }
        CampaignCmd::Check { batch } => {
            let ra = open_ra(g).await?;
            let started = Instant::now();
            let b = bar("checking with the registry");
            let r = ra
                .check_campaign(&batch, &actor(), system_now(), |n| b.set_position(n))
                .await
                .map_err(msg)?;
            b.finish_and_clear();
            took("applications checked", r.done, started);
            outln!(
                "{}: {} confirmed, {} not matching the registry, {} unknown to it",
                r.batch,
                r.confirmed,
                r.mismatch,
                r.unknown
            );
        }
        CampaignCmd::Approve { batch, staff } => {
            let ra = open_ra(g).await?;
            let supervisor = staff.sign_in(&ra).await?;
            let started = Instant::now();
            let r = ra
                .approve_campaign(&batch, &supervisor, system_now())
                .await
                .map_err(msg)?;
            took("applications approved", r.done, started);
            outln!(
                "{}: {} approved by {}",
                r.batch,
                r.done,
                supervisor.username
            );
        }
        CampaignCmd::Issue { batch, page } => {
            let ra = open_ra(g).await?;
            let started = Instant::now();
            let b = bar("issuing certificates");
            let r = ra
                .issue_campaign(&batch, page, &actor(), system_now(), |n| b.set_position(n))
                .await
                .map_err(msg)?;
            b.finish_and_clear();
            took("certificates issued", r.done, started);
            outln!("{}: {} certificates issued", r.batch, r.done);
        }
        CampaignCmd::Mailers {
            batch,
            out,
            limit,
            staff,
        } => {
            let ra = open_ra(g).await?;
            let officer = staff.sign_in(&ra).await?;
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            let url = format!("{}/ra/collect", ra.authority().server_config().base_url);
            let started = Instant::now();
            let n = ra
                .print_campaign_mailers(
                    &batch,
                    &officer,
                    &url,
                    limit,
                    system_now(),
                    |line, r, pdf| {
                        let f = out.join(format!("{line:07}-{r}.pdf"));
                        std::fs::write(&f, pdf).map_err(|e| {
                            hallmark_ra::RaError::Internal(format!(
                                "cannot write {}: {e}",
                                f.display()
                            ))
                        })
                    },
                )
                .await
                .map_err(msg)?;
            took("PIN mailers printed", n, started);
            outln!("{batch}: {n} PIN mailer(s) written to {}", out.display());
        }
        CampaignCmd::Status { batch } => {
            let ra = open_ra(g).await?;
            let ids = match batch {
                Some(b) => vec![b],
                None => ra
                    .authority()
                    .store()
                    .batches(100)
                    .await
                    .map_err(s)?
                    .into_iter()
                    .map(|b| b.id)
                    .collect(),
            };
            for id in ids {
                let (b, counts) = ra.campaign_status(&id).await.map_err(msg)?;
                outln!(
                    "{} ({}, {} rows, centre {}, entered by {}{})",
                    b.id,
                    b.state,
                    b.rows_imported,
                    b.centre.as_deref().unwrap_or("-"),
                    b.entered_by,
                    b.approved_by
                        .as_deref()
                        .map(|a| format!(", approved by {a}"))
                        .unwrap_or_default()
                );
                for (status, registry, issued, n) in counts {
                    let issued = if issued { ", certificate issued" } else { "" };
                    outln!("  {n:>9}  {status} (registry {registry}{issued})");
                }
            }
        }
        CampaignCmd::Discard { batch } => {
            let ra = open_ra(g).await?;
            let n = ra
                .discard_campaign(&batch, &actor(), system_now())
                .await
                .map_err(msg)?;
            outln!("{batch}: discarded with {n} application(s)");
        }
    }
    Ok(())
}
