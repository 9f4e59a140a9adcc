//! The service's shared state: the lake and landing zone, the warehouse (its URL is never
//! logged), the API keys, the metrics, the run queue and a small bounded pool of read-only
//! warehouse connections for the read endpoints. Cloning is cheap (one `Arc`).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use gold::warehouse::{Dialect, Param, Rows};
use lake::Location;
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::auth::ApiKeys;
use super::error::ApiError;
use super::jobs::JobQueue;
use super::metrics::Metrics;

/// Limits of the service.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest feed `POST /v1/feeds` accepts, in bytes.
    pub max_upload: u64,
    /// How long any request but an upload may take; an upload may not stall longer.
    pub request_timeout: Duration,
}

pub struct Inner {
    pub lake: Location,
    pub landing: Location,
    /// May hold a password: never logged or returned (use `warehouse_display`).
    pub warehouse_url: String,
    /// The warehouse URL without its password.
    pub warehouse_display: String,
    pub keys: ApiKeys,
    /// `--insecure-no-auth`: every request is allowed (local experiments only).
    pub insecure_no_auth: bool,
    pub metrics: Metrics,
    pub jobs: JobQueue,
    pub limits: Limits,
    /// `serve --watch`: wakes the watcher for a poll at once (`POST /v1/events/s3`).
    pub watch_wake: Option<Arc<tokio::sync::Notify>>,
    pool: ReadPool,
}

/// The state every handler gets.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The parts of the state, for [`AppState::new`].
pub struct StateParts {
    pub lake: Location,
    pub landing: Location,
    pub warehouse_url: String,
    pub keys: ApiKeys,
    pub insecure_no_auth: bool,
    pub metrics: Metrics,
    pub jobs: JobQueue,
    pub limits: Limits,
    pub watch_wake: Option<Arc<tokio::sync::Notify>>,
    /// Read-only warehouse connections kept open at most.
    pub pool_size: usize,
}

impl AppState {
    pub fn new(p: StateParts) -> AppState {
        AppState(Arc::new(Inner {
            warehouse_display: lake::redact_url(&p.warehouse_url),
            pool: ReadPool { idle: Mutex::new(Vec::new()), permits: Semaphore::new(p.pool_size.max(1)) },
            lake: p.lake,
            landing: p.landing,
            warehouse_url: p.warehouse_url,
            keys: p.keys,
            insecure_no_auth: p.insecure_no_auth,
            metrics: p.metrics,
            watch_wake: p.watch_wake,
            jobs: p.jobs,
            limits: p.limits,
        }))
    }

    /// The warehouse's SQL dialect (from its URL, as `gold::Warehouse::connect` decides it).
    pub fn dialect(&self) -> Dialect {
        if self.warehouse_url.starts_with("postgres://") || self.warehouse_url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }

    /// Runs a read-only query (bound `$n` parameters) on a pooled connection.
    pub async fn query(&self, sql: &str, params: &[Param]) -> Result<Rows, ApiError> {
        let mut conn = self.reader().await?;
        conn.query_rows(sql, params).await.map_err(|e| {
            conn.discard();
            e.into()
        })
    }

    /// A pooled read-only connection (several queries on one connection). At most the pool's
    /// size are out at once; others wait. Back to the pool when dropped, unless discarded.
    pub async fn reader(&self) -> Result<PooledReader<'_>, ApiError> {
        let permit = self.pool.permits.acquire().await.map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        let idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let wh = match idle {
            Some(wh) => wh,
            None => match gold::Warehouse::connect_read_only(&self.warehouse_url).await? {
                Some(wh) => wh,
                None => return Err(ApiError::unavailable(format!("the warehouse {} does not exist yet: run the pipeline first", self.warehouse_display))),
            },
        };
        Ok(PooledReader { pool: &self.pool, wh: Some(wh), _permit: permit })
    }

    /// A read-write warehouse connection (the ledger's queue), not pooled; migrated at start.
    pub async fn writer(&self) -> Result<gold::Warehouse, ApiError> {
        Ok(gold::Warehouse::connect(&self.warehouse_url).await?)
    }

    /// Closes the pooled connections (at shutdown).
    pub async fn close_pool(&self) {
        self.pool.permits.close();
        let idle: Vec<gold::Warehouse> = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for wh in idle {
            wh.close().await;
        }
    }
}

/// Idle read-only connections, and permits bounding how many are in use.
struct ReadPool {
    idle: Mutex<Vec<gold::Warehouse>>,
    permits: Semaphore,
}

/// A read-only connection lent by the pool.
pub struct PooledReader<'a> {
    pool: &'a ReadPool,
    wh: Option<gold::Warehouse>,
    _permit: SemaphorePermit<'a>,
}

impl PooledReader<'_> {
    /// Drops the connection instead of returning it (after an error: it may be broken).
    pub fn discard(&mut self) {
        self.wh = None;
    }
}

impl Deref for PooledReader<'_> {
    type Target = gold::Warehouse;
    fn deref(&self) -> &gold::Warehouse {
        self.wh.as_ref().expect("a pooled connection is present until dropped or discarded")
    }
}

impl std::ops::DerefMut for PooledReader<'_> {
    fn deref_mut(&mut self) -> &mut gold::Warehouse {
        self.wh.as_mut().expect("a pooled connection is present until dropped or discarded")
    }
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        if let Some(wh) = self.wh.take() {
            self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(wh);
        }
    }
}
