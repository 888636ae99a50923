//! Encoders and parsers against vectors made by OpenSSL and against an
//! independent decoder (x509-cert's), not only our own.

#![allow(clippy::unwrap_used)]

use der::Decode;
use hallmark_pki::crl::{CrlParams, EntryWriter, Reason};
use hallmark_pki::ocsp::{self, HashAlg};

/// `openssl ocsp -issuer issuing.pem -cert leaf.pem -reqout req.der` (OpenSSL
/// 3.0, with its default nonce), RFC 6960 §4.1.
const OPENSSL_REQUEST_WITH_NONCE: &str = "307a30783051304f304d300906052b0e03021a05000414904b657d159276acefbb5121a7ffc2e41268a9d6041498930baf7c5a1423cba0a965231b23d7e309276302143ddbc6e07710bee16c6b36f309c79e199f50d0a2a2233021301f06092b0601050507300102041204107f3a1e111647e31b58c894a4ef366619";

#[test]
fn parses_openssl_ocsp_request() {
    let der = hallmark_pki::unhex(OPENSSL_REQUEST_WITH_NONCE).unwrap();
    let req = ocsp::parse_request(&der).unwrap();
    assert_eq!(req.cert_ids.len(), 1);
    let id = &req.cert_ids[0];
    assert_eq!(id.hash, HashAlg::Sha1);
    assert_eq!(
        hallmark_pki::hex(&id.issuer_name_hash),
        "904b657d159276acefbb5121a7ffc2e41268a9d6"
    );
    assert_eq!(
        hallmark_pki::hex(&id.issuer_key_hash),
        "98930baf7c5a1423cba0a965231b23d7e3092763"
    );
    assert_eq!(
        hallmark_pki::hex(&id.serial),
        "3ddbc6e07710bee16c6b36f309c79e199f50d0a2"
    );
    // The nonce extension is kept byte for byte, to be echoed.
    let nonce = req.nonce.unwrap();
    assert_eq!(
        hallmark_pki::hex(nonce.extn_value.as_bytes()),
        "04107f3a1e111647e31b58c894a4ef366619"
    );
    // Our CertID encoding is the request's, byte for byte.
    let pos = der
        .windows(id.to_der().len())
        .position(|w| w == id.to_der());
    assert!(pos.is_some());
}

#[test]
fn rejects_bad_ocsp_requests() {
    let der = hallmark_pki::unhex(OPENSSL_REQUEST_WITH_NONCE).unwrap();
    assert!(
        ocsp::parse_request(&der[..der.len() - 1]).is_err(),
        "truncated"
    );
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(ocsp::parse_request(&trailing).is_err(), "trailing data");
    assert!(matches!(
        ocsp::parse_request(&vec![0x30; ocsp::MAX_REQUEST_BYTES + 1]),
        Err(ocsp::RequestError::TooLarge)
    ));
    assert!(ocsp::parse_request(b"").is_err());
}

fn test_signer() -> hallmark_crypto::SoftwareSigner {
    let pkcs8 = hallmark_crypto::generate_pkcs8(hallmark_crypto::KeyAlgorithm::EcP256).unwrap();
    hallmark_crypto::SoftwareSigner::from_pkcs8(hallmark_crypto::KeyAlgorithm::EcP256, &pkcs8)
        .unwrap()
}

#[test]
fn crl_decodes_with_an_independent_parser() {
    use hallmark_crypto::Signer;
    use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
    let signer = test_signer();
    let name = hallmark_pki::subject::parse("CN=香港郵政 Test CA,C=HK").unwrap();
    let name_der = der::Encode::to_der(&name).unwrap();
    let mut w = EntryWriter::default();
    w.push(&[0x7f; 20], 1_800_000_000, Reason::KeyCompromise)
        .unwrap();
    w.push(&[0x80, 1], 1_800_000_001, Reason::Unspecified)
        .unwrap(); // needs a 0x00 pad
    w.push(&[0x01], 2_600_000_000, Reason::Superseded).unwrap(); // after 2049: GeneralizedTime
    let alg = signer.signature_algorithm();
    let params = CrlParams {
        issuer_name_der: &name_der,
        issuer_key_id: &[9; 20],
        signature_algorithm: &alg,
        this_update: 1_800_000_000,
        next_update: 1_800_604_800,
        crl_number: 300,
        distribution_point: Some("http://ca.example/crl/issuing/7.crl"),
    };
    let tbs = hallmark_pki::crl::tbs(&params, &w).unwrap();
    let sig = signer.sign(&tbs).unwrap();
    let crl_der = hallmark_pki::cert::signed_sequence(&tbs, &alg, &sig).unwrap();
    let crl =
        x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&crl_der)
            .unwrap();
    let revoked = crl.tbs_cert_list.revoked_certificates.as_ref().unwrap();
    assert_eq!(revoked.len(), 3);
    assert_eq!(revoked[1].serial_number.as_bytes(), &[0x00, 0x80, 0x01]);
    assert!(
        revoked[1].crl_entry_extensions.is_none(),
        "unspecified is left out"
    );
    let reason = &revoked[0].crl_entry_extensions.as_ref().unwrap()[0];
    assert_eq!(reason.extn_id.to_string(), "2.5.29.21");
    assert_eq!(reason.extn_value.as_bytes(), &[0x0a, 0x01, 0x01]);
    assert!(matches!(
        revoked[2].revocation_date,
        x509_cert::time::Time::GeneralTime(_)
    ));
    let exts = crl.tbs_cert_list.crl_extensions.as_ref().unwrap();
    let idp = exts
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.28")
        .expect("IDP under its own OID");
    assert!(idp.critical);
    let idp = IssuingDistributionPoint::from_der(idp.extn_value.as_bytes()).unwrap();
    assert!(idp.only_contains_user_certs);
    assert_eq!(crl.tbs_cert_list.issuer, name);
    // The signature verifies over the TBS as the parser sees it.
    let tbs_again = der::Encode::to_der(&crl.tbs_cert_list).unwrap();
    assert_eq!(tbs_again, tbs);
    hallmark_crypto::verify_signature(
        signer.spki_der(),
        alg.oid,
        None,
        &tbs,
        crl.signature.raw_bytes(),
    )
    .unwrap();
}

