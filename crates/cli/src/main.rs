//! `hallmark`: one binary for every role.

/// `print!` and `println!` that end the program quietly when standard
/// output is closed (`hallmark cert list | head`) instead of panicking,
/// with the status a process killed by SIGPIPE has (128 + 13).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}
macro_rules! outln {
    () => { out!("\n") };
    ($($arg:tt)*) => {
        out!("{}\n", format_args!($($arg)*))
    };
}

pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

mod admin;
mod audit;
mod backup;
mod bench;
mod ca;
mod campaign;
mod card;
mod cert;
mod crl;
mod files;
mod init;
mod keys;
mod operator;
mod passphrase;
mod ra;
mod serve;
mod unlock;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// What a command gives back: an error is a message that says what to fix.
pub type Res<T = ()> = Result<T, String>;

pub(crate) fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

#[derive(Parser)]
#[command(
    name = "hallmark",
    version,
    about = "Hallmark trust services: certification authority, OCSP, CRLs"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Data directory (config, key store, SQLite database).
    #[arg(
        long,
        global = true,
        env = "HALLMARK_DATA_DIR",
        default_value = "hallmark-data"
    )]
    pub data_dir: PathBuf,
    /// Database URL overriding the config (e.g. postgres://127.0.0.1/test).
    #[arg(long, global = true, env = "HALLMARK_DATABASE_URL")]
    pub database_url: Option<String>,
    /// File holding the key-store passphrase (else $HALLMARK_PASSPHRASE, else a prompt).
    #[arg(long, global = true, env = "HALLMARK_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// A custodian's share of the passphrase (M-of-N); give M of them.
    #[arg(long = "share", global = true)]
    pub shares: Vec<PathBuf>,
    /// A custodian's share of the PKCS#11 user PIN (M-of-N); give M of them.
    #[arg(long = "pin-share", global = true)]
    pub pin_shares: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a data directory and run the key ceremony (root + issuing CA).
    Init(init::InitArgs),
    /// Serve OCSP, CRLs, CA certificates and the admin API.
    Serve(serve::ServeArgs),
    /// Initialise ./hallmark-data with a demo CA if absent, then serve on 127.0.0.1:8080.
    Quickstart(serve::ServeArgs),
    /// Issue, revoke and inspect certificates.
    #[command(subcommand)]
    Cert(cert::CertCmd),
    /// CRLs.
    #[command(subcommand)]
    Crl(crl::CrlCmd),
    /// CA hierarchy.
    #[command(subcommand)]
    Ca(ca::CaCmd),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Client certificates allowed to use the admin API over mutual TLS.
    #[command(subcommand)]
    AdminCert(admin::AdminCertCmd),
    /// The admin API token.
    #[command(subcommand)]
    AdminToken(admin::AdminTokenCmd),
    /// Keys in the key store (labels and algorithms only).
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Write an encrypted backup of the installation (config, keys, SQLite database).
    Backup(backup::BackupArgs),
    /// Restore a backup into --data-dir (which must be new).
    Restore(backup::RestoreArgs),
    /// The built-in population registry of the registration authority.
    #[command(subcommand)]
    Registry(ra::RegistryCmd),
    /// Registration staff accounts.
    #[command(subcommand)]
    Staff(ra::StaffCmd),
    /// Notices to holders: e-mail and printed letters (the outbox), reminders.
    #[command(subcommand)]
    Notices(ra::NoticesCmd),
    /// Counter appointments at registration centres.
    #[command(subcommand)]
    Appointments(ra::AppointmentsCmd),
    /// Registration applications (retention).
    #[command(subcommand)]
    Applications(ra::ApplicationsCmd),
    /// Bulk campaigns: applications imported, checked, approved and issued by batch.
    #[command(subcommand)]
    Campaign(campaign::CampaignCmd),
    /// Smart cards: personalisation at the counter, and which card holds which certificate.
    #[command(subcommand)]
    Card(card::CardCmd),
    /// Recovery of escrowed encipherment keys, under dual control.
    #[command(subcommand)]
    Recovery(card::RecoveryCmd),
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

async fn run(cli: Cli) -> Res {
    let g = cli.global;
    unlock::pin_quorum(&g)?;
    match cli.command {
        Command::Init(a) => init::init(&g, a, None).await.map(|_| ()),
        Command::Serve(a) => serve::serve(unlock::open(&g).await?, a).await,
        Command::Quickstart(a) => init::quickstart(g, a).await,
        Command::Cert(c) => cert::run(&g, c).await,
        Command::Crl(c) => crl::run(&g, c).await,
        Command::Ca(c) => ca::run(&g, c).await,
        Command::Audit(c) => audit::run(&g, c).await,
        Command::AdminCert(c) => admin::admin_cert(&g, c).await,
        Command::AdminToken(c) => admin::admin_token(&g, c).await,
        Command::Keys(c) => keys::run(&g, c).await,
        Command::Backup(a) => backup::backup(&g, a).await,
        Command::Restore(a) => backup::restore(&g, a).await,
        Command::Registry(c) => ra::registry(&g, c).await,
        Command::Staff(c) => ra::staff(&g, c).await,
        Command::Notices(c) => ra::notices(&g, c).await,
        Command::Appointments(c) => ra::appointments(&g, c).await,
        Command::Applications(c) => ra::applications(&g, c).await,
        Command::Campaign(c) => campaign::run(&g, c).await,
        Command::Card(c) => card::card(&g, c).await,
        Command::Recovery(c) => card::recovery(&g, c).await,
        Command::Bench(b) => bench::run(&g, b).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HALLMARK_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
