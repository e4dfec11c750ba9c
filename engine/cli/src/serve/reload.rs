//! Hot reload of `serve`'s routes: every route's files (its mapping spec, its connector and
//! source specs) are checked for changes on an interval; a changed route is compiled again
//! through `Route::reload` and swapped in only when that succeeds. A broken new version keeps
//! the old one serving, and the failure is logged (with every diagnostic) and counted.
//! Each route of a tenant and source that fans out reloads on its own.
//! (Plugins reload on their own through the plugin host's watcher.)

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use switchyard::engine::{Engine, WebhookRoute};

/// One served route: its name and the version answering requests now.
pub(super) struct Served {
    /// The route's name: its mapping spec's file name without extension, unique among the
    /// routes of one tenant and source. The inbox remembers which routes settled an entry by
    /// it, so it must not change while the process lives (a reload keeps it).
    pub name: String,
    current: RwLock<Arc<WebhookRoute>>,
}

impl Served {
    pub fn new(name: String, route: WebhookRoute) -> Self {
        Self {
            name,
            current: RwLock::new(Arc::new(route)),
        }
    }

    /// The version to answer a request with (held for the whole request).
    pub fn current(&self) -> Arc<WebhookRoute> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn replace(&self, route: WebhookRoute) {
        let new = Arc::new(route);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }
}

/// Modification times of a route's files (`None` for one that cannot be read now).
fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Watch every route until the process ends, checking each `every`.
pub(super) async fn watch(engine: Engine, routes: Vec<Arc<Served>>, every: Duration) {
    let mut seen: Vec<(Vec<PathBuf>, Vec<Option<SystemTime>>)> = routes
        .iter()
        .map(|s| {
            let files = s.current().route().files();
            let st = stamps(&files);
            (files, st)
        })
        .collect();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        for (served, (files, last)) in routes.iter().zip(seen.iter_mut()) {
            let now = stamps(files);
            if &now == last {
                continue;
            }
            *last = now;
            let old = served.current();
            let (tenant, source) = old.key();
            let path = old.route().path().display().to_string();
            // Compiling reads files and may load plugins: off the async workers.
            let engine = engine.clone();
            let rebuilt = tokio::task::spawn_blocking(move || {
                old.route()
                    .reload()
                    .and_then(|r| engine.webhook_route(r))
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
            match rebuilt {
                Ok(new) if new.key() != (tenant.clone(), source.clone()) => {
                    let (t, s) = new.key();
                    tracing::error!(
                        route = %path,
                        "reload not applied: the new version would serve /webhooks/{t}/{s} instead of /webhooks/{tenant}/{source}; restart to move a route; the old version keeps serving"
                    );
                }
                Ok(new) => {
                    *files = new.route().files();
                    served.replace(new);
                    tracing::info!(route = %path, tenant = %tenant, source = %source, "route reloaded");
                }
                Err(e) => {
                    tracing::error!(
                        route = %path,
                        tenant = %tenant,
                        source = %source,
                        error = %e,
                        "reload failed; the old version keeps serving"
                    );
                }
            }
        }
    }
}
