//! Pre-issuance linting. A to-be-signed certificate becomes a [`LintedTbs`]
//! only by passing [`lint_certificate`]; the CA signs nothing else, so a
//! certificate that fails linting is never signed.
//!
//! The checks are RFC 5280 structure rules and conformance to the profile the
//! certificate was requested under. They run on the DER that will be signed,
//! decoded afresh, not on the template that produced it.

use std::collections::HashSet;

use const_oid::AssociatedOid;
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};

use crate::cert::TbsCertificate;
use crate::profile::Profile;
use crate::{PkiError, Result, ext, subject, time};

/// A TBSCertificate that passed linting. Only this module can make one.
#[derive(Debug)]
pub struct LintedTbs {
    der: Vec<u8>,
    serial: Vec<u8>,
}

impl LintedTbs {
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// INTEGER contents of the serial number.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }
    pub fn into_der(self) -> Vec<u8> {
        self.der
    }
}

/// The issuing CA as the lints need it.
pub struct Issuer<'a> {
    pub name_der: &'a [u8],
    pub key_id: &'a [u8],
    pub not_before: u64,
    pub not_after: u64,
    pub signature_algorithm: &'a AlgorithmIdentifierOwned,
}

/// What kind of certificate is being linted.
pub enum Kind<'a> {
    /// A subscriber certificate under a profile.
    Leaf(&'a Profile),
    /// A CA certificate; `self_signed` for roots.
    Ca {
        path_len: Option<u8>,
        self_signed: bool,
    },
    /// A delegated OCSP responder certificate (RFC 6960 §4.2.2.2).
    OcspSigner,
}

/// Minimum bytes of the serial's INTEGER contents (at least 64 random bits
/// per CA/B BR 7.1; Hallmark uses 159 random bits in 20 octets).
const MIN_SERIAL_BYTES: usize = 16;
const MAX_SERIAL_BYTES: usize = 20;

