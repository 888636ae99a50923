//! End-to-end tests of the `hallmark` binary, judged by OpenSSL and pkilint,
//! on SQLite and (when HALLMARK_TEST_DATABASE_URL is set) PostgreSQL.
//!
//! One file per concern under `interop/`, each naming its tests in an
//! `on_both!` list so that every test runs on both stores (as
//! `CONCERN::sqlite::NAME` and `CONCERN::postgres::NAME`). The harness
//! (`Hm`, `Server`, the OpenSSL questions) is in `common/`; what is not
//! about Hallmark is in the `hallmark-testkit` crate.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// Runs each named `fn NAME(b: Backend)` of the enclosing module once on
/// SQLite and once on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
        }
    };
}

/// A fresh installation on the backend, or returns from the test when
/// PostgreSQL is not configured (CI requires it: see `postgres_base`).
macro_rules! setup {
    ($b:expr) => {
        match Hm::new($b) {
            Some(h) => h,
            None => {
                eprintln!("PostgreSQL not configured (HALLMARK_TEST_DATABASE_URL); SQLite only");
                return;
            }
        }
    };
}

/// Issuing from the command line: profiles, PKCS#12, bad input, crashes.
#[path = "interop/issuance.rs"]
mod issuance;

/// OCSP and CRLs after a revocation, finality, CRLs owed by a stopped process.
#[path = "interop/revocation.rs"]
mod revocation;

/// Root, issuing CAs, rollover, re-keying, revoking an issuing CA.
#[path = "interop/ca_lifecycle.rs"]
mod ca_lifecycle;

/// The HTTP API and its OpenAPI document.
#[path = "interop/api.rs"]
mod api;

/// The server's HTTPS identity, mutual TLS for the admin API, admin tokens.
#[path = "interop/admin.rs"]
mod admin;

/// RSA and RSASSA-PSS hierarchies, in files and on a token.
#[path = "interop/algorithms.rs"]
mod algorithms;

/// PKCS#11 tokens, M-of-N custodians of the passphrase and the token PIN.
#[path = "interop/custody.rs"]
mod custody;

/// The audit log's hash chain.
#[path = "interop/audit.rs"]
mod audit;

/// Backup and restore.
#[path = "interop/backup.rs"]
mod backup;

/// The registration authority's pages: applications, officers, PIN mailers.
#[path = "interop/registration.rs"]
mod registration;

/// Notices: the e-mail address proven before it goes into a certificate,
/// reminders by e-mail (a real SMTP server) and letter, once each across
/// kills.
#[path = "interop/notices.rs"]
mod notices;

/// Lost certificates: online with the mailer's revocation code, on paper
/// under dual control; judged by OpenSSL's OCSP client.
#[path = "interop/lost.rs"]
mod lost;

/// Bulk campaigns: a batch imported, checked, approved by a supervisor,
/// issued with central keys and collected; all or nothing across kills.
#[path = "interop/campaign.rs"]
mod campaign;

/// Smart cards personalised at the counter, and key recovery under dual
/// control.
#[path = "interop/cards.rs"]
mod cards;

/// Staff accounts proposed and approved by two administrators.
#[path = "interop/accounts.rs"]
mod accounts;

/// The population registry as a remote HTTPS service.
#[path = "interop/registry_http.rs"]
mod registry_http;

/// Counter appointments: capacity under concurrent bookings, reminders.
#[path = "interop/appointments.rs"]
mod appointments;

/// Privacy: opt-in marketing consent, data export, retention purge.
#[path = "interop/privacy.rs"]
mod privacy;

/// Online renewal with re-key, proven with the current key.
#[path = "interop/renewal.rs"]
mod renewal;

/// Fees through the built-in test payment provider; receipts; webhooks.
#[path = "interop/fees.rs"]
mod fees;

/// The registration pages in headless Chromium over WebDriver.
#[path = "interop/browser.rs"]
mod browser;
