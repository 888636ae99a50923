//! RFC 5280 §4.1.2.5 time encoding: UTCTime through 2049, GeneralizedTime after.

use std::time::Duration;

use der::DateTime;
use der::asn1::{GeneralizedTime, UtcTime};
use x509_cert::time::Time;

use crate::{PkiError, Result};

pub fn datetime(unix: u64) -> Result<DateTime> {
    DateTime::from_unix_duration(Duration::from_secs(unix))
        .map_err(|e| PkiError::malformed("time", e))
}

pub fn x509_time(unix: u64) -> Result<Time> {
    let dt = datetime(unix)?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

pub fn generalized(unix: u64) -> Result<GeneralizedTime> {
    Ok(GeneralizedTime::from_date_time(datetime(unix)?))
}

pub fn unix(t: &Time) -> u64 {
    t.to_unix_duration().as_secs()
}

/// Renders Unix seconds as RFC 3339 (UTC), for people and JSON.
pub fn rfc3339(unix: u64) -> String {
    match datetime(unix) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes(),
            d.seconds()
        ),
        Err(_) => unix.to_string(),
    }
}
