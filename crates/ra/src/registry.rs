//! The population registry: issuance waits until it confirms the person.
//! [`Registry`] is the seam; [`Builtin`] answers from records the operator
//! imported (`hallmark registry import`, a CSV streamed in batches), sealed
//! like every other personal record.

use std::future::Future;
use std::io::Read;
use std::pin::Pin;

use hallmark_store::Store;
use hallmark_store::registration::{ResidentRow, upsert_residents};
use serde::Deserialize;

use crate::person::{Form, Personal};
use crate::vault::Vault;
use crate::{RaError, Result};

/// What the registry says about a person's particulars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The ID number is known and name and date of birth match.
    Confirmed,
    /// The ID number is known but the particulars differ.
    Mismatch,
    /// No such ID number.
    Unknown,
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Mismatch => "mismatch",
            Self::Unknown => "unknown",
        }
    }
}

pub type Check<'a> = Pin<Box<dyn Future<Output = Result<Answer>> + Send + 'a>>;

/// A population registry. An adapter for a remote registry returns
/// [`RaError::RegistryDown`] when it cannot answer; the application then
/// waits and is checked again.
pub trait Registry: Send + Sync {
    fn check<'a>(&'a self, vault: &'a Vault, person: &'a Personal) -> Check<'a>;

    /// Many people at once (a campaign batch), answers in order; by
    /// default one by one.
    fn check_many<'a>(&'a self, vault: &'a Vault, people: &'a [Personal]) -> CheckMany<'a> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(people.len());
            for p in people {
                out.push(self.check(vault, p).await?);
            }
            Ok(out)
        })
    }
}

pub type CheckMany<'a> = Pin<Box<dyn Future<Output = Result<Vec<Answer>>> + Send + 'a>>;

/// Compares a person with their registry record.
fn compare(vault: &Vault, p: &Personal, row: Option<&ResidentRow>) -> Result<Answer> {
    let Some(row) = row else {
        return Ok(Answer::Unknown);
    };
    let r: Record = vault.open(&resident_aad(&row.id_hash), &row.sealed)?;
    let same =
        r.name_en == p.name_en && r.name_zh == p.name_zh && r.date_of_birth == p.date_of_birth;
    Ok(if same {
        Answer::Confirmed
    } else {
        Answer::Mismatch
    })
}

/// The registry imported into Hallmark's own store.
pub struct Builtin {
    store: Store,
}

impl Builtin {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

pub(crate) const RESIDENT: &str = "hkid";

fn resident_aad(id_hash: &[u8]) -> String {
    format!("ra-resident:{}", hallmark_pki::hex(id_hash))
}

/// The registry's part of a record: what is compared.
#[derive(serde::Serialize, Deserialize)]
struct Record {
    name_zh: String,
    name_en: String,
    date_of_birth: String,
}

impl Registry for Builtin {
    fn check<'a>(&'a self, vault: &'a Vault, p: &'a Personal) -> Check<'a> {
        Box::pin(async move {
            let h = vault.lookup_hash(RESIDENT, &p.id_number);
            let row = self.store.resident(&h).await?;
            compare(vault, p, row.as_ref())
        })
    }

    /// One query per few hundred people.
    fn check_many<'a>(&'a self, vault: &'a Vault, people: &'a [Personal]) -> CheckMany<'a> {
        Box::pin(async move {
            let hashes: Vec<Vec<u8>> = people
                .iter()
                .map(|p| vault.lookup_hash(RESIDENT, &p.id_number))
                .collect();
            let found: std::collections::HashMap<Vec<u8>, ResidentRow> = self
                .store
                .residents_of(&hashes)
                .await?
                .into_iter()
                .map(|r| (r.id_hash.clone(), r))
                .collect();
            people
                .iter()
                .zip(&hashes)
                .map(|(p, h)| compare(vault, p, found.get(h)))
                .collect()
        })
    }
}

/// One CSV row of a registry import (header: `id_number,name_zh,name_en,date_of_birth`).
#[derive(Deserialize)]
struct CsvRow {
    id_number: String,
    name_zh: String,
    name_en: String,
    date_of_birth: String,
}

/// Rows sealed and written per transaction during an import.
const IMPORT_BATCH: usize = 2048;

