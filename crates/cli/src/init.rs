//! `hallmark init` (the key ceremony into a new data directory) and
//! `hallmark quickstart` (a demo installation, then serve).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use hallmark_authority::system_now;
use hallmark_crypto::KeyAlgorithm;
use hallmark_install::ceremony::{self, InitOptions};
use hallmark_keys::Passphrase;

use crate::files::write_private;
use crate::serve::{ServeArgs, serve};
use crate::unlock::{kdf, open, pass};
use crate::{Global, Res, passphrase, s};

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

pub async fn init(g: &Global, a: InitArgs, given: Option<Passphrase>) -> Res<ceremony::InitOutput> {
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
        keys: hallmark_install::config::KeysConfig {
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

pub async fn quickstart(g: Global, a: ServeArgs) -> Res {
    let demo_pass = g.data_dir.join(passphrase::DEMO_FILE);
    let demo_token = g.data_dir.join("admin-token.demo");
    if !g
        .data_dir
        .join(hallmark_install::config::CONFIG_FILE)
        .exists()
    {
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
    let base = auth.server_config().base_url.clone();
    outln!(
        "Hallmark is running on its embedded SQLite store ({}).",
        g.data_dir.display()
    );
    outln!("  home page        {base}/");
    outln!("  root CA          {base}/ca/root.crt");
    outln!("  issuing CA       {base}/ca/{}.crt", auth.default_issuer());
    outln!(
        "  CRL              {base}/crl/{}.crl",
        auth.default_issuer()
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
