//! `hallmark card …`: smart cards at the counter (personalisation) and
//! which card holds which certificate; `hallmark recovery …`: recovering
//! an escrowed encipherment key under dual control.

use std::path::PathBuf;

use clap::Subcommand;
use hallmark_authority::system_now;
use hallmark_keys::card::Card;

use crate::ra::{StaffArgs, open_ra, staff_password};
use crate::{Global, Res};

#[derive(Subcommand)]
pub enum CardCmd {
    /// Put an approved application's key and certificate on a smart card
    /// (a PKCS#11 token): the key is generated on the card where it can,
    /// under the card's PIN; the holder gives the mailer's PIN.
    Personalise {
        /// The application's reference.
        #[arg(long)]
        reference: String,
        /// The card reader's PKCS#11 module.
        #[arg(long)]
        module: PathBuf,
        /// The card's token label.
        #[arg(long)]
        card: String,
        /// A file holding the card's user PIN (else $HALLMARK_CARD_PIN).
        #[arg(long)]
        card_pin_file: Option<PathBuf>,
        /// A file holding the holder's mailer PIN (else $HALLMARK_HOLDER_PIN).
        #[arg(long)]
        holder_pin_file: Option<PathBuf>,
        #[command(flatten)]
        staff: StaffArgs,
    },
    /// The certificates a card holds (by the card's serial number), or the
    /// cards holding an application's certificates (by reference).
    Show {
        /// A card serial number or an application reference.
        what: String,
    },
}

#[derive(Subcommand)]
pub enum RecoveryCmd {
    /// Request the recovery of an application's escrowed encipherment key
    /// (an officer, with the holder and their identity document present);
    /// prints the recovery's number.
    Request {
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        staff: StaffArgs,
    },
    /// Approve a recovery (a supervisor who did not request it) and write
    /// its PIN mailer.
    Approve {
        id: String,
        /// The PDF to write.
        #[arg(long)]
        mailer: PathBuf,
        #[command(flatten)]
        staff: StaffArgs,
    },
    /// Cancel a recovery that was not collected.
    Cancel {
        id: String,
        #[command(flatten)]
        staff: StaffArgs,
    },
    /// Recoveries (waiting for approval, or in --state).
    List {
        #[arg(long)]
        state: Option<String>,
    },
}

fn secret(file: Option<&std::path::Path>, var: &str, what: &str) -> Result<String, String> {
    match file {
        Some(_) => staff_password(file, what).map(|p| p.to_string()),
        None => std::env::var(var)
            .map_err(|_| format!("give {what} with its --…-pin-file option or ${var}")),
    }
}

pub async fn card(g: &Global, c: CardCmd) -> Res {
    let msg = |e: hallmark_ra::RaError| e.message("en");
    match c {
        CardCmd::Personalise {
            reference,
            module,
            card,
            card_pin_file,
            holder_pin_file,
            staff,
        } => {
            let card_pin = zeroize::Zeroizing::new(secret(
                card_pin_file.as_deref(),
                "HALLMARK_CARD_PIN",
                "the card's PIN",
            )?);
            let holder_pin = zeroize::Zeroizing::new(secret(
                holder_pin_file.as_deref(),
                "HALLMARK_HOLDER_PIN",
                "the holder's mailer PIN",
            )?);
            let ra = open_ra(g).await?;
            let officer = staff.sign_in(&ra).await?;
            let card = Card::open(&module, &card, &card_pin).map_err(|e| match e {
                hallmark_keys::KeyError::Passphrase(m) => format!("card {card}: {m}"),
                e => format!("card {card}: {e}"),
            })?;
            let p = ra
                .personalise_card(&reference, &holder_pin, &card, &officer, system_now())
                .await
                .map_err(msg)?;
            outln!(
                "{}: certificate {} ({}) written to card {} ({} {}), key {}",
                p.reference,
                p.serial_hex,
                p.issuer,
                p.card.serial,
                p.card.manufacturer,
                p.card.model,
                p.key_origin.as_str()
            );
        }
        CardCmd::Show { what } => {
            let ra = open_ra(g).await?;
            let reference = hallmark_ra::applications::normalise_reference(&what);
            let mut rows = ra.cards_of(&reference).await.map_err(msg)?;
            if rows.is_empty() {
                rows = ra.card(what.trim()).await.map_err(msg)?;
            }
            if rows.is_empty() {
                return Err(format!(
                    "no card holds a certificate of {what:?} (give a card serial number or an application reference)"
                ));
            }
            for r in rows {
                outln!(
                    "card {}\t{}\t{}\tcertificate {} ({})\tkey {}\tby {} at {}",
                    r.card_serial,
                    r.card_label,
                    r.reference,
                    r.serial,
                    r.issuer,
                    r.key_origin,
                    r.personalised_by,
                    r.personalised_at
                );
            }
        }
    }
    Ok(())
}

pub async fn recovery(g: &Global, c: RecoveryCmd) -> Res {
    let msg = |e: hallmark_ra::RaError| e.message("en");
    match c {
        RecoveryCmd::Request { reference, staff } => {
            let ra = open_ra(g).await?;
            let officer = staff.sign_in(&ra).await?;
            let r = ra
                .request_recovery(&reference, &officer, system_now())
                .await
                .map_err(msg)?;
            outln!("{}", r.id);
        }
        RecoveryCmd::Approve { id, mailer, staff } => {
            let ra = open_ra(g).await?;
            let supervisor = staff.sign_in(&ra).await?;
            let url = format!("{}/ra/collect", ra.authority().server_config().base_url);
            let pdf = ra
                .approve_recovery(&id, &supervisor, &url, system_now())
                .await
                .map_err(msg)?;
            crate::files::write_private(&mailer, &pdf)?;
            outln!("{id}: approved; PIN mailer written to {}", mailer.display());
        }
        RecoveryCmd::Cancel { id, staff } => {
            let ra = open_ra(g).await?;
            let who = staff.sign_in(&ra).await?;
            ra.cancel_recovery(&id, &who, system_now())
                .await
                .map_err(msg)?;
            outln!("{id}: cancelled");
        }
        RecoveryCmd::List { state } => {
            let ra = open_ra(g).await?;
            let state = state.unwrap_or_else(|| "requested".into());
            let rows = ra
                .recoveries((state != "all").then_some(state.as_str()))
                .await
                .map_err(msg)?;
            for r in rows {
                outln!(
                    "{}\t{}\t{}\tcertificate {} ({})\trequested by {} at {}{}",
                    r.id,
                    r.state,
                    r.reference,
                    r.serial,
                    r.issuer,
                    r.requested_by,
                    r.requested_at,
                    r.approved_by
                        .map(|a| format!("\tapproved by {a}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
