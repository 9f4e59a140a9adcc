//! `medallion serve`: the pipeline as an HTTP service on the same lake and warehouse, with
//! nothing a second code path could get wrong — uploads go through bronze's ingest checks,
//! runs through `orchestrate` (lake lock, ledger, retries), reads through the warehouse.
//!
//! Guarantees: the OpenAPI document (`/openapi.json`, browsable at `/docs`) is generated from
//! the handlers; every error is `application/problem+json`; request bodies are capped (the
//! upload limit) and every request but an upload has a time limit (an upload may not stall
//! longer than it); one access-log line per request (method, path, status, latency — never a
//! header, so never a key); the first SIGTERM / SIGINT stops accepting, lets in-flight
//! requests and the running stage finish (the run is then recorded cancelled; queued runs
//! stay queued for the next start) and exits 0; a second one exits at once (130).

pub mod auth;
pub mod dashboard;
pub mod docs;
pub mod error;
pub mod events;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod runs;
pub mod state;
pub mod upload;
// ── Read endpoints (branch serve-read): their `pub mod …;` lines go here. ──
pub mod analytics;
pub mod catalogue;
pub mod cursor;
pub mod feeds;
pub mod products;
pub mod silver_read;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub use state::AppState;

use crate::orchestrate::RunContext;
use crate::{exit, Failure};

/// Every endpoint with a request time limit, with its OpenAPI operations. The read endpoints
/// (branch serve-read) merge their routers at the marked place, one line each.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(health::router())
        .merge(runs::router())
        .merge(metrics::router())
        .merge(events::router())
        // ── Read endpoints (branch serve-read): `.merge(<module>::router())` lines go here. ──
        .merge(products::router())
        .merge(analytics::router())
        .merge(feeds::router())
}

/// The largest body of an endpoint other than the upload (whose limit is `--max-upload-bytes`,
/// checked while streaming).
const MAX_JSON_BODY: usize = 1 << 20;

/// The whole service: [`api_router`] under the request timeout and body cap, the upload
/// endpoint (its own size and stall limits), `/openapi.json`, `/docs`, problem documents for
/// every error, the access log and panic containment.
pub fn app(state: AppState) -> Router {
    let limits = state.limits.clone();
    let (router, doc) = api_router()
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(RequestBodyLimitLayer::new(MAX_JSON_BODY))
        .merge(upload::router())
        .split_for_parts();
    let json = Arc::new(serde_json::to_string_pretty(&doc).unwrap_or_default());
    let html = Arc::new(docs::render(&doc));
    router
        .route("/openapi.json", get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json.to_string()) }))
        .route("/docs", get(move || async move { Html(html.to_string()) }))
        .merge(dashboard::router())
        .fallback(|| async { ApiError::not_found("no such endpoint: see /docs") })
        .layer(axum::middleware::map_response(problem_for_bare_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<axum::body::Body>| tracing::info_span!("http", method = %req.method(), path = %req.uri().path()))
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "request");
                })
                .on_failure(()),
        )
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| ApiError::internal("internal error (this is a bug, please report it)").into_response()))
        .with_state(state)
}

/// Errors produced outside our handlers (timeouts, body cap, 405s, rejections) become
/// problem documents too; their other headers (e.g. `Allow`) are kept.
async fn problem_for_bare_errors(res: Response) -> Response {
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    // Problem documents, and the dashboard's own HTML error pages, are kept as they are.
    let is_problem = content_type.starts_with(b"application/problem+json") || content_type.starts_with(b"text/html");
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return res;
    }
    let detail = match status {
        StatusCode::REQUEST_TIMEOUT => "the request took longer than the request timeout".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than the server accepts".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not accept this method: see /docs".to_string(),
        s => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => exit::UNAVAILABLE,
        s if s.is_server_error() => exit::FAILED,
        _ => exit::USAGE,
    };
    let (mut parts, _) = res.into_parts();
    let problem = ApiError::new(status, code, detail).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    Response::from_parts(parts, problem.into_body())
}

/// How to serve.
pub struct ServeOptions {
    pub listen: String,
    /// `--schedule`: the in-service scheduler's cron, and its catch-up window in days.
    pub schedule: Option<(crate::schedule::Cron, u32)>,
    /// `--watch`: the watcher's configuration, its own run context and its wake-up.
    pub watch: Option<(crate::watch::Watch, RunContext, Arc<tokio::sync::Notify>)>,
}

/// Serves until the first SIGTERM / SIGINT, then shuts down gracefully (see the module doc).
/// Prints `listening on http://ADDR` on stdout once the socket is bound.
pub async fn serve(state: AppState, ctx: RunContext, opts: ServeOptions) -> Result<u8, Failure> {
    let listener = tokio::net::TcpListener::bind(&opts.listen).await.map_err(|e| Failure::usage(format!("--listen {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(|e| Failure::failed(format!("--listen {}: {e}", opts.listen)))?;
    let worker = tokio::spawn(state.jobs.clone().worker(ctx, state.metrics.clone()));
    let scheduler = opts.schedule.map(|(cron, days)| tokio::spawn(jobs::schedule(state.clone(), cron, days)));
    let watcher = opts.watch.map(|(w, wctx, wake)| {
        let stop = wctx.stop.clone();
        let task = tokio::spawn(async move {
            if let Err(f) = crate::watch::watch(wctx, w, false, Some(wake)).await {
                tracing::error!("the watcher stopped: {}", f.message);
            }
        });
        (stop, task)
    });
    crate::out!("medallion serve: listening on http://{addr}");
    tracing::info!("serving the lake {} and the warehouse {} (API docs at http://{addr}/docs)", state.lake.describe(&object_store::path::Path::from("")), state.warehouse_display);
    let shutdown = {
        let jobs = state.jobs.clone();
        async move {
            first_signal_then_arm_second().await;
            eprintln!("medallion serve: shutting down: no new requests; the running stage finishes (send the signal again to stop at once)");
            jobs.shutdown();
        }
    };
    let served = axum::serve(listener, app(state.clone())).with_graceful_shutdown(shutdown).await;
    state.jobs.shutdown();
    if let Some(s) = scheduler {
        s.abort();
    }
    if let Err(e) = worker.await {
        tracing::error!("the run worker ended abnormally: {e}");
    }
    if let Some((stop, task)) = watcher {
        // The watcher's running stage finishes; it starts no other.
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = task.await {
            tracing::error!("the watcher ended abnormally: {e}");
        }
    }
    state.close_pool().await;
    served.map_err(|e| Failure::failed(format!("serving on {addr}: {e}")))?;
    eprintln!("medallion serve: stopped");
    Ok(exit::OK)
}

/// Resolves at the first SIGTERM / SIGINT; a second one exits the process at once (130).
async fn first_signal_then_arm_second() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the server runs until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("medallion serve: second signal: exiting now");
        std::process::exit(130);
    });
}
