//! The run ledger in the warehouse (schema `medallion` in PostgreSQL, `medallion_*` tables in
//! SQLite; created by the warehouse migrations): runs, their stage jobs, the feed registry
//! with each feed's reconciliation, and the products diff per run date.

use gold::warehouse::{quote_literal as q, Dialect};
use gold::{Warehouse, WarehouseError};
use serde::Serialize;

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn t(wh: &Warehouse, name: &str) -> String {
    wh.dialect().table("medallion", name)
}

fn opt(v: Option<&str>) -> String {
    v.map(q).unwrap_or_else(|| "NULL".into())
}

fn num(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into())
}

pub async fn start_run(wh: &mut Warehouse, run_id: &str, date: &str, kind: &str, stages: &[&str]) -> Result<(), WarehouseError> {
    let mut sql = format!(
        "INSERT INTO {} (run_id, run_date, kind, status, started_at, host, pid) VALUES ({}, {}, {}, 'running', {}, {}, {});",
        t(wh, "runs"),
        q(run_id),
        q(date),
        q(kind),
        q(&now()),
        q(&crate::lock::hostname()),
        std::process::id()
    );
    for s in stages {
        sql.push_str(&format!("INSERT INTO {} (run_id, stage, status) VALUES ({}, {}, 'queued');", t(wh, "jobs"), q(run_id), q(s)));
    }
    wh.execute(&sql).await.map(|_| ())
}

pub async fn job(
    wh: &mut Warehouse,
    run_id: &str,
    stage: &str,
    status: &str,
    attempts: u32,
    rows: Option<u64>,
    summary: Option<&serde_json::Value>,
    error: Option<&str>,
) -> Result<(), WarehouseError> {
    let finished = if status == "running" { "NULL".to_string() } else { q(&now()) };
    let started = if status == "running" { q(&now()) } else { "started_at".into() };
    let summary = summary.map(|s| s.to_string());
    let sql = format!(
        "UPDATE {} SET status = {}, attempts = {attempts}, started_at = {started}, finished_at = {finished}, rows = {}, summary = {}, error = {} \
         WHERE run_id = {} AND stage = {}",
        t(wh, "jobs"),
        q(status),
        num(rows),
        opt(summary.as_deref()),
        opt(error),
        q(run_id),
        q(stage)
    );
    wh.execute(&sql).await.map(|_| ())
}

pub async fn finish_run(wh: &mut Warehouse, run_id: &str, status: &str, error: Option<&str>) -> Result<(), WarehouseError> {
    let sql = format!(
        "UPDATE {} SET status = {}, finished_at = {}, error = {} WHERE run_id = {};\
         UPDATE {} SET status = 'skipped' WHERE run_id = {} AND status = 'queued'",
        t(wh, "runs"),
        q(status),
        q(&now()),
        opt(error),
        q(run_id),
        t(wh, "jobs"),
        q(run_id)
    );
    wh.execute(&sql).await.map(|_| ())
}

/// Mirrors the feed registry of `date`, with silver's reconciliation when there is one, and
/// the products diff.
pub async fn sync_feeds(wh: &mut Warehouse, date: &str, feeds: &[lake::registry::FeedRecord], silver: Option<&silver::SilverReport>) -> Result<(), WarehouseError> {
    let mut sql = format!("DELETE FROM {} WHERE run_date = {};", t(wh, "feeds"), q(date));
    for f in feeds {
        let rec = silver.and_then(|s| s.feeds.iter().find(|x| x.feed_id == f.feed_id));
        sql.push_str(&format!(
            "INSERT INTO {} (feed_id, run_date, partner_id, dataset, file_name, status, bytes, reason, detail, rows_read, valid, rejected, duplicate) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});",
            t(wh, "feeds"),
            q(&f.feed_id),
            q(&f.date.to_string()),
            q(&f.partner),
            q(f.dataset.name()),
            q(&f.file_name),
            q(f.status.as_str()),
            f.bytes,
            opt(f.reason.as_deref()),
            opt(f.detail.as_deref()),
            num(rec.map(|r| r.rows_read).or(Some(f.rows))),
            num(rec.map(|r| r.valid)),
            num(rec.map(|r| r.rejected)),
            num(rec.map(|r| r.duplicate)),
        ));
    }
    if let Some(s) = silver {
        sql.push_str(&format!("DELETE FROM {} WHERE run_date = {};", t(wh, "product_diffs"), q(date)));
        for d in &s.product_changes {
            sql.push_str(&format!(
                "INSERT INTO {} (run_date, partner_id, inserted, updated, unchanged, skipped, duplicate) VALUES ({}, {}, {}, {}, {}, {}, {});",
                t(wh, "product_diffs"),
                q(date),
                q(&d.partner),
                d.inserted,
                d.updated,
                d.unchanged,
                d.skipped,
                d.duplicate
            ));
        }
    }
    wh.execute(&sql).await.map(|_| ())
}

