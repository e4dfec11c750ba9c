//! OAuth onboarding through a session (the connector spec's `[oauth]`): the URL of the
//! vendor's consent page, the exchange of the code the vendor hands back for tokens (stored
//! sealed in the store, where the `[oauth].flow` auth flow finds and refreshes them), and
//! disconnecting (the refresh token revoked at the vendor when the spec says how, and
//! forgotten). Onboarding is rare, so its few templates are compiled per call.

use super::http::split_origin;
use super::template::Templates;
use super::{ConnectorError, Secret, Session};
use crate::spec::connector::{Auth, CredentialsIn, Method, OauthApp};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The token endpoint and client credentials of the flow `[oauth].flow` names.
struct FlowParts<'a> {
    token_url: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
    credentials_in: CredentialsIn,
}

/// What disconnecting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Disconnected {
    /// Whether tokens were stored (and are now forgotten).
    pub had_tokens: bool,
    /// Whether the vendor was asked to revoke the refresh token (and agreed).
    pub revoked: bool,
}

impl Session {
    fn oauth_app(&self) -> Result<&OauthApp, ConnectorError> {
        self.connector.spec.oauth.as_ref().ok_or_else(|| {
            ConnectorError::Config(format!(
                "connector `{}` declares no [oauth] onboarding",
                self.connector.name()
            ))
        })
    }

