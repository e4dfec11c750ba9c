//! Where plugin calls run when the caller is not a plugin-aware async task: a small dedicated
//! tokio runtime ("plugin-io") owns the reactor and timers of every call made through here, so
//! a plugin's wall-time limit and HTTP imports work the same whether the caller is synchronous
//! (mapping expressions), on a current-thread runtime, or on the engine's main runtime.
//!
//! Synchronous callers poll the call on their own thread with the runtime's context entered
//! ([`block_on`]): no thread hop, so a batch call costs what the call costs. Async callers hand
//! the call to the runtime ([`run`]).

use std::future::Future;
use std::sync::OnceLock;

static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("plugin-io")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the plugin runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Runs `fut` to completion on the calling thread, inside the plugin runtime's context.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output, String> {
    let rt = runtime()?;
    let _guard = rt.enter();
    Ok(futures::executor::block_on(fut))
}

/// Runs `fut` on the plugin runtime and waits for it without blocking the caller's executor.
pub async fn run<F>(fut: F) -> Result<F::Output, String>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime()?;
    rt.spawn(fut)
        .await
        .map_err(|e| format!("plugin call did not complete: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn block_on_has_timers_outside_any_runtime() {
        let r = block_on(async {
            tokio::time::timeout(Duration::from_millis(5), std::future::pending::<()>()).await
        })
        .expect("runtime");
        assert!(r.is_err(), "the timeout must fire");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn block_on_works_inside_a_current_thread_runtime() {
        let r = block_on(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            7
        })
        .expect("runtime");
        assert_eq!(r, 7);
        let r = run(async { 8 }).await.expect("runtime");
        assert_eq!(r, 8);
    }
}
