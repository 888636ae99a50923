//! The CA service's test fixture: a fresh installation made by the key
//! ceremony (SQLite, software keys, a fast KDF).

#![allow(clippy::unwrap_used)]

use hallmark_install::ceremony;
use hallmark_keys::Passphrase;
use hallmark_testkit::temp::TempDir;

use crate::system_now;

/// An installation in a temporary directory (removed when dropped).
pub(crate) struct Installation {
    _tmp: TempDir,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) pass: Passphrase,
    /// The time of the ceremony.
    pub(crate) t0: u64,
}

pub(crate) async fn installation(tag: &str) -> Installation {
    let tmp = TempDir::new(tag);
    let dir = tmp.join("data");
    let pass = Passphrase::new("renewal test passphrase".into()).unwrap();
    let t0 = system_now();
    let mut opts = ceremony::InitOptions::software(
        "CN=Renewal Root,C=HK",
        "CN=Renewal Issuing,C=HK",
        "127.0.0.1:0",
    );
    opts.root_algorithm = hallmark_crypto::KeyAlgorithm::EcP256;
    opts.root_days = 3650;
    opts.issuing_days = 1825;
    opts.base_url = "http://127.0.0.1".into();
    opts.kdf = hallmark_keys::KdfParams::danger_insecure_for_tests();
    hallmark_keys::danger_allow_weak_kdf();
    ceremony::init(&dir, &opts, &pass, t0).await.unwrap();
    Installation {
        _tmp: tmp,
        dir,
        pass,
        t0,
    }
}
