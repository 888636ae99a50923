//! Extension values, built with x509-cert's typed structures.

use const_oid::db::{rfc5280, rfc5912, rfc6960};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Ia5String, OctetString};
use der::{Encode, flagset::FlagSet};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier, certpolicy::PolicyInformation,
    certpolicy::PolicyQualifierInfo,
};

use crate::{PkiError, Result};

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
pub const OCSP_NOCHECK: ObjectIdentifier = rfc6960::ID_PKIX_OCSP_NOCHECK;
/// id-qt-cps (RFC 5280 §4.2.1.4).
pub const ID_QT_CPS: ObjectIdentifier = rfc5912::ID_QT_CPS;
/// anyPolicy.
pub const ANY_POLICY: ObjectIdentifier = rfc5280::ANY_POLICY;

pub fn make<T: Encode + AssociatedOid>(critical: bool, value: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

pub fn ia5(s: &str) -> Result<Ia5String> {
    Ia5String::new(s).map_err(|e| PkiError::malformed("IA5String (URL, e-mail or DNS name)", e))
}

pub fn uri(s: &str) -> Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(ia5(s)?))
}

pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> Result<Extension> {
    make(
        true,
        &BasicConstraints {
            ca,
            path_len_constraint: path_len,
        },
    )
}

pub fn key_usage(bits: FlagSet<KeyUsages>) -> Result<Extension> {
    make(true, &KeyUsage(bits))
}

pub fn ext_key_usage(oids: Vec<ObjectIdentifier>) -> Result<Extension> {
    make(false, &ExtendedKeyUsage(oids))
}

/// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value.
pub fn key_id(spki_der: &[u8]) -> Result<Vec<u8>> {
    let spki = spki::SubjectPublicKeyInfoRef::try_from(spki_der)
        .map_err(|e| PkiError::malformed("public key", e))?;
    Ok(hallmark_crypto::sha1(spki.subject_public_key.raw_bytes()).to_vec())
}

pub fn subject_key_id(ski: &[u8]) -> Result<Extension> {
    make(false, &SubjectKeyIdentifier(OctetString::new(ski)?))
}

pub fn authority_key_id(issuer_ski: &[u8]) -> Result<Extension> {
    make(
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(issuer_ski)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

pub fn crl_distribution_point(url: &str) -> Result<Extension> {
    make(
        false,
        &CrlDistributionPoints(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
            reasons: None,
            crl_issuer: None,
        }]),
    )
}

pub fn authority_info_access(ocsp_url: Option<&str>, ca_issuers_url: &str) -> Result<Extension> {
    let mut v = Vec::new();
    if let Some(o) = ocsp_url {
        v.push(AccessDescription {
            access_method: rfc5912::ID_AD_OCSP,
            access_location: uri(o)?,
        });
    }
    v.push(AccessDescription {
        access_method: rfc5912::ID_AD_CA_ISSUERS,
        access_location: uri(ca_issuers_url)?,
    });
    make(false, &AuthorityInfoAccessSyntax(v))
}

pub fn certificate_policies(policy: ObjectIdentifier, cps_uri: Option<&str>) -> Result<Extension> {
    let qualifiers = match cps_uri {
        Some(u) => Some(vec![PolicyQualifierInfo {
            policy_qualifier_id: ID_QT_CPS,
            qualifier: Some(der::Any::encode_from(&ia5(u)?)?),
        }]),
        None => None,
    };
    make(
        false,
        &CertificatePolicies(vec![PolicyInformation {
            policy_identifier: policy,
            policy_qualifiers: qualifiers,
        }]),
    )
}

pub fn subject_alt_name(emails: &[String], dns: &[String], critical: bool) -> Result<Extension> {
    let mut names = Vec::new();
    for e in emails {
        names.push(GeneralName::Rfc822Name(ia5(e)?));
    }
    for d in dns {
        names.push(GeneralName::DnsName(ia5(d)?));
    }
    make(critical, &SubjectAltName(names))
}

pub fn ocsp_nocheck() -> Result<Extension> {
    Ok(Extension {
        extn_id: OCSP_NOCHECK,
        critical: false,
        // NULL (RFC 6960 §4.2.2.2.1: "ext-ocsp-nocheck ... EXTENSION ::= { SYNTAX NULL }").
        extn_value: OctetString::new(vec![0x05, 0x00])?,
    })
}
