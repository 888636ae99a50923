//! `hallmark bench …` (see BENCHMARKS.md).

use clap::Subcommand;

use crate::Global;
use crate::commands::Res;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Raw P-256 sign + verify rate of the crypto provider.
    Sign {
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
}

pub async fn run(_g: &Global, b: BenchCmd) -> Res {
    match b {
        BenchCmd::Sign { seconds } => sign(seconds),
    }
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
    println!("p256 sign+verify: {rate:.0}/s on one core");
    Ok(())
}

fn const_oid_p256() -> const_oid::ObjectIdentifier {
    hallmark_crypto::KeyAlgorithm::EcP256
        .signature_algorithm()
        .oid
}
