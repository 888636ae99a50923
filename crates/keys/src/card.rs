//! A holder's smart card, reached as a PKCS#11 token: the registration
//! authority writes the holder's key and certificate onto it. The key is
//! generated on the card where the card can (sensitive, never extractable,
//! made on the card: "local"); a key made before the holder came (a
//! campaign's) is imported, sensitive and never extractable from then on.
//! Every object Hallmark writes carries one CKA_ID, so the key, its public
//! half and the certificate are found, and removed, together.

use std::path::Path;

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass};
use cryptoki::session::Session;
use cryptoki::types::AuthPin;
use der::asn1::OctetString;
use der::{Decode, Encode};
use hallmark_crypto::{CryptoError, KeyAlgorithm};
use spki::SubjectPublicKeyInfoRef;
use zeroize::Zeroizing;

use crate::pkcs11::{context, curve_oid, login, p11, spki_of};
use crate::{KeyError, Result};

/// What the card says about itself (PKCS#11 token information).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardInfo {
    pub serial: String,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
}

/// A card with a logged-in read-write session.
pub struct Card {
    session: Session,
    info: CardInfo,
    mechanisms: Vec<MechanismType>,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card").field("info", &self.info).finish()
    }
}

fn card_error(detail: impl Into<String>) -> KeyError {
    KeyError::Io {
        path: "card".into(),
        detail: detail.into(),
    }
}

impl Card {
    /// Finds the card by its token label in `module` and logs in with the
    /// card's user PIN.
    pub fn open(module: &Path, label: &str, pin: &str) -> Result<Self> {
        let ctx = context(module)?;
        let mut found = None;
        for slot in ctx.get_slots_with_token().map_err(p11)? {
            let t = ctx.get_token_info(slot).map_err(p11)?;
            if t.label().trim() == label {
                found = Some((slot, t));
                break;
            }
        }
        let (slot, t) = found.ok_or_else(|| {
            KeyError::NotFound(format!(
                "no card labelled {label:?} in {}: is it inserted?",
                module.display()
            ))
        })?;
        if !t.user_pin_initialized() {
            return Err(card_error(format!(
                "card {label:?} has no user PIN yet: the card issuer initialises it first"
            )));
        }
        let session = ctx.open_rw_session(slot).map_err(p11)?;
        login(&session, &AuthPin::from(pin.to_string())).map_err(|e| match e {
            KeyError::Passphrase(m) => KeyError::Passphrase(m.replace("PKCS#11 user", "card's")),
            e => e,
        })?;
        let mechanisms = ctx.get_mechanism_list(slot).map_err(p11)?;
        Ok(Self {
            session,
            info: CardInfo {
                serial: t.serial_number().trim().to_string(),
                label: t.label().trim().to_string(),
                manufacturer: t.manufacturer_id().trim().to_string(),
                model: t.model().trim().to_string(),
            },
            mechanisms,
        })
    }

    pub fn info(&self) -> &CardInfo {
        &self.info
    }

    /// Whether the card can make a P-256 key pair itself.
    pub fn generates_keys(&self) -> bool {
        self.mechanisms.contains(&MechanismType::ECC_KEY_PAIR_GEN)
            && self.mechanisms.contains(&MechanismType::ECDSA)
    }

