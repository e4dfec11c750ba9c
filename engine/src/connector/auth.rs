//! Request authentication: static credentials (bearer, API key, basic) and token flows (OAuth
//! client credentials, refresh token, Salesforce password and JWT bearer, Marketo identity),
//! with tokens cached per tenant and connector, refreshed ahead of expiry and once on a 401,
//! single-flight so that concurrent requests never race to refresh.

use super::ConnectorError;
use super::template::{Templates, Tpl};
use crate::secrets::Secret;
use crate::spec::connector::{Auth, CredentialsIn, KeyLocation, Method};
use base64::Engine as _;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Compiled authentication of a connector spec.
#[derive(Debug)]
pub(crate) enum AuthPlan {
    None,
    Bearer {
        token: Tpl,
        scheme: String,
    },
    ApiKey {
        location: KeyLocation,
        name: String,
        value: Tpl,
    },
    Basic {
        username: Tpl,
        password: Tpl,
    },
    Token(Box<TokenFlow>),
    /// Requests are signed by this plugin's signer (a key of the spec's `plugins`).
    Plugin(String),
}

#[derive(Debug)]
pub(crate) struct TokenFlow {
    grant: Grant,
    token_url: Tpl,
    client_id: Option<Tpl>,
    client_secret: Option<Tpl>,
    credentials_in: CredentialsIn,
    method: Method,
    scheme: String,
    refresh_ahead: Duration,
    pub(crate) base_url_field: Option<String>,
}

#[derive(Debug)]
enum Grant {
    ClientCredentials {
        scope: Option<Tpl>,
    },
    Refresh {
        refresh_token: Tpl,
    },
    Password {
        username: Tpl,
        password: Tpl,
    },
    Jwt {
        issuer: Tpl,
        subject: Tpl,
        audience: Tpl,
        private_key: Tpl,
        lifetime: u64,
    },
}

/// Headers and query parameters that authenticate one request (all sensitive).
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    pub headers: Vec<(String, Secret)>,
    pub query: Vec<(String, Secret)>,
    /// The access token used, to recognise a stale one on 401.
    pub token: Option<Secret>,
    /// Fields of the token response (e.g. `instance_url`).
    pub extra: serde_json::Map<String, Value>,
}

/// A cached access token.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub access: Secret,
    pub expires_at: Option<Instant>,
    pub refresh: Option<Secret>,
    pub extra: serde_json::Map<String, Value>,
}

/// Token cache of one tenant and connector; the mutex makes refreshes single-flight.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    token: Mutex<Option<CachedToken>>,
    /// The last tokens handed out, for redacting them from errors (readable without waiting
    /// for a refresh in flight).
    seen: std::sync::Mutex<Vec<Secret>>,
}

impl TokenCache {
    /// Access and refresh tokens handed out lately (the newest few).
    pub(crate) fn secret_values(&self) -> Vec<Secret> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forget the cached token: onboarding stored a new one, or the tenant disconnected.
    pub(crate) async fn forget(&self) {
        *self.token.lock().await = None;
    }

    /// Redact `s` from errors from now on (a token obtained outside the auth flow).
    pub(crate) fn remember_secret(&self, s: &Secret) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains(s) {
            seen.push(s.clone());
        }
    }

    fn remember(&self, t: &CachedToken) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for s in std::iter::once(&t.access).chain(t.refresh.as_ref()) {
            if !seen.contains(s) {
                seen.push(s.clone());
            }
        }
        let n = seen.len();
        if n > 8 {
            seen.drain(..n - 8);
        }
    }
}

