//! What the dashboard shows, read from the warehouse: the run ledger (runs, stages, feeds'
//! reconciliation, products diffs) and gold. Every query is bounded by a date range on an
//! indexed date column (or one date), so a page costs the same with a year of history.

use std::collections::BTreeMap;

use gold::warehouse::{Dialect, Param, Rows};
use schemas::RunDate;

use crate::serve::{ApiError, AppState};

/// One stage of a run.
#[derive(Debug, Clone)]
pub struct Job {
    pub stage: String,
    pub status: String,
    pub attempts: i64,
    pub seconds: Option<f64>,
    pub rows: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub date: String,
    pub kind: String,
    pub status: String,
    pub started_at: String,
    pub seconds: Option<f64>,
    pub error: Option<String>,
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone)]
pub struct Feed {
    pub feed_id: String,
    pub partner: String,
    pub dataset: String,
    pub file_name: String,
    pub status: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub rows_read: Option<i64>,
    pub valid: Option<i64>,
    pub rejected: Option<i64>,
    pub duplicate: Option<i64>,
}

impl Feed {
    /// read = valid + rejected + duplicate (None before silver ran).
    pub fn balanced(&self) -> Option<bool> {
        Some(self.rows_read? == self.valid? + self.rejected? + self.duplicate?)
    }
}

#[derive(Debug, Clone)]
pub struct ProductDiff {
    pub date: String,
    pub partner: String,
    pub counts: [i64; 5],
}

pub const DIFF_COLUMNS: [&str; 5] = ["inserted", "updated", "unchanged", "skipped", "duplicate"];

fn ledger(d: Dialect, name: &str) -> String {
    d.table("medallion", name)
}

fn gold(d: Dialect, name: &str) -> String {
    d.table("gold", name)
}

fn text(d: Dialect, expr: &str) -> String {
    d.text(expr)
}

fn int(v: &Option<String>) -> Option<i64> {
    v.as_deref().and_then(|s| s.parse().ok())
}

fn num(v: &Option<String>) -> f64 {
    v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0.0)
}

fn seconds(start: &Option<String>, end: &Option<String>) -> Option<f64> {
    let (s, e) = (crate::ledger::parse_timestamp(start.as_deref()?)?, crate::ledger::parse_timestamp(end.as_deref()?)?);
    Some((e - s).num_milliseconds() as f64 / 1000.0)
}

/// Whether the ledger exists yet (a fresh warehouse has no runs).
async fn has_ledger(state: &AppState) -> Result<bool, ApiError> {
    let mut r = state.reader().await?;
    Ok(r.table_exists("medallion", "runs").await?)
}

/// Runs whose date is in `from..=to`, newest first, with their stages.
pub async fn runs(state: &AppState, from: RunDate, to: RunDate) -> Result<Vec<Run>, ApiError> {
    if !has_ledger(state).await? {
        return Ok(Vec::new());
    }
    let d = state.dialect();
    let (f, t) = (Param::date(&from.to_string()), Param::date(&to.to_string()));
    let sql = format!(
        "SELECT run_id, CAST(run_date AS TEXT), kind, status, {}, {}, error FROM {} WHERE run_date >= $1 AND run_date <= $2 ORDER BY run_date DESC, started_at DESC LIMIT 2000",
        text(d, "started_at"),
        text(d, "finished_at"),
        ledger(d, "runs")
    );
    let rows = state.query(&sql, &[f.clone(), t.clone()]).await?;
    let sql = format!(
        "SELECT j.run_id, j.stage, j.status, CAST(j.attempts AS TEXT), {}, {}, CAST(j.rows AS TEXT), j.error FROM {} j JOIN {} r ON r.run_id = j.run_id \
         WHERE r.run_date >= $1 AND r.run_date <= $2",
        text(d, "j.started_at"),
        text(d, "j.finished_at"),
        ledger(d, "jobs"),
        ledger(d, "runs")
    );
    let mut jobs: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    for j in state.query(&sql, &[f, t]).await? {
        let job = Job {
            stage: j[1].clone().unwrap_or_default(),
            status: j[2].clone().unwrap_or_default(),
            attempts: int(&j[3]).unwrap_or(0),
            seconds: seconds(&j[4], &j[5]),
            rows: int(&j[6]),
            error: j[7].clone(),
        };
        jobs.entry(j[0].clone().unwrap_or_default()).or_default().push(job);
    }
    let order = |s: &str| ["bronze", "silver", "gold"].iter().position(|x| *x == s).unwrap_or(3);
    Ok(rows
        .into_iter()
        .map(|r| {
            let run_id = r[0].clone().unwrap_or_default();
            let mut js = jobs.remove(&run_id).unwrap_or_default();
            js.sort_by_key(|j| order(&j.stage));
            Run {
                date: r[1].clone().unwrap_or_default(),
                kind: r[2].clone().unwrap_or_default(),
                status: r[3].clone().unwrap_or_default(),
                started_at: r[4].clone().unwrap_or_default(),
                seconds: seconds(&r[4], &r[5]),
                error: r[6].clone(),
                jobs: js,
                run_id,
            }
        })
        .collect())
}