pub fn lint_certificate(
    tbs_der: Vec<u8>,
    kind: Kind<'_>,
    issuer: &Issuer<'_>,
) -> Result<LintedTbs> {
    let tbs = TbsCertificate::from_der(&tbs_der)
        .map_err(|e| PkiError::Lint(vec![format!("TBSCertificate does not decode as DER: {e}")]))?;
    let mut f: Vec<String> = Vec::new();
    let mut bad = |s: String| f.push(s);

    if tbs.version != x509_cert::certificate::Version::V3 {
        bad("version must be v3".into());
    }
    let serial = tbs.serial_number.as_bytes().to_vec();
    if serial.is_empty() || serial[0] & 0x80 != 0 {
        bad("serial number must be positive".into());
    }
    if serial.len() < MIN_SERIAL_BYTES || serial.len() > MAX_SERIAL_BYTES {
        bad(format!(
            "serial number must be {MIN_SERIAL_BYTES} to {MAX_SERIAL_BYTES} octets, is {}",
            serial.len()
        ));
    }
    if &tbs.signature != issuer.signature_algorithm {
        bad("signature algorithm differs from the issuer's".into());
    }
    if tbs.issuer.to_der()? != issuer.name_der {
        bad("issuer name is not byte-identical to the CA's subject".into());
    }
    let nb = time::unix(&tbs.validity.not_before);
    let na = time::unix(&tbs.validity.not_after);
    if na <= nb {
        bad("notAfter must be after notBefore".into());
    }
    if nb < issuer.not_before || na > issuer.not_after {
        bad("validity must lie within the issuer's validity".into());
    }

    // Extensions: no duplicates, and find the ones we check.
    let exts = tbs.extensions.clone().unwrap_or_default();
    let mut seen = HashSet::new();
    for e in &exts {
        if !seen.insert(e.extn_id) {
            bad(format!(
                "extension {} appears twice (RFC 5280 §4.2)",
                e.extn_id
            ));
        }
    }
    let find = |oid| exts.iter().find(|e| e.extn_id == oid);
    let decode = |oid, name: &str, f: &mut Vec<String>| -> Option<(bool, Vec<u8>)> {
        match find(oid) {
            Some(e) => Some((e.critical, e.extn_value.as_bytes().to_vec())),
            None => {
                f.push(format!("{name} extension is missing"));
                None
            }
        }
    };

    // Key identifiers (RFC 5280 §4.2.1.1-2).
    let ski_expected = ext::key_id(&tbs.subject_public_key_info.to_der()?)?;
    if let Some((crit, v)) = decode(SubjectKeyIdentifier::OID, "subjectKeyIdentifier", &mut f) {
        if crit {
            f.push("subjectKeyIdentifier must not be critical".into());
        }
        match SubjectKeyIdentifier::from_der(&v) {
            Ok(s) if s.0.as_bytes() == ski_expected.as_slice() => {}
            _ => f.push("subjectKeyIdentifier is not the SHA-1 of the subject public key".into()),
        }
    }
    let self_signed = matches!(
        kind,
        Kind::Ca {
            self_signed: true,
            ..
        }
    );
    if !self_signed
        && let Some((crit, v)) = decode(
            AuthorityKeyIdentifier::OID,
            "authorityKeyIdentifier",
            &mut f,
        )
    {
        if crit {
            f.push("authorityKeyIdentifier must not be critical".into());
        }
        match AuthorityKeyIdentifier::from_der(&v) {
            Ok(a) if a.key_identifier.as_ref().map(|k| k.as_bytes()) == Some(issuer.key_id) => {}
            _ => f.push("authorityKeyIdentifier does not match the issuer's key identifier".into()),
        }
    }

    // Basic constraints and key usage.
    let bc = find(BasicConstraints::OID).map(|e| {
        (
            e.critical,
            BasicConstraints::from_der(e.extn_value.as_bytes()),
        )
    });
    let ku = find(KeyUsage::OID).map(|e| (e.critical, KeyUsage::from_der(e.extn_value.as_bytes())));
    let ku_bits = match &ku {
        Some((true, Ok(k))) => Some(k.0),
        Some((false, _)) => {
            f.push("keyUsage must be critical".into());
            None
        }
        Some((_, Err(e))) => {
            f.push(format!("keyUsage does not decode: {e}"));
            None
        }
        None => {
            f.push("keyUsage extension is missing".into());
            None
        }
    };
    let key_alg = hallmark_crypto::classify_spki(&tbs.subject_public_key_info.to_der()?)
        .map_err(|e| PkiError::Lint(vec![format!("subject public key: {e}")]))?
        .algorithm;

    match &kind {
        Kind::Ca { path_len, .. } => {
            match &bc {
                Some((true, Ok(b))) if b.ca && b.path_len_constraint == *path_len => {}
                _ => f.push(format!(
                    "CA certificate needs critical basicConstraints cA=TRUE, pathLen {path_len:?}"
                )),
            }
            if let Some(bits) = ku_bits
                && (!bits.contains(KeyUsages::KeyCertSign) || !bits.contains(KeyUsages::CRLSign))
            {
                f.push("CA keyUsage must include keyCertSign and cRLSign".into());
            }
        }
        Kind::OcspSigner => {
            if matches!(&bc, Some((_, Ok(b))) if b.ca) {
                f.push("OCSP signer must not be a CA".into());
            }
            if ku_bits != Some(KeyUsages::DigitalSignature.into()) {
                f.push("OCSP signer keyUsage must be digitalSignature only".into());
            }
            check_eku(&exts, &[rfc5280::ID_KP_OCSP_SIGNING], &mut f);
            if find(ext::OCSP_NOCHECK).is_none() {
                f.push("OCSP signer needs id-pkix-ocsp-nocheck".into());
            }
        }
        Kind::Leaf(p) => {
            if matches!(&bc, Some((_, Ok(b))) if b.ca) {
                f.push("subscriber certificate must not be a CA".into());
            }
            if !p.allows_key(key_alg) {
                f.push(format!(
                    "key algorithm {key_alg} is not allowed by this profile"
                ));
            }
            if let (Some(bits), Ok(want)) = (ku_bits, p.key_usage_bits()) {
                let want = effective_key_usage(want, key_alg);
                if bits != want {
                    f.push("keyUsage differs from the profile".into());
                }
                if bits.contains(KeyUsages::KeyCertSign) || bits.contains(KeyUsages::CRLSign) {
                    f.push("subscriber keyUsage must not include keyCertSign or cRLSign".into());
                }
            }
            if let Ok(want) = p.eku_oids() {
                check_eku(&exts, &want, &mut f);
            }
            let days = na.saturating_sub(nb).div_ceil(86_400);
            if days > p.max_validity_days as u64 {
                f.push(format!(
                    "validity of {days} days exceeds the profile's {} days",
                    p.max_validity_days
                ));
            }
            // Subject attributes.
            let attrs = subject::attributes(&tbs.subject);
            for (k, _) in &attrs {
                if !p.subject_allowed.iter().any(|a| a == k) {
                    f.push(format!(
                        "subject attribute {k} is not allowed by this profile"
                    ));
                }
            }
            for r in &p.subject_required {
                if !attrs.iter().any(|(k, _)| k == r) {
                    f.push(format!("subject attribute {r} is required by this profile"));
                }
            }
            // Policies.
            match (find(CertificatePolicies::OID), p.policy()) {
                (Some(e), Ok(want)) => match CertificatePolicies::from_der(e.extn_value.as_bytes())
                {
                    Ok(cp) if cp.0.iter().any(|pi| pi.policy_identifier == want) => {}
                    _ => f.push(format!("certificatePolicies must contain {want}")),
                },
                _ => f.push("certificatePolicies extension is missing".into()),
            }
            // Revocation pointers.
            match find(CrlDistributionPoints::OID) {
                Some(e) if CrlDistributionPoints::from_der(e.extn_value.as_bytes()).is_ok() => {}
                _ => f.push("cRLDistributionPoints extension is missing or malformed".into()),
            }
            match find(AuthorityInfoAccessSyntax::OID) {
                Some(e) if AuthorityInfoAccessSyntax::from_der(e.extn_value.as_bytes()).is_ok() => {
                }
                _ => f.push("authorityInfoAccess extension is missing or malformed".into()),
            }
            // Subject alternative names.
            let san = find(SubjectAltName::OID).map(|e| {
                (
                    e.critical,
                    SubjectAltName::from_der(e.extn_value.as_bytes()),
                )
            });
            let (mut emails, mut dns) = (0, Vec::new());
            match &san {
                Some((crit, Ok(s))) => {
                    if s.0.is_empty() {
                        f.push("subjectAltName must not be empty".into());
                    }
                    if tbs.subject.is_empty() && !crit {
                        f.push("subjectAltName must be critical when the subject is empty".into());
                    }
                    for (i, n) in s.0.iter().enumerate() {
                        if s.0[..i].contains(n) {
                            f.push(format!("subjectAltName lists {n:?} twice"));
                        }
                        match n {
                            GeneralName::Rfc822Name(m) => {
                                emails += 1;
                                if !valid_email(m.as_str()) {
                                    f.push(format!(
                                        "{:?} is not a valid e-mail address",
                                        m.as_str()
                                    ));
                                }
                            }
                            GeneralName::DnsName(d) => {
                                dns.push(d.as_str().to_ascii_lowercase());
                                if !valid_dns_name(d.as_str()) {
                                    f.push(format!("{:?} is not a valid DNS name", d.as_str()));
                                }
                            }
                            _ => f.push(
                                "subjectAltName may only hold e-mail addresses and DNS names"
                                    .into(),
                            ),
                        }
                    }
                }
                Some((_, Err(e))) => f.push(format!("subjectAltName does not decode: {e}")),
                None => {
                    if tbs.subject.is_empty() {
                        f.push("a certificate with an empty subject needs subjectAltName".into());
                    }
                }
            }
            presence(p.email_san, emails, "e-mail address", &mut f);
            presence(p.dns_san, dns.len(), "DNS name", &mut f);
            // A TLS server certificate's common name, if any, repeats one of
            // its DNS names (CA/B Forum BR §7.1.4.3).
            if p.eku_oids()
                .is_ok_and(|e| e.contains(&rfc5280::ID_KP_SERVER_AUTH))
            {
                for (k, v) in &attrs {
                    if k == "CN" && !dns.contains(&v.to_ascii_lowercase()) {
                        f.push(format!(
                            "common name {v:?} is not one of the certificate's DNS names"
                        ));
                    }
                }
            }
        }
    }

    if f.is_empty() {
        Ok(LintedTbs {
            der: tbs_der,
            serial,
        })
    } else {
        Err(PkiError::Lint(f))
    }
}