impl AuthPlan {
    pub(crate) fn compile(auth: Option<&Auth>, t: &mut Templates) -> Result<Self, ConnectorError> {
        let c = |t: &mut Templates, s: &str| t.compile(s).map_err(ConnectorError::from);
        Ok(match auth {
            None | Some(Auth::None) => AuthPlan::None,
            Some(Auth::Bearer { token, scheme }) => AuthPlan::Bearer {
                token: c(t, token)?,
                scheme: scheme.clone().unwrap_or_else(|| "Bearer".into()),
            },
            Some(Auth::ApiKey {
                location,
                name,
                value,
            }) => AuthPlan::ApiKey {
                location: *location,
                name: name.clone(),
                value: c(t, value)?,
            },
            Some(Auth::Basic { username, password }) => AuthPlan::Basic {
                username: c(t, username)?,
                password: c(t, password)?,
            },
            Some(Auth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                credentials_in,
                method,
                refresh_ahead_secs,
            }) => AuthPlan::Token(Box::new(TokenFlow {
                grant: Grant::ClientCredentials {
                    scope: scope.as_deref().map(|s| c(t, s)).transpose()?,
                },
                token_url: c(t, token_url)?,
                client_id: Some(c(t, client_id)?),
                client_secret: Some(c(t, client_secret)?),
                credentials_in: *credentials_in,
                method: *method,
                scheme: "Bearer".into(),
                refresh_ahead: Duration::from_secs(*refresh_ahead_secs),
                base_url_field: None,
            })),
            Some(Auth::Oauth2Refresh {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                scheme,
                credentials_in,
                refresh_ahead_secs,
                base_url_field,
            }) => AuthPlan::Token(Box::new(TokenFlow {
                grant: Grant::Refresh {
                    refresh_token: c(t, refresh_token)?,
                },
                token_url: c(t, token_url)?,
                client_id: Some(c(t, client_id)?),
                client_secret: Some(c(t, client_secret)?),
                credentials_in: *credentials_in,
                method: Method::Post,
                scheme: scheme.clone().unwrap_or_else(|| "Bearer".into()),
                refresh_ahead: Duration::from_secs(*refresh_ahead_secs),
                base_url_field: base_url_field.clone(),
            })),
            Some(Auth::Oauth2Password {
                token_url,
                client_id,
                client_secret,
                username,
                password,
                base_url_field,
            }) => AuthPlan::Token(Box::new(TokenFlow {
                grant: Grant::Password {
                    username: c(t, username)?,
                    password: c(t, password)?,
                },
                token_url: c(t, token_url)?,
                client_id: Some(c(t, client_id)?),
                client_secret: Some(c(t, client_secret)?),
                credentials_in: CredentialsIn::Body,
                method: Method::Post,
                scheme: "Bearer".into(),
                refresh_ahead: Duration::from_secs(60),
                base_url_field: base_url_field.clone(),
            })),
            Some(Auth::JwtBearer {
                token_url,
                issuer,
                subject,
                audience,
                private_key,
                lifetime_secs,
                base_url_field,
            }) => AuthPlan::Token(Box::new(TokenFlow {
                grant: Grant::Jwt {
                    issuer: c(t, issuer)?,
                    subject: c(t, subject)?,
                    audience: c(t, audience)?,
                    private_key: c(t, private_key)?,
                    lifetime: *lifetime_secs,
                },
                token_url: c(t, token_url)?,
                client_id: None,
                client_secret: None,
                credentials_in: CredentialsIn::Body,
                method: Method::Post,
                scheme: "Bearer".into(),
                refresh_ahead: Duration::from_secs(60),
                base_url_field: base_url_field.clone(),
            })),
            Some(Auth::Plugin { plugin }) => AuthPlan::Plugin(plugin.clone()),
        })
    }

    pub(crate) fn is_token(&self) -> bool {
        matches!(self, AuthPlan::Token(_))
    }

    /// The Authorization scheme of a token flow (`Bearer`, `Zoho-oauthtoken`).
    pub(crate) fn token_scheme(&self) -> &str {
        match self {
            AuthPlan::Token(f) => &f.scheme,
            _ => "Bearer",
        }
    }
}

/// What the token request needs from the session.
pub(crate) struct TokenEnv<'a> {
    pub http: &'a reqwest::Client,
    pub templates: &'a Templates,
    pub ctx: &'a Value,
    /// Rewrites a URL to the tenant's `base_url` origin (emulators).
    pub rewrite: &'a (dyn Fn(String) -> String + Sync),
    pub timeout: Duration,
    /// Where tokens are persisted (sealed), when the session has a store.
    pub store: Option<&'a TokenStore>,
}

/// Persists a tenant's token for one connector in the store, encrypted at rest.
#[derive(Debug, Clone)]
pub(crate) struct TokenStore {
    pub store: std::sync::Arc<crate::store::Store>,
    pub tenant: String,
    pub connector: String,
}

