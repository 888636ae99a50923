//! CRL encoding (RFC 5280 §5). Revoked entries are streamed into a byte
//! buffer as they come from storage, so a CRL with a million entries costs
//! about 40 bytes of memory per entry and no per-entry allocation.

use der::asn1::OctetString;
use der::{Encode, referenced::OwnedToRef};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::DistributionPointName;

use crate::cert::push_len;

/// id-ce-issuingDistributionPoint.
pub const ID_CE_ISSUING_DISTRIBUTION_POINT: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("2.5.29.28");
use crate::{PkiError, Result, ext};

/// RFC 5280 §5.3.1 CRLReason values that Hallmark accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    PrivilegeWithdrawn = 9,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];
    /// The reasons a revocation may give. certificateHold is not one:
    /// here a revocation is final, and a hold is meant to be released.
    pub const OFFERED: [Reason; 7] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as u8 == c)
    }
    pub fn parse(s: &str) -> Option<Self> {
        let norm = |x: &str| x.replace(['-', '_'], "").to_ascii_lowercase();
        Self::ALL.into_iter().find(|r| norm(r.name()) == norm(s))
    }
}

/// What a CRL made elsewhere (an offline root's) says, once its signature
/// has been checked against its issuer's certificate.
#[derive(Debug)]
pub struct Received {
    pub number: u64,
    pub this_update: u64,
    pub next_update: Option<u64>,
    /// The revoked certificates: serial (contents of its INTEGER),
    /// revocation time, reason (unspecified when the entry gives none).
    pub revoked: Vec<(Vec<u8>, u64, Reason)>,
}

/// Checks a DER CRL against the certificate of the CA that should have
/// signed it: issuer name, signature (with the same algorithm inside and
/// out), a cRLNumber, complete (no delta CRL, no partition), and not issued
/// in the future (five minutes of clock skew allowed) relative to `now`.
pub fn check_received(crl_der: &[u8], issuer_cert_der: &[u8], now: u64) -> Result<Received> {
    use const_oid::AssociatedOid;
    use der::Decode;
    let crl = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(crl_der)
        .map_err(|e| PkiError::malformed("CRL", e))?;
    let issuer = crate::cert::parse(issuer_cert_der)?;
    let tbs = &crl.tbs_cert_list;
    if tbs.issuer != *issuer.tbs_certificate().subject() {
        return Err(PkiError::Malformed {
            what: "CRL",
            detail: format!(
                "issued by {}, not by {}",
                crate::subject::display(&tbs.issuer),
                crate::subject::display(issuer.tbs_certificate().subject())
            ),
        });
    }
    let bad = |detail: &str| PkiError::Malformed {
        what: "CRL",
        detail: detail.into(),
    };
    if tbs.signature != crl.signature_algorithm {
        return Err(bad("its inner and outer signature algorithms differ"));
    }
    let has = |oid: const_oid::ObjectIdentifier| {
        tbs.crl_extensions
            .iter()
            .flatten()
            .any(|e| e.extn_id == oid)
    };
    if has(const_oid::db::rfc5280::ID_CE_DELTA_CRL_INDICATOR)
        || has(ID_CE_ISSUING_DISTRIBUTION_POINT)
    {
        return Err(bad(
            "it is a delta or partitioned CRL; a complete CRL is needed",
        ));
    }
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()?;
    hallmark_crypto::verify_bitstring(
        &spki,
        &crl.signature_algorithm.owned_to_ref(),
        &tbs.to_der()?,
        crl.signature.owned_to_ref(),
    )
    .map_err(|_| PkiError::Malformed {
        what: "CRL",
        detail: "its signature does not verify with the issuer's key".into(),
    })?;
    let number = tbs
        .crl_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)
        .and_then(|e| der::asn1::Uint::from_der(e.extn_value.as_bytes()).ok())
        .and_then(|n| {
            let b = n.as_bytes();
            (b.len() <= 8).then(|| b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
        })
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| PkiError::Malformed {
            what: "CRL",
            detail: "no cRLNumber (or one beyond 2^63)".into(),
        })?;
    let this_update = crate::time::unix(&tbs.this_update);
    if this_update > now + 300 {
        return Err(bad("its thisUpdate is in the future: check the clocks"));
    }
    Ok(Received {
        number,
        this_update,
        next_update: tbs.next_update.as_ref().map(crate::time::unix),
        revoked: tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| {
                let reason = r
                    .crl_entry_extensions
                    .iter()
                    .flatten()
                    .find(|e| e.extn_id == x509_cert::ext::pkix::crl::CrlReason::OID)
                    .and_then(|e| {
                        x509_cert::ext::pkix::crl::CrlReason::from_der(e.extn_value.as_bytes()).ok()
                    })
                    .and_then(|c| Reason::from_code(c as u8))
                    .unwrap_or(Reason::Unspecified);
                (
                    r.serial_number.as_bytes().to_vec(),
                    crate::time::unix(&r.revocation_date),
                    reason,
                )
            })
            .collect(),
    })
}

/// Appends DER INTEGER for a non-negative big-endian magnitude.
pub fn push_uint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let m = &magnitude[skip.min(magnitude.len().saturating_sub(1))..];
    let m = if m.is_empty() { &[0u8][..] } else { m };
    let pad = m[0] & 0x80 != 0;
    out.push(0x02);
    push_len(out, m.len() + pad as usize);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(m);
}