    fn private_template(id: &[u8], label: &str) -> Vec<Attribute> {
        vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ]
    }

    fn public_template(id: &[u8], label: &str) -> Vec<Attribute> {
        vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ]
    }

    /// Generates a P-256 key pair on the card under `id`; returns its
    /// SubjectPublicKeyInfo.
    pub fn generate_p256(&self, id: &[u8], label: &str) -> Result<Vec<u8>> {
        let params = curve_oid(KeyAlgorithm::EcP256)
            .to_der()
            .map_err(CryptoError::from)?;
        let mut public = vec![Attribute::EcParams(params)];
        public.extend(Self::public_template(id, label));
        let (public, _) = self
            .session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public,
                &Self::private_template(id, label),
            )
            .map_err(p11)?;
        spki_of(&self.session, public, KeyAlgorithm::EcP256)
    }

    /// Imports a P-256 key (PKCS#8) with its SubjectPublicKeyInfo under
    /// `id`, sensitive and never extractable from then on.
    pub fn import_p256(&self, id: &[u8], label: &str, pkcs8: &[u8], spki: &[u8]) -> Result<()> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8).map_err(CryptoError::from)?;
        let ec = sec1::EcPrivateKey::try_from(info.private_key.as_bytes())
            .map_err(|e| CryptoError::MalformedKey(e.to_string()))?;
        let scalar = Zeroizing::new(ec.private_key.to_vec());
        let params = curve_oid(KeyAlgorithm::EcP256)
            .to_der()
            .map_err(CryptoError::from)?;
        let point = SubjectPublicKeyInfoRef::from_der(spki)
            .map_err(CryptoError::from)?
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let wrapped = OctetString::new(point)
            .and_then(|o| o.to_der())
            .map_err(CryptoError::from)?;
        let mut private = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(params.clone()),
            Attribute::Value(scalar.to_vec()),
        ];
        private.extend(Self::private_template(id, label));
        let mut public = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(params),
            Attribute::EcPoint(wrapped),
        ];
        public.extend(Self::public_template(id, label));
        self.session.create_object(&private).map_err(p11)?;
        self.session.create_object(&public).map_err(p11)?;
        Ok(())
    }

    /// Signs `msg` (ECDSA with SHA-256, DER) with the key under `id`: the
    /// proof that the card holds the key before a certificate names it.
    pub fn sign_p256(&self, id: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
        let key = self.one(id, ObjectClass::PRIVATE_KEY)?;
        let digest = hallmark_crypto::sha256(msg);
        let raw = self
            .session
            .sign(&Mechanism::Ecdsa, key, &digest)
            .map_err(p11)?;
        Ok(hallmark_crypto::ecdsa_raw_to_der(&raw)?)
    }

    /// Writes the X.509 certificate under `id`.
    pub fn write_certificate(&self, id: &[u8], label: &str, cert_der: &[u8]) -> Result<()> {
        let cert = x509_parts(cert_der)?;
        self.session
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
                Attribute::Subject(cert.subject),
                Attribute::Issuer(cert.issuer),
                Attribute::SerialNumber(cert.serial),
                Attribute::Value(cert_der.to_vec()),
            ])
            .map_err(p11)?;
        Ok(())
    }

    /// The certificate under `id`, if the card holds one.
    pub fn certificate(&self, id: &[u8]) -> Result<Option<Vec<u8>>> {
        let found = self
            .session
            .find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Id(id.to_vec()),
            ])
            .map_err(p11)?;
        let Some(h) = found.first() else {
            return Ok(None);
        };
        Ok(self
            .session
            .get_attributes(*h, &[AttributeType::Value])
            .map_err(p11)?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            }))
    }

    /// Removes every object under `id` (a personalisation that did not
    /// finish, or one being redone); returns how many there were.
    pub fn remove(&self, id: &[u8]) -> Result<usize> {
        let found = self
            .session
            .find_objects(&[Attribute::Id(id.to_vec())])
            .map_err(p11)?;
        for h in &found {
            self.session.destroy_object(*h).map_err(p11)?;
        }
        Ok(found.len())
    }

    fn one(&self, id: &[u8], class: ObjectClass) -> Result<cryptoki::object::ObjectHandle> {
        let found = self
            .session
            .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
            .map_err(p11)?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(KeyError::NotFound(format!(
                "no {class} with this CKA_ID on the card"
            ))),
            _ => Err(card_error(format!(
                "several objects of class {class} share this CKA_ID on the card"
            ))),
        }
    }
}

struct X509Parts {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

/// The DER of a certificate's subject, issuer and serial number (the
/// INTEGER), as PKCS#11 certificate objects carry them.
fn x509_parts(cert_der: &[u8]) -> Result<X509Parts> {
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(CryptoError::from)?;
    let tbs = cert.tbs_certificate();
    Ok(X509Parts {
        subject: tbs.subject().to_der().map_err(CryptoError::from)?,
        issuer: tbs.issuer().to_der().map_err(CryptoError::from)?,
        serial: tbs.serial_number().to_der().map_err(CryptoError::from)?,
    })
}
