//! Signing CRLs.

use hallmark_pki::crl::{CrlParams, EntryWriter};
use hallmark_pki::{cert, lint};

use crate::{IssuerKey, Result};

/// Signs a CRL over `entries`. A shard CRL names its distribution point in an
/// issuingDistributionPoint extension; the full CRL has none.
pub fn sign_crl(
    issuer: &IssuerKey,
    entries: &EntryWriter,
    number: u64,
    this_update: u64,
    next_update: u64,
    distribution_point: Option<&str>,
) -> Result<Vec<u8>> {
    let alg = issuer.signer.signature_algorithm();
    let params = CrlParams {
        issuer_name_der: &issuer.name_der,
        issuer_key_id: &issuer.key_id,
        signature_algorithm: &alg,
        this_update,
        next_update,
        crl_number: number,
        distribution_point,
    };
    lint::lint_crl_params(&params)?;
    let tbs = hallmark_pki::crl::tbs(&params, entries)?;
    let sig = issuer.signer.sign(&tbs)?;
    Ok(cert::signed_sequence(&tbs, &alg, &sig)?)
}
