//! Connector operations done by WebAssembly plugins: request signing (`auth = { type =
//! "plugin" }`), decoding of non-JSON answers (`decode = "<plugin>"`), and whole operations
//! delegated to a full-connector plugin (`plugin = "<plugin>"`). Every call goes through the
//! plugin runtime ([`crate::plugin::exec`]), with the tenant's plugin set bound to the session.

use super::http::Response;
use super::{CompiledOp, ConnectorError, Session};
use crate::plugin::{HttpRequest, PluginHandle, PluginSet, exec};
use crate::spec::connector::OperationKind;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use std::sync::Arc;

impl Session {
    /// Binds the tenant's loaded plugins (the connector spec's `plugins`).
    pub fn with_plugins(mut self, set: Arc<PluginSet>) -> Self {
        self.plugins = Some(set);
        self
    }

    pub(crate) fn plugin(&self, alias: &str) -> Result<PluginHandle, ConnectorError> {
        self.plugins
            .as_ref()
            .and_then(|s| s.get(alias))
            .cloned()
            .ok_or_else(|| {
                ConnectorError::Config(format!(
                    "connector `{}` uses plugin `{alias}`, which is not loaded for this session",
                    self.connector.name()
                ))
            })
    }

    /// Signs a request with the plugin's signer; returns method, URL, headers and body.
    pub(crate) async fn plugin_sign(
        &self,
        alias: &str,
        req: HttpRequest,
    ) -> Result<HttpRequest, ConnectorError> {
        let h = self.plugin(alias)?;
        on_plugin_runtime(async move { h.sign(req).await }).await
    }

    /// Decodes a non-JSON body with the plugin's decoder.
    pub(crate) async fn plugin_decode(
        &self,
        alias: &str,
        content_type: String,
        body: Vec<u8>,
    ) -> Result<Value, ConnectorError> {
        let h = self.plugin(alias)?;
        on_plugin_runtime(async move { h.decode(&content_type, &body).await }).await
    }

    /// The plugin's stream: the object's `api_name` (else its name), else the operation's name.
    fn stream(&self, cop: &CompiledOp) -> String {
        match &cop.spec.object {
            Some(o) => self.connector.api_name(o).to_string(),
            None => cop.name.clone(),
        }
    }

    /// One operation delegated to a full-connector plugin (stream = the object's `api_name`):
    /// list/search kinds read one page
    /// (`{"records": […], "next_cursor": …}`), batch kinds write `items` (`{"results": […]}`),
    /// other kinds write the payload (with `id` when updating) and answer the plugin's result.
    pub(crate) async fn plugin_call(
        &self,
        alias: &str,
        cop: &CompiledOp,
        vars: Map<String, Value>,
    ) -> Result<Response, ConnectorError> {
        let h = self.plugin(alias)?;
        let stream = self.stream(cop);
        let body =
            match cop.spec.kind {
                OperationKind::List | OperationKind::Search => {
                    let params = Value::Object(public_vars(&vars));
                    let cursor = vars
                        .get("cursor")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let page = on_plugin_runtime(async move {
                        h.read(&stream, &params, cursor.as_deref()).await
                    })
                    .await?;
                    serde_json::json!({"records": page.records, "next_cursor": page.next_cursor})
                }
                OperationKind::BatchCreate
                | OperationKind::BatchUpdate
                | OperationKind::BatchUpsert => {
                    let items: Vec<Value> = match vars.get("items") {
                        Some(Value::Array(a)) => a.clone(),
                        _ => Vec::new(),
                    };
                    let results =
                        on_plugin_runtime(async move { h.write(&stream, &items).await }).await?;
                    serde_json::json!({"results": results})
                }
                _ => {
                    let mut record = match vars.get("payload") {
                        Some(Value::Object(m)) => m.clone(),
                        _ => Map::new(),
                    };
                    if let Some(id) = vars.get("id").filter(|v| !v.is_null()) {
                        record.insert("id".into(), id.clone());
                    }
                    let results = on_plugin_runtime(async move {
                        h.write(&stream, &[Value::Object(record)]).await
                    })
                    .await?;
                    results.into_iter().next().unwrap_or(Value::Null)
                }
            };
        Ok(Response {
            status: 200,
            headers: HeaderMap::new(),
            body,
        })
    }

    /// A list/search operation delegated to a full-connector plugin, through every page.
    pub(crate) async fn plugin_list(
        &self,
        alias: &str,
        cop: &CompiledOp,
        vars: Map<String, Value>,
        limit: Option<usize>,
        mut f: impl FnMut(Value),
    ) -> Result<usize, ConnectorError> {
        let h = self.plugin(alias)?;
        let stream = self.stream(cop);
        let params = Value::Object(public_vars(&vars));
        let mut cursor: Option<String> = None;
        let mut count = 0usize;
        for _ in 0..100_000 {
            let (h2, s2, p2, c2) = (h.clone(), stream.clone(), params.clone(), cursor.clone());
            let page =
                on_plugin_runtime(async move { h2.read(&s2, &p2, c2.as_deref()).await }).await?;
            for r in page.records {
                f(r);
                count += 1;
                if limit.is_some_and(|l| count >= l) {
                    return Ok(count);
                }
            }
            match page.next_cursor {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                _ => break,
            }
        }
        Ok(count)
    }
}

/// Runs a plugin call on the plugin runtime, mapping both failures to connector errors.
async fn on_plugin_runtime<T, F>(call: F) -> Result<T, ConnectorError>
where
    F: std::future::Future<Output = Result<T, crate::plugin::PluginError>> + Send + 'static,
    T: Send + 'static,
{
    exec::run(call)
        .await
        .map_err(ConnectorError::Config)?
        .map_err(ConnectorError::Plugin)
}

/// Template variables a plugin may see as `params`: everything but secrets.
fn public_vars(vars: &Map<String, Value>) -> Map<String, Value> {
    vars.iter()
        .filter(|(k, _)| k.as_str() != "secrets")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
