//! The CA hierarchy: self-signed root, issuing CAs under it, and delegated
//! OCSP signing certificates (RFC 6960 §4.2.2.2). Used by the key ceremony
//! and by OCSP signer renewal. Each certificate is linted before signing.

use hallmark_crypto::Signer;
use hallmark_pki::cert::Template;
use hallmark_pki::lint::{self, Issuer, Kind};
use hallmark_pki::{ext, random_serial, subject};
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;

use crate::{CaError, IssuerKey, Result, Settings};

/// Self-signs a root CA certificate.
pub fn root_certificate(
    signer: &dyn Signer,
    subject_dn: &str,
    now: u64,
    days: u32,
) -> Result<Vec<u8>> {
    let name = subject::parse(subject_dn)?;
    if name.is_empty() {
        return Err(CaError::BadRequest(
            "the root CA needs a subject name".into(),
        ));
    }
    let spki = signer.spki_der().to_vec();
    let ski = ext::key_id(&spki)?;
    let not_after = now + days as u64 * 86_400;
    let t = Template {
        serial: random_serial()?.to_vec(),
        signature_algorithm: signer.signature_algorithm(),
        issuer: name.clone(),
        not_before: now,
        not_after,
        subject: name.clone(),
        spki_der: spki,
        extensions: vec![
            ext::basic_constraints(true, None)?,
            ext::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            ext::subject_key_id(&ski)?,
        ],
    };
    let name_der = der::Encode::to_der(&name).map_err(hallmark_pki::PkiError::from)?;
    let alg = signer.signature_algorithm();
    let linted = lint::lint_certificate(
        t.to_tbs_der()?,
        Kind::Ca {
            path_len: None,
            self_signed: true,
        },
        &Issuer {
            name_der: &name_der,
            key_id: &ski,
            not_before: now,
            not_after,
            signature_algorithm: &alg,
        },
    )?;
    let sig = signer.sign(linted.der())?;
    let cert = hallmark_pki::cert::assemble(linted.der(), &alg, &sig)?;
    hallmark_pki::cert::verify_signed_by(&cert, signer.spki_der())?;
    Ok(cert)
}

/// Issues a CA certificate for `spki_der` under `parent` (normally the root).
pub fn issuing_certificate(
    parent: &IssuerKey,
    spki_der: &[u8],
    subject_dn: &str,
    now: u64,
    days: u32,
    settings: &Settings,
) -> Result<Vec<u8>> {
    let name = subject::parse(subject_dn)?;
    if name.is_empty() {
        return Err(CaError::BadRequest(
            "an issuing CA needs a subject name".into(),
        ));
    }
    hallmark_crypto::classify_spki(spki_der)?;
    let not_after = (now + days as u64 * 86_400).min(parent.not_after);
    let t = Template {
        serial: random_serial()?.to_vec(),
        signature_algorithm: parent.signer.signature_algorithm(),
        issuer: der::Decode::from_der(&parent.name_der).map_err(hallmark_pki::PkiError::from)?,
        not_before: now,
        not_after,
        subject: name,
        spki_der: spki_der.to_vec(),
        extensions: vec![
            ext::basic_constraints(true, Some(0))?,
            ext::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            ext::certificate_policies(ext::ANY_POLICY, settings.cps_uri.as_deref())?,
            ext::crl_distribution_point(&settings.crl_url(&parent.id))?,
            ext::authority_info_access(None, &settings.ca_cert_url(&parent.id))?,
            ext::subject_key_id(&ext::key_id(spki_der)?)?,
            ext::authority_key_id(&parent.key_id)?,
        ],
    };
    let linted = lint::lint_certificate(
        t.to_tbs_der()?,
        Kind::Ca {
            path_len: Some(0),
            self_signed: false,
        },
        &parent.lint_issuer(),
    )?;
    parent.sign_linted(&linted)
}

/// Issues a delegated OCSP responder certificate for `spki_der`.
pub fn ocsp_signer_certificate(
    issuer: &IssuerKey,
    spki_der: &[u8],
    now: u64,
    secs: u64,
    settings: &Settings,
) -> Result<Vec<u8>> {
    let issuer_name: Name =
        der::Decode::from_der(&issuer.name_der).map_err(hallmark_pki::PkiError::from)?;
    let attrs = subject::attributes(&issuer_name);
    let cn = attrs
        .iter()
        .find(|(k, _)| k == "CN")
        .map(|(_, v)| v.as_str())
        .unwrap_or(&issuer.id);
    // Built from the values themselves (no RFC 4514 round trip to
    // mis-escape them), within the upper bound of a CN.
    let mut dn = vec![(
        "CN".to_string(),
        subject::with_suffix_within_bound("CN", cn, " OCSP Responder"),
    )];
    for (k, v) in attrs.iter().rev() {
        if k == "O" || k == "C" {
            dn.push((k.clone(), v.clone()));
        }
    }
    let not_after = (now + secs).min(issuer.not_after);
    let t = Template {
        serial: random_serial()?.to_vec(),
        signature_algorithm: issuer.signer.signature_algorithm(),
        issuer: issuer_name,
        // A little slack for relying parties whose clocks run behind.
        not_before: now.saturating_sub(3600).max(issuer.not_before),
        not_after,
        subject: subject::build(&dn)?,
        spki_der: spki_der.to_vec(),
        extensions: vec![
            ext::key_usage(KeyUsages::DigitalSignature.into())?,
            ext::ext_key_usage(vec![const_oid::db::rfc5280::ID_KP_OCSP_SIGNING])?,
            ext::ocsp_nocheck()?,
            ext::authority_info_access(None, &settings.ca_cert_url(&issuer.id))?,
            ext::subject_key_id(&ext::key_id(spki_der)?)?,
            ext::authority_key_id(&issuer.key_id)?,
        ],
    };
    let linted = lint::lint_certificate(t.to_tbs_der()?, Kind::OcspSigner, &issuer.lint_issuer())?;
    issuer.sign_linted(&linted)
}

/// A cross-certificate: `signer` certifies `subject`'s name and key as a CA
/// without a path-length limit, so chains below `subject` validate up to
/// `signer` (used when a root is re-keyed).
pub fn cross_certificate(
    signer: &IssuerKey,
    subject: &IssuerKey,
    now: u64,
    days: u32,
    settings: &Settings,
) -> Result<Vec<u8>> {
    let not_after = (now + days as u64 * 86_400)
        .min(signer.not_after)
        .min(subject.not_after);
    let t = Template {
        serial: random_serial()?.to_vec(),
        signature_algorithm: signer.signer.signature_algorithm(),
        issuer: der::Decode::from_der(&signer.name_der).map_err(hallmark_pki::PkiError::from)?,
        not_before: now,
        not_after,
        subject: der::Decode::from_der(&subject.name_der).map_err(hallmark_pki::PkiError::from)?,
        spki_der: subject.spki_der.clone(),
        extensions: vec![
            ext::basic_constraints(true, None)?,
            ext::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            ext::crl_distribution_point(&settings.crl_url(&signer.id))?,
            ext::authority_info_access(None, &settings.ca_cert_url(&signer.id))?,
            ext::subject_key_id(&subject.key_id)?,
            ext::authority_key_id(&signer.key_id)?,
        ],
    };
    let linted = lint::lint_certificate(
        t.to_tbs_der()?,
        Kind::Ca {
            path_len: None,
            self_signed: false,
        },
        &signer.lint_issuer(),
    )?;
    signer.sign_linted(&linted)
}
