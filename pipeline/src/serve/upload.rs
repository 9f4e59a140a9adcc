//! `POST /v1/feeds?partner=&dataset=&date=[&name=][&run=true]` (role ingest): the CSV body is
//! streamed into the landing zone through bronze's ingest path — the one `medallion ingest`
//! uses, with the same checks and refusals — and is never held whole. The upload limit is
//! checked on `Content-Length` before reading and while streaming; a body that stalls longer
//! than the request timeout is abandoned. Whatever is refused (bad parameters, oversize,
//! aborted, a different file of the same name) leaves nothing in the landing zone.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bronze::{FeedTarget, IngestError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Ingest;
use super::error::{ApiError, ApiQuery, Problem};
use super::runs::{parse_date, queue, RunAccepted};
use super::state::AppState;
use crate::exit;
use crate::stage::Stage;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The partner id (^[a-z0-9][a-z0-9_-]{0,63}$).
    pub partner: String,
    /// products, customers, orders, order_items, inventory or campaigns.
    pub dataset: String,
    /// The run date the feed is for (YYYY-MM-DD).
    pub date: String,
    /// The file name in the landing zone (ends in .csv). Default: `{dataset}-{first 16 hex
    /// digits of the content's SHA-256}.csv`, so the same content sent again is recognised.
    pub name: Option<String>,
    /// Queue a run of the date (all stages) once the feed is in.
    pub run: Option<bool>,
}

/// A feed in the landing zone.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedReceived {
    /// received (new), or already_received (the same content was there under this name).
    pub status: String,
    /// Where the feed is in the landing zone.
    pub path: String,
    /// SHA-256 of the content (hex).
    pub sha256: String,
    pub bytes: u64,
    /// The run queued by `run=true`.
    pub run: Option<RunAccepted>,
}

/// Why reading the body stopped.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body: {0}")]
    Body(#[from] axum::Error),
    #[error("the request body stalled for more than {0:?}")]
    Stalled(Duration),
}

fn ingest_error(e: IngestError) -> ApiError {
    match e {
        IngestError::Invalid(m) => ApiError::bad_request(m),
        e @ IngestError::Conflict { .. } => ApiError::conflict(e.to_string()),
        e @ IngestError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, exit::USAGE, e.to_string()),
        IngestError::Read { what, source } => match source.downcast::<BodyError>() {
            Ok(b) if matches!(*b, BodyError::Stalled(_)) => ApiError::new(StatusCode::REQUEST_TIMEOUT, exit::USAGE, format!("{what}: {b}; nothing was landed")),
            Ok(b) => ApiError::bad_request(format!("{what}: {b}; nothing was landed")),
            Err(other) => ApiError::bad_request(format!("{what}: {other}; nothing was landed")),
        },
        IngestError::Bronze(b) => ApiError::from(crate::Failure::from(b)),
    }
}

/// Upload a partner feed (CSV) into the landing zone.
///
/// The same checks and refusals as `medallion ingest`. 201 when received, 200 when the same
/// content was already there under this name.
#[utoipa::path(post, path = "/v1/feeds", tag = "feeds", security(("api_key" = [])), params(UploadQuery),
    request_body(content = String, content_type = "text/csv", description = "The feed, a CSV file with its header"),
    responses(
        (status = 201, description = "Received", body = FeedReceived),
        (status = 200, description = "Already received (same content, same name)", body = FeedReceived),
        (status = 400, description = "Bad partner, dataset, date or name, or a broken body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the ingest role", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body stalled", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A different file of the same name is there", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the upload limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The landing zone or warehouse cannot be reached", body = Problem, content_type = "application/problem+json"),
    ))]
async fn upload(_: Ingest, State(state): State<AppState>, ApiQuery(q): ApiQuery<UploadQuery>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let result = receive(&state, q, &headers, body).await;
    state.metrics.upload(match &result {
        Ok((StatusCode::CREATED, _)) => "created",
        Ok(_) => "already_received",
        Err(_) => "refused",
    });
    let (status, received) = result?;
    Ok((status, Json(received)).into_response())
}

async fn receive(state: &AppState, q: UploadQuery, headers: &HeaderMap, body: Body) -> Result<(StatusCode, FeedReceived), ApiError> {
    let date = parse_date(&q.date, "date")?;
    let target = FeedTarget::new(&q.partner, &q.dataset, date, q.name.as_deref()).map_err(ingest_error)?;
    let max = state.limits.max_upload;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ingest_error(IngestError::TooLarge { limit: max }));
    }
    let idle = state.limits.request_timeout;
    let chunks = futures::stream::unfold(body.into_data_stream(), move |mut s| async move {
        match tokio::time::timeout(idle, s.next()).await {
            Ok(Some(item)) => Some((item.map_err(BodyError::from), s)),
            Ok(None) => None,
            Err(_) => Some((Err(BodyError::Stalled(idle)), s)),
        }
    });
    let what = format!("the {} feed of {} for {date}", target.dataset.name(), target.partner);
    let done = bronze::ingest_stream(&state.landing, &target, &what, Box::pin(chunks), Some(max)).await.map_err(ingest_error)?;
    let status = if done.already_received { StatusCode::OK } else { StatusCode::CREATED };
    tracing::info!("{} {} ({} bytes, sha256 {})", if done.already_received { "already received" } else { "received" }, done.path, done.bytes, done.sha256);
    let run = if q.run.unwrap_or(false) { Some(queue(state, date, &Stage::ALL).await?) } else { None };
    let received = FeedReceived {
        status: if done.already_received { "already_received" } else { "received" }.into(),
        path: done.path,
        sha256: done.sha256,
        bytes: done.bytes,
        run,
    };
    Ok((status, received))
}