/// The feeds of one run date with their reconciliation, by partner.
pub async fn feeds(state: &AppState, date: RunDate) -> Result<Vec<Feed>, ApiError> {
    if !has_ledger(state).await? {
        return Ok(Vec::new());
    }
    let d = state.dialect();
    let sql = format!(
        "SELECT feed_id, partner_id, dataset, file_name, status, reason, detail, CAST(rows_read AS TEXT), CAST(valid AS TEXT), CAST(rejected AS TEXT), CAST(duplicate AS TEXT) \
         FROM {} WHERE run_date = $1 ORDER BY partner_id, dataset, feed_id",
        ledger(d, "feeds")
    );
    Ok(state
        .query(&sql, &[Param::date(&date.to_string())])
        .await?
        .into_iter()
        .map(|r| Feed {
            feed_id: r[0].clone().unwrap_or_default(),
            partner: r[1].clone().unwrap_or_default(),
            dataset: r[2].clone().unwrap_or_default(),
            file_name: r[3].clone().unwrap_or_default(),
            status: r[4].clone().unwrap_or_default(),
            reason: r[5].clone(),
            detail: r[6].clone(),
            rows_read: int(&r[7]),
            valid: int(&r[8]),
            rejected: int(&r[9]),
            duplicate: int(&r[10]),
        })
        .collect())
}

/// Products diffs of the dates in `from..=to`, newest first.
pub async fn product_diffs(state: &AppState, from: RunDate, to: RunDate) -> Result<Vec<ProductDiff>, ApiError> {
    if !has_ledger(state).await? {
        return Ok(Vec::new());
    }
    let d = state.dialect();
    let sql = format!(
        "SELECT CAST(run_date AS TEXT), partner_id, CAST(inserted AS TEXT), CAST(updated AS TEXT), CAST(unchanged AS TEXT), CAST(skipped AS TEXT), CAST(duplicate AS TEXT) \
         FROM {} WHERE run_date >= $1 AND run_date <= $2 ORDER BY run_date DESC, partner_id",
        ledger(d, "product_diffs")
    );
    Ok(state
        .query(&sql, &[Param::date(&from.to_string()), Param::date(&to.to_string())])
        .await?
        .into_iter()
        .map(|r| ProductDiff {
            date: r[0].clone().unwrap_or_default(),
            partner: r[1].clone().unwrap_or_default(),
            counts: [int(&r[2]), int(&r[3]), int(&r[4]), int(&r[5]), int(&r[6])].map(|v| v.unwrap_or(0)),
        })
        .collect())
}

/// Named series of (date, value) points, for a chart.
pub type Series = BTreeMap<String, Vec<(String, f64)>>;