impl TokenStore {
    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }

    fn save(&self, t: &CachedToken) {
        let expires = t
            .expires_at
            .map(|e| Self::unix_now() + e.saturating_duration_since(Instant::now()).as_secs());
        let v = serde_json::json!({
            "access_token": t.access.expose(),
            "refresh_token": t.refresh.as_ref().map(|r| r.expose().to_string()),
            "expires_at": expires,
            "extra": t.extra,
        });
        if let Err(e) = self.store.put_token(&self.tenant, &self.connector, &v) {
            tracing::warn!(error = %e, connector = %self.connector, "token not persisted");
        }
    }

    fn raw(&self) -> Option<Value> {
        self.store
            .get_token(&self.tenant, &self.connector)
            .ok()
            .flatten()
    }

    /// A persisted token still valid beyond `ahead`.
    fn load(&self, ahead: Duration) -> Option<CachedToken> {
        let v = self.raw()?;
        let access = v.get("access_token")?.as_str()?;
        let expires_at = match v.get("expires_at").and_then(Value::as_u64) {
            Some(e) => {
                let left = e.checked_sub(Self::unix_now())?;
                if Duration::from_secs(left) <= ahead {
                    return None;
                }
                Some(Instant::now() + Duration::from_secs(left))
            }
            None => None,
        };
        Some(CachedToken {
            access: Secret::new(access),
            expires_at,
            refresh: v
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(Secret::new),
            extra: v
                .get("extra")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// The newest refresh token persisted (refresh tokens rotate).
    fn load_refresh(&self) -> Option<Secret> {
        self.raw()?.get("refresh_token")?.as_str().map(Secret::new)
    }
}

impl AuthPlan {
    /// Credentials for one request; `stale` is a token a 401 rejected.
    pub(crate) async fn credentials(
        &self,
        cache: &TokenCache,
        env: &TokenEnv<'_>,
        stale: Option<&Secret>,
    ) -> Result<Credentials, ConnectorError> {
        let s = |t: &Tpl| {
            env.templates
                .string(t, env.ctx)
                .map_err(ConnectorError::from)
        };
        let mut out = Credentials::default();
        match self {
            AuthPlan::None | AuthPlan::Plugin(_) => {}
            AuthPlan::Bearer { token, scheme } => {
                let tok = s(token)?;
                out.headers.push((
                    "authorization".into(),
                    Secret::new(join_scheme(scheme, &tok)),
                ));
            }
            AuthPlan::ApiKey {
                location,
                name,
                value,
            } => {
                let v = Secret::new(s(value)?);
                match location {
                    KeyLocation::Header => out.headers.push((name.clone(), v)),
                    KeyLocation::Query => out.query.push((name.clone(), v)),
                }
            }
            AuthPlan::Basic { username, password } => {
                let raw = format!("{}:{}", s(username)?, s(password)?);
                let enc = base64::engine::general_purpose::STANDARD.encode(raw);
                out.headers
                    .push(("authorization".into(), Secret::new(format!("Basic {enc}"))));
            }
            AuthPlan::Token(flow) => {
                let tok = {
                    let mut guard = cache.token.lock().await;
                    let fresh = guard.as_ref().filter(|t| {
                        let expiring = t
                            .expires_at
                            .is_some_and(|e| e <= Instant::now() + flow.refresh_ahead);
                        !expiring && stale.is_none_or(|s| *s != t.access)
                    });
                    match fresh {
                        Some(t) => t.clone(),
                        None => {
                            let persisted = match (&*guard, stale, env.store) {
                                (None, None, Some(p)) => p.load(flow.refresh_ahead),
                                _ => None,
                            };
                            let t = match persisted {
                                Some(t) => t,
                                None => {
                                    let prev_refresh = guard
                                        .as_ref()
                                        .and_then(|t| t.refresh.clone())
                                        .or_else(|| env.store.and_then(|p| p.load_refresh()));
                                    let t = flow.fetch(env, prev_refresh).await?;
                                    if let Some(p) = env.store {
                                        p.save(&t);
                                    }
                                    t
                                }
                            };
                            cache.remember(&t);
                            *guard = Some(t.clone());
                            t
                        }
                    }
                };
                out.headers.push((
                    "authorization".into(),
                    Secret::new(join_scheme(&flow.scheme, tok.access.expose())),
                ));
                out.token = Some(tok.access.clone());
                out.extra = tok.extra.clone();
            }
        }
        Ok(out)
    }
}

fn join_scheme(scheme: &str, token: &str) -> String {
    if scheme.is_empty() {
        token.to_string()
    } else {
        format!("{scheme} {token}")
    }
}

impl TokenFlow {
    async fn fetch(
        &self,
        env: &TokenEnv<'_>,
        prev_refresh: Option<Secret>,
    ) -> Result<CachedToken, ConnectorError> {
        let s = |t: &Tpl| {
            env.templates
                .string(t, env.ctx)
                .map_err(ConnectorError::from)
        };
        let url = (env.rewrite)(s(&self.token_url)?);
        let mut form: Vec<(&str, String)> = Vec::new();
        match &self.grant {
            Grant::ClientCredentials { scope } => {
                form.push(("grant_type", "client_credentials".into()));
                if let Some(sc) = scope {
                    form.push(("scope", s(sc)?));
                }
            }
            Grant::Refresh { refresh_token } => {
                form.push(("grant_type", "refresh_token".into()));
                let rt = match prev_refresh {
                    Some(r) => r.expose().to_string(),
                    None => s(refresh_token)?,
                };
                form.push(("refresh_token", rt));
            }
            Grant::Password { username, password } => {
                form.push(("grant_type", "password".into()));
                form.push(("username", s(username)?));
                form.push(("password", s(password)?));
            }
            Grant::Jwt {
                issuer,
                subject,
                audience,
                private_key,
                lifetime,
            } => {
                form.push((
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ));
                let assertion = jwt_assertion(
                    &s(issuer)?,
                    &s(subject)?,
                    &s(audience)?,
                    &s(private_key)?,
                    *lifetime,
                )?;
                form.push(("assertion", assertion));
            }
        }
        let mut basic = None;
        if let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) {
            let (id, secret) = (s(id)?, s(secret)?);
            match self.credentials_in {
                CredentialsIn::Basic => basic = Some((id, secret)),
                CredentialsIn::Body | CredentialsIn::Query => {
                    form.push(("client_id", id));
                    form.push(("client_secret", secret));
                }
            }
        }
        let in_query = self.credentials_in == CredentialsIn::Query || self.method == Method::Get;
        let method = match self.method {
            Method::Get => reqwest::Method::GET,
            _ => reqwest::Method::POST,
        };
        let mut req = env.http.request(method, &url).timeout(env.timeout);
        req = if in_query {
            req.query(&form)
        } else {
            req.form(&form)
        };
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                ConnectorError::Auth(format!("token request failed: {}", e.without_url()))
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let why = body
                .get("error_description")
                .or_else(|| body.get("error"))
                .or_else(|| body.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(ConnectorError::Auth(format!(
                "token endpoint answered {}: {why}",
                status.as_u16()
            )));
        }
        let Some(access) = body.get("access_token").and_then(Value::as_str) else {
            return Err(ConnectorError::Auth(
                "token response has no access_token".into(),
            ));
        };
        let expires_at = body
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map(|secs| Instant::now() + Duration::from_secs(secs));
        let refresh = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(Secret::new);
        let mut extra = serde_json::Map::new();
        if let Some((f, v)) = self
            .base_url_field
            .as_ref()
            .and_then(|f| Some((f, body.get(f)?)))
        {
            extra.insert(f.clone(), v.clone());
        }
        Ok(CachedToken {
            access: Secret::new(access),
            expires_at,
            refresh,
            extra,
        })
    }
}

/// An RS256-signed JWT bearer assertion (Salesforce).
pub fn jwt_assertion(
    issuer: &str,
    subject: &str,
    audience: &str,
    private_key_pem: &str,
    lifetime_secs: u64,
) -> Result<String, ConnectorError> {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        exp: u64,
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .map_err(|_| ConnectorError::Auth("private key is not an RSA PEM key".into()))?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &Claims {
            iss: issuer,
            sub: subject,
            aud: audience,
            exp: now + lifetime_secs.min(180),
        },
        &key,
    )
    .map_err(|e| ConnectorError::Auth(format!("cannot sign the JWT assertion: {e}")))
}
