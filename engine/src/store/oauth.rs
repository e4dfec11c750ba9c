//! OAuth onboarding state: the `state` values handed to a vendor's authorization page
//! (single-use, expiring, HMAC-signed with a key this store keeps) and disconnecting a tenant
//! (its sealed tokens deleted).
//!
//! A state reads `<nonce>.<expires>.<mac>`: a random 128-bit nonce, the Unix second it expires,
//! and an HMAC-SHA256 over nonce, expiry, tenant and connector under the store's signing key.
//! Its row remembers tenant, connector and redirect URI; consuming it marks it used in the
//! same write, so a state works once, however many callbacks race with it.

use super::{Store, StoreError, now, write_tx};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS oauth_states (
  nonce TEXT PRIMARY KEY, tenant TEXT NOT NULL, connector TEXT NOT NULL,
  redirect_uri TEXT NOT NULL, expires_at INTEGER NOT NULL, created_at TEXT NOT NULL,
  used_at TEXT);
CREATE TABLE IF NOT EXISTS store_keys (name TEXT PRIMARY KEY, value BLOB NOT NULL);
";

/// What a consumed state was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthState {
    /// The tenant that started the flow.
    pub tenant: String,
    /// The connector.
    pub connector: String,
    /// The redirect URI the authorization request named (the token request repeats it).
    pub redirect_uri: String,
}

/// Why a state was refused (the callback answers each with its own code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRefusal {
    /// Not of the form this store issues, or its signature does not verify.
    Forged,
    /// Past its expiry.
    Expired,
    /// Already used, or never issued by this store.
    Unknown,
}

impl StateRefusal {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            StateRefusal::Forged => "state_invalid",
            StateRefusal::Expired => "state_expired",
            StateRefusal::Unknown => "state_used_or_unknown",
        }
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Crypto)?;
    Ok(hex::encode(b))
}

