//! Keys on a PKCS#11 token (a hardware security module; SoftHSM2 in tests).
//! Keys are generated on the token as sensitive and non-extractable and never
//! leave it: Hallmark gets [`Signer`]s that ask the token to sign. Sessions
//! are pooled, and a session the token dropped is reopened and the operation
//! retried once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::Encode;
use der::asn1::{BitString, OctetString, UintRef};
use hallmark_crypto::{CryptoError, KeyAlgorithm, RsaPadding, Signer};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::{KeyError, Result};

pub(crate) fn p11(e: cryptoki::error::Error) -> KeyError {
    KeyError::Io {
        path: "pkcs11".into(),
        detail: e.to_string(),
    }
}

/// A logged-in token.
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    /// How the token's RSA keys sign.
    rsa_padding: RsaPadding,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// Sessions per signer: signing from several threads does not queue on one.
const POOL: usize = 4;

/// Attempts per signature; each retry reconnects first.
const RETRIES: usize = 3;

impl Token {
    /// Loads the module, finds the token by label and checks the PIN.
    pub fn open(module: &Path, token_label: &str, pin: &str) -> Result<Arc<Self>> {
        Self::open_with(module, token_label, pin, RsaPadding::Pkcs1)
    }

    /// [`Self::open`] with RSA keys signing with `rsa_padding`.
    pub fn open_with(
        module: &Path,
        token_label: &str,
        pin: &str,
        rsa_padding: RsaPadding,
    ) -> Result<Arc<Self>> {
        let ctx = context(module)?;
        let slot = ctx
            .get_slots_with_token()
            .map_err(p11)?
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .map(|t| t.label().trim() == token_label)
                    .unwrap_or(false)
            })
            .ok_or_else(|| KeyError::NotFound(format!("PKCS#11 token {token_label:?}")))?;
        let token = Arc::new(Self {
            ctx,
            slot,
            pin: AuthPin::from(pin.to_string()),
            rsa_padding,
        });
        drop(token.session()?);
        Ok(token)
    }

    /// Logs this process out of the token: every session loses its login
    /// (PKCS#11 login state is per application), as when a token resets.
    /// Signers log in again on their next signature.
    pub fn logout(&self) -> Result<()> {
        let s = self.session()?;
        match s.logout() {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserNotLoggedIn, _)) => {
                Ok(())
            }
            Err(e) => Err(p11(e)),
        }
    }

    fn session(&self) -> Result<Session> {
        let s = self.ctx.open_rw_session(self.slot).map_err(p11)?;
        login(&s, &self.pin)?;
        Ok(s)
    }

    /// Generates a key pair on the token (private half sensitive, never
    /// extractable, signing only) and returns its signer.
    pub fn generate(self: &Arc<Self>, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>> {
        let s = self.session()?;
        if !s
            .find_objects(&[
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Class(ObjectClass::PRIVATE_KEY),
            ])
            .map_err(p11)?
            .is_empty()
        {
            return Err(KeyError::Exists(label.into()));
        }
        let id = label.as_bytes().to_vec();
        let common_pub = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id),
        ];
        let (mech, mut public) = match alg {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let curve = curve_oid(alg);
                (
                    Mechanism::EccKeyPairGen,
                    vec![Attribute::EcParams(
                        curve.to_der().map_err(CryptoError::from)?,
                    )],
                )
            }
            _ => {
                let bits = match alg {
                    KeyAlgorithm::Rsa2048 => 2048,
                    KeyAlgorithm::Rsa3072 => 3072,
                    _ => 4096,
                };
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    vec![
                        Attribute::ModulusBits(cryptoki::types::Ulong::from(bits)),
                        Attribute::PublicExponent(vec![1, 0, 1]),
                    ],
                )
            }
        };
        public.extend(common_pub);
        // Fixed once made: not modifiable, not copyable (a copy could be
        // made extractable), and, for keys that are never retired (CA and
        // audit keys; renewed OCSP and TLS keys are), not destroyable; on a
        // token that refuses those attributes, the key is made without.
        let mut fixed = private.clone();
        fixed.extend([Attribute::Modifiable(false), Attribute::Copyable(false)]);
        if !retired_later(label) {
            fixed.push(Attribute::Destroyable(false));
        }
        if s.generate_key_pair(&mech, &public, &fixed).is_err() {
            tracing::warn!(
                key = label,
                "the token refuses CKA_MODIFIABLE/COPYABLE/DESTROYABLE = false; the key is made without them"
            );
            s.generate_key_pair(&mech, &public, &private).map_err(p11)?;
        }
        drop(s);
        self.signer(label, alg)
    }

    /// The signer for an existing key pair, found by label; its algorithm
    /// is read from the token.
    pub fn signer_by_label(self: &Arc<Self>, label: &str) -> Result<Arc<dyn Signer>> {
        let s = self.session()?;
        let (_, public) = find_pair(&s, label)?;
        let alg = algorithm_of(&s, public)?;
        drop(s);
        self.signer(label, alg)
    }

    /// Labels and algorithms of the key pairs on the token.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        let s = self.session()?;
        let mut out = Vec::new();
        for h in s
            .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])
            .map_err(p11)?
        {
            let label = match s
                .get_attributes(h, &[AttributeType::Label])
                .map_err(p11)?
                .first()
            {
                Some(Attribute::Label(l)) => String::from_utf8_lossy(l).into_owned(),
                _ => continue,
            };
            let alg = algorithm_of(&s, h)
                .map(|a| a.name().to_string())
                .unwrap_or_else(|_| "unsupported".into());
            out.push((label, format!("{alg} (PKCS#11)")));
        }
        out.sort();
        Ok(out)
    }

    /// Destroys a key pair on the token.
    pub fn remove(&self, label: &str) -> Result<()> {
        let s = self.session()?;
        let (private, public) = find_pair(&s, label)?;
        s.destroy_object(private).map_err(p11)?;
        s.destroy_object(public).map_err(p11)?;
        Ok(())
    }

    /// The signer for an existing key pair, found by label.
    pub fn signer(self: &Arc<Self>, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>> {
        let s = self.session()?;
        let (key, public) = find_pair(&s, label)?;
        let spki = spki_of(&s, public, alg)?;
        let sessions = (0..POOL).map(|_| Mutex::new(None)).collect();
        let signer = TokenSigner {
            token: self.clone(),
            label: label.into(),
            alg,
            spki,
            key: Mutex::new(key),
            sessions,
            next: AtomicUsize::new(0),
        };
        *signer.sessions[0]
            .lock()
            .map_err(|_| KeyError::NotFound("session lock".into()))? = Some(s);
        Ok(Arc::new(signer))
    }

    /// The private key's CKA_MODIFIABLE, CKA_COPYABLE and CKA_DESTROYABLE.
    pub fn private_key_flags(&self, label: &str) -> Result<(bool, bool, bool)> {
        let s = self.session()?;
        let (key, _) = find_pair(&s, label)?;
        let attrs = s
            .get_attributes(
                key,
                &[
                    AttributeType::Modifiable,
                    AttributeType::Copyable,
                    AttributeType::Destroyable,
                ],
            )
            .map_err(p11)?;
        let mut flags = (true, true, true);
        for a in attrs {
            match a {
                Attribute::Modifiable(v) => flags.0 = v,
                Attribute::Copyable(v) => flags.1 = v,
                Attribute::Destroyable(v) => flags.2 = v,
                _ => {}
            }
        }
        Ok(flags)
    }

    /// Whether the token would hand out the private key's value (it must not).
    pub fn private_value_readable(&self, label: &str) -> Result<bool> {
        let s = self.session()?;
        let (key, _) = find_pair(&s, label)?;
        Ok(match s.get_attributes(key, &[AttributeType::Value]) {
            Ok(attrs) => attrs
                .iter()
                .any(|a| matches!(a, Attribute::Value(v) if !v.is_empty())),
            Err(_) => false,
        })
    }
}