/// Appends an RFC 5280 Time: UTCTime through 2049, GeneralizedTime after.
pub fn push_time(out: &mut Vec<u8>, unix: u64) -> Result<()> {
    let d = crate::time::datetime(unix)?;
    let (y, mo, da, h, mi, s) = (
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minutes(),
        d.seconds(),
    );
    let two = |out: &mut Vec<u8>, v: u8| {
        out.push(b'0' + v / 10);
        out.push(b'0' + v % 10);
    };
    if y < 2050 {
        out.extend_from_slice(&[0x17, 13]);
        two(out, (y % 100) as u8);
    } else {
        out.extend_from_slice(&[0x18, 15]);
        two(out, (y / 100) as u8);
        two(out, (y % 100) as u8);
    }
    for v in [mo, da, h, mi, s] {
        two(out, v);
    }
    out.push(b'Z');
    Ok(())
}

/// Streams revokedCertificates entries.
#[derive(Default)]
pub struct EntryWriter {
    buf: Vec<u8>,
    count: usize,
}

impl EntryWriter {
    pub fn with_capacity(entries: usize) -> Self {
        Self {
            buf: Vec::with_capacity(entries * 48),
            count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one revoked certificate. An unspecified reason is left out, as
    /// RFC 5280 §5.3.1 asks.
    pub fn push(&mut self, serial: &[u8], revoked_at: u64, reason: Reason) -> Result<()> {
        if serial.len() > 21 {
            return Err(PkiError::malformed("serial", "longer than 20 octets"));
        }
        // Every entry is shorter than 128 bytes (serial ≤ 23, time ≤ 17,
        // reason 14), so its length is one octet, patched in at the end.
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0x30, 0x00]);
        push_uint(&mut self.buf, serial);
        push_time(&mut self.buf, revoked_at)?;
        if reason != Reason::Unspecified {
            // crlEntryExtensions: SEQUENCE { SEQUENCE { OID id-ce-cRLReasons,
            // OCTET STRING { ENUMERATED reason } } } (RFC 5280 §5.3.1).
            self.buf.extend_from_slice(&[
                0x30,
                0x0c,
                0x30,
                0x0a,
                0x06,
                0x03,
                0x55,
                0x1d,
                0x15,
                0x04,
                0x03,
                0x0a,
                0x01,
                reason as u8,
            ]);
        }
        self.buf[start + 1] = (self.buf.len() - start - 2) as u8;
        self.count += 1;
        Ok(())
    }
}

/// What a CRL says besides its entries.
pub struct CrlParams<'a> {
    pub issuer_name_der: &'a [u8],
    pub issuer_key_id: &'a [u8],
    pub signature_algorithm: &'a AlgorithmIdentifierOwned,
    pub this_update: u64,
    pub next_update: u64,
    pub crl_number: u64,
    /// For a partition (shard) CRL: the distribution point URL that the
    /// certificates in this shard name. `None` for a full CRL.
    pub distribution_point: Option<&'a str>,
}

/// Encodes TBSCertList. The result is linted by [`crate::lint::lint_crl_params`]
/// before it is signed.
pub fn tbs(params: &CrlParams<'_>, entries: &EntryWriter) -> Result<Vec<u8>> {
    if params.next_update <= params.this_update {
        return Err(PkiError::Lint(vec![
            "nextUpdate must be after thisUpdate".into(),
        ]));
    }
    let mut exts: Vec<Extension> = vec![
        ext::authority_key_id(params.issuer_key_id)?,
        Extension {
            extn_id: const_oid::db::rfc5280::ID_CE_CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new({
                let mut v = Vec::new();
                push_uint(&mut v, &params.crl_number.to_be_bytes());
                v
            })?,
        },
    ];
    if let Some(url) = params.distribution_point {
        let idp = IssuingDistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![ext::uri(url)?])),
            only_contains_user_certs: true,
            only_contains_ca_certs: false,
            only_some_reasons: None,
            indirect_crl: false,
            only_contains_attribute_certs: false,
        };
        // x509-cert 0.3.0 gives IssuingDistributionPoint the OID of
        // subjectInfoAccess, so the extension is assembled with the right
        // one (id-ce-issuingDistributionPoint, RFC 5280 §5.2.5).
        exts.push(Extension {
            extn_id: ID_CE_ISSUING_DISTRIBUTION_POINT,
            critical: true,
            extn_value: OctetString::new(idp.to_der()?)?,
        });
    }
    let exts_der = exts.to_der()?;
    let alg_der = params.signature_algorithm.to_der()?;

    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(&[0x02, 0x01, 0x01]); // version v2
    head.extend_from_slice(&alg_der);
    head.extend_from_slice(params.issuer_name_der);
    push_time(&mut head, params.this_update)?;
    push_time(&mut head, params.next_update)?;

    let mut tail = Vec::with_capacity(exts_der.len() + 4);
    tail.push(0xa0);
    push_len(&mut tail, exts_der.len());
    tail.extend_from_slice(&exts_der);

    let mut revoked_hdr = Vec::new();
    if !entries.is_empty() {
        revoked_hdr.push(0x30);
        push_len(&mut revoked_hdr, entries.buf.len());
    }
    let body_len = head.len()
        + revoked_hdr.len()
        + if entries.is_empty() {
            0
        } else {
            entries.buf.len()
        }
        + tail.len();
    let mut out = Vec::with_capacity(body_len + 6);
    out.push(0x30);
    push_len(&mut out, body_len);
    out.extend_from_slice(&head);
    if !entries.is_empty() {
        out.extend_from_slice(&revoked_hdr);
        out.extend_from_slice(&entries.buf);
    }
    out.extend_from_slice(&tail);
    Ok(out)
}