fn presence(p: crate::profile::Presence, n: usize, what: &str, f: &mut Vec<String>) {
    use crate::profile::Presence::*;
    match (p, n) {
        (Forbidden, n) if n > 0 => f.push(format!(
            "this profile does not allow a {what} in subjectAltName"
        )),
        (Required, 0) => f.push(format!("this profile requires a {what} in subjectAltName")),
        _ => {}
    }
}

fn check_eku(
    exts: &[x509_cert::ext::Extension],
    want: &[const_oid::ObjectIdentifier],
    f: &mut Vec<String>,
) {
    match exts.iter().find(|e| e.extn_id == ExtendedKeyUsage::OID) {
        Some(e) => match ExtendedKeyUsage::from_der(e.extn_value.as_bytes()) {
            Ok(eku) if eku.0.as_slice() == want => {}
            _ => f.push("extendedKeyUsage differs from the profile".into()),
        },
        None if want.is_empty() => {}
        None => f.push("extendedKeyUsage extension is missing".into()),
    }
}

/// Key usage bits that make sense for the key type: EC keys cannot do key
/// transport (RFC 8813 §3) and RSA keys cannot do key agreement.
pub fn effective_key_usage(
    bits: der::flagset::FlagSet<KeyUsages>,
    alg: hallmark_crypto::KeyAlgorithm,
) -> der::flagset::FlagSet<KeyUsages> {
    if alg.is_rsa() {
        bits - KeyUsages::KeyAgreement
    } else {
        bits - KeyUsages::KeyEncipherment - KeyUsages::DataEncipherment
    }
}