/// Logs a session in as the token's user; a session already logged in
/// (login state is per application) is fine.
pub(crate) fn login(s: &Session, pin: &AuthPin) -> Result<()> {
    match s.login(UserType::User, Some(pin)) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinIncorrect, _)) => {
            return Err(KeyError::Passphrase("wrong PKCS#11 user PIN".into()));
        }
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinLocked, _)) => {
            return Err(KeyError::Passphrase(
                "the PKCS#11 user PIN is locked: the token's security officer must unlock it"
                    .into(),
            ));
        }
        Err(e) => return Err(p11(e)),
    }
    Ok(())
}

/// Keys Hallmark renews and then removes (OCSP responders' and the TLS
/// server's, labelled by the renewal); every other key stays for good.
fn retired_later(label: &str) -> bool {
    label.starts_with("ocsp-") || label.starts_with("tls-")
}

/// One initialised context per module per process: C_Initialize may be
/// called once, and finalising one context would break the others.
pub(crate) fn context(module: &Path) -> Result<Pkcs11> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| KeyError::NotFound("PKCS#11 context lock".into()))?;
    if let Some(c) = map.get(module) {
        return Ok(c.clone());
    }
    let ctx = Pkcs11::new(module).map_err(p11)?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(p11)?;
    map.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

pub(crate) fn curve_oid(alg: KeyAlgorithm) -> ObjectIdentifier {
    if alg == KeyAlgorithm::EcP384 {
        rfc5912::SECP_384_R_1
    } else {
        rfc5912::SECP_256_R_1
    }
}

