//! `GET /v1/feeds`, `GET /v1/feeds/{id}` and `GET /v1/feeds/{id}/rejects` (role reader):
//! the feed registry (bronze status, file-level quarantine reason, schema drift as
//! `extra_columns`) joined with silver's reconciliation of the feed (from the silver run record
//! of its date: rows read = valid + rejected + duplicate, warnings, rejection reasons), and the
//! feed's quarantined rows from silver's `quarantine` Delta table.
//!
//! - Listings are in feed-id order, keyset-paginated by feed number (`limit` default 100,
//!   max 1000). Without `date` the registry is listed and only the page's documents are read;
//!   a page may then hold fewer than `limit` feeds when `partner`/`status` skip many (at most
//!   10 x limit documents are read per page): follow `next_cursor` until it is null.
//! - Rejects are in row order, keyset-paginated by row number over one pinned Delta version
//!   of the quarantine table (like products: a silver re-run of the date between pages does
//!   not mix two runs' rejects).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use deltalake::datafusion::prelude::{col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use futures::{StreamExt, TryStreamExt};
use lake::registry::{parse_feed_id, FeedRecord, FeedStatus, Registry};
use schemas::silver as tables;
use schemas::{FeedStats, RunDate, SilverRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Reader;
use super::cursor::{self, PageError};
use super::error::{ApiError, Problem};
use super::products::check_partner;
use super::silver_read;
use super::state::AppState;
use crate::Failure;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Registry documents read per listing page without a date, per feed asked for.
const SCAN_FACTOR: usize = 10;
/// Registry documents read at once.
const READ_CONCURRENCY: usize = 16;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_feeds)).routes(routes!(get_feed)).routes(routes!(feed_rejects))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedsQuery {
    /// Only feeds of this run date (YYYY-MM-DD).
    #[param(format = Date)]
    date: Option<String>,
    /// Only this partner's feeds.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    partner: Option<String>,
    /// Only feeds in this bronze status: landing, landed, quarantined or abandoned.
    #[param(pattern = "^(landing|landed|quarantined|abandoned)$")]
    status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page, unchanged.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RejectsQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page, unchanged.
    pub cursor: Option<String>,
}

/// Silver's reconciliation of one feed in the latest silver run of its date.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciliation {
    /// The silver run's status: running, completed, failed, superseded or abandoned.
    pub run_status: String,
    pub rows_read: u64,
    pub valid: u64,
    pub rejected: u64,
    pub duplicate: u64,
    /// rows_read = valid + rejected + duplicate.
    pub balanced: bool,
    /// Warning code -> rows (values nulled, rows kept).
    pub warnings: BTreeMap<String, u64>,
    /// Rejection reason -> rows.
    pub reasons: BTreeMap<String, u64>,
}