/// Streams a registry CSV into the store: every row is validated as an
/// application form would be, sealed, and written in batches; `progress`
/// hears the rows done. A bad row stops the import with its line number;
/// batches before it stay (an import can be run again: rows are replaced).
pub async fn import(
    store: &Store,
    vault: &Vault,
    input: impl Read,
    now: u64,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut done = 0u64;
    for (i, row) in rdr.deserialize::<CsvRow>().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| crate::person::csv_error(line, e))?;
        // The registry holds no contact details; a placeholder phone and
        // e-mail let the form's validation check the rest.
        let p = Form {
            id_number: row.id_number,
            name_zh: row.name_zh,
            name_en: row.name_en,
            date_of_birth: row.date_of_birth,
            phone: "00000000".into(),
            email: "registry@example.hk".into(),
            ..Form::default()
        }
        .validate(now)
        .map_err(|e| crate::person::at_line(line, e))?;
        let id_hash = vault.lookup_hash(RESIDENT, &p.id_number);
        let (sealed, key_version) = vault.seal(
            &resident_aad(&id_hash),
            &Record {
                name_zh: p.name_zh,
                name_en: p.name_en,
                date_of_birth: p.date_of_birth,
            },
        )?;
        batch.push(ResidentRow {
            id_hash,
            sealed,
            key_version,
        });
        if batch.len() == IMPORT_BATCH {
            done += write(store, &mut batch, now).await?;
            progress(done);
        }
    }
    done += write(store, &mut batch, now).await?;
    progress(done);
    Ok(done)
}

async fn write(store: &Store, batch: &mut Vec<ResidentRow>, now: u64) -> Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    upsert_residents(&mut tx, batch, now as i64).await?;
    hallmark_store::commit(tx).await?;
    let n = batch.len() as u64;
    batch.clear();
    Ok(n)
}

/// Writes `count` synthetic residents of set `seed` as a registry CSV.
pub fn write_synthetic(out: impl std::io::Write, seed: u64, count: u64) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| RaError::Internal(e.to_string());
    w.write_record(["id_number", "name_zh", "name_en", "date_of_birth"])
        .map_err(io)?;
    for i in 0..count {
        let p = crate::person::synthetic(seed, i);
        w.write_record([&p.id_number, &p.name_zh, &p.name_en, &p.date_of_birth])
            .map_err(io)?;
    }
    w.flush().map_err(|e| RaError::Internal(e.to_string()))?;
    Ok(())
}

/// Applications asked about again per round.
const RECHECK_PAGE: i64 = 256;

/// What a round of [`crate::Ra::recheck_registry`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rechecked {
    pub confirmed: u64,
    pub mismatch: u64,
    pub unknown: u64,
}

impl crate::Ra {
    /// Asks the registry again about applications it could not answer
    /// for when they were made (it was down): up to a page of them, oldest
    /// first, moved and audited in one transaction. The registry still
    /// down is [`RaError::RegistryDown`], and they keep waiting.
    pub async fn recheck_registry(&self, actor: &str, now: u64) -> Result<Rechecked> {
        let rows = self.store().pending_registry(RECHECK_PAGE).await?;
        if rows.is_empty() {
            return Ok(Rechecked::default());
        }
        let people: Vec<Personal> = rows
            .iter()
            .map(|r| {
                self.vault
                    .open(&crate::applications::app_aad(&r.reference), &r.sealed)
            })
            .collect::<Result<_>>()?;
        let answers = self.registry.check_many(&self.vault, &people).await?;
        let mut found = Rechecked::default();
        let moves: Vec<(String, &'static str, &'static str)> = rows
            .iter()
            .zip(&answers)
            .map(|(r, a)| {
                let status = match a {
                    Answer::Confirmed => {
                        found.confirmed += 1;
                        crate::Status::AwaitingApproval
                    }
                    Answer::Mismatch => {
                        found.mismatch += 1;
                        crate::Status::AwaitingRegistry
                    }
                    Answer::Unknown => {
                        found.unknown += 1;
                        crate::Status::AwaitingRegistry
                    }
                };
                (r.reference.clone(), a.as_str(), status.as_str())
            })
            .collect();
        let mut tx = self.store().begin().await?;
        hallmark_store::campaign::set_registry_many(&mut tx, &moves, now as i64).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            actor,
            "ra.registry.recheck",
            serde_json::json!({"confirmed": found.confirmed, "mismatch": found.mismatch,
                               "unknown": found.unknown}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(found)
    }
}
