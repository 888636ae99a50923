//! Counter appointments: a registration centre opens slots with a
//! capacity (`hallmark appointments open`); an applicant books one from
//! the application's status page, changes it or cancels it; the day
//! before, a reminder is e-mailed. A seat is taken by a conditional update
//! in the booking's transaction, so concurrent bookings never overfill a
//! slot, and a change frees the old seat and takes the new one at once.
//! Times are shown in Hong Kong time (UTC+8, no daylight saving).

use hallmark_store::StoreError;
use hallmark_store::appointments::{self as ap, BookingRow};
use serde::Serialize;
use serde_json::json;

use crate::applications::{REF_ALPHABET, Status};
use crate::notices::Content;
use crate::person::{Personal, civil_date};
use crate::{Ra, RaError, Result, Text};

/// Hong Kong's offset from UTC.
pub const HK_OFFSET: i64 = 8 * 3600;
/// How far ahead an applicant may book.
pub const BOOKING_HORIZON_DAYS: i64 = 30;

#[derive(Clone, Debug, Serialize)]
pub struct Slot {
    pub centre: String,
    pub starts_at: i64,
    pub free: i64,
    /// `YYYY-MM-DD HH:MM` in Hong Kong time.
    pub label: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Booking {
    pub code: String,
    pub centre: String,
    pub starts_at: i64,
    pub label: String,
}

/// A Unix time as Hong Kong local `YYYY-MM-DD HH:MM`.
pub fn hk_label(t: i64) -> String {
    let l = (t + HK_OFFSET).max(0) as u64;
    let (y, m, d) = civil_date(l);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        l % 86_400 / 3600,
        l % 3600 / 60
    )
}

/// Hong Kong local `YYYY-MM-DDTHH:MM` (or with a space) as a Unix time.
pub fn parse_hk(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once(['T', ' '])?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (h, min) = time.split_once(':')?;
    let (h, min): (i64, i64) = (h.parse().ok()?, min.parse().ok()?);
    if d.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&min)
    {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + min * 60 - HK_OFFSET;
    (hk_label(t) == format!("{y:04}-{m:02}-{day:02} {h:02}:{min:02}")).then_some(t)
}

fn booking(b: BookingRow) -> Booking {
    Booking {
        label: hk_label(b.starts_at),
        code: b.code,
        centre: b.centre,
        starts_at: b.starts_at,
    }
}

fn new_code() -> Result<String> {
    let mut raw = [0u8; 8];
    hallmark_crypto::fill_random(&mut raw)?;
    let s: String = raw
        .iter()
        .map(|b| REF_ALPHABET[(*b as usize) % REF_ALPHABET.len()] as char)
        .collect();
    Ok(format!("BK-{}-{}", &s[..4], &s[4..]))
}

fn full() -> RaError {
    RaError::Conflict(Text::new(
        "That slot has just been taken; choose another.",
        "該時段剛已額滿；請選擇其他時段。",
    ))
}

