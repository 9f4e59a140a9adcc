//! Every error the service returns is an RFC 9457 `application/problem+json` document
//! carrying the same message and exit-code class as the CLI would print (`exit_class`,
//! `exit_code`). Messages come from the typed errors, which already redact passwords from
//! URLs; API keys never reach an error (auth rejects without echoing them).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::{exit, Failure};

/// The problem document (RFC 9457) with the CLI's exit code and its class.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` or `urn:medallion:problem:<class>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    pub status: u16,
    /// What went wrong, in the CLI's words.
    pub detail: String,
    /// The CLI's exit-code class: usage, unavailable, nothing_to_do, locked or failed.
    pub exit_class: String,
    /// The exit code `medallion` would have returned.
    pub exit_code: u8,
}

/// An error answered as a problem document.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub exit_code: u8,
    /// Extra headers (WWW-Authenticate on 401, Retry-After on 503).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, exit_code: u8, detail: impl Into<String>) -> Self {
        ApiError { status, detail: detail.into(), exit_code, headers: Vec::new() }
    }

    /// A malformed request (bad parameter, body or header): 400, usage.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, exit::USAGE, detail)
    }

    /// A well-formed request the data refuses (e.g. a feed that breaks the contract): 422.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, exit::USAGE, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, exit::USAGE, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, exit::USAGE, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, exit::UNAVAILABLE, detail).with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, exit::FAILED, detail)
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn problem(&self) -> Problem {
        let class = exit::class(self.exit_code);
        Problem {
            kind: format!("urn:medallion:problem:{class}"),
            title: self.status.canonical_reason().unwrap_or("Error").to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            exit_class: class.to_string(),
            exit_code: self.exit_code,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The CLI's exit-code policy, as HTTP: usage 400, unavailable 503, locked 409, nothing to do
/// 404, anything else 500.
impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match f.code {
            exit::USAGE => ApiError::bad_request(f.message),
            exit::UNAVAILABLE => ApiError::unavailable(f.message),
            exit::LOCKED => ApiError::new(StatusCode::CONFLICT, exit::LOCKED, f.message),
            exit::NOTHING_TO_DO => ApiError::new(StatusCode::NOT_FOUND, exit::NOTHING_TO_DO, f.message),
            code => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, f.message),
        }
    }
}

impl From<gold::WarehouseError> for ApiError {
    fn from(e: gold::WarehouseError) -> Self {
        ApiError::from(Failure::from(e))
    }
}

impl From<lake::StoreError> for ApiError {
    fn from(e: lake::StoreError) -> Self {
        ApiError::from(Failure::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.problem(), self.headers)
    }
}

/// A problem document as a response.
pub fn problem_response(p: &Problem, headers: Vec<(header::HeaderName, HeaderValue)>) -> Response {
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut res = (StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    for (k, v) in headers {
        res.headers_mut().insert(k, v);
    }
    res
}

/// `Query<T>` whose rejection is a problem document (400).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `Json<T>` whose rejection is a problem document (400 malformed, 415 not JSON, 422 wrong
/// fields, 413 too large).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(j) => Ok(ApiJson(j.0)),
            Err(e) => Err(ApiError::new(e.status(), exit::USAGE, e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_statuses_and_classes() {
        let cases = [
            (Failure::usage("bad"), 400, "usage"),
            (Failure::new(exit::UNAVAILABLE, "down"), 503, "unavailable"),
            (Failure::new(exit::LOCKED, "held"), 409, "locked"),
            (Failure::failed("broken"), 500, "failed"),
            (Failure::new(exit::NOTHING_TO_DO, "none"), 404, "nothing_to_do"),
        ];
        for (f, status, class) in cases {
            let code = f.code;
            let p = ApiError::from(f).problem();
            assert_eq!((p.status, p.exit_class.as_str(), p.exit_code), (status, class, code));
            assert_eq!(p.kind, format!("urn:medallion:problem:{class}"));
        }
    }
}
