//! Subscriber certificate issuance: request → template → lint → reserve →
//! sign → check → store.

use std::str::FromStr;

use hallmark_crypto::KeyAlgorithm;
use hallmark_pki::cert::Template;
use hallmark_pki::lint::{self, Kind};
use hallmark_pki::{csr, ext, hex, pkcs12, random_serial, subject};
use zeroize::Zeroizing;

use crate::{Ca, CaError, Final, Ledger, LedgerError, Pending, Result};

/// Where the subject's key comes from.
pub enum KeySource {
    /// A PKCS#10 CSR (PEM or DER); its signature is checked.
    Csr(Vec<u8>),
    /// Central key generation: the key is made here and delivered once in a
    /// PKCS#12 file protected by a one-time PIN.
    Generate(KeyAlgorithm),
    /// Central key generation delivered under a PIN the caller chose (the
    /// registration authority's PIN mailer), instead of a fresh one.
    GenerateUnderPin(KeyAlgorithm, Zeroizing<String>),
    /// A key held in Hallmark's own custody (e.g. its TLS server key): the
    /// SubjectPublicKeyInfo, checked but without a proof of possession.
    Custody(Vec<u8>),
}

/// An approved request. The subject comes from here, never from the CSR.
pub struct IssueRequest {
    pub profile: String,
    pub issuer: Option<String>,
    pub subject: String,
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub validity_days: Option<u32>,
    /// A validity in seconds instead (Hallmark's own short-lived
    /// certificates); within the profile's maximum too.
    pub validity_secs: Option<u64>,
    pub key: KeySource,
    pub actor: String,
}

pub struct Issued {
    pub issuer: String,
    pub serial_hex: String,
    pub cert_der: Vec<u8>,
    pub not_after: u64,
    /// For central key generation: the PKCS#12 and its one-time PIN.
    pub pkcs12: Option<(Vec<u8>, Zeroizing<String>)>,
}

const PIN_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const PIN_LEN: usize = 12;

/// A one-time PIN: 12 characters from a 32-letter alphabet without look-alikes
/// (60 bits).
pub fn one_time_pin() -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; PIN_LEN]);
    hallmark_crypto::fill_random(&mut raw[..])?;
    Ok(Zeroizing::new(
        raw.iter()
            .map(|b| PIN_ALPHABET[(*b as usize) % PIN_ALPHABET.len()] as char)
            .collect(),
    ))
}

/// Attempts with a fresh serial if one collides (never expected with 159
/// random bits; bounded so a broken RNG cannot loop for ever).
const SERIAL_ATTEMPTS: u32 = 3;

/// A certificate prepared for batch issuance (a campaign): its key made
/// here, its TBS built and linted under a fresh serial. The caller
/// reserves [`pending`](Self::pending) durably before it has it signed
/// with [`Ca::sign_prepared`], as [`Ca::issue`] does one at a time.
pub struct Prepared {
    pub pending: Pending,
    linted: hallmark_pki::lint::LintedTbs,
    /// The subject's private key (PKCS#8), for the caller to seal.
    pub pkcs8: Zeroizing<Vec<u8>>,
}

/// A prepared certificate, signed.
pub struct Signed {
    pub cert_der: Vec<u8>,
    /// The key sealed for escrow, if the profile escrows.
    pub escrow: Option<Vec<u8>>,
}

impl<L: Ledger> Ca<L> {
    pub async fn issue(&self, req: IssueRequest, now: u64) -> Result<Issued> {
        let profile = self.profile(&req.profile)?;
        let issuer = self.subscriber_issuer(req.issuer.as_deref())?;
        let (spki_der, key_alg, generated) = self.subject_key(profile, &req)?;

        let mut attempt = 0;
        let (linted, pending) = loop {
            attempt += 1;
            let (linted, pending) =
                self.build_tbs(&req, profile, issuer, &spki_der, key_alg, now)?;
            match self.ledger.reserve(pending.clone()).await {
                Ok(()) => break (linted, pending),
                Err(LedgerError::SerialTaken) if attempt < SERIAL_ATTEMPTS => continue,
                Err(LedgerError::SerialTaken) => return Err(CaError::SerialCollision(attempt)),
                Err(LedgerError::Failed(e)) => return Err(CaError::Ledger(e)),
            }
        };
        let serial_hex = pending.serial_hex;
        let not_after = pending.not_after;

        let cert_der = issuer.sign_linted(&linted)?;
        if self.danger_abort_after_sign {
            tracing::error!(serial = %serial_hex, "danger_abort_after_sign: aborting between signing and storing");
            std::process::abort();
        }

        let mut pkcs12_out = None;
        let mut escrow = None;
        if let Some(pkcs8) = &generated {
            escrow = self.escrow(profile, &issuer.id, &serial_hex, pkcs8)?;
            let pin = match &req.key {
                KeySource::GenerateUnderPin(_, pin) => pin.clone(),
                _ => one_time_pin()?,
            };
            let chain: Vec<&[u8]> = vec![&cert_der, &issuer.cert_der];
            let p12 = pkcs12::build(pkcs8, &chain, &req.subject, &pin)?;
            pkcs12_out = Some((p12, pin));
        }

        self.ledger
            .finalize(Final {
                issuer: issuer.id.clone(),
                serial_hex: serial_hex.clone(),
                cert: cert_der.clone(),
                escrow,
                actor: req.actor.clone(),
                profile: req.profile.clone(),
                subject: req.subject.clone(),
            })
            .await
            .map_err(|e| CaError::Ledger(e.to_string()))?;

        Ok(Issued {
            issuer: issuer.id.clone(),
            serial_hex,
            cert_der,
            not_after,
            pkcs12: pkcs12_out,
        })
    }