pub fn valid_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && local.bytes().all(|b| b.is_ascii_graphic() && b != b'@')
                && valid_dns_name(domain)
        }
        None => false,
    }
}

/// LDH host names (RFC 1034 §3.5, RFC 5280 §4.2.1.6); one leading `*.` label
/// is allowed for wildcards. The last label is never all digits (RFC 3696
/// §2), which keeps IPv4 addresses out of DNS names.
pub fn valid_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    if s.is_empty() || s.len() > 253 || !s.contains('.') {
        return false;
    }
    if s.rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// Checks CRL parameters before a CRL is signed.
pub fn lint_crl_params(p: &crate::crl::CrlParams<'_>) -> Result<()> {
    let mut f = Vec::new();
    if p.next_update <= p.this_update {
        f.push("nextUpdate must be after thisUpdate".to_string());
    }
    if p.issuer_key_id.is_empty() {
        f.push("authorityKeyIdentifier must not be empty".into());
    }
    if x509_cert::name::Name::from_der(p.issuer_name_der)
        .map(|n| n.is_empty())
        .unwrap_or(true)
    {
        f.push("CRL issuer must be a non-empty distinguished name".into());
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(PkiError::Lint(f))
    }
}

/// Checks a CA certificate made elsewhere (e.g. by an offline root) before
/// it is installed, as relying parties will judge it (RFC 5280 §4.2.1.3,
/// §4.2.1.9, §6.1): v3; a critical basicConstraints with cA=TRUE and a path
/// length the issuer allows; a critical keyUsage with keyCertSign and
/// cRLSign; the issuer's subject as its issuer; valid at `now`, and not
/// outliving the issuer.
pub fn check_ca_certificate(cert_der: &[u8], issuer_der: &[u8], now: u64) -> Result<()> {
    let cert = crate::cert::parse(cert_der)?;
    let issuer = crate::cert::parse(issuer_der)?;
    let (tbs, itbs) = (cert.tbs_certificate(), issuer.tbs_certificate());
    let mut f: Vec<String> = Vec::new();
    if tbs.version() != x509_cert::certificate::Version::V3 {
        f.push("it is not a version 3 certificate".into());
    }
    if tbs.issuer().to_der()? != itbs.subject().to_der()? {
        f.push("its issuer name is not the root's subject".into());
    }
    let ext_of = |t: &x509_cert::TbsCertificate, oid| {
        t.extensions()
            .and_then(|e| e.iter().find(|e| e.extn_id == oid).cloned())
    };
    let bc = |t: &x509_cert::TbsCertificate| {
        ext_of(t, BasicConstraints::OID).map(|e| {
            (
                e.critical,
                BasicConstraints::from_der(e.extn_value.as_bytes()).ok(),
            )
        })
    };
    match bc(tbs) {
        Some((true, Some(b))) if b.ca => {
            if let Some((_, Some(ib))) = bc(itbs)
                && let Some(limit) = ib.path_len_constraint
            {
                if limit == 0 {
                    f.push("the root's pathLenConstraint of 0 allows no CA under it".into());
                } else if b.path_len_constraint.is_none_or(|p| p >= limit) {
                    f.push(format!(
                        "its pathLenConstraint must be below the root's ({limit})"
                    ));
                }
            }
        }
        _ => f.push("it needs a critical basicConstraints with cA=TRUE".into()),
    }
    match ext_of(tbs, KeyUsage::OID) {
        Some(e) if e.critical => match KeyUsage::from_der(e.extn_value.as_bytes()) {
            Ok(k) if k.0.contains(KeyUsages::KeyCertSign) && k.0.contains(KeyUsages::CRLSign) => {}
            _ => f.push("its keyUsage must include keyCertSign and cRLSign".into()),
        },
        _ => f.push("it needs a critical keyUsage with keyCertSign and cRLSign".into()),
    }
    let (nb, na) = (
        time::unix(&tbs.validity().not_before),
        time::unix(&tbs.validity().not_after),
    );
    let root_na = time::unix(&itbs.validity().not_after);
    if na <= nb {
        f.push("its notAfter is not after its notBefore".into());
    }
    if now < nb || now > na {
        f.push("it is not valid now".into());
    }
    if na > root_na {
        f.push(format!(
            "it outlives the root (notAfter {} after the root's {})",
            time::rfc3339(na),
            time::rfc3339(root_na)
        ));
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(PkiError::Lint(f))
    }
}
