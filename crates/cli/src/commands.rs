//! The subcommands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use hallmark_ca::{IssueRequest, KeySource};
use hallmark_crypto::KeyAlgorithm;
use hallmark_keys::{KdfParams, Passphrase};
use hallmark_pki::crl::Reason;
use hallmark_ra::ceremony::{self, InitOptions};
use hallmark_ra::{Authority, system_now};

use crate::{Cli, Command, Global, passphrase};

pub type Res<T = ()> = Result<T, String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

#[derive(Args)]
pub struct InitArgs {
    /// Subject of the root CA (RFC 4514; Chinese is fine).
    #[arg(long, default_value = "CN=Hallmark Root CA,O=Hallmark,C=HK")]
    pub root_subject: String,
    /// Subject of the issuing CA.
    #[arg(long, default_value = "CN=Hallmark Issuing CA 1,O=Hallmark,C=HK")]
    pub issuing_subject: String,
    /// Id of the issuing CA (used in URLs: /ca/ID.crt, /crl/ID.crl).
    #[arg(long, default_value = "issuing")]
    pub issuing_id: String,
    /// Root key: p384 (default), p256, rsa3072, rsa4096.
    #[arg(long, default_value = "p384")]
    pub root_key: String,
    /// Issuing CA key: p256 (default), p384, rsa2048, rsa3072, rsa4096.
    #[arg(long, default_value = "p256")]
    pub issuing_key: String,
    #[arg(long, default_value_t = 7305)]
    pub root_days: u32,
    #[arg(long, default_value_t = 3653)]
    pub issuing_days: u32,
    /// Certificate-policy OID arc (profiles use ARC.1.1, ARC.1.2, …).
    #[arg(long, default_value = "1.3.6.1.4.1.59999.1")]
    pub policy_arc: String,
    /// URL of the Certification Practice Statement, put in certificatePolicies.
    #[arg(long)]
    pub cps_uri: Option<String>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Public base URL for CDP and AIA (default: http://LISTEN).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Create only the root (keep it offline; sign issuing CAs with `ca sign-request`).
    #[arg(long, conflicts_with = "root_cert")]
    pub root_only: bool,
    /// The root is elsewhere (offline): trust this root certificate (PEM)…
    #[arg(long, requires = "issuing_csr_out")]
    pub root_cert: Option<PathBuf>,
    /// …and write the issuing CA's CSR here for the root to sign.
    #[arg(long, requires = "root_cert")]
    pub issuing_csr_out: Option<PathBuf>,
    /// Where CA, OCSP, audit and TLS keys live: software (default) or pkcs11.
    #[arg(long, default_value = "software")]
    pub key_store: String,
    /// PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long)]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token. The user PIN comes from $HALLMARK_PKCS11_PIN
    /// or --pkcs11-pin-file.
    #[arg(long)]
    pub pkcs11_token: Option<String>,
    #[arg(long)]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// How RSA CA keys sign: pkcs1 (PKCS#1 v1.5) or pss (RSASSA-PSS).
    #[arg(long, value_parser = ["pkcs1", "pss"])]
    pub rsa_padding: Option<String>,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Listen address (overrides the config).
    #[arg(long)]
    pub listen: Option<String>,
    /// Also serve HTTPS here (overrides server.https_listen).
    #[arg(long)]
    pub https_listen: Option<String>,
    /// Also serve the admin API over mutual TLS here (overrides
    /// server.admin_https_listen); see `hallmark admin-cert`.
    #[arg(long)]
    pub admin_https_listen: Option<String>,
}

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
    },
    /// Show a certificate.
    Show {
        serial: String,
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

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Re-compute the hash chain and check the signed checkpoints.
    Verify,
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Labels and algorithms of the keys (never key material).
    List,
    /// Split the key-store passphrase into N custodian shares, any M of
    /// which open the key store (pass them with --share FILE, M times).
    Split {
        #[arg(long)]
        m: u8,
        #[arg(long)]
        n: u8,
        /// Directory for the share files (share-1.txt …, mode 0600).
        #[arg(long)]
        out_dir: PathBuf,
        /// Seal each share to its custodian (give N names): the share is
        /// encrypted under the custodian's own passphrase, asked for at the
        /// terminal or read from $HALLMARK_CUSTODIAN_PASSPHRASE_<NAME>.
        #[arg(long = "custodian")]
        custodians: Vec<String>,
    },
    /// Sign and verify a test message with every key.
    Test,
    /// Split the PKCS#11 user PIN (from $HALLMARK_PKCS11_PIN or the PIN file)
    /// into N custodian shares, any M of which stand in for it (--pin-share).
    SplitPin {
        #[arg(long)]
        m: u8,
        #[arg(long)]
        n: u8,
        #[arg(long)]
        out_dir: PathBuf,
        /// Seal each share to its custodian, as for `keys split`.
        #[arg(long = "custodian")]
        custodians: Vec<String>,
    },
}

