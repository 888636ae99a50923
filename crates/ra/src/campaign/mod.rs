//! Bulk campaigns, e.g. at ID card replacement centres: an officer imports
//! a batch of applications, the registry checks the whole batch, a
//! supervisor approves it with one action, and the certificates are issued
//! with centrally generated keys before the holders come. Each holder then
//! collects (or has the card personalised) with the PIN mailer's PIN, as
//! on every other channel.
//!
//! ```text
//! import (officer) ─► check (registry) ─► approve (a supervisor, not the importer)
//!                                              ─► issue ─► PIN mailer ─► collect
//! ```
//!
//! Every step works page by page, each page one transaction with its audit
//! entry, and moves only rows still in the state it leaves: a step killed
//! anywhere is simply run again, and two processes running it at once
//! never move a row twice. An import is all or nothing: its batch is
//! usable only once the last row is in.

use std::io::Read;

use hallmark_store::campaign::{self as db, Stage};
use hallmark_store::registration::ApplicationRow;
use serde::Deserialize;
use serde_json::json;

use crate::applications::{Channel, Status, app_aad};
use crate::person::{Form, Personal};
use crate::registry::Answer;
use crate::staff::{Role, Staff};
use crate::{Ra, RaError, Result, Text};

mod issue;
pub use issue::ISSUE_PAGE;

/// Rows sealed and written per transaction during an import.
const IMPORT_PAGE: usize = 4096;
/// Applications checked per registry round and transaction.
const CHECK_PAGE: i64 = 4096;

/// One CSV row of a campaign import (header:
/// `id_number,name_zh,name_en,date_of_birth,phone,email,address`; e-mail or
/// address may be empty, not both).
#[derive(Deserialize)]
struct CsvRow {
    id_number: String,
    name_zh: String,
    name_en: String,
    date_of_birth: String,
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
}

/// What a step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub batch: String,
    /// Rows imported, applications approved or certificates issued.
    pub done: u64,
    /// The registry's answers (check only).
    pub confirmed: u64,
    pub mismatch: u64,
    pub unknown: u64,
}

pub(crate) fn key_aad(reference: &str) -> String {
    format!("ra-key:{reference}")
}

fn batch_id() -> Result<String> {
    let mut raw = [0u8; 6];
    hallmark_crypto::fill_random(&mut raw)?;
    let s: String = raw
        .iter()
        .map(|b| crate::applications::REF_ALPHABET[(*b as usize) % 32] as char)
        .collect();
    Ok(format!("CB-{s}"))
}

fn not_found(id: &str) -> RaError {
    RaError::NotFound(Text::new(
        format!("There is no campaign batch {id}."),
        format!("沒有批次 {id}。"),
    ))
}

impl Ra {
    pub(super) async fn imported_batch(&self, id: &str) -> Result<db::BatchRow> {
        let b = self.store().batch(id).await?.ok_or_else(|| not_found(id))?;
        if b.state != "imported" {
            return Err(RaError::Conflict(Text::new(
                format!(
                    "Batch {id} was not imported completely; discard it with `hallmark campaign discard {id}` and import the file again."
                ),
                format!(
                    "批次 {id} 未完整匯入；請以 `hallmark campaign discard {id}` 刪除後重新匯入。"
                ),
            )));
        }
        Ok(b)
    }

