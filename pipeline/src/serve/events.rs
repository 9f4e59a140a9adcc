//! `POST /v1/events/s3`: S3 event notifications — MinIO's webhook target, or any server
//! posting the AWS event shape (`{"Records": [{"s3": {"object": {"key": …}}}]}`) — wake the
//! watcher of `serve --watch` for a poll at once instead of at its next interval. The event
//! only says "look now": what runs is still decided from the landing zone and the ledger, so
//! a lost, repeated or forged event can neither skip nor duplicate a run. Role `ingest` or
//! `operator` (MinIO sends the key as `Authorization: Bearer <key>`, its `auth_token`).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{authorize, Role};
use super::error::{ApiError, ApiJson, Problem};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(s3_event))
}

/// A request whose key may send events: role `ingest` or `operator`.
pub struct EventSender;

impl FromRequestParts<AppState> for EventSender {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authorize(state, parts, Role::Ingest).or_else(|_| authorize(state, parts, Role::Operator)).map(|_| EventSender)
    }
}

/// An S3 event notification (the fields medallion reads; others are ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct S3Event {
    /// MinIO's top-level `bucket/key` of the first record.
    #[serde(rename = "Key", default)]
    pub key: Option<String>,
    #[serde(rename = "Records", default)]
    pub records: Vec<S3Record>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct S3Record {
    #[serde(rename = "eventName", default)]
    pub event_name: Option<String>,
    pub s3: S3Entity,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct S3Entity {
    pub object: S3Object,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct S3Object {
    /// The object key, URL-encoded as S3 sends it.
    pub key: String,
}

/// What the event did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventAccepted {
    /// The object keys the event names (decoded).
    pub keys: Vec<String>,
    /// The watcher polls the landing zone now.
    pub polling: bool,
}

#[utoipa::path(post, path = "/v1/events/s3", tag = "events", security(("api_key" = [])), request_body = S3Event, responses(
    (status = 202, description = "The watcher polls the landing zone now", body = EventAccepted),
    (status = 400, description = "Not an S3 event notification", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the ingest or operator role", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The service runs without --watch", body = Problem, content_type = "application/problem+json"),
))]
async fn s3_event(_: EventSender, State(state): State<AppState>, ApiJson(event): ApiJson<S3Event>) -> Result<Response, ApiError> {
    let Some(wake) = &state.watch_wake else {
        return Err(ApiError::conflict("this service runs without --watch: S3 events have nothing to wake"));
    };
    let decode = |k: &str| url::form_urlencoded::parse(format!("k={k}").as_bytes()).map(|(_, v)| v.into_owned()).next().unwrap_or_default();
    let mut keys: Vec<String> = event.records.iter().map(|r| decode(&r.s3.object.key)).collect();
    if keys.is_empty() {
        keys.extend(event.key.as_deref().map(decode));
    }
    if keys.is_empty() {
        return Err(ApiError::bad_request("an S3 event notification names at least one object (Records[].s3.object.key)"));
    }
    let events: Vec<&str> = event.records.iter().filter_map(|r| r.event_name.as_deref()).collect();
    tracing::info!(keys = ?keys, events = ?events, "S3 event notification: the watcher polls now");
    wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(EventAccepted { keys, polling: true })).into_response())
}