    fn oauth_flow(&self) -> Result<FlowParts<'_>, ConnectorError> {
        let app = self.oauth_app()?;
        let spec = &self.connector.spec;
        // The tenant's chosen flow is `auth`; the shipped spec keeps every flow by name.
        let flow = spec
            .auth_flows
            .get(&app.flow)
            .or(spec.auth.as_ref())
            .ok_or_else(|| {
                ConnectorError::Config(format!("[oauth] flow `{}` is not declared", app.flow))
            })?;
        match flow {
            Auth::Oauth2Refresh {
                token_url,
                client_id,
                client_secret,
                credentials_in,
                ..
            } => Ok(FlowParts {
                token_url,
                client_id,
                client_secret,
                credentials_in: *credentials_in,
            }),
            _ => Err(ConnectorError::Config(format!(
                "[oauth] flow `{}` is not an oauth2_refresh flow",
                app.flow
            ))),
        }
    }

    fn render(&self, text: &str, vars: Map<String, Value>) -> Result<String, ConnectorError> {
        let mut t = Templates::new();
        let tpl = t.compile(text)?;
        Ok(t.string(&tpl, &self.context(vars))?)
    }

    /// An absolute URL for `u`: relative ones against the base URL's origin; absolute ones at
    /// the override's origin when the tenant (or a sandbox) overrides the base URL.
    fn oauth_url(&self, u: String) -> Result<String, ConnectorError> {
        if u.starts_with('/') {
            let b = self.base_url(&self.context(Map::new()))?;
            Ok(format!("{}{u}", split_origin(&b).0))
        } else {
            Ok(self.rewrite(u))
        }
    }

    /// Whether the tenant has onboarded tokens for this connector stored.
    pub fn oauth_connected(&self) -> bool {
        self.token_store
            .as_ref()
            .and_then(|t| t.store.get_token(&t.tenant, &t.connector).ok().flatten())
            .is_some()
    }

    /// The vendor's consent page for this tenant, returning to `redirect_uri` with `state`.
    pub fn oauth_authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
    ) -> Result<String, ConnectorError> {
        let app = self.oauth_app()?;
        let flow = self.oauth_flow()?;
        let mut url = reqwest::Url::parse(&self.oauth_url(app.authorize_url.clone())?)
            .map_err(|e| ConnectorError::Config(format!("[oauth] authorize_url: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.render(flow.client_id, Map::new())?);
            q.append_pair("redirect_uri", redirect_uri);
            if !app.scopes.is_empty() {
                let sep = app.scope_separator.as_deref().unwrap_or(" ");
                q.append_pair("scope", &app.scopes.join(sep));
            }
            for (k, v) in &app.authorize_params {
                q.append_pair(k, &self.render(v, Map::new())?);
            }
            q.append_pair("state", state);
        }
        Ok(url.to_string())
    }

    fn token_store_or_refuse(&self) -> Result<&super::auth::TokenStore, ConnectorError> {
        match &self.token_store {
            Some(t) if t.store.seals_tokens() => Ok(t),
            _ => Err(ConnectorError::Config(
                "tokens cannot be kept: the store has no key to seal them (set SWITCHYARD_STORE_KEY)"
                    .into(),
            )),
        }
    }

    /// Exchange the authorization `code` for tokens and store them sealed for this tenant;
    /// the next request of the session uses them.
    pub async fn oauth_exchange(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<(), ConnectorError> {
        let store = self.token_store_or_refuse()?;
        let flow = self.oauth_flow()?;
        let url = self.oauth_url(self.render(flow.token_url, Map::new())?)?;
        let (id, secret) = (
            self.render(flow.client_id, Map::new())?,
            self.render(flow.client_secret, Map::new())?,
        );
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
        ];
        let mut req = self
            .http
            .post(&url)
            .timeout(Duration::from_millis(self.connector.retry.timeout_ms));
        match flow.credentials_in {
            CredentialsIn::Basic => req = req.basic_auth(&id, Some(&secret)),
            CredentialsIn::Body | CredentialsIn::Query => {
                form.push(("client_id", id.clone()));
                form.push(("client_secret", secret.clone()));
            }
        }
        let redact = |t: String| {
            let r = crate::secrets::Redactor::new([id.as_str(), secret.as_str(), code]);
            self.redactor().redact(&r.redact(&t)).into_owned()
        };
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| ConnectorError::Auth(redact(format!("token endpoint: {e}"))))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let access = body.get("access_token").and_then(Value::as_str);
        let Some(access) = access.filter(|_| (200..300).contains(&status)) else {
            let why = body
                .get("message")
                .or_else(|| body.get("error_description"))
                .or_else(|| body.get("error"))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .unwrap_or_else(|| format!("no access_token in the answer (status {status})"));
            return Err(ConnectorError::Auth(redact(format!(
                "the token endpoint refused the code ({status}): {why}"
            ))));
        };
        let refresh = body.get("refresh_token").and_then(Value::as_str);
        let expires_at = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(|s| chrono::Utc::now().timestamp().max(0) as u64 + s);
        self.tokens.remember_secret(&Secret::new(access));
        if let Some(r) = refresh {
            self.tokens.remember_secret(&Secret::new(r));
        }
        let token = json!({"access_token": access, "refresh_token": refresh,
                           "expires_at": expires_at, "extra": {}});
        store
            .store
            .put_token(&store.tenant, &store.connector, &token)
            .map_err(|e| ConnectorError::Config(format!("tokens not stored: {e}")))?;
        // The cached token (if any) belongs to the previous connection.
        self.tokens.forget().await;
        Ok(())
    }

    /// Disconnect: revoke the stored refresh token at the vendor (when the spec declares how)
    /// and forget the tokens. A vendor that refuses the revocation is reported as an error
    /// after the tokens are forgotten (they are of no use to this tenant any more).
    pub async fn oauth_disconnect(&self) -> Result<Disconnected, ConnectorError> {
        let app = self.oauth_app()?;
        let Some(store) = &self.token_store else {
            return Ok(Disconnected {
                had_tokens: false,
                revoked: false,
            });
        };
        let stored = store
            .store
            .get_token(&store.tenant, &store.connector)
            .map_err(|e| ConnectorError::Config(format!("stored tokens unreadable: {e}")))?;
        let refresh = stored
            .as_ref()
            .and_then(|t| t.get("refresh_token"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let had_tokens = store
            .store
            .delete_token(&store.tenant, &store.connector)
            .map_err(|e| ConnectorError::Config(format!("tokens not forgotten: {e}")))?;
        self.tokens.forget().await;
        let (Some(revoke), Some(refresh)) = (&app.revoke, refresh) else {
            return Ok(Disconnected {
                had_tokens,
                revoked: false,
            });
        };
        let mut vars = Map::new();
        vars.insert("refresh_token".into(), Value::String(refresh.clone()));
        let url = self.oauth_url(self.render(&revoke.path, vars.clone())?)?;
        let method = match revoke.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut form = Vec::new();
        for (k, v) in &revoke.form {
            form.push((k.clone(), self.render(v, vars.clone())?));
        }
        let mut req = self
            .http
            .request(method, &url)
            .timeout(Duration::from_millis(self.connector.retry.timeout_ms));
        if !form.is_empty() {
            req = req.form(&form);
        }
        let redact = |t: String| {
            let r = crate::secrets::Redactor::new([refresh.as_str()]);
            self.redactor().redact(&r.redact(&t)).into_owned()
        };
        let resp = req
            .send()
            .await
            .map_err(|e| ConnectorError::Auth(redact(format!("revocation: {e}"))))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(Disconnected {
                had_tokens,
                revoked: true,
            })
        } else {
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            Err(ConnectorError::Auth(redact(format!(
                "the vendor refused the revocation ({status}): {text}"
            ))))
        }
    }
}
