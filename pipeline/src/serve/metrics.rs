//! `GET /metrics`: Prometheus text format. Two kinds of series:
//!
//! - counters and histograms of what THIS server did since it started (runs by final status,
//!   stage durations, rows landed / valid / rejected / duplicate and quarantined files by
//!   partner and dataset, uploads by result): `medallion_server_*`, `medallion_stage_*`,
//!   `medallion_rows_total`, `medallion_quarantined_files_total`, `medallion_uploads_total`;
//! - gauges read from the run ledger at each scrape, so that runs made by `medallion run`,
//!   cron or Airflow count too and a restart loses nothing: `medallion_ledger_runs{status}`,
//!   `medallion_last_success_timestamp_seconds{stage}` and `medallion_feed_lag_seconds`
//!   (seconds since the end of the newest run date with a landed feed, per partner and
//!   dataset).
//!
//! No label ever carries a key, a URL or a password.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use gold::warehouse::Param;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Reader;
use super::error::ApiError;
use super::state::AppState;
use crate::orchestrate::RunOutcome;
use crate::stage::StageReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedLabel {
    partner: String,
    dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RowsLabel {
    partner: String,
    dataset: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

/// The server's own counters (cheap to clone: every metric is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    runs: Family<StatusLabel, Counter>,
    stage_seconds: Family<StageLabel, Histogram>,
    rows: Family<RowsLabel, Counter>,
    quarantined: Family<FeedLabel, Counter>,
    uploads: Family<ResultLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let runs = Family::<StatusLabel, Counter>::default();
        r.register("medallion_server_runs", "Runs this server executed, by final status", runs.clone());
        let stage_seconds = Family::<StageLabel, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.05, 2.0, 16)));
        r.register("medallion_stage_duration_seconds", "Duration of the stages this server ran (retries included)", stage_seconds.clone());
        let rows = Family::<RowsLabel, Counter>::default();
        r.register("medallion_rows", "Rows of the runs this server executed: landed (bronze), valid, rejected and duplicate (silver)", rows.clone());
        let quarantined = Family::<FeedLabel, Counter>::default();
        r.register("medallion_quarantined_files", "Feed files bronze quarantined in the runs this server executed", quarantined.clone());
        let uploads = Family::<ResultLabel, Counter>::default();
        r.register("medallion_uploads", "Feed uploads (POST /v1/feeds) by result: created, already_received, refused", uploads.clone());
        Metrics { registry: Arc::new(r), runs, stage_seconds, rows, quarantined, uploads }
    }

    /// Counts an upload's result.
    pub fn upload(&self, result: &str) {
        self.uploads.get_or_create(&ResultLabel { result: result.into() }).inc();
    }

    /// Counts a run this server finished (or that failed before it could start a stage).
    pub fn run_finished(&self, status: &str) {
        self.runs.get_or_create(&StatusLabel { status: status.into() }).inc();
    }

    /// Counts a finished run's stages and rows.
    pub fn record(&self, o: &RunOutcome) {
        self.run_finished(o.summary.status.as_str());
        for s in &o.stages {
            self.stage_seconds.get_or_create(&StageLabel { stage: s.stage.name().into() }).observe(s.seconds);
            match &s.report {
                StageReport::Bronze(r) => {
                    for f in &r.feeds {
                        let (partner, dataset) = (f.feed.partner.clone(), f.feed.dataset.name().to_string());
                        match f.action {
                            bronze::LandAction::Landed => {
                                self.rows.get_or_create(&RowsLabel { partner, dataset, outcome: "landed".into() }).inc_by(f.feed.rows);
                            }
                            bronze::LandAction::Quarantined => {
                                self.quarantined.get_or_create(&FeedLabel { partner, dataset }).inc();
                            }
                            _ => {}
                        }
                    }
                }
                StageReport::Silver(r) => {
                    for f in &r.feeds {
                        for (outcome, n) in [("valid", f.valid), ("rejected", f.rejected), ("duplicate", f.duplicate)] {
                            self.rows.get_or_create(&RowsLabel { partner: f.partner.clone(), dataset: f.dataset.clone(), outcome: outcome.into() }).inc_by(n);
                        }
                    }
                }
                StageReport::Gold(_) | StageReport::Skipped(_) => {}
            }
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("api_key" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "No valid API key", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the reader role", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The warehouse cannot be read", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
async fn metrics(_: Reader, State(state): State<AppState>) -> Result<Response, ApiError> {
    let ledger = ledger_registry(&state).await?;
    let mut out = String::new();
    encode_registry(&mut out, &state.metrics.registry).and_then(|_| encode_registry(&mut out, &ledger)).and_then(|_| encode_eof(&mut out)).map_err(|e| ApiError::internal(format!("encoding the metrics: {e}")))?;
    let mut res = out.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(res)
}

/// A PostgreSQL or SQLite timestamp as text, in seconds since the epoch.
fn epoch_seconds(s: &str) -> Option<f64> {
    let t = crate::ledger::parse_timestamp(s)?;
    Some(t.timestamp_millis() as f64 / 1000.0)
}

/// The gauges read from the ledger (a warehouse without a ledger yet has none).
async fn ledger_registry(state: &AppState) -> Result<Registry, ApiError> {
    let mut r = Registry::default();
    let d = state.dialect();
    let t = |n: &str| d.table("medallion", n);
    let runs = Family::<StatusLabel, Gauge>::default();
    for row in state.query(&format!("SELECT status, CAST(COUNT(*) AS TEXT) FROM {} GROUP BY status", t("runs")), &[]).await? {
        if let (Some(status), Some(n)) = (row[0].clone(), row[1].as_deref().and_then(|n| n.parse::<i64>().ok())) {
            runs.get_or_create(&StatusLabel { status }).set(n);
        }
    }
    r.register("medallion_ledger_runs", "Runs recorded in the run ledger by status (every process: serve, run, schedule, Airflow)", runs);
    let last = Family::<StageLabel, Gauge<f64, AtomicU64>>::default();
    let sql = format!("SELECT stage, {} FROM {} WHERE status = 'completed' GROUP BY stage", d.text("MAX(finished_at)"), t("jobs"));
    for row in state.query(&sql, &[]).await? {
        if let (Some(stage), Some(ts)) = (row[0].clone(), row[1].as_deref().and_then(epoch_seconds)) {
            last.get_or_create(&StageLabel { stage }).set(ts);
        }
    }
    r.register("medallion_last_success_timestamp_seconds", "When each stage last completed (any process), from the ledger", last);
    let lag = Family::<FeedLabel, Gauge<f64, AtomicU64>>::default();
    let sql = format!("SELECT partner_id, dataset, CAST(MAX(run_date) AS TEXT) FROM {} WHERE status = $1 GROUP BY partner_id, dataset", t("feeds"));
    let now = chrono::Utc::now();
    for row in state.query(&sql, &[Param::text("landed")]).await? {
        let date = row[2].as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        if let (Some(partner), Some(dataset), Some(date)) = (row[0].clone(), row[1].clone(), date) {
            let end = date.succ_opt().unwrap_or(date).and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
            lag.get_or_create(&FeedLabel { partner, dataset }).set((now - end).num_milliseconds() as f64 / 1000.0);
        }
    }
    r.register("medallion_feed_lag_seconds", "Seconds since the end of the newest run date with a landed feed, per partner and dataset", lag);
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_of_both_dialects_parse() {
        assert_eq!(super::epoch_seconds("1970-01-01T00:00:01.500Z"), Some(1.5));
        assert_eq!(super::epoch_seconds("1970-01-01 00:00:02.25+00"), Some(2.25));
        assert_eq!(super::epoch_seconds("yesterday"), None);
    }
}
