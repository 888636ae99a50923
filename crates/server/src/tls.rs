//! HTTPS with rustls. The private key stays in Hallmark's key custody: rustls
//! signs handshakes through our `Signer`, so no key bytes are ever loaded.

use std::sync::{Arc, RwLock};

use hallmark_crypto::{KeyAlgorithm, RsaPadding, Signer};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use rustls::{SignatureAlgorithm, SignatureScheme};

#[derive(Debug)]
struct CustodyKey(Arc<SignerBox>);

struct SignerBox(Arc<dyn Signer>);

impl std::fmt::Debug for SignerBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "custody key ({})", self.0.key_algorithm())
    }
}

#[derive(Debug)]
struct CustodySigner {
    key: Arc<SignerBox>,
    scheme: SignatureScheme,
}

impl rustls::sign::Signer for CustodySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key
            .0
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("signing failed: {e}")))
    }
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

impl rustls::sign::SigningKey for CustodyKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        // Our signers produce ECDSA-with-SHA-256/384 (DER) and RSA PKCS#1 v1.5
        // with SHA-256, which is what these schemes mean.
        let scheme = match self.0.0.key_algorithm() {
            KeyAlgorithm::EcP256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            KeyAlgorithm::EcP384 => SignatureScheme::ECDSA_NISTP384_SHA384,
            // TLS 1.3 allows RSA only with PSS; PKCS#1 v1.5 keys serve TLS 1.2.
            _ if self.0.0.rsa_padding() == RsaPadding::Pss => SignatureScheme::RSA_PSS_SHA256,
            _ => SignatureScheme::RSA_PKCS1_SHA256,
        };
        offered.contains(&scheme).then(|| {
            Box::new(CustodySigner {
                key: self.0.clone(),
                scheme,
            }) as Box<dyn rustls::sign::Signer>
        })
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        if self.0.0.key_algorithm().is_rsa() {
            SignatureAlgorithm::RSA
        } else {
            SignatureAlgorithm::ECDSA
        }
    }
}

/// The client certificate a connection presented (DER), verified against
/// the installation's CAs; handlers find it in the request's extensions.
#[derive(Clone)]
pub struct ClientCert(pub Arc<Vec<u8>>);

/// The server's own certificate chain and key, shared by its TLS listeners
/// and replaced in place when renewed: handshakes after a
/// [`replace`](Self::replace) present the new certificate, without a
/// restart.
#[derive(Debug)]
pub struct Identity {
    current: RwLock<(Arc<CertifiedKey>, u64)>,
}

impl Identity {
    pub fn new(chain: Vec<Vec<u8>>, signer: Arc<dyn Signer>) -> Result<Arc<Self>, String> {
        let cur = certified(chain, signer)?;
        Ok(Arc::new(Self {
            current: RwLock::new(cur),
        }))
    }

    /// When the certificate presented now is due for renewal (unix time):
    /// when a third of its validity is left.
    pub fn renew_at(&self) -> u64 {
        self.current.read().map(|g| g.1).unwrap_or(0)
    }

    /// The leaf certificate presented now (DER).
    pub fn leaf(&self) -> Vec<u8> {
        self.current
            .read()
            .ok()
            .and_then(|g| g.0.cert.first().map(|c| c.to_vec()))
            .unwrap_or_default()
    }

    pub fn replace(&self, chain: Vec<Vec<u8>>, signer: Arc<dyn Signer>) -> Result<(), String> {
        let cur = certified(chain, signer)?;
        if let Ok(mut g) = self.current.write() {
            *g = cur;
        }
        Ok(())
    }
}

fn certified(
    chain: Vec<Vec<u8>>,
    signer: Arc<dyn Signer>,
) -> Result<(Arc<CertifiedKey>, u64), String> {
    let leaf = chain
        .first()
        .ok_or("an empty certificate chain")
        .and_then(|c| hallmark_pki::cert::parse(c).map_err(|_| "a leaf that does not parse"))?;
    let v = leaf.tbs_certificate().validity();
    let (nb, na) = (
        hallmark_pki::time::unix(&v.not_before),
        hallmark_pki::time::unix(&v.not_after),
    );
    let renew_at = na.saturating_sub(na.saturating_sub(nb) / 3);
    let key = CertifiedKey::new(
        chain.into_iter().map(CertificateDer::from).collect(),
        Arc::new(CustodyKey(Arc::new(SignerBox(signer)))),
    );
    Ok((Arc::new(key), renew_at))
}

impl rustls::server::ResolvesServerCert for Identity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|g| g.0.clone())
    }
}

/// A TLS server configuration. With `client_anchors` (the installation's
/// CA certificates) every client must present a certificate chaining to one
/// of them: the admin listener (mutual TLS). Without, no client certificate
/// is asked for, so browsers and OCSP clients never see a certificate
/// request on the public listener.
pub fn server_config(
    identity: Arc<Identity>,
    client_anchors: Option<&[Vec<u8>]>,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if let Some(client_anchors) = client_anchors {
        let mut roots = rustls::RootCertStore::empty();
        for a in client_anchors {
            roots
                .add(CertificateDer::from(a.clone()))
                .map_err(|e| format!("CA certificate as a client trust anchor: {e}"))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder.with_cert_resolver(identity);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
