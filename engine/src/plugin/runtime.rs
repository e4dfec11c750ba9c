//! The process-wide wasmtime `Engine` (pooling allocator with an on-demand fallback, epoch
//! interruption driven by a dedicated ticker thread) and [`PluginHost`], the entry point.

use super::{HostConfig, PluginError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Settings of the process-wide engine (fixed by the first [`PluginHost`] created).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Epoch tick; CPU budgets are counted in ticks. Default: 10 ms.
    pub tick: Duration,
    /// Concurrent plugin instances (pool size and call concurrency). Default: 64.
    pub max_instances: u32,
    /// Largest linear memory any plugin may get (pool slot size). Default: 512 MiB.
    pub max_memory_bytes: u64,
    /// Wasm stack size. Default: 512 KiB.
    pub max_wasm_stack: usize,
    /// Keep the pages a plugin instance dirtied resident for the next instance of the same plugin
    /// (restoring only those pages, found with Linux's `PAGEMAP_SCAN`; ignored where the kernel
    /// lacks it). Saves the page faults of every fresh instance, at the cost of up to 4 MiB of
    /// resident memory per linear-memory pool slot. Default: true.
    pub keep_resident: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tick: Duration::from_millis(10),
            max_instances: 64,
            max_memory_bytes: 512 << 20,
            max_wasm_stack: 512 << 10,
            keep_resident: true,
        }
    }
}

/// The shared engine and its admission control.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) tick: Duration,
    pub(crate) pooling: bool,
    /// Whether pool slots keep dirtied pages resident (`PAGEMAP_SCAN`).
    pub(crate) resident: bool,
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
}

const SWITCHYARD_KEEP_RESIDENT: (usize, usize, usize) = (128 << 10, 64 << 10, 0);

/// With Linux's `PAGEMAP_SCAN` (6.7+), a slot is reset by restoring only the pages the last
/// instance dirtied (up to this much per linear memory / table), which then stay resident: the
/// next instance of the plugin does not page-fault on its stack, data and heap again. Without it,
/// keeping memory resident means `memset`ting all of it, so linear memories are decommitted.
/// 4 MiB covers what a mapping call dirties (stack top, heap, some data) while bounding the
/// resident memory of idle warm slots (wasmtime keeps up to 100 per pool).
const PAGEMAP_KEEP_RESIDENT: (usize, usize) = (4 << 20, 1 << 20);

static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();

fn base_config(ec: &EngineConfig) -> Config {
    let mut cfg = Config::new();
    cfg.epoch_interruption(true)
        .max_wasm_stack(ec.max_wasm_stack)
        .async_stack_size(ec.max_wasm_stack + (2 << 20))
        .concurrency_support(false);
    cfg
}

impl Runtime {
    fn create(ec: &EngineConfig) -> Result<Arc<Runtime>, String> {
        let n = ec.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n * 16)
            .total_memories(n * 4)
            .total_tables(n * 16)
            .total_stacks(n)
            .max_memory_size(ec.max_memory_bytes as usize)
            .max_memories_per_component(8)
            .max_core_instances_per_component(32)
            .max_tables_per_component(32)
            // Reset small regions with memset instead of madvise: a fresh instance per call
            // then avoids page faults on the fiber stack and tables.
            .async_stack_keep_resident(SWITCHYARD_KEEP_RESIDENT.0)
            .table_keep_resident(SWITCHYARD_KEEP_RESIDENT.1)
            .linear_memory_keep_resident(SWITCHYARD_KEEP_RESIDENT.2);
        let resident = ec.keep_resident && PoolingAllocationConfig::is_pagemap_scan_available();
        if resident {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(PAGEMAP_KEEP_RESIDENT.0)
                .table_keep_resident(PAGEMAP_KEEP_RESIDENT.1);
        }
        let mut cfg = base_config(ec);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let (engine, pooling, resident) = match Engine::new(&cfg) {
            Ok(e) => (e, true, resident),
            Err(pool_err) => {
                // Small virtual address spaces cannot reserve the pool: fall back to on-demand.
                tracing::warn!(error = %pool_err, "plugin host: pooling allocator unavailable, using on-demand allocation");
                let mut cfg = base_config(ec);
                cfg.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                (Engine::new(&cfg).map_err(|e| e.to_string())?, false, false)
            }
        };
        let weak = engine.weak();
        let tick = ec.tick;
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| format!("cannot start the epoch ticker thread: {e}"))?;
        Ok(Arc::new(Runtime {
            engine,
            tick,
            pooling,
            resident,
            permits: Arc::new(tokio::sync::Semaphore::new(n as usize)),
        }))
    }

    pub(crate) fn global(ec: &EngineConfig) -> Result<Arc<Runtime>, PluginError> {
        RUNTIME
            .get_or_init(|| Runtime::create(ec))
            .clone()
            .map_err(PluginError::Host)
    }

    /// Ticks in a CPU budget (at least one).
    pub(crate) fn ticks(&self, budget: Duration) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        (budget.as_nanos().div_ceil(tick) as u64).max(1)
    }
}

/// Loads plugins and owns the operator configuration. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) config: Arc<HostConfig>,
    /// The on-disk compiled-component cache, when configured.
    pub(crate) cache: Option<Arc<super::cache::Cache>>,
    /// Compiled components by wasm sha256: tenants loading the same plugin share its code.
    pub(crate) components:
        Arc<std::sync::Mutex<std::collections::HashMap<String, wasmtime::component::Component>>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("pooling", &self.rt.pooling)
            .field("tick", &self.rt.tick)
            .field("config", &self.config)
            .finish()
    }
}

impl PluginHost {
    /// A host on the process-wide engine (created with [`EngineConfig::default`] on first use).
    pub fn new(config: HostConfig) -> Result<PluginHost, PluginError> {
        Self::with_engine(config, &EngineConfig::default())
    }

    /// A host on the process-wide engine; `engine` only matters for the first host created.
    pub fn with_engine(
        config: HostConfig,
        engine: &EngineConfig,
    ) -> Result<PluginHost, PluginError> {
        let rt = Runtime::global(engine)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(Arc::new(super::cache::Cache::open(dir)?)),
            None => None,
        };
        Ok(PluginHost {
            rt,
            cache,
            config: Arc::new(config),
            components: Arc::default(),
        })
    }

    /// Whether the pooling allocator is in use (false after the on-demand fallback).
    pub fn pooling(&self) -> bool {
        self.rt.pooling
    }

    /// Whether pool slots keep the pages an instance dirtied resident for the next instance
    /// ([`EngineConfig::keep_resident`] and a kernel with `PAGEMAP_SCAN`).
    pub fn keeps_resident(&self) -> bool {
        self.rt.resident
    }

    /// The epoch tick.
    pub fn tick(&self) -> Duration {
        self.rt.tick
    }

    /// The operator configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }
}
