//! `/v1/runs`: queue a run (`POST`, role operator), list and read runs (`GET`, role reader:
//! from the run ledger, so CLI, cron and Airflow runs appear too), cancel one (`DELETE`,
//! role operator: queued -> cancelled; running here -> stops at its next stage boundary).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemas::{JobStatus, RunDate};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Operator, Reader};
use super::error::{ApiError, ApiJson, ApiQuery, Problem};
use super::jobs::Cancelled;
use super::state::AppState;
use crate::ledger::{self, RunFilter, RunRecord};
use crate::stage::Stage;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_run, list_runs)).routes(routes!(get_run, cancel_run))
}

/// A run to queue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The run date (YYYY-MM-DD).
    #[schema(example = "2026-11-20")]
    pub date: String,
    /// Stages to run (bronze, silver, gold); all three when absent. Run in pipeline order.
    #[serde(default)]
    pub stages: Option<Vec<String>>,
}

/// A queued run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunAccepted {
    pub run_id: String,
    /// queued.
    pub status: String,
    /// Where to poll it.
    pub href: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this run date (YYYY-MM-DD).
    pub date: Option<String>,
    /// Only runs in this status: queued, running, completed, failed, skipped, abandoned, cancelled.
    pub status: Option<String>,
    /// At most this many runs, newest first (default 50, at most 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunList {
    pub runs: Vec<RunRecord>,
}

/// What a cancellation did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelResult {
    pub run_id: String,
    /// cancelled (it was queued) or cancelling (it stops at its next stage boundary).
    pub status: String,
}

pub fn parse_date(s: &str, what: &str) -> Result<RunDate, ApiError> {
    s.parse::<RunDate>().map_err(|_| ApiError::bad_request(format!("{what}: {s:?} is not a date (YYYY-MM-DD)")))
}

/// Parses stage names into pipeline order (all three when none are given).
pub fn parse_stages(names: Option<&[String]>) -> Result<Vec<Stage>, ApiError> {
    let Some(names) = names else { return Ok(Stage::ALL.to_vec()) };
    let mut stages = Vec::new();
    for s in names {
        stages.push(Stage::parse(s).ok_or_else(|| ApiError::unprocessable(format!("stages: unknown stage {s:?} (bronze, silver, gold)")))?);
    }
    if stages.is_empty() {
        return Err(ApiError::unprocessable("stages: give at least one stage (bronze, silver, gold), or leave it out for all three"));
    }
    stages.sort();
    stages.dedup();
    Ok(stages)
}

/// Queues a run and answers 202 with where to poll it.
pub async fn queue(state: &AppState, date: RunDate, stages: &[Stage]) -> Result<RunAccepted, ApiError> {
    let mut wh = state.writer().await?;
    let id = state.jobs.enqueue(&mut wh, date, "run", stages).await;
    wh.close().await;
    let id = id?;
    Ok(RunAccepted { href: format!("/v1/runs/{id}"), run_id: id, status: JobStatus::Queued.as_str().into() })
}

/// Queue a run of the pipeline for a date.
///
/// The server's worker runs queued runs one at a time under the lake lock, like `medallion run`.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", security(("api_key" = [])), request_body = RunRequest, responses(
    (status = 202, description = "Queued", body = RunAccepted),
    (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the operator role", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Unknown stage", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The warehouse cannot be reached", body = Problem, content_type = "application/problem+json"),
))]
async fn create_run(_: Operator, State(state): State<AppState>, ApiJson(req): ApiJson<RunRequest>) -> Result<Response, ApiError> {
    let date = parse_date(&req.date, "date")?;
    let stages = parse_stages(req.stages.as_deref())?;
    let accepted = queue(&state, date, &stages).await?;
    let location = HeaderValue::from_str(&accepted.href).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(accepted)).into_response())
}

/// List runs from the run ledger (every process's), newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", security(("api_key" = [])), params(RunsQuery), responses(
    (status = 200, description = "Runs", body = RunList),
    (status = 400, description = "Malformed parameter", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the reader role", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The warehouse cannot be reached", body = Problem, content_type = "application/problem+json"),
))]
async fn list_runs(_: Reader, State(state): State<AppState>, ApiQuery(q): ApiQuery<RunsQuery>) -> Result<Json<RunList>, ApiError> {
    let date = q.date.as_deref().map(|d| parse_date(d, "date")).transpose()?;
    let status = match q.status.as_deref() {
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| ApiError::bad_request(format!("status: unknown status {s:?}")))?),
        None => None,
    };
    let filter = RunFilter { date, status, run_id: None, limit: q.limit.unwrap_or(50).clamp(1, 1000) as usize };
    Ok(Json(RunList { runs: read_runs(&state, &filter).await? }))
}

async fn read_runs(state: &AppState, filter: &RunFilter) -> Result<Vec<RunRecord>, ApiError> {
    // A sharded run holds partner locks, not the lake lock: every live holder counts.
    let holders = crate::lock::live_holders(&state.lake).await.map_err(|e| ApiError::from(crate::Failure::from(e)))?;
    let mut wh = state.reader().await?;
    ledger::list_runs(&mut wh, filter, &holders).await.map_err(|e| {
        wh.discard();
        e.into()
    })
}

/// One run: its stages, attempts, counts and errors.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", security(("api_key" = [])), params(("id" = String, Path, description = "The run id")), responses(
    (status = 200, description = "The run", body = RunRecord),
    (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the reader role", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The warehouse cannot be reached", body = Problem, content_type = "application/problem+json"),
))]
async fn get_run(_: Reader, State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RunRecord>, ApiError> {
    let filter = RunFilter { run_id: Some(id.clone()), limit: 1, ..RunFilter::default() };
    read_runs(&state, &filter).await?.into_iter().next().map(Json).ok_or_else(|| ApiError::not_found(format!("no run {id:?} in the ledger")))
}

/// Cancel a run: a queued one is cancelled; a running one stops at its next stage boundary.
#[utoipa::path(delete, path = "/v1/runs/{id}", tag = "runs", security(("api_key" = [])), params(("id" = String, Path, description = "The run id")), responses(
    (status = 200, description = "Cancelled (it was queued)", body = CancelResult),
    (status = 202, description = "Cancelling: it stops at its next stage boundary", body = CancelResult),
    (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the operator role", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The run is finished, or runs in another process", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The warehouse cannot be reached", body = Problem, content_type = "application/problem+json"),
))]
async fn cancel_run(_: Operator, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut wh = state.writer().await?;
    let r = state.jobs.cancel(&mut wh, &id, "cancelled by DELETE /v1/runs").await;
    wh.close().await;
    let result = |status: &str| Json(CancelResult { run_id: id.clone(), status: status.into() });
    match r? {
        Cancelled::Queued => Ok((StatusCode::OK, result("cancelled")).into_response()),
        Cancelled::Stopping => Ok((StatusCode::ACCEPTED, result("cancelling")).into_response()),
        Cancelled::RunningElsewhere => Err(ApiError::conflict(format!("run {id} runs in another process (medallion run, schedule, Airflow or another server): stop it there"))),
        Cancelled::Finished(s) => Err(ApiError::conflict(format!("run {id} is already {s}"))),
        Cancelled::NotFound => Err(ApiError::not_found(format!("no run {id:?} in the ledger"))),
    }
}
