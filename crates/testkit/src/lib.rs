//! Test support shared by Hallmark's test suites: throwaway SoftHSM2 tokens,
//! PostgreSQL test databases, temporary directories, waiting for another
//! process, and the outside judges (OpenSSL, pkilint). Used as a
//! dev-dependency only; it depends on no Hallmark crate, so that every
//! crate's tests can use it.

// Test support: a failed set-up should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod judges;
pub mod postgres;
pub mod softhsm;
pub mod temp;
pub mod wait;

pub use softhsm::{SOFTHSM_MODULE, SoftHsmToken};