fn series(rows: Rows) -> Series {
    let mut out: Series = BTreeMap::new();
    for r in rows {
        let (Some(date), Some(name)) = (r[0].clone(), r[1].clone()) else { continue };
        out.entry(name).or_default().push((date, num(&r[2])));
    }
    out
}

async fn gold_exists(state: &AppState) -> Result<bool, ApiError> {
    let mut r = state.reader().await?;
    Ok(r.table_exists("gold", "daily_sales").await?)
}

/// Net revenue per business date, one series per partner and currency.
pub async fn net_revenue(state: &AppState, from: RunDate, to: RunDate) -> Result<Series, ApiError> {
    if !gold_exists(state).await? {
        return Ok(Series::new());
    }
    let d = state.dialect();
    let sql = format!(
        "SELECT CAST(order_date AS TEXT), partner_id || ' (' || currency || ')', CAST(SUM(net_revenue) AS TEXT) FROM {} \
         WHERE order_date >= $1 AND order_date <= $2 GROUP BY order_date, partner_id, currency ORDER BY 1",
        gold(d, "daily_sales")
    );
    Ok(series(state.query(&sql, &[Param::date(&from.to_string()), Param::date(&to.to_string())]).await?))
}

/// Returned ÷ gross revenue per business date, one series per currency.
pub async fn return_rate(state: &AppState, from: RunDate, to: RunDate) -> Result<Series, ApiError> {
    if !gold_exists(state).await? {
        return Ok(Series::new());
    }
    let d = state.dialect();
    let sql = format!(
        "SELECT CAST(order_date AS TEXT), currency, CAST(CASE WHEN SUM(gross_revenue) > 0 THEN SUM(returned_revenue) * 1.0 / SUM(gross_revenue) ELSE 0 END AS TEXT) \
         FROM {} WHERE order_date >= $1 AND order_date <= $2 GROUP BY order_date, currency ORDER BY 1",
        gold(d, "daily_sales")
    );
    Ok(series(state.query(&sql, &[Param::date(&from.to_string()), Param::date(&to.to_string())]).await?))
}

/// The categories with the most revenue over the range: (category (currency), revenue).
pub async fn top_categories(state: &AppState, from: RunDate, to: RunDate, n: i64) -> Result<Vec<(String, f64)>, ApiError> {
    if !gold_exists(state).await? {
        return Ok(Vec::new());
    }
    let d = state.dialect();
    let sql = format!(
        "SELECT category || ' (' || currency || ')', CAST(SUM(daily_revenue) AS TEXT) FROM {} WHERE order_date >= $1 AND order_date <= $2 \
         GROUP BY category, currency ORDER BY SUM(daily_revenue) DESC, 1 LIMIT $3",
        gold(d, "category_kpis")
    );
    let rows = state.query(&sql, &[Param::date(&from.to_string()), Param::date(&to.to_string()), Param::int(n)]).await?;
    Ok(rows.into_iter().filter_map(|r| Some((r[0].clone()?, num(&r[1])))).collect())
}

/// Rejected ÷ read rows of all feeds, per run date.
pub async fn reject_rate(state: &AppState, from: RunDate, to: RunDate) -> Result<Series, ApiError> {
    if !has_ledger(state).await? {
        return Ok(Series::new());
    }
    let d = state.dialect();
    let sql = format!(
        "SELECT CAST(run_date AS TEXT), 'rejected share', CAST(CASE WHEN SUM(rows_read) > 0 THEN SUM(rejected) * 1.0 / SUM(rows_read) ELSE 0 END AS TEXT) \
         FROM {} WHERE run_date >= $1 AND run_date <= $2 AND rows_read IS NOT NULL GROUP BY run_date ORDER BY 1",
        ledger(d, "feeds")
    );
    Ok(series(state.query(&sql, &[Param::date(&from.to_string()), Param::date(&to.to_string())]).await?))
}
