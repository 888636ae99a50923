//! Revocation: stored with its audit entry and the CRLs it makes due in one
//! transaction, answered by OCSP at once, then published on the CRLs.

use std::sync::Arc;

use hallmark_pki::crl::Reason;
use hallmark_store::audit;
use hallmark_store::certificates::CertRow;

use crate::{Authority, AuthorityError, Result};

impl Authority {
    /// Revokes a certificate, then refreshes its OCSP response and the CRLs
    /// that list it.
    pub async fn revoke(
        &self,
        (issuer, serial_hex): (Option<&str>, &str),
        reason: Reason,
        actor: &str,
        now: u64,
    ) -> Result<CertRow> {
        let row = self
            .revoke_stored((issuer, serial_hex), reason, actor, now)
            .await?;
        // Publish promptly: the revoked certificate's partition, then the
        // full CRL. The revocation is already stored; a CRL failure is
        // retried and must not make the caller think it was not.
        self.crls
            .publish_after_revocation_logged(&row.issuer, row.shard, now)
            .await;
        Ok(row)
    }

    /// Revokes inside the caller's transaction, so that a capability's own
    /// record of why (a lost report on an application) commits with the
    /// revocation or not at all. After the commit, call
    /// [`revocation_committed`](Self::revocation_committed).
    #[allow(clippy::too_many_arguments)]
    pub async fn revoke_in(
        &self,
        tx: &mut hallmark_store::AnyConnection,
        (issuer, serial_hex): (&str, &str),
        reason: Reason,
        actor: &str,
        now: u64,
        details: serde_json::Value,
    ) -> Result<CertRow> {
        let serial_hex = normalise_serial(serial_hex)?;
        crate::check_issuer_id(Some(issuer))?;
        offered(reason)?;
        self.revoke_audited(
            tx,
            (issuer, &serial_hex),
            reason,
            actor,
            now,
            "certificate.revoke",
            details,
        )
        .await
    }

    /// After a [`revoke_in`](Self::revoke_in) committed: OCSP answers it at
    /// once and the CRLs that list it are published.
    pub async fn revocation_committed(&self, row: &CertRow, now: u64) {
        self.ocsp.invalidate(&row.issuer, &row.serial);
        self.crls
            .publish_after_revocation_logged(&row.issuer, row.shard, now)
            .await;
    }

    /// Revokes as [`revoke`](Self::revoke) does, but waits at most `wait`
    /// for the partition CRL listing the revocation (what the certificate's
    /// CRL distribution point names); the full CRL, which takes seconds to
    /// sign at a million entries, is published in the background. The
    /// revocation is stored and OCSP answers revoked either way; the CRLs
    /// owed are in the database, so a crash before they are out loses
    /// nothing (the next server publishes them). The flag says whether the
    /// partition CRL was out within `wait`.
    pub async fn revoke_waiting_at_most(
        self: &Arc<Self>,
        (issuer, serial_hex): (Option<&str>, &str),
        reason: Reason,
        actor: &str,
        now: u64,
        wait: std::time::Duration,
    ) -> Result<(CertRow, bool)> {
        let row = self
            .revoke_stored((issuer, serial_hex), reason, actor, now)
            .await?;
        let published = self
            .crls
            .publish_waiting_at_most(&row.issuer, row.shard, now, wait)
            .await;
        Ok((row, published))
    }

    /// Stores a revocation (with its audit entry and the CRLs it makes
    /// due) and has OCSP answer it at once. The issuer may be left out
    /// unless the serial is one of several CAs' (a conflict naming them).
    pub(crate) async fn revoke_stored(
        &self,
        (issuer, serial_hex): (Option<&str>, &str),
        reason: Reason,
        actor: &str,
        now: u64,
    ) -> Result<CertRow> {
        let serial_hex = normalise_serial(serial_hex)?;
        crate::check_issuer_id(issuer)?;
        offered(reason)?;
        let found = self.store.get_cert(issuer, &serial_hex).await?;
        let mut tx = self.store.begin().await?;
        let row = self
            .revoke_audited(
                &mut tx,
                (&found.issuer, &serial_hex),
                reason,
                actor,
                now,
                "certificate.revoke",
                serde_json::json!({"issuer": found.issuer, "serial": serial_hex, "reason": reason.name()}),
            )
            .await?;
        hallmark_store::commit(tx).await?;
        self.ocsp.invalidate(&row.issuer, &row.serial);
        Ok(row)
    }

    /// Revokes `(issuer, serial)` now and records `action` with `details`
    /// in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn revoke_audited(
        &self,
        tx: &mut hallmark_store::AnyConnection,
        (issuer, serial): (&str, &str),
        reason: Reason,
        actor: &str,
        now: u64,
        action: &str,
        details: serde_json::Value,
    ) -> Result<CertRow> {
        let row = hallmark_store::revocations::revoke(
            tx,
            issuer,
            serial,
            now as i64,
            reason as i64,
            now as i64,
        )
        .await?;
        audit::record(
            tx,
            self.store.backend(),
            now as i64,
            actor,
            action,
            details.to_string(),
        )
        .await?;
        Ok(row)
    }
}

/// Refuses reasons a revocation may not give (see [`Reason::OFFERED`]).
pub(crate) fn offered(reason: Reason) -> Result<()> {
    if Reason::OFFERED.contains(&reason) {
        return Ok(());
    }
    Err(AuthorityError::Invalid(format!(
        "{} is not offered: a revocation here is final and cannot be released; use one of {}",
        reason.name(),
        Reason::OFFERED.map(|r| r.name()).join(", ")
    )))
}

/// Accepts serials as hex with or without colons or 0x, any case, and
/// returns the stored form (lower-case hex of the INTEGER contents).
pub fn normalise_serial(s: &str) -> Result<String> {
    // Any spelling of the number: upper or lower case, colons, 0x, an odd
    // number of digits, leading zeros. Stored serials are the contents of a
    // positive DER INTEGER: no redundant leading zero octet, and one where
    // the top bit is set.
    let digits: String = s
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let even = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    let mut bytes = hallmark_pki::unhex(&even).ok_or_else(|| {
        AuthorityError::Invalid(format!(
            "{s:?} is not a serial number: give it in hexadecimal, e.g. 3f:a2:... or 3fa2..."
        ))
    })?;
    while bytes.len() > 1 && bytes[0] == 0 && bytes[1] < 0x80 {
        bytes.remove(0);
    }
    if bytes[0] >= 0x80 {
        bytes.insert(0, 0);
    }
    if bytes.len() > 21 {
        return Err(AuthorityError::Invalid(format!(
            "serial {s:?} is longer than 20 octets"
        )));
    }
    Ok(hallmark_pki::hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_normalised_from_any_spelling() {
        let canonical = "0e9c2668aa";
        for spelling in [
            "0e9c2668aa",
            "0E9C2668AA",
            "0e:9c:26:68:aa",
            "0x0e9c2668aa",
            "e9c2668aa",
            "000e9c2668aa",
            " 00:0E:9C:26:68:AA ",
        ] {
            assert_eq!(normalise_serial(spelling).unwrap(), canonical, "{spelling}");
        }
        // A positive INTEGER whose top bit is set keeps (or gains) its zero octet.
        assert_eq!(normalise_serial("c3").unwrap(), "00c3");
        assert_eq!(normalise_serial("0000c3").unwrap(), "00c3");
        assert_eq!(normalise_serial("0").unwrap(), "00");
        for bad in ["", "0x", "zz", "12 34", &"7f".repeat(22)] {
            assert!(normalise_serial(bad).is_err(), "{bad:?}");
        }
    }
}
