//! Building and sending one operation's request: URL, query, headers and body from compiled
//! templates, credentials, the rate limiter, and retries with exponential backoff and full
//! jitter on throttling, 5xx, timeouts, dropped connections and malformed bodies.

use super::auth::{Credentials, TokenEnv};
use super::{CompiledOp, ConnectorError, Session, scalar, truthy};
use crate::spec::connector::{BodyEncoding, Method};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use std::time::Duration;

/// Additions to one request: paging parameters or a full next-page URL.
#[derive(Debug, Default, Clone)]
pub struct Extra {
    /// Replaces the URL (absolute, or a path resolved against the base URL's origin).
    pub url: Option<String>,
    /// Query parameters set after the operation's own.
    pub query: Vec<(String, String)>,
    /// Top-level body fields (GraphQL: variables) set after the template's.
    pub body: Vec<(String, Value)>,
}

/// A vendor response.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// JSON body (`null` when empty).
    pub body: Value,
}

/// Which failures a call may retry by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retrying {
    /// Idempotent: retry throttling, 5xx, timeouts, dropped connections, malformed bodies.
    Safe,
    /// Not idempotent (a create without an idempotency key): retry only what surely was not
    /// processed (throttling, refused connections, 401 before a token refresh); anything else
    /// returns [`ConnectorError::Transient`] for the caller to reconcile first.
    Unsafe,
}

enum Step {
    Done(Response),
    Throttled(Option<Duration>),
    Again { ambiguous: bool, why: String },
    Unauthorized(String),
}

impl Session {
    pub(crate) fn rewrite(&self, url: String) -> String {
        let Some(over) = &self.binding.base_url else {
            return url;
        };
        let (o_origin, o_path) = split_origin(over);
        if !o_path.is_empty() && o_path != "/" {
            return url;
        }
        let (_, path) = split_origin(&url);
        format!("{}{}", o_origin.trim_end_matches('/'), path)
    }

    /// The base URL for a request (tenant override, token fields, spec template).
    pub(crate) fn base_url(&self, ctx: &Value) -> Result<String, ConnectorError> {
        if let Some(over) = &self.binding.base_url {
            let (_, p) = split_origin(over);
            if !p.is_empty() && p != "/" {
                return Ok(over.trim_end_matches('/').to_string());
            }
        }
        let mut b = self
            .connector
            .templates
            .string(&self.connector.base_url, ctx)?;
        if !b.contains("://")
            && let Some(over) = &self.binding.base_url
        {
            // A setting the base URL is built from (e.g. Salesforce `instance_url`) is not
            // known before the token call; the override's origin stands in for it.
            b = format!("{}{b}", split_origin(over).0.trim_end_matches('/'));
        }
        if b.is_empty() || !b.contains("://") {
            return Err(ConnectorError::Config(format!(
                "connector `{}` has no usable base URL (`{b}`): set the tenant's settings (e.g. instance_url, subdomain, or base_url)",
                self.connector.name()
            )));
        }
        Ok(self.rewrite(b.trim_end_matches('/').to_string()))
    }

    async fn credentials(
        &self,
        ctx: &Value,
        stale: Option<&super::Secret>,
    ) -> Result<Credentials, ConnectorError> {
        if self.dry_run.is_some() && self.connector.auth.is_token() {
            let mut c = Credentials::default();
            c.headers.push((
                "authorization".into(),
                super::Secret::new(format!(
                    "{} (token from the token endpoint)",
                    self.connector.auth.token_scheme()
                )),
            ));
            return Ok(c);
        }
        let rewrite = |u: String| {
            if u.starts_with('/') {
                match self.base_url(ctx) {
                    Ok(b) => format!("{}{u}", split_origin(&b).0),
                    Err(_) => u,
                }
            } else {
                self.rewrite(u)
            }
        };
        let env = TokenEnv {
            http: &self.http,
            templates: &self.connector.templates,
            ctx,
            rewrite: &rewrite,
            timeout: Duration::from_millis(self.connector.retry.timeout_ms),
            store: self.token_store.as_ref(),
        };
        self.connector
            .auth
            .credentials(&self.tokens, &env, stale)
            .await
    }

