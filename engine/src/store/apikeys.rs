//! Per-tenant API keys for the service. A key is shown once, when it is created; the store
//! keeps only its SHA-256. A key reads `sy_<id>_<secret>`: the id finds the row, the whole key
//! is hashed and compared in constant time.

use super::{Store, StoreError, now, write_tx};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, label TEXT NOT NULL, hash BLOB NOT NULL,
  created_at TEXT NOT NULL, revoked_at TEXT);
";

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// Its id (the part after `sy_` in the key).
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// What the operator called it.
    pub label: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn digest(key: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .to_vec()
}

fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Crypto)?;
    Ok(hex::encode(b))
}

impl Store {
    /// Create a key for `tenant`; returns its id and the key (shown once, never stored).
    pub fn api_key_create(
        &self,
        tenant: &str,
        label: &str,
    ) -> Result<(String, String), StoreError> {
        let id = random_hex(6)?;
        let key = format!("sy_{id}_{}", random_hex(24)?);
        let hash = digest(&key);
        self.with(|c| {
            let tx = write_tx(c)?;
            tx.execute(
                "INSERT INTO api_keys (id, tenant, label, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, tenant, label, hash, now()],
            )?;
            tx.commit()
        })?;
        Ok((id, key))
    }

    /// The tenant a presented key acts for; `None` for an unknown, malformed or revoked key.
    pub fn api_key_tenant(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(id) = key
            .strip_prefix("sy_")
            .and_then(|r| r.split_once('_'))
            .map(|(id, _)| id)
            .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(None);
        };
        let row: Option<(String, Vec<u8>)> = self.with(|c| {
            c.query_row(
                "SELECT tenant, hash FROM api_keys WHERE id = ?1 AND revoked_at IS NULL",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        Ok(row.and_then(|(tenant, hash)| {
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(hash.as_slice(), digest(key).as_slice()).into();
            same.then_some(tenant)
        }))
    }

    /// Revoke a key by id; `false` when there is no such live key.
    pub fn api_key_revoke(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now()],
            )
            .map(|n| n > 0)
        })
    }

    /// Every key (of one tenant, when given), oldest first.
    pub fn api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, tenant, label, created_at, revoked_at FROM api_keys
                 WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created_at, id",
            )?;
            st.query_map(params![tenant], |r| {
                Ok(ApiKeyInfo {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    label: r.get(2)?,
                    created_at: r.get(3)?,
                    revoked_at: r.get(4)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_act_for_their_tenant_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let s = Store::open(&path).unwrap();
        let (id, key) = s.api_key_create("t1", "ci").unwrap();
        assert_eq!(s.api_key_tenant(&key).unwrap().as_deref(), Some("t1"));
        // A key with one character changed, a made-up one, garbage.
        let mut other = key.clone();
        let last = other.pop().unwrap();
        other.push(if last == '0' { '1' } else { '0' });
        assert_eq!(s.api_key_tenant(&other).unwrap(), None);
        assert_eq!(s.api_key_tenant("sy_000000000000_00").unwrap(), None);
        assert_eq!(s.api_key_tenant("Bearer nonsense").unwrap(), None);
        drop(s);
        let bytes = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("s.sqlite-wal")).unwrap_or_default();
        let secret = key.rsplit('_').next().unwrap().as_bytes();
        for b in [&bytes, &wal] {
            assert!(
                !b.windows(secret.len()).any(|w| w == secret),
                "the key is stored in clear"
            );
        }
        let s = Store::open(&path).unwrap();
        assert!(s.api_key_revoke(&id).unwrap());
        assert!(!s.api_key_revoke(&id).unwrap());
        assert_eq!(s.api_key_tenant(&key).unwrap(), None);
        assert!(s.api_keys(Some("t1")).unwrap()[0].revoked_at.is_some());
    }
}
