//! Smart-card installation: at the counter an officer puts the holder's
//! key and certificate on the chip of their card (a PKCS#11 token), with
//! the holder's mailer PIN as their consent and the card's own PIN
//! guarding the key from then on. The key is made on the card where the
//! card can, and the card proves it holds the key (it signs a challenge)
//! before a certificate names it; a key made in a campaign before the
//! holder came is imported instead, and its sealed copy deleted. Which
//! card holds which certificate is recorded with the activation, in one
//! transaction.
//!
//! The card is written before that transaction commits, so a failure
//! between the two leaves objects on a card that the database does not
//! name: running the personalisation again (on that card or another)
//! removes them first, and a certificate already issued for them is
//! revoked before the PIN is given back.

use hallmark_authority::{IssueRequest, KeySource};
use hallmark_crypto::KeyAlgorithm;
use hallmark_keys::card::{Card, CardInfo};
use hallmark_pki::crl::Reason;
use hallmark_store::cards::{self, CardRow};
use hallmark_store::registration::{self as reg, Change};
use serde_json::json;

use crate::applications::{Status, subject_of};
use crate::staff::Staff;
use crate::{Ra, RaError, Result, Text};

/// Where the key on a card came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Generated on the card (never outside it).
    OnCard,
    /// Made before (a campaign's key, or by Hallmark for a card that
    /// cannot generate keys) and imported.
    Imported,
}

impl KeyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnCard => "on-card",
            Self::Imported => "imported",
        }
    }
}

/// A personalised card.
#[derive(Debug)]
pub struct Personalised {
    pub reference: String,
    pub issuer: String,
    pub serial_hex: String,
    pub card: CardInfo,
    pub key_origin: KeyOrigin,
}

/// The CKA_ID of an application's objects on a card.
pub fn card_id(reference: &str) -> Vec<u8> {
    format!("hallmark:{reference}").into_bytes()
}

fn card_label(reference: &str) -> String {
    format!("e-Cert {reference}")
}

fn card_failed(e: impl std::fmt::Display) -> RaError {
    RaError::Device(Text::new(
        format!(
            "The card could not be written: {e}. Nothing was kept; try again or use another card."
        ),
        format!("未能寫入智能卡：{e}。沒有保留任何資料；請再試或改用另一張卡。"),
    ))
}

impl Ra {
    /// Puts the application's key and certificate on `card`: the officer
    /// `staff` is at the counter, the holder gives the mailer's PIN (spent
    /// here, as a download would spend it).
    pub async fn personalise_card(
        &self,
        reference: &str,
        pin: &str,
        card: &Card,
        staff: &Staff,
        now: u64,
    ) -> Result<Personalised> {
        if !staff.role.handles_applications() {
            return Err(RaError::Forbidden(Text::new(
                "Only registration officers and supervisors personalise cards.",
                "只有登記主任及主管可為智能卡載入證書。",
            )));
        }
        let a = self.application(reference).await?;
        Self::may_handle(staff, &a)?;
        let (row, mac, _pin) = self.check_pin(reference, pin, now).await?;
        let reference = row.reference.clone();
        let id = card_id(&reference);
        let label = card_label(&reference);
        // Whatever an unfinished personalisation left on this card goes.
        card.remove(&id).map_err(card_failed)?;
        if let (Some(issuer), Some(serial)) = (row.issuer.clone(), row.serial.clone()) {
            return self
                .personalise_issued(&reference, (&issuer, &serial), card, staff, now)
                .await;
        }
        let now_i = now as i64;
        self.step(
            &reference,
            (Status::Approved, Status::Activating),
            Change {
                pin_mac: Some(None),
                ..Change::default()
            },
            (&staff.actor(), "ra.card.begin"),
            json!({"reference": reference, "card": card.info().serial}),
            now,
        )
        .await?;
        // From here on a failure gives the PIN back, once the card is clean.
        let give_back = async |e: RaError| -> Result<Personalised> {
            let _ = card.remove(&id);
            let mut tx = self.store().begin().await?;
            reg::transition(
                &mut tx,
                &reference,
                Status::Activating.as_str(),
                Status::Approved.as_str(),
                Change {
                    pin_mac: Some(Some(&mac)),
                    ..Change::default()
                },
                now_i,
            )
            .await?;
            hallmark_store::commit(tx).await?;
            Err(e)
        };
        let made = if card.generates_keys() {
            card.generate_p256(&id, &label)
                .map(|spki| (spki, KeyOrigin::OnCard))
        } else {
            hallmark_crypto::generate_key(KeyAlgorithm::EcP256)
                .map_err(hallmark_keys::KeyError::from)
                .and_then(|(pkcs8, spki)| {
                    card.import_p256(&id, &label, &pkcs8, &spki)
                        .map(|()| (spki, KeyOrigin::Imported))
                })
        };
        let (spki, origin) = match made {
            Ok(m) => m,
            Err(e) => return give_back(card_failed(e)).await,
        };
        // The card proves it holds the key before a certificate names it.
        let mut challenge = format!("hallmark card personalise {reference} ").into_bytes();
        let mut nonce = [0u8; 32];
        hallmark_crypto::fill_random(&mut nonce)?;
        challenge.extend_from_slice(&nonce);
        let proven = card
            .sign_p256(&id, &challenge)
            .map_err(card_failed)
            .and_then(|sig| {
                hallmark_crypto::verify_sha256(&spki, &challenge, &sig).map_err(|_| {
                    card_failed("the card's signature does not verify with its public key")
                })
            });
        if let Err(e) = proven {
            return give_back(e).await;
        }
        let a = self.open_row(row)?;
        let issued = self
            .authority()
            .issue(
                IssueRequest {
                    profile: a.profile.clone(),
                    issuer: None,
                    subject: subject_of(&a.personal),
                    emails: a.proven_emails(),
                    dns_names: Vec::new(),
                    validity_days: None,
                    validity_secs: None,
                    key: KeySource::Custody(spki),
                    actor: format!("ra:{reference}"),
                },
                now,
            )
            .await;
        let issued = match issued {
            Ok(i) => i,
            Err(e) => return give_back(e.into()).await,
        };
        let finish = async {
            card.write_certificate(&id, &label, &issued.cert_der)
                .map_err(card_failed)?;
            let mut tx = self.store().begin().await?;
            reg::transition(
                &mut tx,
                &reference,
                Status::Activating.as_str(),
                Status::Activated.as_str(),
                Change {
                    issuer: Some(&issued.issuer),
                    serial: Some(&issued.serial_hex),
                    ..Change::default()
                },
                now_i,
            )
            .await?;
            self.record_card(
                &mut tx,
                (&reference, &issued.issuer, &issued.serial_hex),
                card.info(),
                origin,
                staff,
                now,
            )
            .await?;
            hallmark_store::commit(tx).await?;
            Ok::<_, RaError>(())
        };
        if let Err(e) = finish.await {
            // Issued for a key that is not going to be used: revoked
            // before the PIN is given back.
            self.authority()
                .revoke(
                    (Some(&issued.issuer), &issued.serial_hex),
                    Reason::CessationOfOperation,
                    &staff.actor(),
                    now,
                )
                .await?;
            return give_back(e).await;
        }
        Ok(Personalised {
            reference,
            issuer: issued.issuer,
            serial_hex: issued.serial_hex,
            card: card.info().clone(),
            key_origin: origin,
        })
    }