pub fn pass(g: &Global, confirm: bool) -> Res<Passphrase> {
    if !g.shares.is_empty() {
        return quorum(g).map(|(p, _)| p);
    }
    passphrase::obtain(g.passphrase_file.as_deref(), &g.data_dir, confirm)
}

/// Reads share files; a sealed share is opened with its custodian's
/// passphrase. Returns the shares and who was present (custodian names,
/// or share numbers for plain shares).
fn read_shares(files: &[PathBuf]) -> Res<(Vec<hallmark_keys::shamir::Share>, Vec<String>)> {
    let (mut shares, mut present) = (Vec::new(), Vec::new());
    for f in files {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read share {}: {e}", f.display()))?,
        );
        let at = |e: hallmark_keys::KeyError| format!("{}: {e}", f.display());
        match hallmark_keys::shamir::sealed_custodian(&text) {
            Some(name) => {
                let p = passphrase::custodian(name, false)?;
                let (name, share) = hallmark_keys::shamir::open(&text, &p).map_err(at)?;
                present.push(name);
                shares.push(share);
            }
            None => {
                let share = hallmark_keys::shamir::Share::decode(&text).map_err(at)?;
                present.push(format!("share {}", share.index));
                shares.push(share);
            }
        }
    }
    Ok((shares, present))
}

/// The PKCS#11 PIN from M custodians' `--pin-share` files, handed to the
/// key configuration for this process.
fn pin_quorum(g: &Global) -> Res {
    if g.pin_shares.is_empty() {
        return Ok(());
    }
    let secret = hallmark_keys::shamir::combine_bytes(&read_shares(&g.pin_shares)?.0).map_err(s)?;
    let pin = String::from_utf8(secret.to_vec())
        .map_err(|_| "the PIN shares do not combine into a PIN".to_string())?;
    hallmark_ra::config::provide_pkcs11_pin(zeroize::Zeroizing::new(pin));
    Ok(())
}

/// The passphrase from M custodians' shares, and who was present; combined
/// once per process, so custodians type their passphrases once.
fn quorum(g: &Global) -> Res<(Passphrase, Vec<String>)> {
    static DONE: std::sync::OnceLock<(Passphrase, Vec<String>)> = std::sync::OnceLock::new();
    if let Some(q) = DONE.get() {
        return Ok(q.clone());
    }
    let (shares, present) = read_shares(&g.shares)?;
    let q = (hallmark_keys::shamir::combine(&shares).map_err(s)?, present);
    Ok(DONE.get_or_init(|| q).clone())
}

pub async fn open(g: &Global) -> Res<Arc<Authority>> {
    let p = pass(g, false)?;
    let abort = std::env::var("HALLMARK_DANGER_ABORT_AFTER_SIGN").is_ok_and(|v| v == "1");
    let auth = Authority::open_with(&g.data_dir, &p, g.database_url.as_deref(), abort)
        .await
        .map_err(s)?;
    if !g.shares.is_empty() {
        // Each custodian's presence is on the record.
        let (_, present) = quorum(g)?;
        let cmd: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .take(2)
            .collect();
        record(
            &auth,
            "custody",
            "custody.quorum",
            serde_json::json!({"present": present, "command": cmd.join(" ")}),
        )
        .await?;
    }
    Ok(auth)
}

