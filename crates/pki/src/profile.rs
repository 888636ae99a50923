//! Certificate policies as data: profiles are TOML the operator can edit.
//! The shipped defaults cover the certificate types of the requirements:
//! personal, organisational, encipherment-only and server certificates.

use std::collections::BTreeMap;
use std::str::FromStr;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280;
use der::flagset::FlagSet;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::KeyUsages;

use crate::{PkiError, Result};

/// The shipped profile file; `{arc}` is replaced by the operator's
/// certificate-policy OID arc at `hallmark init`.
pub const DEFAULT_PROFILES: &str = include_str!("default-profiles.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Forbidden,
    Optional,
    Required,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub description: String,
    /// keyUsage bits by their RFC 5280 names (digitalSignature, contentCommitment, …).
    pub key_usage: Vec<String>,
    /// Extended key usages by name (serverAuth, clientAuth, emailProtection, …).
    pub extended_key_usage: Vec<String>,
    pub validity_days: u32,
    pub max_validity_days: u32,
    /// Certificate-policy OID (dotted).
    pub policy_oid: String,
    /// Subject attributes (short names) that must be present.
    pub subject_required: Vec<String>,
    /// Subject attributes (short names) that may be present.
    pub subject_allowed: Vec<String>,
    pub email_san: Presence,
    pub dns_san: Presence,
    /// Key algorithms accepted for the subject key (p256, p384, rsa2048, …).
    pub key_algorithms: Vec<String>,
    /// Whether centrally generated private keys are kept (key escrow).
    #[serde(default)]
    pub escrow: bool,
    /// Whether the profile allows central key generation at all.
    #[serde(default = "yes")]
    pub central_keygen: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub version: u32,
    pub profile: BTreeMap<String, Profile>,
}

pub fn parse_profiles(toml_text: &str) -> Result<BTreeMap<String, Profile>> {
    let f: ProfileFile = toml::from_str(toml_text).map_err(|e| PkiError::Profile {
        name: "(file)".into(),
        detail: e.to_string(),
    })?;
    if f.version != 1 {
        return Err(PkiError::Profile {
            name: "(file)".into(),
            detail: format!("unsupported profile file version {}; expected 1", f.version),
        });
    }
    for (name, p) in &f.profile {
        p.validate().map_err(|detail| PkiError::Profile {
            name: name.clone(),
            detail,
        })?;
    }
    Ok(f.profile)
}

pub const KEY_USAGE_NAMES: [(&str, KeyUsages); 9] = [
    ("digitalSignature", KeyUsages::DigitalSignature),
    ("contentCommitment", KeyUsages::NonRepudiation),
    ("keyEncipherment", KeyUsages::KeyEncipherment),
    ("dataEncipherment", KeyUsages::DataEncipherment),
    ("keyAgreement", KeyUsages::KeyAgreement),
    ("keyCertSign", KeyUsages::KeyCertSign),
    ("cRLSign", KeyUsages::CRLSign),
    ("encipherOnly", KeyUsages::EncipherOnly),
    ("decipherOnly", KeyUsages::DecipherOnly),
];

pub fn eku_oid(name: &str) -> Option<ObjectIdentifier> {
    Some(match name {
        "serverAuth" => rfc5280::ID_KP_SERVER_AUTH,
        "clientAuth" => rfc5280::ID_KP_CLIENT_AUTH,
        "emailProtection" => rfc5280::ID_KP_EMAIL_PROTECTION,
        "codeSigning" => rfc5280::ID_KP_CODE_SIGNING,
        "timeStamping" => rfc5280::ID_KP_TIME_STAMPING,
        "OCSPSigning" => rfc5280::ID_KP_OCSP_SIGNING,
        _ => return None,
    })
}

/// Subject attribute short names Hallmark knows, with their OIDs.
pub const SUBJECT_ATTRIBUTES: [(&str, &str); 12] = [
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("serialNumber", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("GN", "2.5.4.42"),
    ("pseudonym", "2.5.4.65"),
    ("organizationIdentifier", "2.5.4.97"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
];

pub fn attribute_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    let s = oid.to_string();
    SUBJECT_ATTRIBUTES
        .iter()
        .find(|(_, o)| *o == s)
        .map(|(n, _)| *n)
}

impl Profile {
    pub fn validate(&self) -> Result<(), String> {
        self.key_usage_bits()?;
        self.eku_oids()?;
        self.policy()?;
        if self.validity_days == 0 || self.validity_days > self.max_validity_days {
            return Err(format!(
                "validity_days ({}) must be between 1 and max_validity_days ({})",
                self.validity_days, self.max_validity_days
            ));
        }
        for a in self.subject_required.iter().chain(&self.subject_allowed) {
            if !SUBJECT_ATTRIBUTES.iter().any(|(n, _)| n == a) {
                return Err(format!("unknown subject attribute {a:?}"));
            }
        }
        for k in &self.key_algorithms {
            hallmark_crypto::KeyAlgorithm::from_str(k).map_err(|e| e.to_string())?;
        }
        if self.key_usage.is_empty() {
            return Err("key_usage must not be empty".into());
        }
        Ok(())
    }

    pub fn key_usage_bits(&self) -> Result<FlagSet<KeyUsages>, String> {
        let mut bits = FlagSet::<KeyUsages>::default();
        for n in &self.key_usage {
            let (_, b) = KEY_USAGE_NAMES
                .iter()
                .find(|(k, _)| k == n)
                .ok_or_else(|| format!("unknown key usage {n:?}"))?;
            bits |= *b;
        }
        Ok(bits)
    }

    pub fn eku_oids(&self) -> Result<Vec<ObjectIdentifier>, String> {
        self.extended_key_usage
            .iter()
            .map(|n| eku_oid(n).ok_or_else(|| format!("unknown extended key usage {n:?}")))
            .collect()
    }

    pub fn policy(&self) -> Result<ObjectIdentifier, String> {
        ObjectIdentifier::new(&self.policy_oid)
            .map_err(|e| format!("policy_oid {:?}: {e}", self.policy_oid))
    }

    pub fn allows_key(&self, alg: hallmark_crypto::KeyAlgorithm) -> bool {
        self.key_algorithms
            .iter()
            .any(|k| k.eq_ignore_ascii_case(alg.name()))
    }
}
