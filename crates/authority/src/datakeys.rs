//! Data-encryption keys for the capabilities' records (personal data at
//! rest, keyed hashes for lookup): 256-bit random keys, each sealed by key
//! custody and kept as a setting, so every process on one database uses
//! the same ones and a dump of the database alone opens nothing. A key has
//! versions; the newest seals, every version still opens.

use hallmark_store::settings::insert_setting_once;
use zeroize::Zeroizing;

use crate::{Authority, AuthorityError, Result};

/// A data key and its version.
pub struct DataKey {
    pub version: u32,
    pub key: Zeroizing<[u8; 32]>,
}

fn setting(name: &str, version: u32) -> String {
    format!("datakey.{name}.{version:06}")
}

fn context(name: &str, version: u32) -> String {
    format!("data-key:{name}:{version}")
}

impl Authority {
    /// Every version of the data key `name`, oldest first; version 1 is
    /// made on first use. Two processes making it at once agree on one.
    pub async fn data_keys(&self, name: &str) -> Result<Vec<DataKey>> {
        check_name(name)?;
        if self.sealed_data_keys(name).await?.is_empty() {
            self.add_data_key(name, 1).await?;
        }
        let mut out = Vec::new();
        for (version, sealed) in self.sealed_data_keys(name).await? {
            let raw = self.keys()?.open_sealed(&context(name, version), &sealed)?;
            let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                AuthorityError::Invalid(format!("data key {name} v{version} is not 32 bytes"))
            })?;
            out.push(DataKey {
                version,
                key: Zeroizing::new(key),
            });
        }
        Ok(out)
    }

    /// Adds a new version of the data key `name` (rotation): new records
    /// are sealed with it, old ones still open with theirs.
    pub async fn rotate_data_key(&self, name: &str, actor: &str) -> Result<u32> {
        check_name(name)?;
        let next = self
            .sealed_data_keys(name)
            .await?
            .last()
            .map(|(v, _)| v + 1)
            .unwrap_or(1);
        self.add_data_key(name, next).await?;
        self.record(
            actor,
            "datakey.rotate",
            serde_json::json!({"name": name, "version": next}),
        )
        .await?;
        Ok(next)
    }

    async fn sealed_data_keys(&self, name: &str) -> Result<Vec<(u32, Vec<u8>)>> {
        let prefix = format!("datakey.{name}.");
        let mut out = Vec::new();
        for (k, v) in self.store.settings_with_prefix(&prefix).await? {
            let version: u32 = k[prefix.len()..]
                .parse()
                .map_err(|_| AuthorityError::Invalid(format!("bad data-key setting {k}")))?;
            let sealed = hallmark_pki::unhex(&v)
                .ok_or_else(|| AuthorityError::Invalid(format!("bad data-key setting {k}")))?;
            out.push((version, sealed));
        }
        out.sort_by_key(|(v, _)| *v);
        Ok(out)
    }

    async fn add_data_key(&self, name: &str, version: u32) -> Result<()> {
        let mut raw = Zeroizing::new([0u8; 32]);
        hallmark_crypto::fill_random(&mut raw[..])
            .map_err(|e| AuthorityError::Invalid(e.to_string()))?;
        let sealed = self.keys()?.seal(&context(name, version), &raw[..])?;
        let mut tx = self.store.begin().await?;
        insert_setting_once(
            &mut tx,
            &setting(name, version),
            &hallmark_pki::hex(&sealed),
        )
        .await?;
        hallmark_store::commit(tx).await?;
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AuthorityError::Invalid(format!(
            "data key name {name:?}: use lower-case letters, digits and '-'"
        )));
    }
    Ok(())
}
