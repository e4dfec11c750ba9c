//! `switchyard serve`: the inbound webhook endpoint. `POST /webhooks/{tenant}/{source}` is
//! verified as the source's connector spec declares (`[inbound] webhook`, a plugin included),
//! mapped with the route's mapping spec and delivered through its connector; the answer is the
//! delivery report as JSON. Undeliverable records are dead-lettered in the store and can be
//! replayed (`switchyard deadletter replay`). `GET /health` answers `ok`.
//!
//! Status codes: 200 delivered (the body lists each object's outcome; records the CRM refused
//! are dead-lettered and reported as `failed`), 401 bad signature, 400 not JSON, 404 no route,
//! 422 the mapping rejected the record.

use super::run::{Prepared, open_store, options, prepare};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use switchyard::connector::webhook::{WebhookRequest, verify};
use switchyard::connector::{Deliverer, DeliveryItem, Path as JsonPath, Secret, SecretResolver};
use switchyard::spec::connector::{ConnectorSpec, Inbound};

/// Arguments of `switchyard serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Route mapping specs (each names its tenant, source and connector). Repeatable.
    #[arg(long, value_name = "FILE", required = true)]
    pub mapping: Vec<PathBuf>,
    /// Folder of connector specs.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The engine's store (dedupe index, dead letters, tokens).
    #[arg(
        long,
        value_name = "FILE",
        default_value = ".switchyard/switchyard.sqlite"
    )]
    pub store: PathBuf,
    /// Address to listen on (port 0 picks a free one; the address is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Deliver to in-process emulators of the routes' connectors.
    #[arg(long)]
    pub sandbox: bool,
    /// The operator's plugin grants (TOML). Default: `$SWITCHYARD_PLUGIN_GRANTS`, else none.
    #[arg(long, value_name = "FILE")]
    pub plugin_grants: Option<PathBuf>,
    /// Records in flight at once per request.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

struct Route {
    path: PathBuf,
    prepared: Prepared,
    inbound: Option<Inbound>,
    idempotency: Option<JsonPath>,
    secrets: HashMap<String, Secret>,
    plugins: Arc<switchyard::plugin::PluginSet>,
}

struct App {
    routes: HashMap<(String, String), Route>,
    store: Arc<switchyard::store::Store>,
    concurrency: usize,
}

pub(super) fn run(a: Args) -> u8 {
    super::block_on(serve(a))
}

fn load_route(
    path: &std::path::Path,
    prepared: Prepared,
    connectors: &std::path::Path,
    plugins: &switchyard::plugin::PluginEnv,
) -> Result<((String, String), Route), String> {
    let m = &prepared.mapping;
    let source = m.source.clone().ok_or_else(|| {
        format!(
            "{}: /source: a webhook route needs the inbound source it receives from",
            path.display()
        )
    })?;
    let (spec, spec_path): (ConnectorSpec, PathBuf) =
        switchyard::connector::find_spec_file(connectors, &source).map_err(|e| e.to_string())?;
    let resolver = SecretResolver::from_env().map_err(|e| e.to_string())?;
    let mut secrets = HashMap::new();
    for (name, reference) in &m.source_secrets {
        let v = resolver
            .resolve(reference)
            .map_err(|e| format!("{}: /source_secrets/{name}: {e}", path.display()))?;
        secrets.insert(name.clone(), v);
    }
    let set = plugins
        .load_set(&spec_path, &spec.plugins, &m.tenant)
        .map_err(|e| e.to_string())?;
    let idempotency = spec
        .inbound
        .as_ref()
        .and_then(|i| i.idempotency_key.as_deref())
        .map(JsonPath::compile)
        .transpose()
        .map_err(|e| format!("{}: /inbound/idempotency_key: {e}", spec_path.display()))?;
    Ok((
        (m.tenant.clone(), source),
        Route {
            path: path.to_path_buf(),
            inbound: spec.inbound.clone(),
            idempotency,
            secrets,
            plugins: set,
            prepared,
        },
    ))
}