    /// Run one request of `op` with retries.
    pub async fn call_with(
        &self,
        op: &CompiledOp,
        ctx: &Value,
        extra: &Extra,
        retrying: Retrying,
    ) -> Result<Response, ConnectorError> {
        let retry = &self.connector.retry;
        let max = retry.max_attempts.max(1);
        let (mut attempts, mut throttles) = (0u32, 0u32);
        let mut stale: Option<super::Secret> = None;
        let mut refreshed = false;
        let path_for_errors = self
            .connector
            .templates
            .string(&op.path, ctx)
            .unwrap_or_default();
        // A class of endpoints with a budget of its own (HubSpot search) waits for its own
        // token first, so that a request never holds a general slot while it waits.
        let class = op.spec.budget.as_deref().and_then(|c| self.classes.get(c));
        // What a throttling answer pauses: the class's bucket for its endpoints, so that the
        // rest of the connector's traffic keeps its pace.
        let pacer = class.or(self.limiter.as_ref());
        loop {
            if let Some(c) = class {
                c.acquire().await;
            }
            if let Some(l) = &self.limiter {
                l.acquire().await;
            }
            let creds = self.credentials(ctx, stale.as_ref()).await?;
            let mut ctx_auth = ctx.clone();
            if let (false, Value::Object(m)) = (creds.extra.is_empty(), &mut ctx_auth) {
                {
                    if let Some(Value::Object(cfg)) = m.get_mut("config") {
                        for (k, v) in &creds.extra {
                            cfg.insert(k.clone(), v.clone());
                        }
                    }
                    m.insert("auth".into(), Value::Object(creds.extra.clone()));
                }
            }
            let built = self.build(op, &ctx_auth, extra, &creds)?;
            if let Some(sink) = &self.dry_run {
                let line = built.describe(&creds, &self.binding.secrets);
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                return Ok(Response {
                    status: 200,
                    headers: HeaderMap::new(),
                    body: Value::Null,
                });
            }
            attempts += 1;
            let step = self.send(op, built).await;
            let (delay, err) = match step {
                Ok(Step::Done(r)) => return Ok(r),
                Ok(Step::Throttled(after)) => {
                    throttles += 1;
                    let d = after.unwrap_or_else(|| backoff(retry, throttles));
                    if let Some(l) = pacer {
                        l.pause(d).await;
                    }
                    if throttles >= max * 4 {
                        return Err(ConnectorError::RateLimited {
                            path: path_for_errors,
                            attempts: attempts + throttles,
                        });
                    }
                    attempts -= 1;
                    (if pacer.is_some() { Duration::ZERO } else { d }, None)
                }
                Ok(Step::Unauthorized(msg)) => {
                    if self.connector.auth.is_token() && !refreshed {
                        refreshed = true;
                        stale = creds.token.clone();
                        attempts -= 1;
                        continue;
                    }
                    return Err(ConnectorError::Auth(msg));
                }
                Ok(Step::Again { ambiguous, why }) => {
                    if ambiguous && retrying == Retrying::Unsafe {
                        return Err(ConnectorError::Transient {
                            path: path_for_errors,
                            message: why,
                            attempts,
                        });
                    }
                    (backoff(retry, attempts), Some(why))
                }
                Err(e) => return Err(e),
            };
            if let Some(why) = err {
                if attempts >= max {
                    return Err(ConnectorError::Transient {
                        path: path_for_errors,
                        message: why,
                        attempts,
                    });
                }
                tracing::debug!(connector = self.connector.name(), op = %op.name, attempt = attempts, %why, "retrying");
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    fn build(
        &self,
        op: &CompiledOp,
        ctx: &Value,
        extra: &Extra,
        creds: &Credentials,
    ) -> Result<Built, ConnectorError> {
        let t = &self.connector.templates;
        let base = self.base_url(ctx)?;
        let raw = match &extra.url {
            Some(u) if u.contains("://") => self.rewrite(u.clone()),
            Some(u) => format!("{}{}", split_origin(&base).0, u),
            None => format!("{base}{}", t.string(&op.path, ctx)?),
        };
        let mut url = url::Url::parse(&raw)
            .map_err(|e| ConnectorError::Config(format!("invalid URL `{raw}`: {e}")))?;
        {
            let mut q: Vec<(String, String)> = Vec::new();
            if extra.url.is_none() {
                for (k, v) in &op.query {
                    let v = t.string(v, ctx)?;
                    if !v.is_empty() {
                        q.push((k.clone(), v));
                    }
                }
            }
            for (k, v) in &extra.query {
                q.retain(|(k2, _)| k2 != k);
                q.push((k.clone(), v.clone()));
            }
            for (k, v) in &creds.query {
                q.push((k.clone(), v.expose().to_string()));
            }
            if !q.is_empty() {
                url.query_pairs_mut().extend_pairs(q);
            }
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        if !op
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            headers.push(("accept".into(), "application/json".into()));
        }
        for (k, v) in &op.headers {
            // A header the authentication sets is sent once, as the authentication makes it
            // (a custom REST endpoint that also writes `Authorization: Bearer {{auth.token}}`).
            if creds.headers.iter().any(|(a, _)| a.eq_ignore_ascii_case(k)) {
                continue;
            }
            let v = t.string(v, ctx)?;
            if !v.is_empty() {
                headers.push((k.clone(), v));
            }
        }
        let mut body = match &op.body {
            Some(b) => t.tree(b, ctx)?,
            None => None,
        };
        if !extra.body.is_empty() {
            let b = body.get_or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = b {
                for (k, v) in &extra.body {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        let (content_type, bytes, shown) = match (op.spec.encoding, body) {
            (BodyEncoding::Graphql, vars) => {
                let doc = serde_json::json!({
                    "query": op.spec.graphql.clone().unwrap_or_default(),
                    "variables": vars.unwrap_or_else(|| Value::Object(Map::new())),
                });
                (
                    Some("application/json"),
                    Some(doc.to_string().into_bytes()),
                    Some(doc),
                )
            }
            (_, None) => (None, None, None),
            (BodyEncoding::Json, Some(b)) => (
                Some("application/json"),
                Some(b.to_string().into_bytes()),
                Some(b),
            ),
            (BodyEncoding::Form, Some(b)) => {
                let mut pairs = Vec::new();
                flatten_form("", &b, &mut pairs);
                let s = serde_urlencoded::to_string(&pairs).unwrap_or_default();
                (
                    Some("application/x-www-form-urlencoded"),
                    Some(s.clone().into_bytes()),
                    Some(Value::String(s)),
                )
            }
        };
        if let Some(ct) = content_type
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type".into(), ct.into()));
        }
        if let Some(h) = &op.spec.idempotency_header {
            let key = ctx
                .get("idempotency_key")
                .map(scalar)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| {
                    use sha2::Digest;
                    hex::encode(sha2::Sha256::digest(bytes.as_deref().unwrap_or_default()))
                });
            headers.push((h.clone(), key));
        }
        let method = match op.spec.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        Ok(Built {
            method,
            url,
            headers,
            body: bytes,
            shown,
            auth_headers: creds
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
        })
    }

    async fn send(&self, op: &CompiledOp, mut b: Built) -> Result<Step, ConnectorError> {
        let timeout = Duration::from_millis(self.connector.retry.timeout_ms);
        if let super::auth::AuthPlan::Plugin(alias) = &self.connector.auth {
            let mut headers = std::mem::take(&mut b.headers);
            headers.append(&mut b.auth_headers);
            let signed = self
                .plugin_sign(
                    alias,
                    crate::plugin::HttpRequest {
                        method: b.method.to_string(),
                        url: b.url.to_string(),
                        headers,
                        body: b.body.take().unwrap_or_default(),
                    },
                )
                .await?;
            b.method = reqwest::Method::from_bytes(signed.method.as_bytes()).map_err(|_| {
                ConnectorError::Config(format!(
                    "plugin `{alias}` signed the request with an invalid method `{}`",
                    signed.method
                ))
            })?;
            b.url = url::Url::parse(&signed.url).map_err(|e| {
                ConnectorError::Config(format!(
                    "plugin `{alias}` signed the request with an invalid URL: {e}"
                ))
            })?;
            b.headers = signed.headers;
            b.body = (!signed.body.is_empty()).then_some(signed.body);
        }
        let mut req = self
            .http
            .request(b.method.clone(), b.url.clone())
            .timeout(timeout);
        for (k, v) in &b.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in &b.auth_headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(body) = b.body {
            req = req.body(body);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Ok(Step::Again {
                    ambiguous: !e.is_connect(),
                    why: transport_reason(&e),
                });
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.observe_limits(&headers).await;
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Ok(Step::Again {
                    ambiguous: true,
                    why: transport_reason(&e),
                });
            }
        };
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let is_json = content_type.is_empty()
            || content_type.contains("json")
            || content_type.starts_with("text/javascript");
        let parsed: Result<Value, String> = if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(Value::Null)
        } else if let (Some(alias), false) = (&op.spec.decode, is_json) {
            match self
                .plugin_decode(alias, content_type.clone(), bytes.to_vec())
                .await
            {
                Ok(v) => Ok(v),
                Err(e @ ConnectorError::Plugin(_)) => Err(e.to_string()),
                Err(e) => return Err(e),
            }
        } else {
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
        let body = match parsed {
            Ok(v) => v,
            Err(why) if (200..300).contains(&status) => {
                return Ok(Step::Again {
                    ambiguous: true,
                    why: format!("malformed response body (status {status}): {why}"),
                });
            }
            Err(_) => Value::String(String::from_utf8_lossy(&bytes).chars().take(300).collect()),
        };
        if status == 429 || self.is_throttle_signal(status, &body) {
            return Ok(Step::Throttled(retry_after));
        }
        let ok = if op.spec.success_status.is_empty() {
            (200..300).contains(&status)
        } else {
            op.spec.success_status.contains(&status)
        };
        let c = &self.connector;
        let flagged_failure = ok
            && (c
                .error_success
                .as_ref()
                .and_then(|p| p.first(&body))
                .is_some_and(|v| !truthy(v))
                || c.error_failure
                    .as_ref()
                    .filter(|_| op.spec.batch.is_none())
                    .and_then(|p| p.first(&body))
                    .is_some_and(|v| !v.is_null()));
        if ok && !flagged_failure {
            return Ok(Step::Done(Response {
                status,
                headers,
                body,
            }));
        }
        let message = self.error_message(&body);
        if status == 401 {
            return Ok(Step::Unauthorized(format!(
                "{} {}: {message}",
                status, op.name
            )));
        }
        if status >= 500 || status == 408 {
            return Ok(Step::Again {
                ambiguous: true,
                why: format!("status {status}: {message}"),
            });
        }
        Err(ConnectorError::Http {
            method: b.method.to_string(),
            path: b.url.path().to_string(),
            status,
            code: self
                .connector
                .error_code
                .as_ref()
                .and_then(|p| p.first(&body))
                .map(scalar),
            message,
            existing: self
                .connector
                .existing_id
                .as_ref()
                .and_then(|x| x.find(status, &body))
                .map(Box::new),
            created_before: self
                .connector
                .created_before
                .as_ref()
                .is_some_and(|c| c.says(status, &body)),
        })
    }

    fn error_message(&self, body: &Value) -> String {
        if let Some(m) = self
            .connector
            .error_message
            .as_ref()
            .and_then(|p| p.first(body))
        {
            return scalar(m);
        }
        let s = match body {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        s.chars().take(300).collect()
    }

    fn is_throttle_signal(&self, status: u16, body: &Value) -> bool {
        self.connector.throttles.iter().any(|(st, path, values)| {
            if st.is_some_and(|s| s != status) {
                return false;
            }
            match path {
                Some(p) => p
                    .all(body)
                    .iter()
                    .any(|v| values.is_empty() || values.contains(&scalar(v))),
                None => true,
            }
        })
    }

    async fn observe_limits(&self, headers: &HeaderMap) {
        let (Some(l), Some(rl)) = (&self.limiter, &self.connector.spec.rate_limit) else {
            return;
        };
        let Some(h) = &rl.headers else { return };
        let num = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| headers.get(n.as_str()))
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<f64>().ok())
        };
        let limit = num(&h.limit).map(|v| v as u32);
        let window = num(&h.interval_ms).map(|ms| Duration::from_millis(ms as u64));
        // Salesforce `Sforce-Limit-Info: api-usage=18/15000` (a rolling 24 h quota).
        let usage_left = h
            .usage
            .as_ref()
            .and_then(|n| headers.get(n.as_str()))
            .and_then(|v| v.to_str().ok())
            .and_then(usage_remaining);
        let remaining = num(&h.remaining).map(|v| v as u32).or(usage_left);
        let reset = num(&h.reset_secs).map(Duration::from_secs_f64);
        if limit.is_some() || remaining.is_some() {
            l.observe(limit, window, remaining, reset).await;
        }
    }
}

struct Built {
    method: reqwest::Method,
    url: url::Url,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    shown: Option<Value>,
    auth_headers: Vec<(String, String)>,
}

impl Built {
    /// The dry-run line: secrets replaced by `[redacted]` wherever they appear.
    fn describe(
        &self,
        creds: &Credentials,
        secrets: &std::collections::HashMap<String, super::Secret>,
    ) -> Value {
        let mut url = self.url.clone();
        let secret_query: Vec<&str> = creds.query.iter().map(|(k, _)| k.as_str()).collect();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_query.contains(&k.as_ref()) {
                    "[redacted]".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        let mut headers = Map::new();
        for (k, v) in &self.headers {
            headers.insert(k.clone(), Value::String(v.clone()));
        }
        for (k, v) in &creds.headers {
            // Keep the scheme word (`Bearer`, `Basic`, `Zoho-oauthtoken`): it is not secret
            // and request validators check it.
            let shown = match v.expose().split_once(' ') {
                Some((scheme, _)) if k.eq_ignore_ascii_case("authorization") => {
                    format!("{scheme} [redacted]")
                }
                _ => "[redacted]".to_string(),
            };
            headers.insert(k.clone(), Value::String(shown));
        }
        let mut line = serde_json::json!({
            "method": self.method.as_str(),
            "url": url.as_str(),
            "headers": headers,
            "body": self.shown.clone().unwrap_or(Value::Null),
        });
        let mut text = line.to_string();
        for s in secrets.values() {
            if s.expose().len() >= 4 {
                let needle = serde_json::to_string(s.expose()).unwrap_or_default();
                let needle = needle.trim_matches('"');
                if !needle.is_empty() {
                    text = text.replace(needle, "[redacted]");
                }
            }
        }
        if let Ok(v) = serde_json::from_str(&text) {
            line = v;
        }
        line
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "request timed out".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        "connection dropped".into()
    }
}

/// Requests left from a `used/limit` usage header value (`api-usage=18/15000`).
pub(crate) fn usage_remaining(v: &str) -> Option<u32> {
    let part = v
        .split([';', ','])
        .map(str::trim)
        .find(|p| p.starts_with("api-usage="))
        .or_else(|| v.split([';', ',']).map(str::trim).next())?;
    let (_, frac) = part.split_once('=').unwrap_or(("", part));
    let (used, max) = frac.split_once('/')?;
    let (used, max): (u64, u64) = (used.trim().parse().ok()?, max.trim().parse().ok()?);
    Some(max.saturating_sub(used).min(u64::from(u32::MAX)) as u32)
}

/// Full-jitter exponential backoff for the `attempt`-th retry.
pub(crate) fn backoff(r: &crate::spec::connector::Retry, attempt: u32) -> Duration {
    let cap = r
        .initial_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(r.max_backoff_ms);
    Duration::from_millis(rand::random_range(0..=cap.max(1)))
}

/// `scheme://host[:port]` and the rest of a URL.
pub(crate) fn split_origin(u: &str) -> (&str, &str) {
    match u.find("://") {
        Some(i) => {
            let after = &u[i + 3..];
            match after.find('/') {
                Some(j) => u.split_at(i + 3 + j),
                None => (u, ""),
            }
        }
        None => ("", u),
    }
}

/// Stripe-style bracketed form fields: `metadata[k]=v`, `items[0][price]=p`.
pub fn flatten_form(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}[{k}]")
                };
                flatten_form(&key, x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten_form(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), scalar(other))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stripe_form_brackets() {
        let mut out = Vec::new();
        flatten_form(
            "",
            &json!({"email": "a@b.c", "metadata": {"call": "c1"}, "items": [{"price": "p1"}], "n": 3, "x": null}),
            &mut out,
        );
        let s = serde_urlencoded::to_string(&out).unwrap();
        assert_eq!(
            s,
            "email=a%40b.c&metadata%5Bcall%5D=c1&items%5B0%5D%5Bprice%5D=p1&n=3"
        );
    }

    #[test]
    fn salesforce_usage_header() {
        assert_eq!(usage_remaining("api-usage=18/15000"), Some(14982));
        assert_eq!(
            usage_remaining("api-usage=15000/15000; api-bursts=1/750"),
            Some(0)
        );
        assert_eq!(usage_remaining("nonsense"), None);
    }

    #[test]
    fn origins_split() {
        assert_eq!(
            split_origin("https://x.my.salesforce.com/services/data/v62.0"),
            ("https://x.my.salesforce.com", "/services/data/v62.0")
        );
        assert_eq!(
            split_origin("http://127.0.0.1:9"),
            ("http://127.0.0.1:9", "")
        );
    }
}