    /// Prepares one certificate of a batch with a centrally generated key
    /// (`req.key` must be [`KeySource::Generate`]); no ledger is touched.
    /// Safe to call from many threads at once.
    pub fn prepare_generated(&self, req: &IssueRequest, now: u64) -> Result<Prepared> {
        if !matches!(req.key, KeySource::Generate(_)) {
            return Err(CaError::BadRequest(
                "batch issuance generates the keys itself".into(),
            ));
        }
        let profile = self.profile(&req.profile)?;
        let issuer = self.subscriber_issuer(req.issuer.as_deref())?;
        let (spki_der, key_alg, generated) = self.subject_key(profile, req)?;
        let (linted, pending) = self.build_tbs(req, profile, issuer, &spki_der, key_alg, now)?;
        Ok(Prepared {
            pending,
            linted,
            pkcs8: generated.ok_or_else(|| CaError::BadRequest("no key was generated".into()))?,
        })
    }

    /// Signs a prepared certificate, once its reservation is durable.
    pub fn sign_prepared(&self, p: &Prepared) -> Result<Signed> {
        let issuer = self.issuer(Some(&p.pending.issuer))?;
        let profile = self.profile(&p.pending.profile)?;
        let cert_der = issuer.sign_linted(&p.linted)?;
        let escrow = self.escrow(profile, &issuer.id, &p.pending.serial_hex, &p.pkcs8)?;
        Ok(Signed { cert_der, escrow })
    }

    fn profile(&self, name: &str) -> Result<&hallmark_pki::profile::Profile> {
        self.profiles
            .get(name)
            .ok_or_else(|| CaError::UnknownProfile(name.to_string()))
    }

    /// The issuing CA asked for, which must not be the root.
    fn subscriber_issuer(&self, id: Option<&str>) -> Result<&crate::IssuerKey> {
        let issuer = self.issuer(id)?;
        if issuer.is_root {
            return Err(CaError::BadRequest(
                "subscriber certificates are issued by an issuing CA, not by the root".into(),
            ));
        }
        Ok(issuer)
    }

    fn escrow(
        &self,
        profile: &hallmark_pki::profile::Profile,
        issuer: &str,
        serial_hex: &str,
        pkcs8: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        if !profile.escrow {
            return Ok(None);
        }
        self.sealer
            .seal(&format!("escrow:{issuer}:{serial_hex}"), pkcs8)
            .map(Some)
            .map_err(CaError::Ledger)
    }

    /// The subject's public key (SPKI), its algorithm, and the private key
    /// when it is generated here; checked against the profile.
    #[allow(clippy::type_complexity)]
    fn subject_key(
        &self,
        profile: &hallmark_pki::profile::Profile,
        req: &IssueRequest,
    ) -> Result<(Vec<u8>, KeyAlgorithm, Option<Zeroizing<Vec<u8>>>)> {
        let (spki_der, key_alg, generated) = match &req.key {
            KeySource::Csr(bytes) => {
                let v = csr::verify(bytes)?;
                (v.spki_der, v.key.algorithm, None)
            }
            KeySource::Custody(spki) => {
                let k = hallmark_crypto::classify_spki(spki)?;
                (spki.clone(), k.algorithm, None)
            }
            KeySource::Generate(alg) | KeySource::GenerateUnderPin(alg, _) => {
                if !profile.central_keygen {
                    return Err(CaError::BadRequest(format!(
                        "profile {:?} does not allow central key generation",
                        req.profile
                    )));
                }
                let (pkcs8, spki) = hallmark_crypto::generate_key(*alg)?;
                (spki, *alg, Some(pkcs8))
            }
        };
        if !profile.allows_key(key_alg) {
            return Err(CaError::BadRequest(format!(
                "profile {:?} does not accept {key_alg} keys; it accepts {}",
                req.profile,
                profile.key_algorithms.join(", ")
            )));
        }
        Ok((spki_der, key_alg, generated))
    }