fn kdf() -> KdfParams {
    if std::env::var("HALLMARK_DANGER_INSECURE_KDF").is_ok_and(|v| v == "1") {
        KdfParams::danger_insecure_for_tests()
    } else {
        KdfParams::default()
    }
}

pub async fn run(cli: Cli) -> Res {
    let g = cli.global;
    pin_quorum(&g)?;
    match cli.command {
        Command::Init(a) => init(&g, a, None).await.map(|_| ()),
        Command::Serve(a) => {
            let auth = open(&g).await?;
            serve(auth, a).await
        }
        Command::Quickstart(a) => quickstart(g, a).await,
        Command::Cert(c) => cert(&g, c).await,
        Command::Crl(CrlCmd::Import { issuer, file }) => {
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let auth = open(&g).await?;
            let c = auth
                .import_crl(&issuer, &bytes, &format!("cli:{}", whoami()), system_now())
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
        Command::Crl(CrlCmd::Generate {
            issuer,
            full_only,
            out: out_file,
        }) => {
            let auth = open(&g).await?;
            let spin = indicatif::ProgressBar::new_spinner().with_message("generating CRLs");
            spin.enable_steady_tick(Duration::from_millis(120));
            let out = match (&issuer, full_only) {
                (Some(i), true) => vec![
                    auth.generate_crl(i, hallmark_store::certs::FULL_CRL, system_now())
                        .await
                        .map_err(s)?,
                ],
                _ => auth
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
                let crl = auth
                    .store
                    .get_crl(i, hallmark_store::certs::FULL_CRL)
                    .await
                    .map_err(s)?;
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
        Command::Ca(CaCmd::List) => {
            let auth = open(&g).await?;
            for r in auth.store.issuers().await.map_err(s)? {
                let role = if r.is_root { "root" } else { "issuing" };
                let fp = hallmark_pki::hex(&hallmark_crypto::sha256(&r.cert));
                outln!("{:<12} {role:<8} {}  sha256:{fp}", r.id, r.subject);
            }
            Ok(())
        }
        Command::Ca(CaCmd::Revoke { id, reason }) => {
            let r = Reason::parse(&reason).ok_or_else(|| {
                format!(
                    "unknown reason {reason:?}; use one of {}",
                    Reason::OFFERED.map(|r| r.name()).join(", ")
                )
            })?;
            let auth = open(&g).await?;
            let (row, listed) = auth
                .revoke_ca(&id, r, &format!("cli:{}", whoami()), system_now())
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
        Command::Ca(CaCmd::Show { id }) => {
            let auth = open(&g).await?;
            let rows = auth.store.issuers().await.map_err(s)?;
            let r = rows
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| format!("no CA with id {id:?}; see `hallmark ca list`"))?;
            out!("{}", hallmark_pki::pem::encode("CERTIFICATE", &r.cert));
            Ok(())
        }
        Command::Ca(CaCmd::Rollover {
            new_id,
            subject,
            key,
            days,
        }) => {
            let p = pass(&g, false)?;
            let alg = KeyAlgorithm::from_str(&key).map_err(s)?;
            let cfg = hallmark_ra::Config::load(&g.data_dir).map_err(s)?;
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
            hallmark_ra::Config::update(&g.data_dir, |cfg| {
                cfg.ca.default_issuer = new_id.clone();
                Ok(())
            })
            .map_err(s)?;
            // The switch is a configuration change: audited at the next start,
            // and here with what it means.
            let auth = open(&g).await?;
            record(
                &auth,
                &format!("cli:{}", whoami()),
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
        Command::Ca(CaCmd::SignRequest {
            id,
            subject,
            csr,
            out,
            days,
        }) => {
            let p = pass(&g, false)?;
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
        Command::Ca(CaCmd::Import { id, cert }) => {
            let p = pass(&g, false)?;
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
        Command::Ca(CaCmd::RekeyRoot {
            new_id,
            subject,
            key,
            days,
            out_dir,
        }) => {
            let p = pass(&g, false)?;
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
        Command::Ca(CaCmd::Add {
            id,
            subject,
            parent,
            key,
            days,
        }) => {
            let p = pass(&g, false)?;
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
        Command::Audit(AuditCmd::Verify) => audit_verify(&g).await,
        Command::AdminCert(c) => admin_cert(&g, c).await,
        Command::AdminToken(c) => admin_token(&g, c).await,
        Command::Keys(KeysCmd::List) => {
            let auth = open(&g).await?;
            outln!("key store: {}", auth.key_backend());
            for (label, alg) in auth.key_labels() {
                outln!("{label:<40} {alg}");
            }
            Ok(())
        }
        Command::Keys(KeysCmd::Split {
            m,
            n,
            out_dir,
            custodians,
        }) => {
            let auth = open(&g).await?;
            let p = pass(&g, false)?;
            let shares = hallmark_keys::shamir::split(&p, m, n).map_err(s)?;
            hand_out_shares(
                &auth,
                &shares,
                &custodians,
                &out_dir,
                "share",
                "custody.split",
                m,
            )
            .await?;
            eprintln!(
                "wrote {n} shares to {}: hand one to each custodian, then remove the passphrase from this machine; any {m} open the key store",
                out_dir.display()
            );
            Ok(())
        }
        Command::Keys(KeysCmd::SplitPin {
            m,
            n,
            out_dir,
            custodians,
        }) => {
            let auth = open(&g).await?;
            let token =
                auth.config.keys.token().map_err(s)?.ok_or(
                    "this installation keeps its keys in the software store; there is no PIN",
                )?;
            let shares =
                hallmark_keys::shamir::split_bytes(token.pin.as_bytes(), m, n).map_err(s)?;
            hand_out_shares(
                &auth,
                &shares,
                &custodians,
                &out_dir,
                "pin-share",
                "custody.split-pin",
                m,
            )
            .await?;
            eprintln!(
                "wrote {n} PIN shares to {}; remove the PIN file and variable: any {m} custodians then give --pin-share",
                out_dir.display()
            );
            Ok(())
        }
        Command::Keys(KeysCmd::Test) => {
            let auth = open(&g).await?;
            let mut failed = 0;
            for (label, r) in auth.test_keys().map_err(s)? {
                match r {
                    Ok(()) => outln!("{label:<40} signs and verifies"),
                    Err(e) => {
                        failed += 1;
                        outln!("{label:<40} FAILED: {e}");
                    }
                }
            }
            if failed > 0 {
                return Err(format!("{failed} keys failed"));
            }
            Ok(())
        }
        Command::Backup { out } => {
            let auth = open(&g).await?;
            let p = pass(&g, false)?;
            let bytes = hallmark_ra::backup::create(&auth, &p, &out, kdf())
                .await
                .map_err(s)?;
            record(
                &auth,
                &format!("cli:{}", whoami()),
                "backup.create",
                serde_json::json!({"bytes": bytes}),
            )
            .await?;
            auth.checkpoint(system_now()).await.map_err(s)?;
            eprintln!(
                "encrypted backup written to {} ({bytes} bytes)",
                out.display()
            );
            if auth.store.backend() != hallmark_store::Backend::Sqlite {
                eprintln!(
                    "it holds the configuration, profiles and key store; the database is PostgreSQL: \
                     back it up with pg_dump or a base backup (restore the database first, then `hallmark restore`)"
                );
            }
            Ok(())
        }
        Command::Restore { input } => {
            let p = pass(&g, false)?;
            let archive = hallmark_ra::backup::open(&input, &p).map_err(s)?;
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
            let names =
                hallmark_ra::backup::restore(&archive, &g.data_dir, g.database_url.as_deref())
                    .map_err(s)?;
            // Open it once: the passphrase fits, the keys and the database agree.
            let auth = open(&g).await?;
            record(
                &auth,
                &format!("cli:{}", whoami()),
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
        Command::Bench(b) => crate::bench::run(&g, b).await,
    }
}

async fn init(g: &Global, a: InitArgs, given: Option<Passphrase>) -> Res<ceremony::InitOutput> {
    let p = match given {
        Some(p) => p,
        None => pass(g, true)?,
    };
    let opts = InitOptions {
        root_algorithm: KeyAlgorithm::from_str(&a.root_key).map_err(s)?,
        issuing_algorithm: KeyAlgorithm::from_str(&a.issuing_key).map_err(s)?,
        root_subject: a.root_subject,
        issuing_subject: a.issuing_subject,
        issuing_id: a.issuing_id,
        root_days: a.root_days,
        issuing_days: a.issuing_days,
        policy_arc: a.policy_arc,
        cps_uri: a.cps_uri,
        base_url: a.base_url.unwrap_or_else(|| format!("http://{}", a.listen)),
        listen: a.listen,
        database_url: g.database_url.clone(),
        root_only: a.root_only,
        keys: hallmark_ra::config::KeysConfig {
            backend: a.key_store,
            pkcs11_module: a.pkcs11_module,
            pkcs11_token: a.pkcs11_token,
            pkcs11_pin_file: a.pkcs11_pin_file,
            rsa_padding: a.rsa_padding,
        },
        external_root: match (a.root_cert, a.issuing_csr_out) {
            (Some(root), Some(out)) => {
                let bytes = std::fs::read(&root)
                    .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
                Some((
                    hallmark_pki::pem::decode("CERTIFICATE", &bytes).map_err(s)?,
                    out,
                ))
            }
            _ => None,
        },
        kdf: kdf(),
    };
    let spin = indicatif::ProgressBar::new_spinner()
        .with_message("key ceremony: generating CA keys and certificates");
    spin.enable_steady_tick(Duration::from_millis(120));
    let out = ceremony::init(&g.data_dir, &opts, &p, system_now())
        .await
        .map_err(s)?;
    spin.finish_and_clear();
    let fp = |c: &[u8]| hallmark_pki::hex(&hallmark_crypto::sha256(c));
    eprintln!("Initialised {}", g.data_dir.display());
    eprintln!("  root CA        sha256:{}", fp(&out.root_cert));
    if let Some(c) = &out.issuing_cert {
        eprintln!("  issuing CA     sha256:{}", fp(c));
    }
    if out.issuing_csr.is_some() {
        eprintln!(
            "  issuing CA CSR written: have the offline root sign it (`hallmark ca sign-request`), then `hallmark ca import`"
        );
    }
    eprintln!(
        "  admin API token (shown once, store it safely): {}",
        out.admin_token.as_str()
    );
    Ok(out)
}

pub async fn serve(auth: Arc<Authority>, args: ServeArgs) -> Res {
    let addr = args
        .listen
        .unwrap_or_else(|| auth.config.server.listen.clone());
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("listen address {addr:?}: {e}"))?;
    // Refused before anything listens.
    if (args.admin_https_listen.is_some() || auth.config.server.admin_https_listen.is_some())
        && auth.config.server.admin_client_certs.is_empty()
    {
        return Err(
            "an admin HTTPS listener needs an allowed client certificate first: `hallmark admin-cert add --cert FILE`"
                .into(),
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(s)?;
    // CRLs exist from the first request on.
    auth.generate_crls(None, None, system_now())
        .await
        .map_err(s)?;
    spawn_maintenance(auth.clone());
    tracing::info!(%local, "serving");
    outln!("listening on http://{local}");
    let app = hallmark_server::router(auth.clone());
    let https = args
        .https_listen
        .or_else(|| auth.config.server.https_listen.clone());
    let admin_https = args
        .admin_https_listen
        .or_else(|| auth.config.server.admin_https_listen.clone());
    if https.is_some() || admin_https.is_some() {
        let (chain, signer) = auth.tls_identity(system_now()).await.map_err(s)?;
        let bind = |addr: String, what: &'static str| async move {
            let a: SocketAddr = addr
                .parse()
                .map_err(|e| format!("{what} listen address {addr:?}: {e}"))?;
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("cannot listen on {a}: {e}"))
        };
        if let Some(addr) = https {
            let cfg = hallmark_server::tls::server_config(chain.clone(), signer.clone(), None)?;
            let l = bind(addr, "HTTPS").await?;
            outln!("listening on https://{}", l.local_addr().map_err(s)?);
            tokio::spawn(hallmark_server::tls::serve_https(l, app.clone(), cfg));
        }
        if let Some(addr) = admin_https {
            // Clients must present a certificate chaining to one of this
            // installation's CAs that is not revoked; the API then checks
            // the fingerprint, expiry and revocation at each request.
            let anchors: Vec<Vec<u8>> = auth
                .store
                .issuers()
                .await
                .map_err(s)?
                .into_iter()
                .filter(|i| !auth.is_revoked_ca(&i.id))
                .map(|i| i.cert)
                .collect();
            let cfg = hallmark_server::tls::server_config(chain, signer, Some(&anchors))?;
            let l = bind(addr, "admin HTTPS").await?;
            outln!(
                "listening on https://{} (admin API, mutual TLS)",
                l.local_addr().map_err(s)?
            );
            tokio::spawn(hallmark_server::tls::serve_https(l, app.clone(), cfg));
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(s)?;
    auth.checkpoint(system_now()).await.map_err(s)?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Background work of a server: audit checkpoints, OCSP signer renewal,
/// CRL regeneration and picking up revocations made by other processes.
fn spawn_maintenance(auth: Arc<Authority>) {
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
        let period = (a.ca.settings.ocsp_validity_secs / 4).max(60);
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
        let period = (a.ca.settings.crl_validity_secs / 2).max(60);
        let mut tick = tokio::time::interval(Duration::from_secs(period));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = a.generate_crls(None, None, system_now()).await {
                tracing::error!(error = %e, "scheduled CRL generation failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut follower = hallmark_ra::ocsp::RevocationFollower::new(system_now() as i64);
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
            match auth.publish_due_crls(system_now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(crls = n, "published CRLs owed after revocations"),
                Err(e) => {
                    tracing::error!(error = %e, "publishing CRLs owed after revocations failed; retrying in 5 s")
                }
            }
        }
    });
}

async fn quickstart(g: Global, a: ServeArgs) -> Res {
    let demo_pass = g.data_dir.join(passphrase::DEMO_FILE);
    let demo_token = g.data_dir.join("admin-token.demo");
    if !g.data_dir.join(hallmark_ra::config::CONFIG_FILE).exists() {
        let listen = a.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into());
        let p = match (&g.passphrase_file, std::env::var("HALLMARK_PASSPHRASE")) {
            (None, Err(_)) => {
                // Demo only: a random passphrase kept next to the key store.
                let mut raw = [0u8; 24];
                hallmark_crypto::fill_random(&mut raw).map_err(s)?;
                let p = hallmark_pki::hex(&raw);
                std::fs::create_dir_all(&g.data_dir).map_err(s)?;
                write_private(&demo_pass, p.as_bytes())?;
                eprintln!(
                    "DEMO: the key-store passphrase is in {} — fine for trying Hallmark, never for production",
                    demo_pass.display()
                );
                Passphrase::new(p).map_err(s)?
            }
            _ => pass(&g, false)?,
        };
        let args = InitArgs {
            root_subject: "CN=Hallmark Demo Root CA 示範根憑證,O=Hallmark Demo,C=HK".into(),
            issuing_subject: "CN=Hallmark Demo Issuing CA 示範簽發機關,O=Hallmark Demo,C=HK".into(),
            issuing_id: "issuing".into(),
            root_key: "p384".into(),
            issuing_key: "p256".into(),
            root_days: 7305,
            issuing_days: 3653,
            policy_arc: "1.3.6.1.4.1.59999.1".into(),
            cps_uri: None,
            base_url: Some(format!("http://{listen}")),
            listen,
            root_only: false,
            root_cert: None,
            issuing_csr_out: None,
            key_store: "software".into(),
            pkcs11_module: None,
            pkcs11_token: None,
            pkcs11_pin_file: None,
            rsa_padding: None,
        };
        let out = init(&g, args, Some(p)).await?;
        write_private(&demo_token, out.admin_token.as_bytes())?;
    }
    let auth = open(&g).await?;
    let base = auth.config.server.base_url.clone();
    outln!(
        "Hallmark is running on its embedded SQLite store ({}).",
        g.data_dir.display()
    );
    outln!("  home page        {base}/");
    outln!("  root CA          {base}/ca/root.crt");
    outln!(
        "  issuing CA       {base}/ca/{}.crt",
        auth.ca.default_issuer()
    );
    outln!(
        "  CRL              {base}/crl/{}.crl",
        auth.ca.default_issuer()
    );
    outln!("  OCSP             {base}/ocsp");
    outln!("  admin API        {base}/api/v1/openapi.json");
    if demo_token.exists() {
        outln!("  admin API token  in {}", demo_token.display());
    }
    outln!("Issue a test certificate in another terminal:");
    outln!(
        "  hallmark --data-dir {} cert issue --profile personal --subject 'CN=CHAN Tai Man,C=HK' --generate-key --p12-out chan.p12",
        g.data_dir.display()
    );
    serve(auth, a).await
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

fn write_private(path: &Path, data: &[u8]) -> Res {
    use std::io::Write;
    create_private(path)?.write_all(data).map_err(s)
}

/// Creates a new file readable by its owner only; refuses to overwrite.
fn create_private(path: &Path) -> Result<std::fs::File, String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} exists; refusing to overwrite", path.display())
        } else {
            format!("cannot create {}: {e}", path.display())
        }
    })
}

async fn cert(g: &Global, c: CertCmd) -> Res {
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
                        key,
                        actor: format!("cli:{}", whoami()),
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
        CertCmd::Revoke { serial, reason } => {
            let r = Reason::parse(&reason).ok_or_else(|| {
                format!(
                    "unknown reason {reason:?}; use one of {}",
                    Reason::OFFERED.map(|r| r.name()).join(", ")
                )
            })?;
            let auth = open(g).await?;
            let row = auth
                .revoke(&serial, r, &format!("cli:{}", whoami()), system_now())
                .await
                .map_err(s)?;
            outln!("revoked {} ({})", row.serial, r.name());
            auth.checkpoint(system_now()).await.map_err(s)?;
            Ok(())
        }
        CertCmd::Show { serial, pem } => {
            let auth = open(g).await?;
            let serial = hallmark_ra::normalise_serial(&serial).map_err(s)?;
            let r = auth.store.get_cert(None, &serial).await.map_err(s)?;
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
            for r in auth.store.list_certs(limit, None).await.map_err(s)? {
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

/// Writes each share to `out_dir` (owner-only, never overwriting): as
/// `PREFIX-INDEX.txt`, or, given one custodian per share, sealed to that
/// custodian's passphrase as `PREFIX-NAME.sealed`. Records the split in the
/// audit log.
async fn hand_out_shares(
    auth: &Authority,
    shares: &[hallmark_keys::shamir::Share],
    custodians: &[String],
    out_dir: &Path,
    prefix: &str,
    action: &str,
    m: u8,
) -> Res {
    if !custodians.is_empty() {
        if custodians.len() != shares.len() {
            return Err(format!(
                "give one --custodian per share: {} names for {} shares",
                custodians.len(),
                shares.len()
            ));
        }
        // Names that differ only in case, '-' or '.' would share one
        // environment variable and, on some file systems, one file.
        let mut names: Vec<String> = custodians
            .iter()
            .map(|c| passphrase::custodian_key(c))
            .collect();
        names.sort();
        names.dedup();
        if names.len() != custodians.len() {
            return Err(
                "each --custodian name must be different (ignoring case, '-' and '.')".into(),
            );
        }
        for c in custodians {
            hallmark_keys::shamir::check_custodian(c).map_err(s)?;
        }
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    // Every custodian's passphrase first, so that a mistyped one leaves no
    // partial split behind.
    let mut passes = Vec::new();
    for c in custodians {
        passes.push(passphrase::custodian(c, true)?);
    }
    for (i, sh) in shares.iter().enumerate() {
        let (path, text) = match (custodians.get(i), passes.get(i)) {
            (Some(c), Some(p)) => {
                let sealed = hallmark_keys::shamir::seal(sh, c, p, kdf()).map_err(s)?;
                (out_dir.join(format!("{prefix}-{c}.sealed")), sealed)
            }
            _ => (
                out_dir.join(format!("{prefix}-{}.txt", sh.index)),
                sh.encode().to_string(),
            ),
        };
        write_private(&path, format!("{text}\n").as_bytes())?;
    }
    record(
        auth,
        &format!("cli:{}", whoami()),
        action,
        serde_json::json!({"m": m, "n": shares.len(), "custodians": custodians}),
    )
    .await?;
    auth.checkpoint(system_now()).await.map_err(s)?;
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

/// For `admin-cert list`: "subject  serial S  status" of each allowed
/// certificate, by fingerprint; empty (with a warning) when the database
/// cannot be read.
async fn admin_certs_known(
    g: &Global,
    cfg: &hallmark_ra::Config,
) -> std::collections::HashMap<String, String> {
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
async fn admin_cert(g: &Global, c: AdminCertCmd) -> Res {
    let cfg = hallmark_ra::Config::load(&g.data_dir).map_err(s)?;
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
            let row = match auth.store.get_cert(None, &serial).await {
                Ok(row) => row,
                Err(hallmark_store::StoreError::NotFound(_)) => {
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
            hallmark_ra::Config::update(&g.data_dir, |cfg| {
                if !cfg.server.admin_client_certs.contains(&fp) {
                    cfg.server.admin_client_certs.push(fp.clone());
                }
                Ok(())
            })
            .map_err(s)?;
            record(
                &auth,
                &format!("cli:{}", whoami()),
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
            let fp = hallmark_ra::config::normalise_fingerprint(&sha256);
            hallmark_ra::Config::update(&g.data_dir, |cfg| {
                let before = cfg.server.admin_client_certs.len();
                cfg.server.admin_client_certs.retain(|f| *f != fp);
                if cfg.server.admin_client_certs.len() == before {
                    return Err(hallmark_ra::RaError::Invalid(format!(
                        "{fp} is not an allowed admin certificate; see `hallmark admin-cert list`"
                    )));
                }
                Ok(())
            })
            .map_err(s)?;
            let auth = open(g).await?;
            record(
                &auth,
                &format!("cli:{}", whoami()),
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
async fn admin_token(g: &Global, c: AdminTokenCmd) -> Res {
    match c {
        AdminTokenCmd::Rotate => {
            // Rotated first: this is also how a broken token digest in
            // hallmark.toml is repaired (opening the installation would
            // refuse the file). The token is printed whatever follows.
            let token = hallmark_ra::ceremony::rotate_admin_token(&g.data_dir).map_err(s)?;
            outln!("{}", token.as_str());
            eprintln!(
                "the new admin token is printed above, once: store it now; the old one stops working within 5 seconds"
            );
            let audited = match open(g).await {
                Ok(auth) => {
                    record(
                        &auth,
                        &format!("cli:{}", whoami()),
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

/// Appends one audit entry for a CLI action.
async fn record(auth: &Authority, actor: &str, action: &str, details: serde_json::Value) -> Res {
    auth.store
        .record(system_now() as i64, actor, action, details)
        .await
        .map_err(s)
}

/// Who runs the command, for the audit log: the account of the process's
/// user id (not `$USER`, which anyone can set), with the account that used
/// sudo, if any.
fn whoami() -> String {
    // The real user id, from the kernel's status of this process (the
    // owner of /proc/self is root for a binary given capabilities).
    let me: Option<u32> = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        });
    let Some(uid) = me else {
        return std::env::var("USER").unwrap_or_else(|_| "operator".into());
    };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    match std::env::var("SUDO_USER") {
        Ok(by) if uid == 0 && !by.is_empty() => format!("{name} (sudo by {by})"),
        _ => name,
    }
}

async fn audit_verify(g: &Global) -> Res {
    let auth = open(g).await?;
    let bar = indicatif::ProgressBar::new_spinner().with_message("verifying audit chain");
    bar.enable_steady_tick(Duration::from_millis(120));
    let report = auth
        .store
        .verify_audit(&auth.audit_spki(), |n| {
            bar.set_message(format!("verified {n} entries"))
        })
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
