//! Signing OCSP responses with a delegated responder key.

use std::sync::Arc;

use hallmark_crypto::Signer;
use hallmark_pki::ocsp::{self, CertId, HashAlg, SingleResponse};

use crate::{IssuerKey, Result};

/// The hashes that identify an issuer in a CertID.
#[derive(Clone, Debug)]
pub struct IssuerHashes {
    pub sha1_name: Vec<u8>,
    pub sha1_key: Vec<u8>,
    pub sha256_name: Vec<u8>,
    pub sha256_key: Vec<u8>,
}

impl IssuerHashes {
    pub fn of(issuer: &IssuerKey) -> Result<Self> {
        let spki = spki::SubjectPublicKeyInfoRef::try_from(issuer.spki_der.as_slice())
            .map_err(|e| crate::CaError::BadRequest(e.to_string()))?;
        let key = spki.subject_public_key.raw_bytes();
        Ok(Self {
            sha1_name: HashAlg::Sha1.digest(&issuer.name_der),
            sha1_key: HashAlg::Sha1.digest(key),
            sha256_name: HashAlg::Sha256.digest(&issuer.name_der),
            sha256_key: HashAlg::Sha256.digest(key),
        })
    }

    pub fn matches(&self, id: &CertId) -> bool {
        let (n, k) = match id.hash {
            HashAlg::Sha1 => (&self.sha1_name, &self.sha1_key),
            HashAlg::Sha256 => (&self.sha256_name, &self.sha256_key),
        };
        // Public values: no need for constant time.
        *n == id.issuer_name_hash && *k == id.issuer_key_hash
    }
}

/// A delegated responder for one issuing CA.
#[derive(Clone)]
pub struct Responder {
    pub issuer_id: String,
    pub cert_der: Vec<u8>,
    pub not_after: u64,
    pub signer: Arc<dyn Signer>,
    key_hash: Vec<u8>,
}

impl Responder {
    pub fn new(issuer_id: &str, cert_der: Vec<u8>, signer: Arc<dyn Signer>) -> Result<Self> {
        let c = hallmark_pki::cert::parse(&cert_der)?;
        let not_after = hallmark_pki::time::unix(&c.tbs_certificate().validity().not_after);
        let spki = spki::SubjectPublicKeyInfoRef::try_from(signer.spki_der())
            .map_err(|e| crate::CaError::BadRequest(e.to_string()))?;
        let key_hash = hallmark_crypto::sha1(spki.subject_public_key.raw_bytes()).to_vec();
        Ok(Self {
            issuer_id: issuer_id.into(),
            cert_der,
            not_after,
            signer,
            key_hash,
        })
    }

    pub fn sign(
        &self,
        responses: &[SingleResponse<'_>],
        nonce: Option<&x509_cert::ext::Extension>,
        produced_at: u64,
    ) -> Result<Vec<u8>> {
        let data = ocsp::response_data(&self.key_hash, produced_at, responses, nonce)?;
        let sig = crate::sign_checked(self.signer.as_ref(), &data)?;
        Ok(ocsp::successful_response(
            &data,
            &self.signer.signature_algorithm(),
            &sig,
            &self.cert_der,
        )?)
    }
}