    /// The TBSCertificate of a request under a fresh random serial, linted,
    /// and the reservation that records it.
    fn build_tbs(
        &self,
        req: &IssueRequest,
        profile: &hallmark_pki::profile::Profile,
        issuer: &crate::IssuerKey,
        spki_der: &[u8],
        key_alg: KeyAlgorithm,
        now: u64,
    ) -> Result<(hallmark_pki::lint::LintedTbs, Pending)> {
        let subject_name = subject::parse(&req.subject)?;
        let days = req.validity_days.unwrap_or(profile.validity_days);
        if days == 0 || days > profile.max_validity_days {
            return Err(CaError::BadRequest(format!(
                "validity of {days} days is outside 1..={} for profile {:?}",
                profile.max_validity_days, req.profile
            )));
        }
        let secs = match req.validity_secs {
            Some(s) if s == 0 || s > profile.max_validity_days as u64 * 86_400 => {
                return Err(CaError::BadRequest(format!(
                    "validity of {s} seconds is outside 1..={} days for profile {:?}",
                    profile.max_validity_days, req.profile
                )));
            }
            Some(s) => s,
            None => days as u64 * 86_400,
        };
        let not_before = now;
        let not_after = (now + secs - 1).min(issuer.not_after);
        // Domains are case-insensitive; a mailbox's local part may not be
        // (RFC 5321 §2.4), so it is kept as given.
        let emails: Vec<String> = req
            .emails
            .iter()
            .map(|e| match e.trim().rsplit_once('@') {
                Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
                None => e.trim().to_string(),
            })
            .collect();
        let dns: Vec<String> = req
            .dns_names
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        if let Some(n) = emails.iter().chain(&dns).find(|n| !n.is_ascii()) {
            return Err(CaError::BadRequest(format!(
                "{n:?} is not ASCII: give internationalised domain names in their punycode \
                 (xn--) form; internationalised mailboxes (SmtpUTF8Mailbox) are not supported"
            )));
        }
        let shard = self.settings.shard_of(not_after);

        let policy = profile.policy().map_err(CaError::BadRequest)?;
        let ku = lint::effective_key_usage(
            profile.key_usage_bits().map_err(CaError::BadRequest)?,
            key_alg,
        );
        let mut exts = vec![
            ext::basic_constraints(false, None)?,
            ext::key_usage(ku)?,
            ext::ext_key_usage(profile.eku_oids().map_err(CaError::BadRequest)?)?,
        ];
        if !emails.is_empty() || !dns.is_empty() {
            exts.push(ext::subject_alt_name(
                &emails,
                &dns,
                subject_name.is_empty(),
            )?);
        }
        exts.push(ext::certificate_policies(
            policy,
            self.settings.cps_uri.as_deref(),
        )?);
        exts.push(ext::crl_distribution_point(
            &self.settings.shard_crl_url(&issuer.id, shard),
        )?);
        exts.push(ext::authority_info_access(
            Some(&self.settings.ocsp_url()),
            &self.settings.ca_cert_url(&issuer.id),
        )?);
        exts.push(ext::subject_key_id(&ext::key_id(spki_der)?)?);
        exts.push(ext::authority_key_id(&issuer.key_id)?);

        let serial = random_serial()?;
        let template = Template {
            serial: serial.to_vec(),
            signature_algorithm: issuer.sig_alg.clone(),
            issuer: der::Decode::from_der(&issuer.name_der)
                .map_err(hallmark_pki::PkiError::from)?,
            not_before,
            not_after,
            subject: subject_name,
            spki_der: spki_der.to_vec(),
            extensions: exts,
        };
        let linted = lint::lint_certificate(
            template.to_tbs_der()?,
            Kind::Leaf(profile),
            &issuer.lint_issuer(),
        )?;
        let pending = Pending {
            issuer: issuer.id.clone(),
            serial_hex: hex(linted.serial()),
            profile: req.profile.clone(),
            subject: req.subject.clone(),
            tbs: linted.der().to_vec(),
            not_before,
            not_after,
            shard,
            created_at: now,
        };
        Ok((linted, pending))
    }
}

pub fn parse_key_algorithm(s: &str) -> Result<KeyAlgorithm> {
    KeyAlgorithm::from_str(s).map_err(|e| CaError::BadRequest(e.to_string()))
}
