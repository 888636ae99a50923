//! A batch's certificates issued, page by page (the next page signed on
//! every core while one is stored), and its PIN mailers printed.

use hallmark_authority::batch::BatchIssued;
use hallmark_authority::{IssueRequest, KeySource};
use hallmark_crypto::KeyAlgorithm;
use hallmark_store::campaign::{self as db, Stage};
use serde_json::json;

use super::{Report, key_aad};
use crate::applications::app_aad;
use crate::person::Personal;
use crate::staff::Staff;
use crate::{Ra, RaError, Result};

/// Certificates issued per transaction by default: with more, a page of
/// a certificate index is shared by more of them before it is written.
pub const ISSUE_PAGE: i64 = 16_384;
/// SQLite's page cache while a page of certificates is stored (MiB).
const ISSUE_CACHE_MIB: i64 = 128;

impl Ra {
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
            tokio::task::JoinHandle<std::result::Result<Vec<BatchIssued>, RaError>>,
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
        issued: &[BatchIssued],
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
}
