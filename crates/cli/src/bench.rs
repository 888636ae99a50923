//! `hallmark bench …` (see BENCHMARKS.md).

use clap::Subcommand;

use crate::Global;
use crate::Res;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Signatures per second with this installation's own keys (issuing CA
    /// or OCSP responder), from N threads: software key store vs PKCS#11.
    Keys {
        /// issuing or ocsp
        #[arg(long, default_value = "issuing")]
        key: String,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Insert N made-up revoked certificates under an issuer (for CRL
    /// benchmarks), and write the same entries as an OpenSSL index.txt.
    CrlFixture {
        #[arg(long, default_value_t = 1_000_000)]
        entries: usize,
        #[arg(long, default_value = "issuing")]
        issuer: String,
        /// Also write the entries as OpenSSL `ca` index lines here.
        #[arg(long)]
        openssl_index: Option<std::path::PathBuf>,
    },
    /// The ceiling of campaign issuance, on every core, storing nothing:
    /// the raw rate of central key generation + one signature with the
    /// issuing CA's key (P-256 keys made, a TBS-sized message signed), and
    /// the batch path's own (key, TBS, lint, signature: what `campaign
    /// issue` does before it stores).
    CampaignRaw {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
    },
    /// Raw P-256 sign + verify rate of the crypto provider.
    Sign {
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
}

pub async fn run(g: &Global, b: BenchCmd) -> Res {
    match b {
        BenchCmd::Sign { seconds } => sign(seconds),
        BenchCmd::CampaignRaw { count } => campaign_raw(g, count).await,
        BenchCmd::Keys {
            key,
            threads,
            seconds,
        } => keys(g, &key, threads, seconds).await,
        BenchCmd::CrlFixture {
            entries,
            issuer,
            openssl_index,
        } => crl_fixture(g, entries, &issuer, openssl_index.as_deref()).await,
    }
}

async fn crl_fixture(g: &Global, n: usize, issuer: &str, index: Option<&std::path::Path>) -> Res {
    use std::io::Write;
    // Rows only: the store, without the key store.
    let cfg = hallmark_install::Config::load(&g.data_dir).map_err(|e| e.to_string())?;
    let store = cfg
        .connect(&g.data_dir, g.database_url.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let now = hallmark_authority::system_now() as i64;
    let settings = &cfg.ca_settings();
    let bar = indicatif::ProgressBar::new(n as u64).with_message("inserting revoked certificates");
    let mut idx = match index {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let not_after = now + 365 * 86_400;
    let shard = settings.shard_of(not_after as u64);
    let mut done = 0;
    while done < n {
        let k = (n - done).min(10_000);
        let mut rows = Vec::with_capacity(k);
        for _ in 0..k {
            let serial = hallmark_pki::random_serial().map_err(|e| e.to_string())?;
            let hex = hallmark_pki::hex(&serial);
            let revoked_at = now - 86_400;
            if let Some(w) = idx.as_mut() {
                let t = hallmark_pki::time::rfc3339(revoked_at as u64);
                let t = t.replace(['-', 'T', ':'], "");
                let na = hallmark_pki::time::rfc3339(not_after as u64).replace(['-', 'T', ':'], "");
                // OpenSSL index.txt: status, expiry, revocation[,reason], serial, file, subject.
                writeln!(
                    w,
                    "R\t{}\t{},keyCompromise\t{}\tunknown\t/CN=bench",
                    &na[2..],
                    &t[2..],
                    hex.to_uppercase()
                )
                .map_err(|e| e.to_string())?;
            }
            rows.push(hallmark_store::synthetic::SyntheticRevoked {
                serial: hex,
                revoked_at,
                reason: 1,
                not_after,
                shard,
            });
        }
        store
            .insert_synthetic_revoked(issuer, &rows, now)
            .await
            .map_err(|e| e.to_string())?;
        done += k;
        bar.set_position(done as u64);
    }
    bar.finish_and_clear();
    if let Some(mut w) = idx {
        w.flush().map_err(|e| e.to_string())?;
    }
    outln!("inserted {n} revoked certificates under {issuer}");
    Ok(())
}

fn sign(seconds: u64) -> Res {
    use hallmark_crypto::{KeyAlgorithm, Signer, SoftwareSigner};
    let pkcs8 = hallmark_crypto::generate_pkcs8(KeyAlgorithm::EcP256).map_err(|e| e.to_string())?;
    let signer =
        SoftwareSigner::from_pkcs8(KeyAlgorithm::EcP256, &pkcs8).map_err(|e| e.to_string())?;
    let msg = [7u8; 600];
    let start = std::time::Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs() < seconds {
        let sig = signer.sign(&msg).map_err(|e| e.to_string())?;
        hallmark_crypto::verify_signature(signer.spki_der(), const_oid_p256(), None, &msg, &sig)
            .map_err(|e| e.to_string())?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    outln!("p256 sign+verify: {rate:.0}/s on one core");
    Ok(())
}

async fn campaign_raw(g: &Global, count: usize) -> Res {
    use hallmark_crypto::KeyAlgorithm;
    let auth = crate::unlock::open(g).await?;
    let signer = auth.issuing_signer().map_err(|e| e.to_string())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let msg = vec![0x5a_u8; 400];
    let start = std::time::Instant::now();
    let per = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (signer, msg) = (signer.clone(), &msg);
                scope.spawn(move || -> Result<(), String> {
                    for _ in 0..per {
                        let (pkcs8, spki) = hallmark_crypto::generate_key(KeyAlgorithm::EcP256)
                            .map_err(|e| e.to_string())?;
                        std::hint::black_box((&pkcs8, &spki));
                        signer.sign(msg).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a thread panicked".to_string())?)
    })?;
    let raw = (per * threads) as f64 / start.elapsed().as_secs_f64();
    outln!(
        "raw key generation + signature ({}, {threads} threads): {raw:.0}/s",
        signer.key_algorithm()
    );
    let now = hallmark_authority::system_now();
    let reqs: Vec<hallmark_authority::IssueRequest> = (0..count)
        .map(|i| hallmark_authority::IssueRequest {
            profile: "personal".into(),
            issuer: None,
            subject: format!("CN=BENCH RESIDENT {i},C=HK"),
            emails: Vec::new(),
            dns_names: Vec::new(),
            validity_days: None,
            validity_secs: None,
            key: hallmark_authority::KeySource::Generate(KeyAlgorithm::EcP256),
            actor: "bench".into(),
        })
        .collect();
    let start = std::time::Instant::now();
    let mut done = 0usize;
    for chunk in reqs.chunks(16_384) {
        done += auth
            .sign_batch(chunk, now)
            .map_err(|e| e.to_string())?
            .len();
    }
    let batch = done as f64 / start.elapsed().as_secs_f64();
    outln!(
        "batch path before storage (key, TBS, lint, signature; {threads} threads): {batch:.0}/s ({:.2}x the raw rate)",
        batch / raw
    );
    Ok(())
}

fn const_oid_p256() -> const_oid::ObjectIdentifier {
    hallmark_crypto::KeyAlgorithm::EcP256
        .signature_algorithm()
        .oid
}

async fn keys(g: &Global, key: &str, threads: usize, seconds: u64) -> Res {
    let auth = crate::unlock::open(g).await?;
    let signer: std::sync::Arc<dyn hallmark_crypto::Signer> = match key {
        "issuing" => auth.issuing_signer().map_err(|e| e.to_string())?,
        "ocsp" => auth
            .ocsp()
            .issuers()
            .first()
            .map(|s| s.responder.signer.clone())
            .ok_or("no OCSP responder")?,
        other => return Err(format!("--key {other:?}: use issuing or ocsp")),
    };
    // A message the size of an OCSP ResponseData or a small TBSCertificate.
    let msg = vec![0x5a_u8; 400];
    let start = std::time::Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let (signer, msg) = (signer.clone(), &msg);
                scope.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed().as_secs() < seconds {
                        if signer.sign(msg).is_err() {
                            break;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    let total: u64 = counts.iter().sum();
    let rate = total as f64 / start.elapsed().as_secs_f64();
    outln!(
        "{} {key} key ({}), {} threads: {rate:.0} signatures/s",
        auth.key_backend(),
        signer.key_algorithm(),
        threads.max(1)
    );
    Ok(())
}
