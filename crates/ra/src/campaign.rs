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

use hallmark_authority::{IssueRequest, KeySource};
use hallmark_crypto::KeyAlgorithm;
use hallmark_store::campaign::{self as db, Stage};
use hallmark_store::registration::ApplicationRow;
use serde::Deserialize;
use serde_json::json;

use crate::applications::{Channel, Status, app_aad};
use crate::person::{Form, Personal};
use crate::registry::Answer;
use crate::staff::{Role, Staff};
use crate::{Ra, RaError, Result, Text};

/// Rows sealed and written per transaction during an import.
const IMPORT_PAGE: usize = 4096;
/// Applications checked per registry round and transaction.
const CHECK_PAGE: i64 = 4096;
/// Certificates issued per transaction by default: with more, a page of
/// a certificate index is shared by more of them before it is written.
pub const ISSUE_PAGE: i64 = 16_384;
/// SQLite's page cache while a page of certificates is stored (MiB).
const ISSUE_CACHE_MIB: i64 = 128;

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
    async fn imported_batch(&self, id: &str) -> Result<db::BatchRow> {
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

    /// Issues the certificates of a batch's approved applications with
    /// centrally generated keys, a page per transaction: the certificates,
    /// their audit entries and the applications' sealed keys commit
    /// together or not at all. The next page is signed (on every core)
    /// while one is stored.
    pub async fn issue_campaign(
        &self,
        id: &str,
        page: i64,
        actor: &str,
        now: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Report> {
        self.imported_batch(id).await?;
        let page = page.clamp(1, 65_536);
        let mut report = Report {
            batch: id.into(),
            ..Report::default()
        };
        // One connection for the run, with a page cache that holds a
        // page's writes.
        let mut conn = self
            .store()
            .pool()
            .acquire()
            .await
            .map_err(hallmark_store::StoreError::from)?;
        db::large_cache(&mut conn, ISSUE_CACHE_MIB).await?;
        let result = self
            .issue_pages(&mut conn, id, page, actor, now, &mut report, &mut progress)
            .await;
        db::default_cache(&mut conn).await?;
        result.map(|()| report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_pages(
        &self,
        conn: &mut hallmark_store::AnyConnection,
        id: &str,
        size: i64,
        actor: &str,
        now: u64,
        report: &mut Report,
        progress: &mut impl FnMut(u64),
    ) -> Result<()> {
        let mut next = self.sign_page(id, 0, size, now).await?;
        while let Some((start, page, signing)) = next.take() {
            let issued = signing
                .await
                .map_err(|e| RaError::Internal(format!("signing stopped: {e}")))??;
            let last = page.last().map_or(start, |a| a.row);
            next = self.sign_page(id, last, size, now).await?;
            match self
                .store_page(conn, id, &page, &issued, actor, now)
                .await?
            {
                Some(n) => {
                    report.done += n;
                    progress(report.done);
                }
                None => {
                    // Another run issued some of them first: nothing of
                    // this page was stored; it is read again from its start.
                    next = self.sign_page(id, start, size, now).await?;
                }
            }
        }
        Ok(())
    }

    /// Reads the page of a batch after `after` and starts signing it on a
    /// blocking thread; `None` when no application is left to issue.
    #[allow(clippy::type_complexity)]
    async fn sign_page(
        &self,
        id: &str,
        after: i64,
        size: i64,
        now: u64,
    ) -> Result<
        Option<(
            i64,
            Vec<db::BatchApp>,
            tokio::task::JoinHandle<
                std::result::Result<Vec<hallmark_authority::batch::BatchIssued>, RaError>,
            >,
        )>,
    > {
        let page = self
            .store()
            .batch_page(id, Stage::Issue, after, size)
            .await?;
        if page.is_empty() {
            return Ok(None);
        }
        let reqs: Vec<IssueRequest> = page
            .iter()
            .map(|a| {
                let p: Personal = self.vault.open(&app_aad(&a.reference), &a.sealed)?;
                Ok(IssueRequest {
                    profile: a.profile.clone(),
                    issuer: None,
                    subject: crate::applications::subject_of(&p),
                    // No mailbox was proven on this channel.
                    emails: Vec::new(),
                    dns_names: Vec::new(),
                    validity_days: None,
                    validity_secs: None,
                    key: KeySource::Generate(KeyAlgorithm::EcP256),
                    actor: format!("ra:{}", a.reference),
                })
            })
            .collect::<Result<_>>()?;
        let auth = self.authority().clone();
        let signing =
            tokio::task::spawn_blocking(move || auth.sign_batch(&reqs, now).map_err(RaError::from));
        Ok(Some((after, page, signing)))
    }

    /// Stores a signed page with its applications' sealed keys in one
    /// transaction; `None` (nothing stored) if some application of the
    /// page was no longer waiting for its certificate.
    async fn store_page(
        &self,
        conn: &mut hallmark_store::AnyConnection,
        id: &str,
        page: &[db::BatchApp],
        issued: &[hallmark_authority::batch::BatchIssued],
        actor: &str,
        now: u64,
    ) -> Result<Option<u64>> {
        let t0 = std::time::Instant::now();
        let sealed: Vec<Vec<u8>> = page
            .iter()
            .zip(issued)
            .map(|(a, b)| self.vault.seal_bytes(&key_aad(&a.reference), &b.pkcs8))
            .collect::<Result<_>>()?;
        let rows: Vec<db::IssuedApp<'_>> = page
            .iter()
            .zip(issued)
            .zip(&sealed)
            .map(|((a, b), k)| db::IssuedApp {
                reference: &a.reference,
                issuer: b.issuer(),
                serial: b.serial_hex(),
                key_sealed: k,
            })
            .collect();
        let mut tx = self.store().begin_on(conn).await?;
        let t1 = std::time::Instant::now();
        let moved = db::mark_issued(&mut tx, &rows, now as i64).await?;
        if moved != rows.len() as u64 {
            return Ok(None);
        }
        let t2 = std::time::Instant::now();
        self.authority()
            .store_batch_in(&mut tx, issued, now)
            .await?;
        let t3 = std::time::Instant::now();
        let (first, last) = (page[0].row, page[page.len() - 1].row);
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            actor,
            "ra.campaign.issue",
            json!({"batch": id, "from_line": first, "to_line": last, "issued": moved}),
        )
        .await?;
        let t4 = std::time::Instant::now();
        tx.commit()
            .await
            .map_err(hallmark_store::StoreError::from)?;
        tracing::debug!(
            n = moved,
            seal_ms = (t1 - t0).as_millis() as u64,
            apps_ms = (t2 - t1).as_millis() as u64,
            certs_ms = (t3 - t2).as_millis() as u64,
            commit_ms = t4.elapsed().as_millis() as u64,
            store_ms = t0.elapsed().as_millis() as u64,
            "batch stored"
        );
        self.authority().batch_committed(issued, now).await;
        Ok(Some(moved))
    }

    /// Prints the first PIN mailer of up to `limit` issued applications of
    /// a batch, in file order, handing each PDF to `out` with its line and
    /// reference (for a print run); each is a mailer as an officer prints
    /// one on the console, audited one by one.
    pub async fn print_campaign_mailers(
        &self,
        id: &str,
        officer: &Staff,
        activate_url: &str,
        limit: u64,
        now: u64,
        mut out: impl FnMut(i64, &str, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        self.imported_batch(id).await?;
        let mut done = 0u64;
        let mut after = 0;
        while done < limit {
            let want = (limit - done).min(256) as i64;
            let page = self
                .store()
                .batch_page(id, Stage::Mail, after, want)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.row;
            for a in &page {
                let pdf = self
                    .print_mailer(&a.reference, officer, activate_url, now)
                    .await?;
                out(a.row, &a.reference, &pdf)?;
                done += 1;
            }
        }
        Ok(done)
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
