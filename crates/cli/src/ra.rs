//! `hallmark registry` (the built-in population registry: synthetic
//! residents, CSV import) and `hallmark staff` (registration staff accounts).

use std::io::{BufReader, Read};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use hallmark_authority::system_now;
use hallmark_ra::staff::Staff;
use hallmark_ra::{Ra, Role};

use crate::operator::actor;
use crate::unlock::open;
use crate::{Global, Res, s};

#[derive(Subcommand)]
pub enum RegistryCmd {
    /// Write synthetic residents (valid ID numbers, names in both
    /// languages, dates of birth) as a registry CSV: no real personal data.
    Synth {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// The same seed gives the same residents.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The CSV file to write (standard output if absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a registry CSV (header `id_number,name_zh,name_en,date_of_birth`),
    /// streamed and sealed; rows already there are replaced.
    Import {
        /// The CSV file ("-" for standard input).
        file: PathBuf,
    },
    /// Ask the registry again about applications it could not answer for
    /// when they were made (`serve` does this every minute).
    Recheck,
}

pub async fn registry(g: &Global, c: RegistryCmd) -> Res {
    match c {
        RegistryCmd::Synth { count, seed, out } => {
            match out {
                Some(path) => {
                    let f = std::fs::File::create(&path)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    hallmark_ra::registry::write_synthetic(std::io::BufWriter::new(f), seed, count)
                        .map_err(s)?;
                    eprintln!("{count} synthetic residents written to {}", path.display());
                }
                None => {
                    hallmark_ra::registry::write_synthetic(std::io::stdout().lock(), seed, count)
                        .map_err(s)?
                }
            }
            Ok(())
        }
        RegistryCmd::Import { file } => {
            let input: Box<dyn Read> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(&file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
                )
            };
            let auth = open(g).await?;
            let ra = Ra::open(auth.clone()).await.map_err(s)?;
            let bar = indicatif::ProgressBar::new_spinner().with_message("importing residents");
            let n = hallmark_ra::registry::import(
                auth.store(),
                ra.vault(),
                BufReader::with_capacity(1 << 16, input),
                system_now(),
                |done| bar.set_position(done),
            )
            .await
            .map_err(s)?;
            bar.finish_and_clear();
            auth.record(
                &actor(),
                "ra.registry.import",
                serde_json::json!({"rows": n}),
            )
            .await
            .map_err(s)?;
            outln!("{n} residents imported");
            Ok(())
        }
        RegistryCmd::Recheck => {
            let ra = open_ra(g).await?;
            let mut total = hallmark_ra::registry::Rechecked::default();
            loop {
                let r = ra
                    .recheck_registry(&actor(), system_now())
                    .await
                    .map_err(|e| e.to_string())?;
                if r == hallmark_ra::registry::Rechecked::default() {
                    break;
                }
                total.confirmed += r.confirmed;
                total.mismatch += r.mismatch;
                total.unknown += r.unknown;
            }
            outln!(
                "{} confirmed, {} not matching the registry, {} unknown to it",
                total.confirmed,
                total.mismatch,
                total.unknown
            );
            Ok(())
        }
    }
}

/// A staff account's password: from `file`, else $HALLMARK_STAFF_PASSWORD
/// (never an argument, which other users could read).
pub fn staff_password(
    file: Option<&std::path::Path>,
    what: &str,
) -> Result<zeroize::Zeroizing<String>, String> {
    let password = match file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        None => std::env::var("HALLMARK_STAFF_PASSWORD").map_err(|_| {
            format!("give {what} with --password-file FILE or $HALLMARK_STAFF_PASSWORD")
        })?,
    };
    Ok(zeroize::Zeroizing::new(password))
}

/// Who acts: a member of staff, with the same password and TOTP as on the
/// console.
#[derive(Args)]
pub struct StaffArgs {
    /// The staff account's username.
    #[arg(long = "as", value_name = "USERNAME")]
    pub username: String,
    /// A file holding the password (else $HALLMARK_STAFF_PASSWORD).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The current code of the account's authenticator app (else
    /// $HALLMARK_STAFF_TOTP).
    #[arg(long)]
    pub code: Option<String>,
}

impl StaffArgs {
    pub async fn sign_in(&self, ra: &Ra) -> Result<Staff, String> {
        let password = staff_password(self.password_file.as_deref(), "the password")?;
        let code = match &self.code {
            Some(c) => c.clone(),
            None => std::env::var("HALLMARK_STAFF_TOTP").map_err(|_| {
                "give the authenticator app's code with --code or $HALLMARK_STAFF_TOTP".to_string()
            })?,
        };
        ra.authenticate(&self.username, &password, &code, system_now())
            .await
            .map_err(|e| e.message("en"))
    }
}

/// The registration authority over the unlocked installation.
pub async fn open_ra(g: &Global) -> Result<std::sync::Arc<Ra>, String> {
    Ra::open(crate::unlock::open(g).await?)
        .await
        .map_err(crate::s)
}