impl Ra {
    /// Opens `count` slots at `centre`, `every_secs` apart from `first`,
    /// each for `capacity` people.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_slots(
        &self,
        centre: &str,
        first: i64,
        count: u32,
        every_secs: i64,
        capacity: i64,
        actor: &str,
        now: u64,
    ) -> Result<()> {
        if centre.trim().is_empty() || capacity < 1 || count == 0 || every_secs < 60 {
            return Err(RaError::invalid(
                "slots",
                "Give a centre, a capacity of at least 1, at least one slot, and slots at least a minute apart.",
                "請提供登記中心、至少一人的名額、至少一個時段，而時段相隔至少一分鐘。",
            ));
        }
        let mut tx = self.store().begin().await?;
        for i in 0..i64::from(count) {
            ap::open_slot(&mut tx, centre, first + i * every_secs, capacity).await?;
        }
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            actor,
            "ra.slots.open",
            json!({"centre": centre, "first": first, "count": count, "every_secs": every_secs, "capacity": capacity}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// Slots with a free seat in the booking horizon.
    pub async fn free_slots(&self, now: u64) -> Result<Vec<Slot>> {
        let now = now as i64;
        let rows = self
            .store()
            .free_slots(now + 60, now + BOOKING_HORIZON_DAYS * 86_400, 200)
            .await?;
        Ok(rows
            .into_iter()
            .map(|s| Slot {
                label: hk_label(s.starts_at),
                free: s.capacity - s.booked,
                centre: s.centre,
                starts_at: s.starts_at,
            })
            .collect())
    }

    pub async fn booking_of(&self, reference: &str) -> Result<Option<Booking>> {
        Ok(self.store().booking_of(reference).await?.map(booking))
    }

    /// Books (or moves the standing booking to) a slot, for the applicant
    /// who proves the application is theirs with the date of birth.
    pub async fn book(
        &self,
        reference: &str,
        date_of_birth: &str,
        centre: &str,
        starts_at: i64,
        now: u64,
    ) -> Result<Booking> {
        let a = self.track(reference, date_of_birth).await?;
        if matches!(
            a.status,
            Status::Activated | Status::Rejected | Status::Activating
        ) {
            return Err(RaError::Conflict(Text::new(
                "This application needs no appointment any more.",
                "此申請已毋須預約。",
            )));
        }
        let slot = self.store().slot(centre, starts_at).await?;
        if slot.is_none() || starts_at <= now as i64 {
            return Err(RaError::invalid(
                "slot",
                "Choose one of the times offered.",
                "請選擇所列的時段。",
            ));
        }
        let old = self.store().booking_of(&a.reference).await?;
        let new = BookingRow {
            code: new_code()?,
            reference: a.reference.clone(),
            centre: centre.to_string(),
            starts_at,
        };
        let mut tx = self.store().begin().await?;
        if let Some(o) = &old {
            ap::cancel_booking(&mut tx, &o.code, now as i64).await?;
            ap::free_seat(&mut tx, &o.centre, o.starts_at).await?;
        }
        match ap::take_seat(&mut tx, centre, starts_at).await {
            Err(StoreError::Conflict(_)) => return Err(full()),
            other => other?,
        }
        ap::insert_booking(&mut tx, &new, now as i64).await.map_err(|e| match e {
            StoreError::Conflict(_) => RaError::Conflict(Text::new(
                "This application was booked from elsewhere at the same moment; reload the page.",
                "此申請剛在別處預約；請重新載入頁面。",
            )),
            e => e.into(),
        })?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            "applicant",
            if old.is_some() { "ra.booking.change" } else { "ra.booking.book" },
            json!({"reference": a.reference, "code": new.code, "centre": centre, "starts_at": starts_at, "replaces": old.as_ref().map(|o| &o.code)}),
        )
        .await?;
        match hallmark_store::commit(tx).await {
            Err(StoreError::Conflict(_)) => return Err(full()),
            other => other?,
        }
        Ok(booking(new))
    }

    pub async fn cancel(&self, reference: &str, date_of_birth: &str, now: u64) -> Result<()> {
        let a = self.track(reference, date_of_birth).await?;
        let Some(b) = self.store().booking_of(&a.reference).await? else {
            return Err(RaError::Conflict(Text::new(
                "There is no appointment to cancel.",
                "沒有可取消的預約。",
            )));
        };
        let mut tx = self.store().begin().await?;
        ap::cancel_booking(&mut tx, &b.code, now as i64).await?;
        ap::free_seat(&mut tx, &b.centre, b.starts_at).await?;
        hallmark_store::audit::record(
            &mut tx,
            self.store().backend(),
            now as i64,
            "applicant",
            "ra.booking.cancel",
            json!({"reference": a.reference, "code": b.code}),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }

    /// Queues the e-mail reminder for each appointment in the next day.
    pub(crate) async fn remind_appointments(&self, now: i64) -> Result<usize> {
        let prefix = "appointment:";
        let mut queued = 0;
        let mut after = (i64::MIN, String::new());
        loop {
            let rows = self
                .store()
                .bookings_without_notice(now, now + 86_400, prefix, (after.0, &after.1), 200)
                .await?;
            let Some((last, _)) = rows.last() else { break };
            after = (last.starts_at, last.code.clone());
            let mut tx = self.store().begin().await?;
            let mut codes = Vec::new();
            for (b, sealed) in &rows {
                let p: Personal = self
                    .vault
                    .open(&crate::applications::app_aad(&b.reference), sealed)?;
                let Some(to) = p.email.clone() else { continue };
                let when = hk_label(b.starts_at);
                let c = Content::Email {
                    to,
                    subject: "明天的預約 Your appointment tomorrow".into(),
                    body: format!(
                        "{}：\n\n提提你：你已預約於 {when}（香港時間）到 {} 登記處辦理電子證書申請（申請編號 {}，預約編號 {}）。請帶同香港身份證正本。\n\nDear {},\n\nA reminder: you have an appointment at the {} registration office at {when} (Hong Kong time) for your e-Cert application (reference {}, booking {}). Bring your Hong Kong identity card.\n",
                        p.name_zh,
                        b.centre,
                        b.reference,
                        b.code,
                        p.name_en,
                        b.centre,
                        b.reference,
                        b.code
                    ),
                };
                if self
                    .queue_notice(&mut tx, &format!("{prefix}{}", b.code), &c, now as u64)
                    .await?
                {
                    codes.push(b.code.clone());
                }
            }
            if !codes.is_empty() {
                hallmark_store::audit::record(
                    &mut tx,
                    self.store().backend(),
                    now,
                    "ra",
                    "ra.reminder.queue",
                    json!({"appointments": codes}),
                )
                .await?;
            }
            match hallmark_store::commit(tx).await {
                Ok(()) => queued += codes.len(),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hong_kong_times_round_trip() {
        // 2026-12-08 09:30 in Hong Kong is 01:30 UTC.
        let t = parse_hk("2026-12-08T09:30").unwrap();
        assert_eq!(t % 86_400, 3600 + 1800);
        assert_eq!(hk_label(t), "2026-12-08 09:30");
        assert_eq!(
            parse_hk("2026-12-08 00:15").map(hk_label).as_deref(),
            Some("2026-12-08 00:15")
        );
        for bad in [
            "2026-02-30T09:00",
            "2026-12-08T24:00",
            "2026-12-08",
            "tomorrow",
        ] {
            assert_eq!(parse_hk(bad), None, "{bad}");
        }
    }
}