fn algorithm_of(s: &Session, public: ObjectHandle) -> Result<KeyAlgorithm> {
    let attrs = s
        .get_attributes(
            public,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::ModulusBits,
            ],
        )
        .map_err(p11)?;
    let mut key_type = None;
    let mut params = None;
    let mut bits = None;
    for a in attrs {
        match a {
            Attribute::KeyType(k) => key_type = Some(k),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::ModulusBits(b) => bits = Some(u64::from(b)),
            _ => {}
        }
    }
    match key_type {
        Some(k) if k == KeyType::EC => {
            let p = params.unwrap_or_default();
            if p == rfc5912::SECP_256_R_1.to_der().map_err(CryptoError::from)? {
                Ok(KeyAlgorithm::EcP256)
            } else if p == rfc5912::SECP_384_R_1.to_der().map_err(CryptoError::from)? {
                Ok(KeyAlgorithm::EcP384)
            } else {
                Err(KeyError::NotFound("EC key on an unsupported curve".into()))
            }
        }
        Some(k) if k == KeyType::RSA => Ok(match bits.unwrap_or(0) {
            0..=2048 => KeyAlgorithm::Rsa2048,
            2049..=3072 => KeyAlgorithm::Rsa3072,
            _ => KeyAlgorithm::Rsa4096,
        }),
        _ => Err(KeyError::NotFound(
            "unsupported key type on the token".into(),
        )),
    }
}

/// The private and public key objects of the pair labelled `label`,
/// matched by CKA_ID (a public key that merely shares the label, put there
/// by someone else, is not taken for ours). Several private keys with the
/// label: the one whose CKA_ID is the label (as Hallmark makes them), else
/// an error, never a guess.
fn find_pair(s: &Session, label: &str) -> Result<(ObjectHandle, ObjectHandle)> {
    let find = |attrs: Vec<Attribute>| s.find_objects(&attrs).map_err(p11);
    let id_of = |h: ObjectHandle| -> Result<Vec<u8>> {
        Ok(s.get_attributes(h, &[AttributeType::Id])
            .map_err(p11)?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default())
    };
    let privates = find(vec![
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Class(ObjectClass::PRIVATE_KEY),
    ])?;
    let (private, id) = match privates.as_slice() {
        [] => return Err(KeyError::NotFound(label.into())),
        [one] => (*one, id_of(*one)?),
        several => {
            let mut ours = Vec::new();
            for h in several {
                if id_of(*h)? == label.as_bytes() {
                    ours.push(*h);
                }
            }
            match ours.as_slice() {
                [one] => (*one, label.as_bytes().to_vec()),
                _ => {
                    return Err(KeyError::Corrupt {
                        path: "pkcs11".into(),
                        detail: format!(
                            "{} private keys on the token are labelled {label:?}: labels must be unique",
                            several.len()
                        ),
                    });
                }
            }
        }
    };
    let publics = find(vec![
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Id(id),
    ])?;
    match publics.as_slice() {
        [one] => Ok((private, *one)),
        [] => Err(KeyError::NotFound(format!(
            "{label} (no public key with the private key's CKA_ID)"
        ))),
        _ => Err(KeyError::Corrupt {
            path: "pkcs11".into(),
            detail: format!("several public keys on the token match {label:?} and its CKA_ID"),
        }),
    }
}