#[derive(Subcommand)]
pub enum StaffCmd {
    /// Add a staff account; prints the TOTP secret for the person's
    /// authenticator app (shown once).
    Add {
        #[arg(long)]
        username: String,
        /// The name shown on pages and in the audit log.
        #[arg(long)]
        name: String,
        /// officer, supervisor, administrator or auditor.
        #[arg(long)]
        role: String,
        /// The registration centre (or `partner:BANK` for a partner's office).
        #[arg(long)]
        centre: Option<String>,
        /// A file holding the initial password (else $HALLMARK_STAFF_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

pub async fn staff(g: &Global, c: StaffCmd) -> Res {
    match c {
        StaffCmd::Add {
            username,
            name,
            role,
            centre,
            password_file,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                format!("--role {role:?}: use officer, supervisor, administrator or auditor")
            })?;
            let password = staff_password(password_file.as_deref(), "the initial password")?;
            let auth = open(g).await?;
            let ra = Ra::open(auth).await.map_err(s)?;
            let e = ra
                .add_staff(
                    hallmark_ra::staff::NewStaff {
                        username: &username,
                        display_name: &name,
                        role,
                        centre: centre.as_deref(),
                        password: &password,
                    },
                    &actor(),
                    system_now(),
                )
                .await
                .map_err(|e| e.message("en"))?;
            outln!("staff account {username} ({}) added", role.as_str());
            outln!(
                "TOTP secret (enter it in the authenticator app; shown once): {}",
                e.secret_base32
            );
            outln!("{}", e.otpauth_uri);
            Ok(())
        }
    }
}

#[derive(Subcommand)]
pub enum NoticesCmd {
    /// Queue the reminders that are due (before certificates expire, before
    /// free periods end, before appointments), revoke certificates left
    /// unpaid past their grace, and deliver everything due in the outbox: what `serve` does on its own
    /// every `ra.remind_every_minutes`, for a cron job or a catch-up.
    Run,
    /// How many notices are queued, being sent, sent and given up.
    Status,
}

pub async fn notices(g: &Global, c: NoticesCmd) -> Res {
    let auth = open(g).await?;
    let ra = Ra::open(auth.clone()).await.map_err(s)?;
    match c {
        NoticesCmd::Run => {
            let queued = ra.remind(system_now()).await.map_err(s)?;
            let unpaid = ra.enforce_unpaid(system_now()).await.map_err(s)?;
            let d = ra.deliver(system_now()).await.map_err(s)?;
            if unpaid > 0 {
                outln!("{unpaid} unpaid certificates revoked (cessationOfOperation)");
            }
            outln!(
                "{queued} reminders queued; {} notices delivered, {} to be tried again, {} given up",
                d.sent,
                d.retrying,
                d.failed
            );
            if auth.mail_config().smtp.is_none() {
                outln!("mail.smtp is not set in hallmark.toml: e-mail waits in the outbox");
            }
        }
        NoticesCmd::Status => {
            let c = auth.store().outbox_counts().await.map_err(s)?;
            outln!(
                "queued {}, sending {}, sent {}, given up {}",
                c.queued,
                c.sending,
                c.sent,
                c.failed
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum AppointmentsCmd {
    /// Open counter slots at a registration centre.
    Open {
        #[arg(long)]
        centre: String,
        /// The first slot, Hong Kong time: `YYYY-MM-DDTHH:MM`.
        #[arg(long)]
        start: String,
        /// How many slots, one after another.
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, default_value_t = 30)]
        every_minutes: u32,
        /// People per slot.
        #[arg(long, default_value_t = 1)]
        capacity: u32,
    },
    /// Slots with free places in the next 30 days.
    List,
}

pub async fn appointments(g: &Global, c: AppointmentsCmd) -> Res {
    let auth = open(g).await?;
    let ra = Ra::open(auth).await.map_err(s)?;
    match c {
        AppointmentsCmd::Open {
            centre,
            start,
            count,
            every_minutes,
            capacity,
        } => {
            let first = hallmark_ra::appointments::parse_hk(&start).ok_or_else(|| {
                format!("--start {start:?}: give Hong Kong time as YYYY-MM-DDTHH:MM, e.g. 2026-12-08T09:30")
            })?;
            ra.open_slots(
                &centre,
                first,
                count,
                i64::from(every_minutes) * 60,
                i64::from(capacity),
                &actor(),
                system_now(),
            )
            .await
            .map_err(s)?;
            outln!("{count} slots of {capacity} opened at {centre} from {start} (Hong Kong time)");
        }
        AppointmentsCmd::List => {
            for slot in ra.free_slots(system_now()).await.map_err(s)? {
                outln!("{}  {}  {} free", slot.label, slot.centre, slot.free);
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ApplicationsCmd {
    /// Delete applications that never completed (not collected) and were
    /// last changed more than `ra.purge_incomplete_after_days` ago, with
    /// their bookings and unsent notices (`serve` does this daily).
    Purge,
}

pub async fn applications(g: &Global, c: ApplicationsCmd) -> Res {
    let auth = open(g).await?;
    let ra = Ra::open(auth.clone()).await.map_err(s)?;
    match c {
        ApplicationsCmd::Purge => {
            let n = ra.purge(system_now()).await.map_err(s)?;
            outln!(
                "{n} incomplete applications older than {} days deleted",
                auth.ra_config().purge_incomplete_after_days
            );
        }
    }
    Ok(())
}
