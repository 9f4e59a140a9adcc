//! `medallion serve`: reads the API keys, opens the lake, landing zone and warehouse (applying
//! the warehouse's migrations once, here), and hands over to `serve::serve`.

use std::time::Duration;

use crate::cli::ServeArgs;
use crate::commands::Globals;
use crate::schedule::Cron;
use crate::serve::auth::ApiKeys;
use crate::serve::state::{AppState, Limits, StateParts};
use crate::serve::{jobs::JobQueue, metrics::Metrics, ServeOptions};
use crate::{orchestrate, Failure};

/// How long the worker waits for the lake lock before leaving its run queued and trying
/// again later (so a shutdown is never held up by another process's run).
const WORKER_LOCK_WAIT_SECS: u64 = 10;

/// The API keys of MEDALLION_API_KEYS and of the keys file.
fn api_keys(file: Option<&std::path::Path>) -> Result<ApiKeys, Failure> {
    let mut keys = ApiKeys::default();
    if let Ok(env) = std::env::var("MEDALLION_API_KEYS") {
        keys.add(&env, "MEDALLION_API_KEYS").map_err(Failure::usage)?;
    }
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| Failure::usage(format!("--api-keys-file {}: {e}", f.display())))?;
        keys.add(&text, &format!("--api-keys-file {}", f.display())).map_err(Failure::usage)?;
    }
    Ok(keys)
}

pub async fn run(g: &Globals, a: ServeArgs) -> Result<u8, Failure> {
    let keys = api_keys(a.api_keys_file.as_deref())?;
    if keys.is_empty() && !a.insecure_no_auth {
        return Err(Failure::usage(
            "no API keys: set MEDALLION_API_KEYS or --api-keys-file (role:key entries, roles ingest, operator, reader), or pass --insecure-no-auth for a local experiment",
        ));
    }
    if a.insecure_no_auth {
        tracing::warn!("--insecure-no-auth: every request is allowed without an API key");
    }
    let schedule = a.schedule.as_deref().map(Cron::parse).transpose().map_err(Failure::usage)?;
    if a.request_timeout == 0 || a.max_upload_bytes == 0 || a.read_connections == 0 {
        return Err(Failure::usage("--request-timeout, --max-upload-bytes and --read-connections must be above 0"));
    }
    let mut ctx = orchestrate::open_context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    ctx.lock_wait = ctx.lock_wait.min(Duration::from_secs(WORKER_LOCK_WAIT_SECS));
    // Migrations once, at start (readiness only checks them).
    orchestrate::connect(&ctx).await?.close().await;
    let landing = ctx.landing.clone().ok_or_else(|| Failure::usage("serve needs a landing zone"))?;
    // `--watch`: the watcher runs dates itself, through the lake lock like the worker.
    let watch = if a.watch {
        let w = crate::watch::load()?;
        let wctx = orchestrate::open_context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
        Some((w, wctx, std::sync::Arc::new(tokio::sync::Notify::new())))
    } else {
        None
    };
    let state = AppState::new(StateParts {
        lake: ctx.lake.clone(),
        landing,
        warehouse_url: ctx.warehouse_url.clone(),
        keys,
        insecure_no_auth: a.insecure_no_auth,
        metrics: Metrics::new(),
        jobs: JobQueue::default(),
        limits: Limits { max_upload: a.max_upload_bytes, request_timeout: Duration::from_secs(a.request_timeout) },
        pool_size: a.read_connections,
        watch_wake: watch.as_ref().map(|(_, _, n)| n.clone()),
    });
    crate::serve::serve(state, ctx, ServeOptions { listen: a.listen, schedule: schedule.map(|c| (c, a.catch_up_days)), watch }).await
}
