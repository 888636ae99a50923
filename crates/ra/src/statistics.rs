//! The figures the service reports (the seeds' reports to the
//! legislature): certificates issued per month by type, revocations by
//! reason, applications by channel. Counted by the database; months are
//! Hong Kong calendar months folded from UTC days (a day's certificates
//! count in the month of their UTC day).

use std::collections::BTreeMap;

use hallmark_pki::crl::Reason;
use serde::Serialize;

use crate::person::civil_date;
use crate::{Ra, Result};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Statistics {
    /// The last twelve months, oldest first: (`YYYY-MM`, per profile).
    pub months: Vec<Month>,
    pub profiles: Vec<String>,
    pub issued_total: i64,
    /// (reason name, count), by count.
    pub revocations: Vec<(String, i64)>,
    /// (channel, applications, collected), by channel.
    pub channels: Vec<(String, i64, i64)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Month {
    pub month: String,
    pub total: i64,
    /// Counts in the order of `Statistics::profiles`.
    pub counts: Vec<i64>,
}

impl Ra {
    pub async fn statistics(&self, now: u64) -> Result<Statistics> {
        let (y, m, _) = civil_date(now);
        // The first day of the month eleven months back.
        let (mut fy, mut fm) = (y, m as i32 - 11);
        while fm < 1 {
            fm += 12;
            fy -= 1;
        }
        let mut months: Vec<String> = Vec::new();
        let (mut cy, mut cm) = (fy, fm);
        for _ in 0..12 {
            months.push(format!("{cy:04}-{cm:02}"));
            cm += 1;
            if cm > 12 {
                cm = 1;
                cy += 1;
            }
        }
        let from = crate::appointments::parse_hk(&format!("{fy:04}-{fm:02}-01T08:00")).unwrap_or(0);
        let days = self.auth.issued_per_day(from).await?;
        let mut profiles: Vec<String> = days.iter().map(|(p, _, _)| p.clone()).collect();
        profiles.sort();
        profiles.dedup();
        let mut table: BTreeMap<String, Vec<i64>> = months
            .iter()
            .map(|m| (m.clone(), vec![0; profiles.len()]))
            .collect();
        let mut issued_total = 0;
        for (p, day, n) in &days {
            let (y, m, _) = civil_date((*day).max(0) as u64 * 86_400);
            if let (Some(row), Ok(i)) = (
                table.get_mut(&format!("{y:04}-{m:02}")),
                profiles.binary_search(p),
            ) {
                row[i] += n;
                issued_total += n;
            }
        }
        let months = table
            .into_iter()
            .map(|(month, counts)| Month {
                total: counts.iter().sum(),
                month,
                counts,
            })
            .collect();
        let mut revocations: Vec<(String, i64)> = self
            .auth
            .revocations_by_reason()
            .await?
            .into_iter()
            .map(|(code, n)| {
                let name = u8::try_from(code)
                    .ok()
                    .and_then(Reason::from_code)
                    .map_or_else(|| format!("reason {code}"), |r| r.name().to_string());
                (name, n)
            })
            .collect();
        revocations.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut channels: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (channel, status, n) in self.store().applications_by_channel().await? {
            let e = channels.entry(channel).or_default();
            e.0 += n;
            if status == "activated" {
                e.1 += n;
            }
        }
        Ok(Statistics {
            months,
            profiles,
            issued_total,
            revocations,
            channels: channels.into_iter().map(|(c, (a, b))| (c, a, b)).collect(),
        })
    }
}
