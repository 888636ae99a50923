//! Key custody as configured: the sealed software key store alone, or a
//! PKCS#11 token for every signing key with the software store kept for
//! sealing secrets (escrowed subscriber keys). Callers get signers either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hallmark_crypto::{KeyAlgorithm, RsaPadding, Signer};
use zeroize::Zeroizing;

use crate::pkcs11::Token;
use crate::{KdfParams, KeyStore, Passphrase, Result};

/// Where to find the token.
#[derive(Clone)]
pub struct TokenConfig {
    pub module: PathBuf,
    pub token: String,
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

pub enum Custody {
    Software(KeyStore),
    Token { store: KeyStore, token: Arc<Token> },
}

impl Custody {
    /// Creates the key store; RSA keys will sign with `rsa_padding`.
    pub fn create(
        path: &Path,
        pass: &Passphrase,
        kdf: KdfParams,
        token: Option<&TokenConfig>,
        rsa_padding: RsaPadding,
    ) -> Result<Self> {
        // Check the token before anything is written.
        let token = token
            .map(|t| Token::open_with(&t.module, &t.token, &t.pin, rsa_padding))
            .transpose()?;
        let mut store = KeyStore::create(path, pass, kdf)?;
        store.set_rsa_padding(rsa_padding);
        Ok(match token {
            Some(token) => Self::Token { store, token },
            None => Self::Software(store),
        })
    }

    /// Opens the key store; RSA keys sign with `rsa_padding`.
    pub fn open(
        path: &Path,
        pass: &Passphrase,
        token: Option<&TokenConfig>,
        rsa_padding: RsaPadding,
    ) -> Result<Self> {
        let mut store = KeyStore::open(path, pass)?;
        store.set_rsa_padding(rsa_padding);
        Ok(match token {
            Some(t) => Self::Token {
                store,
                token: Token::open_with(&t.module, &t.token, &t.pin, rsa_padding)?,
            },
            None => Self::Software(store),
        })
    }

    fn store(&self) -> &KeyStore {
        match self {
            Self::Software(s) | Self::Token { store: s, .. } => s,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Software(_) => "software",
            Self::Token { .. } => "pkcs11",
        }
    }

    pub fn generate(&mut self, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>> {
        match self {
            Self::Software(s) => s.generate(label, alg),
            Self::Token { token, .. } => token.generate(label, alg),
        }
    }

    pub fn signer(&self, label: &str) -> Result<Arc<dyn Signer>> {
        match self {
            Self::Software(s) => s.signer(label),
            Self::Token { token, .. } => token.signer_by_label(label),
        }
    }

    pub fn remove(&mut self, label: &str) -> Result<()> {
        match self {
            Self::Software(s) => s.remove(label),
            Self::Token { token, .. } => token.remove(label),
        }
    }

    pub fn list(&self) -> Vec<(String, String)> {
        match self {
            Self::Software(s) => s.list(),
            Self::Token { token, .. } => token.list().unwrap_or_default(),
        }
    }

    pub fn seal(&self, context: &str, secret: &[u8]) -> Result<Vec<u8>> {
        self.store().seal(context, secret)
    }

    pub fn open_sealed(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.store().open_sealed(context, sealed)
    }
}