/// A feed: its bronze registry entry and its silver reconciliation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    pub feed_id: String,
    pub partner: String,
    pub dataset: String,
    /// The run date it was landed for.
    pub date: String,
    pub file_name: String,
    /// Bronze status: landing, landed, quarantined or abandoned.
    pub status: String,
    /// File-level quarantine reason (invalid_utf8, invalid_csv, missing_column, ...).
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub sha256: String,
    pub bytes: u64,
    /// Data rows read by bronze (malformed ones included).
    pub rows: u64,
    pub malformed_rows: u64,
    /// The header, normalised.
    pub columns: Vec<String>,
    /// Schema drift: columns the contract does not define (kept in bronze, ignored by silver).
    pub extra_columns: Vec<String>,
    /// Extra columns renamed in bronze (`old -> new`).
    pub renamed_columns: Vec<String>,
    pub raw_path: String,
    pub bronze_path: Option<String>,
    pub ingested_at: String,
    /// Null until a silver run of its date processed it.
    pub silver: Option<Reconciliation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub items: Vec<Feed>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A quarantined row.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reject {
    /// Data row number in the file (1-based).
    pub row_number: i64,
    /// Line number in the file.
    pub line_number: i64,
    /// The first rule it broke (missing_<col>, invalid_<col>, invalid_range, malformed_row).
    pub reason: String,
    /// The raw values as sent: a JSON object text (column name -> value as sent), or the
    /// raw line of a malformed row.
    pub raw: String,
    /// `raw` parsed, when it is a JSON object.
    #[schema(value_type = Option<Object>)]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    pub run_date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectPage {
    pub feed_id: String,
    pub items: Vec<Reject>,
    pub next_cursor: Option<String>,
    /// The Delta version of silver `quarantine` every page of this listing reads (null when
    /// nothing was ever quarantined).
    pub snapshot_version: Option<i64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedsCursor {
    f: (Option<String>, Option<String>, Option<String>),
    /// The last feed number scanned.
    k: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectsCursor {
    feed: String,
    v: i64,
    k: i64,
}

fn reconciliation(record: &SilverRecord, stats: &FeedStats) -> Reconciliation {
    Reconciliation {
        run_status: record.status.as_str().to_string(),
        rows_read: stats.rows_read,
        valid: stats.valid,
        rejected: stats.rejected,
        duplicate: stats.duplicate,
        balanced: stats.balances(),
        warnings: stats.warnings.clone(),
        reasons: stats.reasons.clone(),
    }
}

fn feed(r: FeedRecord, silver: Option<&SilverRecord>) -> Feed {
    let rec = silver.and_then(|s| s.feeds.iter().find(|f| f.feed_id == r.feed_id).map(|f| reconciliation(s, f)));
    Feed {
        feed_id: r.feed_id,
        partner: r.partner,
        dataset: r.dataset.name().to_string(),
        date: r.date.to_string(),
        file_name: r.file_name,
        status: r.status.as_str().to_string(),
        reason: r.reason,
        detail: r.detail,
        sha256: r.sha256,
        bytes: r.bytes,
        rows: r.rows,
        malformed_rows: r.malformed_rows,
        columns: r.columns,
        extra_columns: r.extra_columns,
        renamed_columns: r.renamed_columns,
        raw_path: r.raw_path,
        bronze_path: r.bronze_path,
        ingested_at: r.ingested_at,
        silver: rec,
    }
}

/// The feeds with their silver reconciliation (one silver run record read per date).
async fn with_silver(state: &AppState, records: Vec<FeedRecord>) -> Result<Vec<Feed>, ApiError> {
    let mut runs: BTreeMap<RunDate, Option<SilverRecord>> = BTreeMap::new();
    for r in &records {
        if !runs.contains_key(&r.date) {
            let rec = silver::read_record(&state.lake, r.date).await.map_err(Failure::from)?;
            runs.insert(r.date, rec);
        }
    }
    Ok(records.into_iter().map(|r| {
        let s = runs.get(&r.date).and_then(Option::as_ref);
        feed(r, s)
    }).collect())
}

fn parse_status(s: &str) -> Result<FeedStatus, ApiError> {
    [FeedStatus::Landing, FeedStatus::Landed, FeedStatus::Quarantined, FeedStatus::Abandoned]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| ApiError::bad_request(format!("status: {s:?} is not one of landing, landed, quarantined, abandoned")))
}

fn feed_number(id: &str) -> Result<u64, ApiError> {
    parse_feed_id(id).ok_or_else(|| ApiError::bad_request(format!("feed id {id:?} is not a feed id (FD followed by at least five digits)")))
}

#[utoipa::path(
    get,
    path = "/v1/feeds",
    tag = "feeds",
    params(FeedsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page of feeds in feed-id order", body = FeedPage),
        (status = 400, description = "Bad date, partner, status, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role may not read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The lake is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_feeds(_: Reader, State(state): State<AppState>, Query(q): Query<FeedsQuery>) -> Result<Json<FeedPage>, ApiError> {
    let limit = cursor::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let date: Option<RunDate> = q.date.as_deref().map(|d| d.parse().map_err(|e| ApiError::bad_request(format!("date: {e}")))).transpose()?;
    if let Some(p) = &q.partner {
        check_partner(p)?;
    }
    let status = q.status.as_deref().map(parse_status).transpose()?;
    let filters = (date.map(|d| d.to_string()), q.partner.clone(), status.map(|s| s.as_str().to_string()));
    let after: Option<FeedsCursor> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    if let Some(c) = &after {
        if c.f != filters {
            return Err(PageError::OtherListing("date, partner, status").into());
        }
    }
    let start = after.as_ref().map_or(0, |c| c.k);
    let keep = |r: &FeedRecord| q.partner.as_ref().is_none_or(|p| &r.partner == p) && status.is_none_or(|s| r.status == s);
    let registry = Registry::new(&state.lake);
    let (records, more, last) = match date {
        Some(d) => {
            let mut all: Vec<(u64, FeedRecord)> = registry
                .feeds_for_date(d)
                .await
                .map_err(Failure::from)?
                .into_iter()
                .filter_map(|r| parse_feed_id(&r.feed_id).map(|n| (n, r)))
                .filter(|(n, r)| *n > start && keep(r))
                .collect();
            all.sort_by_key(|(n, _)| *n);
            let more = all.len() > limit;
            all.truncate(limit);
            let last = all.last().map(|(n, _)| *n);
            (all.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), more, last)
        }
        None => scan_registry(&state, start, limit, &keep).await?,
    };
    let next_cursor = match (more, last) {
        (true, Some(k)) => Some(cursor::encode(&FeedsCursor { f: filters, k })),
        _ => None,
    };
    Ok(Json(FeedPage { items: with_silver(&state, records).await?, next_cursor }))
}

/// Feeds after number `start` in id order, reading at most SCAN_FACTOR x limit registry
/// documents: (matching feeds, whether more may follow, the last number scanned).
async fn scan_registry(state: &AppState, start: u64, limit: usize, keep: &(dyn Fn(&FeedRecord) -> bool + Sync)) -> Result<(Vec<FeedRecord>, bool, Option<u64>), ApiError> {
    let prefix = lake::path(&schemas::paths::registry_feeds());
    let metas: Vec<_> = state.lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| ApiError::from(state.lake.classify(e)))?;
    let mut ids: Vec<u64> = metas
        .iter()
        .filter_map(|m| m.location.filename()?.strip_suffix(".json").and_then(parse_feed_id))
        .filter(|n| *n > start)
        .collect();
    ids.sort_unstable();
    let registry = Registry::new(&state.lake);
    let budget = limit * SCAN_FACTOR;
    let mut found = Vec::new();
    let mut last = None;
    let mut docs = futures::stream::iter(ids.iter().take(budget).copied())
        .map(|n| {
            let registry = &registry;
            async move { registry.get(&lake::registry::format_feed_id(n)).await.map(|r| (n, r)) }
        })
        .buffered(READ_CONCURRENCY);
    while let Some(doc) = docs.next().await {
        let (n, rec) = doc.map_err(Failure::from)?;
        last = Some(n);
        if let Some(r) = rec.filter(|r| keep(r)) {
            found.push(r);
            if found.len() == limit {
                break;
            }
        }
    }
    let more = last.is_some_and(|l| ids.last().is_some_and(|max| *max > l));
    Ok((found, more, last))
}

