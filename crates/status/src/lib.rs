//! Certificate status: what relying parties ask about certificates already
//! issued. The OCSP responder (RFC 6960 / RFC 5019) answers from a cache
//! of pre-signed responses and follows revocations made by other processes
//! ([`ocsp`], [`follower`]); CRL publication makes, numbers and stores the
//! full and partitioned CRLs, after revocations and on schedule, and pays
//! the CRL debts a stopped process left ([`crls`]).
//!
//! This is what an OCSP-only edge node runs: it needs the store and the
//! signers it is handed (delegated OCSP responders; for CRLs, the CA keys),
//! and nothing of the admin parts. May touch: the store (reading statuses,
//! writing CRLs, their numbers and their audit entries), the signers given
//! to it. Must not: open the key store, issue or revoke certificates,
//! renew its own responders (the CA service does, in `hallmark-authority`),
//! read the configuration, or know HTTP (the server maps requests onto it).
//! Time comes in as an argument, or as the clock the caller hands in.

pub mod crls;
pub mod follower;
pub mod ocsp;
#[cfg(test)]
pub(crate) mod testing;

use hallmark_ca::CaError;
use hallmark_store::StoreError;

pub use crls::{CrlInfo, CrlPublisher};
pub use follower::RevocationFollower;
pub use ocsp::{IssuerSlot, OcspService};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing a CRL failed, or the CA is not one whose CRLs are made here.
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StatusError> = std::result::Result<T, E>;