async fn serve(a: Args) -> u8 {
    let plugins = match switchyard::plugin::PluginEnv::discover(a.plugin_grants.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let store = match open_store(&a.store) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let mut routes = HashMap::new();
    for path in &a.mapping {
        let loaded = match prepare(path, &a.connectors, a.sandbox, false, &plugins).await {
            Ok(p) => load_route(path, p, &a.connectors, &plugins),
            Err(e) => Err(e),
        };
        match loaded {
            Ok((key, mut route)) => {
                if let Some(emu) = &route.prepared.emulator {
                    eprintln!("sandbox: {} emulator at {}", emu.vendor(), emu.base_url());
                }
                route.prepared.session = route
                    .prepared
                    .session
                    .clone()
                    .with_token_store(store.clone());
                eprintln!(
                    "route: POST /webhooks/{}/{} → {} ({})",
                    key.0,
                    key.1,
                    route.prepared.mapping.connector,
                    path.display()
                );
                routes.insert(key, route);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_INVALID;
            }
        }
    }
    let app = Arc::new(App {
        routes,
        store,
        concurrency: a.concurrency,
    });
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/webhooks/{tenant}/{source}", post(webhook))
        .with_state(app);
    let listener = match tokio::net::TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", a.listen);
            return super::EXIT_USAGE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening on http://{addr}"),
        Err(e) => eprintln!("listening ({e})"),
    }
    let shutdown = super::sandbox::stop_signal();
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("error: {e}");
        return super::EXIT_USAGE;
    }
    super::EXIT_OK
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn webhook(
    State(app): State<Arc<App>>,
    Path((tenant, source)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(route) = app.routes.get(&(tenant.clone(), source.clone())) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no route for tenant `{tenant}` and source `{source}`")}),
        );
    };
    let hdrs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let url = format!("http://{host}{uri}");
    if let Some(scheme) = route.inbound.as_ref().and_then(|i| i.webhook.as_ref()) {
        let req = WebhookRequest {
            method: method.as_str(),
            url: &url,
            headers: &hdrs,
            body: &body,
        };
        if let Err(reason) = verify(
            scheme,
            &route.secrets,
            Some(&route.plugins),
            &req,
            chrono::Utc::now().timestamp(),
        )
        .await
        {
            tracing::warn!(tenant, source, %reason, "webhook refused");
            return answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": format!("webhook signature refused: {reason}")}),
            );
        }
    }
    let records: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(v @ Value::Object(_)) => vec![v],
        Ok(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "the body must be a JSON object or an array of objects"}),
            );
        }
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("the body is not JSON: {e}")}),
            );
        }
    };
    let Some(plan) = route.prepared.plan.as_ref() else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "no mapping plan"}),
        );
    };
    let items = match map_records(plan, route, &records) {
        Ok(items) => items,
        Err(e) => {
            // The sender sees why; the server's file layout stays in the log.
            tracing::warn!(tenant, source, route = %route.path.display(), error = %e, "webhook record rejected by the mapping");
            return answer(StatusCode::UNPROCESSABLE_ENTITY, json!({"error": e}));
        }
    };
    let m = &route.prepared.mapping;
    let opts = options(m, &route.prepared.session, &route.path, app.concurrency);
    let d = Deliverer::new(
        route.prepared.session.clone(),
        Some(app.store.clone()),
        opts,
    );
    let report = d.deliver(items).await;
    answer(
        StatusCode::OK,
        serde_json::to_value(&report).unwrap_or(Value::Null),
    )
}

/// Maps every record of one request (synchronous: plugin calls block on the plugin runtime).
fn map_records(
    plan: &switchyard::mapping::CompiledMapping,
    route: &Route,
    records: &[Value],
) -> Result<Vec<DeliveryItem>, String> {
    let secrets = switchyard::secrets::default_provider();
    let session = plan.plugin_session();
    let ctx = switchyard::mapping::MapContext {
        now: chrono::Utc::now(),
        secrets: &secrets,
        ext: session
            .as_ref()
            .map(|s| s as &dyn switchyard::expr::ExtCalls),
    };
    let mut items = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let mapped = plan
            .apply(r, &ctx)
            .map_err(|e| format!("record {i}: {e}"))?;
        let key = route
            .idempotency
            .as_ref()
            .and_then(|p| p.first(r))
            .map(switchyard::connector::scalar)
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| super::run::content_key(&r.to_string()));
        items.push(DeliveryItem { key, mapped });
    }
    Ok(items)
}