impl Store {
    /// The store's signing key for OAuth states, created on first use.
    fn state_key(&self) -> Result<ring::hmac::Key, StoreError> {
        let mut fresh = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut fresh)
            .map_err(|_| StoreError::Crypto)?;
        let key: Vec<u8> = self.with(|c| {
            let tx = write_tx(c)?;
            tx.execute(
                "INSERT OR IGNORE INTO store_keys (name, value) VALUES ('oauth_state', ?1)",
                params![fresh],
            )?;
            let k: Vec<u8> = tx.query_row(
                "SELECT value FROM store_keys WHERE name = 'oauth_state'",
                [],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(k)
        })?;
        Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key))
    }

    fn state_mac(
        key: &ring::hmac::Key,
        nonce: &str,
        expires: i64,
        tenant: &str,
        connector: &str,
    ) -> String {
        // The same message `oauth_state_consume` verifies.
        let msg = format!("{nonce}\n{expires}\n{tenant}\n{connector}");
        hex::encode(ring::hmac::sign(key, msg.as_bytes()).as_ref())
    }

    /// Issue a state for `tenant` connecting `connector`, valid for `ttl_secs`.
    pub fn oauth_state_issue(
        &self,
        tenant: &str,
        connector: &str,
        redirect_uri: &str,
        ttl_secs: i64,
    ) -> Result<String, StoreError> {
        let key = self.state_key()?;
        let nonce = random_hex(16)?;
        let expires = unix_now() + ttl_secs;
        let mac = Self::state_mac(&key, &nonce, expires, tenant, connector);
        self.with(|c| {
            let tx = write_tx(c)?;
            // Expired states are of no use to anyone: dropped as new ones are issued.
            tx.execute(
                "DELETE FROM oauth_states WHERE expires_at < ?1",
                params![unix_now() - 3600],
            )?;
            tx.execute(
                "INSERT INTO oauth_states (nonce, tenant, connector, redirect_uri, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![nonce, tenant, connector, redirect_uri, expires, now()],
            )?;
            tx.commit()
        })?;
        Ok(format!("{nonce}.{expires}.{mac}"))
    }

    /// Check and use up a state presented to the callback of `connector`.
    pub fn oauth_state_consume(
        &self,
        state: &str,
        connector: &str,
    ) -> Result<Result<OauthState, StateRefusal>, StoreError> {
        let mut parts = state.split('.');
        let (Some(nonce), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(Err(StateRefusal::Forged));
        };
        let (Ok(expires), true) = (
            expires.parse::<i64>(),
            nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit()),
        ) else {
            return Ok(Err(StateRefusal::Forged));
        };
        let row: Option<(String, String, String, i64)> = self.with(|c| {
            c.query_row(
                "SELECT tenant, connector, redirect_uri, expires_at FROM oauth_states WHERE nonce = ?1",
                params![nonce],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
        })?;
        let Some((tenant, conn, redirect_uri, stored_expiry)) = row else {
            return Ok(Err(StateRefusal::Unknown));
        };
        let key = self.state_key()?;
        let msg = format!("{nonce}\n{expires}\n{tenant}\n{conn}");
        let signed = hex::decode(mac)
            .is_ok_and(|tag| ring::hmac::verify(&key, msg.as_bytes(), &tag).is_ok());
        if !signed || stored_expiry != expires || conn != connector {
            return Ok(Err(StateRefusal::Forged));
        }
        if expires < unix_now() {
            return Ok(Err(StateRefusal::Expired));
        }
        let used = self.with(|c| {
            c.execute(
                "UPDATE oauth_states SET used_at = ?2 WHERE nonce = ?1 AND used_at IS NULL",
                params![nonce, now()],
            )
        })?;
        if used != 1 {
            return Ok(Err(StateRefusal::Unknown));
        }
        Ok(Ok(OauthState {
            tenant,
            connector: conn,
            redirect_uri,
        }))
    }

    /// Whether tokens put here are kept (sealed): the store has a key.
    pub fn seals_tokens(&self) -> bool {
        self.key.is_some()
    }

    /// Forget a tenant's tokens of `connector` (disconnect); whether there were any.
    pub fn delete_token(&self, tenant: &str, connector: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM oauth_tokens WHERE tenant = ?1 AND connector = ?2",
                params![tenant, connector],
            )
            .map(|n| n > 0)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_state_works_once_for_its_connector_and_forgeries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let st = s
            .oauth_state_issue("t1", "hubspot", "http://x/cb", 600)
            .unwrap();
        // Another connector's callback, a changed expiry, a changed signature: forged.
        assert_eq!(
            s.oauth_state_consume(&st, "salesforce").unwrap(),
            Err(StateRefusal::Forged)
        );
        let (n, rest) = st.split_once('.').unwrap();
        let (exp, mac) = rest.split_once('.').unwrap();
        let later = format!("{n}.{}.{mac}", exp.parse::<i64>().unwrap() + 1000);
        assert_eq!(
            s.oauth_state_consume(&later, "hubspot").unwrap(),
            Err(StateRefusal::Forged)
        );
        let flipped = format!(
            "{n}.{exp}.{}",
            mac.replacen(&mac[..1], if &mac[..1] == "0" { "1" } else { "0" }, 1)
        );
        assert_eq!(
            s.oauth_state_consume(&flipped, "hubspot").unwrap(),
            Err(StateRefusal::Forged)
        );
        assert_eq!(
            s.oauth_state_consume("garbage", "hubspot").unwrap(),
            Err(StateRefusal::Forged)
        );
        // The real one, once.
        let ok = s.oauth_state_consume(&st, "hubspot").unwrap().unwrap();
        assert_eq!(
            (ok.tenant.as_str(), ok.redirect_uri.as_str()),
            ("t1", "http://x/cb")
        );
        assert_eq!(
            s.oauth_state_consume(&st, "hubspot").unwrap(),
            Err(StateRefusal::Unknown)
        );
        // Expired.
        let old = s
            .oauth_state_issue("t1", "hubspot", "http://x/cb", -5)
            .unwrap();
        assert_eq!(
            s.oauth_state_consume(&old, "hubspot").unwrap(),
            Err(StateRefusal::Expired)
        );
        // The signing key survives reopening the store.
        let st2 = s
            .oauth_state_issue("t2", "hubspot", "http://x/cb", 600)
            .unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        assert!(s.oauth_state_consume(&st2, "hubspot").unwrap().is_ok());
    }
}