/// The last date a run of the whole pipeline completed (or had nothing to do), for the
/// scheduler's catch-up.
pub async fn last_done_date(wh: &mut Warehouse) -> Result<Option<String>, WarehouseError> {
    let sql = format!(
        "SELECT CAST(MAX(run_date) AS TEXT) FROM {} WHERE status IN ('completed', 'skipped') AND kind IN ('run', 'schedule', 'backfill')",
        t(wh, "runs")
    );
    Ok(wh.query_strings(&sql).await?.into_iter().next().and_then(|r| r.into_iter().next().flatten()))
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub runs: Vec<serde_json::Value>,
    pub feeds: Vec<serde_json::Value>,
    pub product_diffs: Vec<serde_json::Value>,
}

fn objects(cols: &[&str], rows: Vec<Vec<Option<String>>>) -> Vec<serde_json::Value> {
    rows.into_iter()
        .map(|r| {
            let m: serde_json::Map<String, serde_json::Value> =
                cols.iter().zip(r).map(|(c, v)| (c.to_string(), v.map(serde_json::Value::String).unwrap_or(serde_json::Value::Null))).collect();
            serde_json::Value::Object(m)
        })
        .collect()
}

pub async fn status(wh: &mut Warehouse, date: Option<&str>, limit: usize) -> Result<Status, WarehouseError> {
    let d = wh.dialect();
    let text = |c: &str| if d == Dialect::Postgres { format!("CAST({c} AS TEXT)") } else { c.to_string() };
    let filter = date.map(|x| format!(" WHERE run_date = {}", q(x))).unwrap_or_default();
    let run_cols = ["run_id", "run_date", "kind", "status", "started_at", "finished_at", "host", "pid", "error"];
    let sql = format!(
        "SELECT run_id, CAST(run_date AS TEXT), kind, status, {}, {}, host, CAST(pid AS TEXT), error FROM {}{filter} ORDER BY started_at DESC LIMIT {limit}",
        text("started_at"),
        text("finished_at"),
        t(wh, "runs")
    );
    let mut runs = objects(&run_cols, wh.query_strings(&sql).await?);
    let job_cols = ["stage", "status", "attempts", "rows", "started_at", "finished_at", "error"];
    for r in runs.iter_mut() {
        let id = r["run_id"].as_str().unwrap_or_default().to_string();
        let sql = format!(
            "SELECT stage, status, CAST(attempts AS TEXT), CAST(rows AS TEXT), {}, {}, error FROM {} WHERE run_id = {} \
             ORDER BY CASE stage WHEN 'bronze' THEN 1 WHEN 'silver' THEN 2 ELSE 3 END",
            text("started_at"),
            text("finished_at"),
            t(wh, "jobs"),
            q(&id)
        );
        let jobs = objects(&job_cols, wh.query_strings(&sql).await?);
        r["jobs"] = serde_json::Value::Array(jobs);
    }
    let latest = match date {
        Some(x) => Some(x.to_string()),
        None => wh.query_strings(&format!("SELECT CAST(MAX(run_date) AS TEXT) FROM {}", t(wh, "feeds"))).await?.into_iter().next().and_then(|r| r.into_iter().next().flatten()),
    };
    let (mut feeds, mut diffs) = (Vec::new(), Vec::new());
    if let Some(x) = latest {
        let feed_cols = ["feed_id", "run_date", "partner_id", "dataset", "file_name", "status", "rows_read", "valid", "rejected", "duplicate", "reason", "detail"];
        let sql = format!(
            "SELECT feed_id, CAST(run_date AS TEXT), partner_id, dataset, file_name, status, CAST(rows_read AS TEXT), CAST(valid AS TEXT), \
             CAST(rejected AS TEXT), CAST(duplicate AS TEXT), reason, detail FROM {} WHERE run_date = {} ORDER BY partner_id, dataset, feed_id",
            t(wh, "feeds"),
            q(&x)
        );
        feeds = objects(&feed_cols, wh.query_strings(&sql).await?);
        let diff_cols = ["run_date", "partner_id", "inserted", "updated", "unchanged", "skipped", "duplicate"];
        let sql = format!(
            "SELECT CAST(run_date AS TEXT), partner_id, CAST(inserted AS TEXT), CAST(updated AS TEXT), CAST(unchanged AS TEXT), CAST(skipped AS TEXT), \
             CAST(duplicate AS TEXT) FROM {} WHERE run_date = {} ORDER BY partner_id",
            t(wh, "product_diffs"),
            q(&x)
        );
        diffs = objects(&diff_cols, wh.query_strings(&sql).await?);
    }
    Ok(Status { runs, feeds, product_diffs: diffs })
}