#[utoipa::path(
    get,
    path = "/v1/feeds/{id}",
    tag = "feeds",
    params(("id" = String, Path, description = "Feed id, e.g. FD00001", pattern = "^FD[0-9]{5,}$")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The feed: bronze status, reconciliation, quarantine reason, schema drift", body = Feed),
        (status = 400, description = "Not a feed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role may not read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The lake is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_feed(_: Reader, State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Feed>, ApiError> {
    let r = registered(&state, &id).await?;
    Ok(Json(with_silver(&state, vec![r]).await?.pop().expect("one feed in, one out")))
}

async fn registered(state: &AppState, id: &str) -> Result<FeedRecord, ApiError> {
    feed_number(id)?;
    Registry::new(&state.lake).get(id).await.map_err(Failure::from)?.ok_or_else(|| ApiError::not_found(format!("no feed {id} in the registry")))
}

#[utoipa::path(
    get,
    path = "/v1/feeds/{id}/rejects",
    tag = "feeds",
    params(("id" = String, Path, description = "Feed id, e.g. FD00001", pattern = "^FD[0-9]{5,}$"), RejectsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page of the feed's quarantined rows, in row order", body = RejectPage),
        (status = 400, description = "Not a feed id, bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role may not read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The cursor's snapshot was vacuumed: start again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The lake is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn feed_rejects(_: Reader, State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<RejectsQuery>) -> Result<Json<RejectPage>, ApiError> {
    let limit = cursor::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after: Option<RejectsCursor> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let r = registered(&state, &id).await?;
    if let Some(c) = &after {
        if c.feed != r.feed_id {
            return Err(PageError::OtherListing("feed id").into());
        }
    }
    let empty = |v| Json(RejectPage { feed_id: r.feed_id.clone(), items: Vec::new(), next_cursor: None, snapshot_version: v });
    let Some(snap) = silver_read::open(&state.lake, tables::QUARANTINE, after.as_ref().map(|c| c.v)).await? else {
        return Ok(empty(None));
    };
    let mut filter = col(tables::RUN_DATE).eq(lit(ScalarValue::Date32(Some(r.date.days_since_epoch())))).and(col("_feed_id").eq(lit(r.feed_id.as_str())));
    if let Some(c) = &after {
        filter = filter.and(col("_row_number").gt(lit(c.k)));
    }
    let rows = snap.rows(&snap.select(Some(filter), &["_row_number"], Some(limit + 1)).await?)?;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(rows.len().min(limit));
    for row in rows.into_iter().take(limit) {
        let int = |k: &str| row.get(k).and_then(serde_json::Value::as_i64);
        let text = |k: &str| row.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
        let bad = || ApiError::internal(format!("silver quarantine: unexpected row for feed {}", r.feed_id));
        let raw = text("raw").ok_or_else(bad)?;
        let values = serde_json::from_str::<serde_json::Value>(&raw).ok().and_then(|v| match v {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        });
        items.push(Reject {
            row_number: int("_row_number").ok_or_else(bad)?,
            line_number: int("_line_number").ok_or_else(bad)?,
            reason: text("reason").ok_or_else(bad)?,
            raw,
            values,
            run_date: text(tables::RUN_DATE).ok_or_else(bad)?,
        });
    }
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(cursor::encode(&RejectsCursor { feed: r.feed_id.clone(), v: snap.version, k: last.row_number })),
        _ => None,
    };
    Ok(Json(RejectPage { feed_id: r.feed_id.clone(), items, next_cursor, snapshot_version: Some(snap.version) }))
}