#[test]
fn ocsp_response_decodes_and_echoes_the_nonce() {
    use hallmark_crypto::Signer;
    let signer = test_signer();
    let der = hallmark_pki::unhex(OPENSSL_REQUEST_WITH_NONCE).unwrap();
    let req = ocsp::parse_request(&der).unwrap();
    let singles = [ocsp::SingleResponse {
        cert_id: &req.cert_ids[0],
        status: ocsp::CertStatus::Revoked {
            at: 1_800_000_000,
            reason: Reason::KeyCompromise,
        },
        this_update: 1_800_000_100,
        next_update: 1_800_345_700,
    }];
    let data = ocsp::response_data(&[7; 20], 1_800_000_100, &singles, req.nonce.as_ref()).unwrap();
    let sig = signer.sign(&data).unwrap();
    let resp = ocsp::successful_response(&data, &signer.signature_algorithm(), &sig, &[0x30, 0x00])
        .unwrap();
    // OCSPResponse { successful(0), [0] { id-pkix-ocsp-basic, OCTET STRING } }.
    assert_eq!(resp[0], 0x30);
    assert!(resp.windows(3).any(|w| w == [0x0a, 0x01, 0x00]));
    assert!(
        resp.windows(ocsp::BASIC.as_bytes().len())
            .any(|w| w == ocsp::BASIC.as_bytes())
    );
    // The nonce comes back and the revocation reason is there.
    assert!(resp.windows(18).any(|w| w == &hallmark_pki::unhex("04107f3a1e111647e31b58c894a4ef366619").unwrap()[..]));
    assert!(data.windows(5).any(|w| w == [0xa0, 0x03, 0x0a, 0x01, 0x01]));
    assert_eq!(
        ocsp::error_response(ocsp::ResponseStatus::Unauthorized),
        [0x30, 0x03, 0x0a, 0x01, 0x06]
    );
}

/// Every single-bit flip of an OpenSSL OCSP request, every truncation and
/// every one-byte extension is parsed without a panic; flips of the outer
/// tags and lengths, truncations and trailing bytes are refused. (Flips in
/// hashes, serial or nonce may parse: those are opaque octets.)
#[test]
fn mutated_ocsp_requests_never_panic() {
    let der = hallmark_pki::unhex(OPENSSL_REQUEST_WITH_NONCE).unwrap();
    for i in 0..der.len() {
        for bit in 0..8 {
            let mut m = der.clone();
            m[i] ^= 1 << bit;
            let r = ocsp::parse_request(&m);
            // The outer tags and lengths (OCSPRequest, TBSRequest) admit no change.
            if i < 4 {
                assert!(r.is_err(), "flip of bit {bit} in byte {i} was accepted");
            }
        }
    }
    for n in 0..der.len() {
        assert!(ocsp::parse_request(&der[..n]).is_err(), "truncated to {n}");
    }
    for b in [0x00u8, 0x05, 0x30, 0x80, 0xff] {
        let mut m = der.clone();
        m.push(b);
        assert!(ocsp::parse_request(&m).is_err(), "trailing {b:#x}");
    }
}

/// A CSR whose any single bit is flipped is refused: a flip in the signed
/// part breaks the signature, one in the structure breaks the DER, one in the
/// signature fails verification.
#[test]
fn every_bit_flip_of_a_csr_is_refused() {
    let signer = test_signer();
    let subject = hallmark_pki::subject::parse("CN=Flip Test,O=Hallmark,C=HK").unwrap();
    let csr = hallmark_pki::csr::build(&subject, &signer).unwrap();
    hallmark_pki::csr::verify(&csr).unwrap();
    for i in 0..csr.len() {
        for bit in 0..8 {
            let mut m = csr.clone();
            m[i] ^= 1 << bit;
            assert!(
                hallmark_pki::csr::verify(&m).is_err(),
                "flip of bit {bit} in byte {i} was accepted"
            );
        }
    }
    for n in 0..csr.len() {
        assert!(hallmark_pki::csr::verify(&csr[..n]).is_err());
    }
}