    /// Imports a campaign CSV as one batch of applications entered by
    /// `officer` at their centre. A bad row stops the import with its line
    /// number and removes what was written; a batch interrupted otherwise
    /// stays `importing` until discarded.
    pub async fn import_campaign(
        &self,
        input: impl Read,
        officer: &Staff,
        now: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Report> {
        if officer.role != Role::Officer {
            return Err(RaError::Forbidden(Text::new(
                "Campaign batches are imported by a registration officer.",
                "批次申請須由登記主任匯入。",
            )));
        }
        let id = batch_id()?;
        let now_i = now as i64;
        let mut tx = self.store().begin().await?;
        db::create_batch(
            &mut tx,
            &id,
            officer.centre.as_deref(),
            &officer.actor(),
            now_i,
        )
        .await?;
        hallmark_store::commit(tx).await?;
        let result = self
            .import_rows(input, &id, officer, now, &mut progress)
            .await;
        let rows = match result {
            Ok(n) => n,
            Err(e) => {
                let mut tx = self.store().begin().await?;
                db::discard_import(&mut tx, &id).await?;
                hallmark_store::commit(tx).await?;
                return Err(e);
            }
        };
        let mut tx = self.store().begin().await?;
        db::finish_import(&mut tx, &id, rows as i64).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now_i,
            &officer.actor(),
            "ra.campaign.import",
            json!({"batch": id, "rows": rows, "centre": officer.centre}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(Report {
            batch: id,
            done: rows,
            ..Report::default()
        })
    }

    async fn import_rows(
        &self,
        input: impl Read,
        id: &str,
        officer: &Staff,
        now: u64,
        progress: &mut impl FnMut(u64),
    ) -> Result<u64> {
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(input);
        let mut page: Vec<(i64, ApplicationRow)> = Vec::with_capacity(IMPORT_PAGE);
        let mut done = 0u64;
        let actor = officer.actor();
        for (i, row) in rdr.deserialize::<CsvRow>().enumerate() {
            let line = i + 2;
            let row = row.map_err(|e| crate::person::csv_error(line, e))?;
            let personal = Form {
                id_number: row.id_number,
                name_zh: row.name_zh,
                name_en: row.name_en,
                date_of_birth: row.date_of_birth,
                phone: row.phone,
                email: row.email,
                address: row.address,
                ..Form::default()
            }
            .validate(now)
            .map_err(|e| crate::person::at_line(line, e))?;
            page.push((
                line as i64,
                self.campaign_row(personal, id, officer, &actor, now)?,
            ));
            if page.len() == IMPORT_PAGE {
                done += self.write_page(&mut page, id, officer, &actor, now).await?;
                progress(done);
            }
        }
        done += self.write_page(&mut page, id, officer, &actor, now).await?;
        progress(done);
        if done == 0 {
            return Err(RaError::invalid(
                "csv",
                "The file holds no applications.",
                "檔案內沒有申請。",
            ));
        }
        Ok(done)
    }

    fn campaign_row(
        &self,
        personal: Personal,
        id: &str,
        officer: &Staff,
        actor: &str,
        now: u64,
    ) -> Result<ApplicationRow> {
        let reference = crate::applications::new_reference()?;
        let id_hash = self
            .vault
            .lookup_hash(crate::registry::RESIDENT, &personal.id_number);
        let (sealed, key_version) = self.vault.seal(&app_aad(&reference), &personal)?;
        Ok(ApplicationRow {
            reference,
            channel: Channel::Campaign.as_str().into(),
            centre: officer.centre.clone(),
            profile: "personal".into(),
            id_hash,
            sealed,
            key_version,
            status: Status::AwaitingRegistry.as_str().into(),
            registry: "pending".into(),
            entered_by: actor.into(),
            created_at: now as i64,
            updated_at: now as i64,
            batch: Some(id.into()),
            ..ApplicationRow::default()
        })
    }

    async fn write_page(
        &self,
        page: &mut Vec<(i64, ApplicationRow)>,
        id: &str,
        officer: &Staff,
        actor: &str,
        now: u64,
    ) -> Result<u64> {
        if page.is_empty() {
            return Ok(0);
        }
        // A reference drawn twice (60 random bits) fails the page; it is
        // written again with new references for that page.
        for attempt in 0..3 {
            let mut tx = self.store().begin().await?;
            match db::insert_applications(&mut tx, page).await {
                Ok(()) => {
                    hallmark_store::commit(tx).await?;
                    let n = page.len() as u64;
                    page.clear();
                    return Ok(n);
                }
                Err(hallmark_store::StoreError::Conflict(_)) if attempt < 2 => {
                    drop(tx);
                    let people: Vec<(i64, Personal)> = page
                        .iter()
                        .map(|(line, r)| {
                            Ok((*line, self.vault.open(&app_aad(&r.reference), &r.sealed)?))
                        })
                        .collect::<Result<_>>()?;
                    *page = people
                        .into_iter()
                        .map(|(line, p)| Ok((line, self.campaign_row(p, id, officer, actor, now)?)))
                        .collect::<Result<_>>()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RaError::Internal(
            "application references keep colliding".into(),
        ))
    }

    /// Deletes an interrupted import and its applications.
    pub async fn discard_campaign(&self, id: &str, actor: &str, now: u64) -> Result<u64> {
        self.store().batch(id).await?.ok_or_else(|| not_found(id))?;
        let mut tx = self.store().begin().await?;
        let n = db::discard_import(&mut tx, id).await.map_err(|_| {
            RaError::Conflict(Text::new(
                format!(
                    "Batch {id} was imported completely; only an interrupted import is discarded."
                ),
                format!("批次 {id} 已完整匯入；只可刪除未完成的匯入。"),
            ))
        })?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            actor,
            "ra.campaign.discard",
            json!({"batch": id, "applications": n}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(n)
    }

    /// Checks a batch's applications against the population registry, a
    /// page per round; confirmed ones await approval, the others stay with
    /// the registry's answer (and are checked again by the next run).
    pub async fn check_campaign(
        &self,
        id: &str,
        actor: &str,
        now: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Report> {
        self.imported_batch(id).await?;
        let mut report = Report {
            batch: id.into(),
            ..Report::default()
        };
        let mut after = 0;
        loop {
            let page = self
                .store()
                .batch_page(id, Stage::Check, after, CHECK_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.row;
            let people: Vec<Personal> = page
                .iter()
                .map(|a| self.vault.open(&app_aad(&a.reference), &a.sealed))
                .collect::<Result<_>>()?;
            let answers = match self.registry.check_many(&self.vault, &people).await {
                Ok(a) => a,
                Err(RaError::RegistryDown(why)) => {
                    return Err(RaError::RegistryDown(format!(
                        "{why}; {} application(s) of batch {id} were checked before it went down, run the check again",
                        report.confirmed + report.mismatch + report.unknown
                    )));
                }
                Err(e) => return Err(e),
            };
            let mut moves = Vec::with_capacity(page.len());
            let (mut c, mut m, mut u) = (0u64, 0u64, 0u64);
            for (a, answer) in page.iter().zip(&answers) {
                let status = match answer {
                    Answer::Confirmed => {
                        c += 1;
                        Status::AwaitingApproval
                    }
                    Answer::Mismatch => {
                        m += 1;
                        Status::AwaitingRegistry
                    }
                    Answer::Unknown => {
                        u += 1;
                        Status::AwaitingRegistry
                    }
                };
                moves.push((a.reference.clone(), answer.as_str(), status.as_str()));
            }
            let mut tx = self.store().begin().await?;
            db::set_registry_many(&mut tx, &moves, now as i64).await?;
            hallmark_store::audit::record(
                &mut tx,
                self.store().backend(),
                now as i64,
                actor,
                "ra.campaign.check",
                json!({"batch": id, "from_line": page[0].row, "to_line": after,
                       "confirmed": c, "mismatch": m, "unknown": u}),
            )
            .await?;
            hallmark_store::commit(tx).await?;
            report.confirmed += c;
            report.mismatch += m;
            report.unknown += u;
            progress(report.confirmed + report.mismatch + report.unknown);
        }
        report.done = report.confirmed + report.mismatch + report.unknown;
        Ok(report)
    }

    /// A supervisor approves every confirmed application of a batch with
    /// one action. Dual control: not the officer who imported it, and
    /// only a supervisor of the batch's centre.
    pub async fn approve_campaign(&self, id: &str, staff: &Staff, now: u64) -> Result<Report> {
        let b = self.imported_batch(id).await?;
        if staff.role != Role::Supervisor {
            return Err(RaError::Forbidden(Text::new(
                "A campaign batch is approved by a supervisor.",
                "批次申請須由主管批核。",
            )));
        }
        if b.entered_by == staff.actor() {
            return Err(RaError::Forbidden(Text::new(
                "Dual control: a batch must be approved by someone other than the officer who imported it.",
                "雙重控制：批次須由匯入者以外的另一名人員批核。",
            )));
        }
        if staff.centre.is_some() && staff.centre != b.centre {
            return Err(RaError::Forbidden(Text::new(
                "This batch belongs to another registration centre.",
                "此批次屬於另一登記中心。",
            )));
        }
        let mut tx = self.store().begin().await?;
        let n = db::approve_batch(&mut tx, id, &staff.actor(), now as i64).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            &staff.actor(),
            "ra.campaign.approve",
            json!({"batch": id, "approved": n, "entered_by": b.entered_by, "centre": b.centre}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(Report {
            batch: id.into(),
            done: n,
            ..Report::default()
        })
    }

    /// A batch and its applications by status, for the console and CLI.
    pub async fn campaign_status(
        &self,
        id: &str,
    ) -> Result<(db::BatchRow, Vec<(String, String, bool, i64)>)> {
        let b = self.store().batch(id).await?.ok_or_else(|| not_found(id))?;
        let counts = self.store().batch_counts(id).await?;
        Ok((b, counts))
    }
}

/// Writes `count` synthetic campaign applications of set `seed` (the same
/// people as [`crate::registry::write_synthetic`]) as a campaign CSV.
pub fn write_synthetic(out: impl std::io::Write, seed: u64, count: u64) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| RaError::Internal(e.to_string());
    w.write_record([
        "id_number",
        "name_zh",
        "name_en",
        "date_of_birth",
        "phone",
        "email",
        "address",
    ])
    .map_err(io)?;
    for i in 0..count {
        let p = crate::person::synthetic(seed, i);
        w.write_record([
            p.id_number.as_str(),
            &p.name_zh,
            &p.name_en,
            &p.date_of_birth,
            &p.phone,
            p.email.as_deref().unwrap_or(""),
            p.address.as_deref().unwrap_or(""),
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|e| RaError::Internal(e.to_string()))?;
    Ok(())
}