    /// A campaign's certificate and its waiting key go onto the card; the
    /// PIN is spent and the sealed key deleted when the card is recorded.
    async fn personalise_issued(
        &self,
        reference: &str,
        (issuer, serial): (&str, &str),
        card: &Card,
        staff: &Staff,
        now: u64,
    ) -> Result<Personalised> {
        let id = card_id(reference);
        let label = card_label(reference);
        let sealed = self.store().waiting_key(reference).await?.ok_or_else(|| {
            RaError::Conflict(Text::new(
                "This certificate's key was already delivered.",
                "此證書的密碼匙已經交付。",
            ))
        })?;
        let pkcs8 = self
            .vault
            .open_bytes(&crate::campaign::key_aad(reference), &sealed)?;
        let cert_der = self
            .authority()
            .certificate(Some(issuer), serial)
            .await?
            .cert
            .ok_or_else(|| RaError::Internal(format!("certificate {serial} is not stored")))?;
        let spki = hallmark_crypto::SoftwareSigner::from_pkcs8(KeyAlgorithm::EcP256, &pkcs8)?;
        let written = card
            .import_p256(
                &id,
                &label,
                &pkcs8,
                hallmark_crypto::Signer::spki_der(&spki),
            )
            .and_then(|()| card.write_certificate(&id, &label, &cert_der));
        if let Err(e) = written {
            let _ = card.remove(&id);
            return Err(card_failed(e));
        }
        let commit = async {
            let mut tx = self.store().begin().await?;
            reg::transition(
                &mut tx,
                reference,
                Status::Approved.as_str(),
                Status::Activated.as_str(),
                Change {
                    pin_mac: Some(None),
                    ..Change::default()
                },
                now as i64,
            )
            .await?;
            hallmark_store::campaign::clear_key(&mut tx, reference).await?;
            self.record_card(
                &mut tx,
                (reference, issuer, serial),
                card.info(),
                KeyOrigin::Imported,
                staff,
                now,
            )
            .await?;
            hallmark_store::commit(tx).await?;
            Ok::<_, RaError>(())
        };
        if let Err(e) = commit.await {
            let _ = card.remove(&id);
            return Err(e);
        }
        Ok(Personalised {
            reference: reference.into(),
            issuer: issuer.into(),
            serial_hex: serial.into(),
            card: card.info().clone(),
            key_origin: KeyOrigin::Imported,
        })
    }

    async fn record_card(
        &self,
        tx: &mut hallmark_store::AnyConnection,
        (reference, issuer, serial): (&str, &str, &str),
        info: &CardInfo,
        origin: KeyOrigin,
        staff: &Staff,
        now: u64,
    ) -> Result<()> {
        cards::insert_card(
            tx,
            &CardRow {
                issuer: issuer.into(),
                serial: serial.into(),
                reference: reference.into(),
                card_serial: info.serial.clone(),
                card_label: info.label.clone(),
                manufacturer: info.manufacturer.clone(),
                model: info.model.clone(),
                key_origin: origin.as_str().into(),
                personalised_by: staff.actor(),
                personalised_at: now as i64,
            },
        )
        .await?;
        hallmark_store::audit::record(
            tx,
            self.store().backend(),
            now as i64,
            &staff.actor(),
            "ra.card.personalise",
            json!({
                "reference": reference,
                "issuer": issuer,
                "serial": serial,
                "card": info.serial,
                "key": origin.as_str(),
                "centre": staff.centre,
            }),
        )
        .await?;
        Ok(())
    }

    /// The cards holding an application's certificates.
    pub async fn cards_of(&self, reference: &str) -> Result<Vec<CardRow>> {
        Ok(self.store().cards_of(reference).await?)
    }

    /// The certificates a card holds.
    pub async fn card(&self, card_serial: &str) -> Result<Vec<CardRow>> {
        Ok(self.store().card(card_serial).await?)
    }
}
