//! The CA's ledger and sealer: how `hallmark-ca` records through the storage
//! writer (group commit) and seals escrowed keys in key custody, without
//! seeing either.

use std::sync::{Arc, Mutex};

use hallmark_ca::{Final, Ledger, LedgerError, Pending, Sealer};
use hallmark_keys::custody::Custody;
use hallmark_store::StoreError;
use hallmark_store::audit::AuditEvent;
use hallmark_store::certificates::NewCert;
use hallmark_store::writer::{Op, Writer};

pub struct StoreLedger {
    pub writer: Writer,
}

impl Ledger for StoreLedger {
    async fn reserve(&self, c: Pending) -> Result<(), LedgerError> {
        self.writer
            .submit(Op::Reserve(NewCert {
                issuer: c.issuer,
                serial: c.serial_hex,
                profile: c.profile,
                subject: c.subject,
                tbs: c.tbs,
                not_before: c.not_before as i64,
                not_after: c.not_after as i64,
                shard: c.shard,
                created_at: c.created_at as i64,
            }))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => LedgerError::SerialTaken,
                other => LedgerError::Failed(other.to_string()),
            })
    }

    async fn finalize(&self, f: Final) -> Result<(), LedgerError> {
        let audit = issue_event(
            &f.actor,
            &f.issuer,
            &f.serial_hex,
            &f.profile,
            f.escrow.is_some(),
            &f.cert,
        );
        self.writer
            .submit(Op::Finalize {
                issuer: f.issuer,
                serial: f.serial_hex,
                cert: f.cert,
                escrow: f.escrow,
                audit,
            })
            .await
            .map_err(|e| LedgerError::Failed(e.to_string()))
    }
}

/// The audit entry of an issued certificate (single or batch issuance).
pub(crate) fn issue_event(
    actor: &str,
    issuer: &str,
    serial_hex: &str,
    profile: &str,
    escrowed: bool,
    cert: &[u8],
) -> AuditEvent {
    let details = serde_json::json!({
        "issuer": issuer,
        "serial": serial_hex,
        "profile": profile,
        "escrowed": escrowed,
        "sha256": hallmark_pki::hex(&hallmark_crypto::sha256(cert)),
    })
    .to_string();
    AuditEvent::new(actor, "certificate.issue", details)
}

/// Seals escrowed keys under the key store's master key.
pub struct KeyStoreSealer(pub Arc<Mutex<Custody>>);

impl Sealer for KeyStoreSealer {
    fn seal(&self, context: &str, secret: &[u8]) -> Result<Vec<u8>, String> {
        let ks = self
            .0
            .lock()
            .map_err(|_| "key store lock poisoned".to_string())?;
        ks.seal(context, secret).map_err(|e| e.to_string())
    }
}
