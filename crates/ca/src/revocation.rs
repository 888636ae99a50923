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
    let sig = issuer.sign_checked(&tbs)?;
    Ok(cert::signed_sequence(&tbs, &alg, &sig)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hallmark_crypto::{KeyAlgorithm, Signer, SoftwareSigner};
    use hallmark_pki::crl::{EntryWriter, Reason, check_received};

    use super::sign_crl;
    use crate::{IssuerKey, hierarchy};

    const NOW: u64 = 1_800_000_000;

    fn ca(name: &str) -> IssuerKey {
        let pkcs8 = hallmark_crypto::generate_pkcs8(KeyAlgorithm::EcP256).unwrap();
        let key = Arc::new(SoftwareSigner::from_pkcs8(KeyAlgorithm::EcP256, &pkcs8).unwrap());
        let cert = hierarchy::root_certificate(key.as_ref(), name, NOW - 86_400, 3650).unwrap();
        IssuerKey::new("root", cert, key, true).unwrap()
    }

    /// An RSA key whose signatures come out wrong (a fault in the signing
    /// hardware: with RSA-CRT such a signature gives the key away).
    struct Faulty(SoftwareSigner);

    impl Signer for Faulty {
        fn key_algorithm(&self) -> KeyAlgorithm {
            self.0.key_algorithm()
        }
        fn spki_der(&self) -> &[u8] {
            self.0.spki_der()
        }
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, hallmark_crypto::CryptoError> {
            let mut sig = self.0.sign(msg)?;
            sig[7] ^= 0x20;
            Ok(sig)
        }
    }

    /// No faulty RSA signature leaves the CA: CRLs, certificates and OCSP
    /// responses are each verified after signing.
    #[test]
    fn faulty_rsa_signatures_never_leave() {
        let pkcs8 = hallmark_crypto::generate_pkcs8(KeyAlgorithm::Rsa2048).unwrap();
        let good = Arc::new(SoftwareSigner::from_pkcs8(KeyAlgorithm::Rsa2048, &pkcs8).unwrap());
        let cert =
            hierarchy::root_certificate(good.as_ref(), "CN=RSA Root,C=HK", NOW - 86_400, 3650)
                .unwrap();
        let faulty = Arc::new(Faulty(
            SoftwareSigner::from_pkcs8(KeyAlgorithm::Rsa2048, &pkcs8).unwrap(),
        ));
        let sound = IssuerKey::new("root", cert.clone(), good.clone(), true).unwrap();
        let broken = IssuerKey::new("root", cert, faulty.clone(), true).unwrap();
        let entries = EntryWriter::default();
        assert!(sign_crl(&sound, &entries, 1, NOW, NOW + 86_400, None).is_ok());
        let e = sign_crl(&broken, &entries, 1, NOW, NOW + 86_400, None).unwrap_err();
        assert!(matches!(e, crate::CaError::SignedMismatch), "{e}");
        // A certificate (the OCSP signer's) and an OCSP response.
        let settings = crate::Settings::example("http://127.0.0.1");
        let e =
            hierarchy::ocsp_signer_certificate(&broken, good.spki_der(), NOW, 86_400, &settings)
                .unwrap_err();
        assert!(matches!(e, crate::CaError::SignedMismatch), "{e}");
        let responder_cert =
            hierarchy::ocsp_signer_certificate(&sound, good.spki_der(), NOW, 86_400, &settings)
                .unwrap();
        let responder = crate::ocsp::Responder::new("root", responder_cert, faulty).unwrap();
        let id = hallmark_pki::ocsp::CertId {
            hash: hallmark_pki::ocsp::HashAlg::Sha1,
            issuer_name_hash: vec![0; 20],
            issuer_key_hash: vec![0; 20],
            serial: vec![1; 16],
        };
        let single = hallmark_pki::ocsp::SingleResponse {
            cert_id: &id,
            status: hallmark_pki::ocsp::CertStatus::Good,
            this_update: NOW,
            next_update: NOW + 3600,
        };
        let e = responder.sign(&[single], None, NOW).unwrap_err();
        assert!(matches!(e, crate::CaError::SignedMismatch), "{e}");
    }

    /// A CRL brought from elsewhere (an offline root's) is accepted only
    /// from its CA's key and name, complete, numbered, and not from the
    /// future; its entries come back with their times and reasons.
    #[test]
    fn received_crls_are_checked() {
        let root = ca("CN=Offline Root,C=HK");
        let other = ca("CN=Other Root,C=HK");
        let mut entries = EntryWriter::default();
        entries
            .push(&[0x42; 20], NOW - 60, Reason::CaCompromise)
            .unwrap();
        entries
            .push(&[0x43; 20], NOW - 30, Reason::Unspecified)
            .unwrap();
        let crl = sign_crl(&root, &entries, 7, NOW, NOW + 86_400, None).unwrap();
        let got = check_received(&crl, &root.cert_der, NOW).unwrap();
        assert_eq!(got.number, 7);
        assert_eq!(got.this_update, NOW);
        assert_eq!(got.next_update, Some(NOW + 86_400));
        assert_eq!(
            got.revoked,
            [
                (vec![0x42; 20], NOW - 60, Reason::CaCompromise),
                (vec![0x43; 20], NOW - 30, Reason::Unspecified)
            ]
        );

        let err = |der: &[u8], cert: &[u8], now: u64| {
            check_received(der, cert, now).unwrap_err().to_string()
        };
        assert!(err(&crl, &other.cert_der, NOW).contains("issued by"));
        // Same name, another key.
        let impostor = ca("CN=Offline Root,C=HK");
        assert!(err(&crl, &impostor.cert_der, NOW).contains("does not verify"));
        let mut forged = crl.clone();
        let n = forged.len();
        forged[n - 4] ^= 1;
        assert!(err(&forged, &root.cert_der, NOW).contains("does not verify"));
        assert!(err(&crl, &root.cert_der, NOW - 3600).contains("future"));
        let partition = sign_crl(
            &root,
            &entries,
            8,
            NOW,
            NOW + 86_400,
            Some("http://x/crl/root/1.crl"),
        )
        .unwrap();
        assert!(err(&partition, &root.cert_der, NOW).contains("complete CRL"));
        assert!(err(b"not a CRL", &root.cert_der, NOW).contains("CRL"));
    }
}