/// SubjectPublicKeyInfo DER from the token's public key object.
pub(crate) fn spki_of(s: &Session, public: ObjectHandle, alg: KeyAlgorithm) -> Result<Vec<u8>> {
    let attrs = s
        .get_attributes(
            public,
            &[
                AttributeType::KeyType,
                AttributeType::EcPoint,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(p11)?;
    let get = |t: AttributeType| attrs.iter().find(|a| a.attribute_type() == t);
    let spki = match get(AttributeType::KeyType) {
        Some(Attribute::KeyType(k)) if *k == KeyType::EC => {
            // CKA_EC_POINT is the point wrapped in a DER OCTET STRING.
            let Some(Attribute::EcPoint(wrapped)) = get(AttributeType::EcPoint) else {
                return Err(KeyError::NotFound("EC point".into()));
            };
            let point = der::Decode::from_der(wrapped)
                .map(|o: OctetString| o.as_bytes().to_vec())
                .map_err(CryptoError::from)?;
            SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: rfc5912::ID_EC_PUBLIC_KEY,
                    parameters: Some(
                        der::Any::encode_from(&curve_oid(alg)).map_err(CryptoError::from)?,
                    ),
                },
                subject_public_key: BitString::from_bytes(&point).map_err(CryptoError::from)?,
            }
        }
        _ => {
            let (Some(Attribute::Modulus(n)), Some(Attribute::PublicExponent(e))) = (
                get(AttributeType::Modulus),
                get(AttributeType::PublicExponent),
            ) else {
                return Err(KeyError::NotFound("RSA public key".into()));
            };
            let mut body = UintRef::new(n)
                .map_err(CryptoError::from)?
                .to_der()
                .map_err(CryptoError::from)?;
            body.extend(
                UintRef::new(e)
                    .map_err(CryptoError::from)?
                    .to_der()
                    .map_err(CryptoError::from)?,
            );
            let mut pkcs1 = vec![0x30];
            der::Length::try_from(body.len())
                .and_then(|l| l.encode_to_vec(&mut pkcs1))
                .map_err(CryptoError::from)?;
            pkcs1.extend(body);
            SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: rfc5912::RSA_ENCRYPTION,
                    parameters: Some(der::Any::null()),
                },
                subject_public_key: BitString::from_bytes(&pkcs1).map_err(CryptoError::from)?,
            }
        }
    };
    let der = spki.to_der().map_err(CryptoError::from)?;
    // Refuse what Hallmark would refuse from a CSR.
    let k = hallmark_crypto::classify_spki(&der)?;
    if k.algorithm != alg {
        return Err(KeyError::Corrupt {
            path: "pkcs11".into(),
            detail: format!("key {alg} on the token is a {}", k.algorithm),
        });
    }
    Ok(der)
}

struct TokenSigner {
    token: Arc<Token>,
    label: String,
    alg: KeyAlgorithm,
    spki: Vec<u8>,
    key: Mutex<ObjectHandle>,
    sessions: Vec<Mutex<Option<Session>>>,
    next: AtomicUsize,
}

impl TokenSigner {
    fn sign_once(
        &self,
        slot: &mut Option<Session>,
        msg: &[u8],
    ) -> std::result::Result<Vec<u8>, KeyError> {
        if slot.is_none() {
            *slot = Some(self.token.session()?);
        }
        let s = slot
            .as_ref()
            .ok_or_else(|| KeyError::NotFound("session".into()))?;
        let key = *self
            .key
            .lock()
            .map_err(|_| KeyError::NotFound("key lock".into()))?;
        Ok(match self.alg {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let digest = if self.alg == KeyAlgorithm::EcP256 {
                    hallmark_crypto::sha256(msg).to_vec()
                } else {
                    hallmark_crypto::sha384(msg).to_vec()
                };
                let raw = s.sign(&Mechanism::Ecdsa, key, &digest).map_err(p11)?;
                hallmark_crypto::ecdsa_raw_to_der(&raw)?
            }
            _ if self.token.rsa_padding == RsaPadding::Pss => {
                // RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt:
                // what the signature algorithm identifier says.
                let params = PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32.into(),
                };
                s.sign(&Mechanism::Sha256RsaPkcsPss(params), key, msg)
                    .map_err(p11)?
            }
            _ => s.sign(&Mechanism::Sha256RsaPkcs, key, msg).map_err(p11)?,
        })
    }
}

impl Signer for TokenSigner {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn rsa_padding(&self) -> RsaPadding {
        self.token.rsa_padding
    }
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, CryptoError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        let mut slot = self.sessions[i]
            .lock()
            .map_err(|_| CryptoError::SigningFailed)?;
        let mut last = None;
        for attempt in 0..RETRIES {
            if attempt > 0 {
                // The token dropped the session or our login, or restarted:
                // open a new session (logging in again), find the key again.
                *slot = None;
                match self.token.session() {
                    Ok(s) => {
                        // The key found again must be the one this signer
                        // was made for: a key replaced on the token under
                        // the same label must not sign in its name.
                        match find_pair(&s, &self.label) {
                            Ok((key, public))
                                if spki_of(&s, public, self.alg).ok().as_deref()
                                    == Some(self.spki.as_slice()) =>
                            {
                                if let Ok(mut k) = self.key.lock() {
                                    *k = key;
                                }
                            }
                            Ok(_) => {
                                tracing::error!(key = %self.label, "the key on the token is not the one this signer was made for: refusing to sign");
                                return Err(CryptoError::SigningFailed);
                            }
                            Err(_) => {}
                        }
                        *slot = Some(s);
                    }
                    // A refused PIN is not retried: repeated failures would
                    // lock the token's user PIN.
                    Err(e @ KeyError::Passphrase(_)) => {
                        last = Some(e);
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            match self.sign_once(&mut slot, msg) {
                Ok(sig) => return Ok(sig),
                Err(e @ KeyError::Passphrase(_)) => {
                    last = Some(e);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            tracing::error!(key = %self.label, error = %e, "PKCS#11 signing failed after reconnecting");
        }
        Err(CryptoError::SigningFailed)
    }
}
