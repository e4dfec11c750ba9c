//! A small host service embedding Switchyard through its `Engine` API only: the shape of a
//! company's own integration service that keeps tenants' mapping specs and calls the engine.
//!
//! ```text
//! cargo run -p switchyard-cli --example embed -- [--listen 127.0.0.1:3000] [--sandbox]
//!     [--connectors connector-specs] [--store .switchyard/embed.sqlite]
//!     [--mapping mapping-specs/examples/hubspot-contact.json]
//! ```
//!
//! - `POST /records`: one source record (JSON) → mapped, delivered to the tenant's CRM; answers
//!   the delivery report (created / updated / failed, the CRM ids, reasons secrets redacted).
//! - `POST /map`: one source record → the mapped objects, nothing sent.
//! - `GET /objects/{object}/{id}`: reads an object back through the connector's `get` operation.
//! - `GET /health`.
//!
//! With `--sandbox` the route delivers to a local emulator of its CRM (started in this process),
//! so the example runs without any vendor account. It prints `listening on http://ADDR` on
//! stdout once it accepts requests.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use switchyard::engine::{Engine, EngineError, Route, RouteOptions, SandboxBinding, StoreUrl};

struct App {
    route: Route,
    next_key: std::sync::atomic::AtomicU64,
}

type Shared = Arc<App>;

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

async fn deliver(State(app): State<Shared>, Json(record): Json<Value>) -> Response {
    let mapped = match app.route.map(&record) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    // The record's own id keys it (so a resent record updates, never duplicates); without
    // one, a per-process sequence number does.
    let key = match record.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Number(_)) => v.to_string(),
        _ => format!(
            "embed-{}",
            app.next_key
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
    };
    let report = app.route.deliver(vec![app.route.item(key, mapped)]).await;
    let status = if report.failed > 0 || report.dead_lettered > 0 {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    (status, Json(json!(report))).into_response()
}

async fn map(State(app): State<Shared>, Json(record): Json<Value>) -> Response {
    match app.route.map(&record) {
        Ok(m) => Json(json!({"objects": m.objects})).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn read(
    State(app): State<Shared>,
    UrlPath((object, id)): UrlPath<(String, String)>,
) -> Response {
    match app.route.get(&object, &Value::String(id)).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such object"),
        // An object or operation the connector does not declare is the caller's mistake.
        Err(e @ EngineError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

struct Args {
    listen: String,
    connectors: PathBuf,
    mapping: PathBuf,
    store: Option<String>,
    sandbox: bool,
}

fn args() -> Result<Args, String> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut a = Args {
        listen: "127.0.0.1:3000".into(),
        connectors: root.join("connector-specs"),
        mapping: root.join("mapping-specs/examples/hubspot-contact.json"),
        store: None,
        sandbox: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?,
            "--connectors" => a.connectors = value()?.into(),
            "--mapping" => a.mapping = value()?.into(),
            "--store" => a.store = Some(value()?),
            "--sandbox" => a.sandbox = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let mut builder = Engine::builder().connectors_dir(&args.connectors);
    if let Some(store) = &args.store {
        builder = builder.store(store.parse::<StoreUrl>()?);
    }
    let engine = builder.build()?;

    // The stand-in CRM, when asked for: the emulator of the route's connector.
    let mut options = RouteOptions::default();
    let mut emulator = None;
    if args.sandbox {
        let (mapping, _) =
            switchyard::spec::load_as::<switchyard::spec::MappingSpec>(&args.mapping)?;
        let vendor: switchyard_sandbox::Vendor = mapping
            .connector
            .parse()
            .map_err(|_| format!("no emulator for `{}`", mapping.connector))?;
        let emu = switchyard_sandbox::start(vendor, Default::default()).await?;
        options.sandbox = Some(SandboxBinding::new(
            emu.base_url(),
            emu.credentials().iter(),
        ));
        emulator = Some(emu);
    }
    let route = engine.route_file(&args.mapping, options)?;
    let app = Arc::new(App {
        route,
        next_key: 0.into(),
    });
    let router = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/records", post(deliver))
        .route("/map", post(map))
        .route("/objects/{object}/{id}", get(read))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(emu) = emulator {
        emu.shutdown().await;
    }
    engine.retire()?;
    Ok(())
}
