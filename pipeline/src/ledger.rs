//! The run ledger in the warehouse (schema `medallion` in PostgreSQL, `medallion_*` tables in
//! SQLite): runs, their stage jobs, the feed registry with each feed's reconciliation, and the
//! products diff per run date. The ledger owns its tables: migration 3 below, applied through
//! the warehouse's versioned migrations (`Warehouse::migrate_with`) before the ledger's first
//! use on a connection. Every value is a bound parameter.

mod queue;

pub use queue::{cancel_queued, claim_run, date_pending, list_runs, next_queued, queue_run, run_status, Claim, RunFilter, RunRecord};

use schemas::{JobStatus, RunDate};
use gold::warehouse::{Dialect, Migration, Param, Statement};
use gold::{Warehouse, WarehouseError};
use serde::Serialize;

/// The ledger's migrations (version 3 was applied by the warehouse itself before the ledger
/// owned it: same version, name and statements, so existing warehouses see no change).
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 3, name: "run ledger", sql: run_ledger_ddl },
    Migration { version: 4, name: "run partners", sql: run_partners_ddl },
];

/// Migration 4: the partner set of a sharded run (`--partners`), comma-separated; NULL for a
/// run of every partner.
pub fn run_partners_ddl(d: Dialect) -> Vec<String> {
    let mut v = vec![format!("ALTER TABLE {} ADD COLUMN partners TEXT", d.table("medallion", "runs"))];
    if d == Dialect::Postgres {
        v.push("COMMENT ON COLUMN medallion.runs.partners IS 'The partners of a sharded run (--partners), comma-separated; NULL when the run covered every partner.'".into());
    }
    v
}

/// Migration 3: the run ledger (`medallion status` reads it): runs, their per-stage jobs, the
/// feed registry with each feed's reconciliation, and the products diff per run date.
pub fn run_ledger_ddl(d: Dialect) -> Vec<String> {
    let ts = if d == Dialect::Postgres { "TIMESTAMPTZ" } else { "TEXT" };
    let t = |n: &str| d.table("medallion", n);
    let mut v = vec![
        format!(
            "CREATE TABLE {} (\n    run_id TEXT PRIMARY KEY,\n    run_date DATE NOT NULL,\n    kind TEXT NOT NULL,\n    status TEXT NOT NULL,\n    \
             started_at {ts} NOT NULL,\n    finished_at {ts},\n    host TEXT NOT NULL,\n    pid BIGINT NOT NULL,\n    error TEXT\n)",
            t("runs")
        ),
        format!("CREATE INDEX runs_run_date_idx ON {} (run_date, started_at)", t("runs")),
        format!(
            "CREATE TABLE {} (\n    run_id TEXT NOT NULL,\n    stage TEXT NOT NULL,\n    status TEXT NOT NULL,\n    attempts BIGINT NOT NULL DEFAULT 0,\n    \
             started_at {ts},\n    finished_at {ts},\n    rows BIGINT,\n    summary TEXT,\n    error TEXT,\n    PRIMARY KEY (run_id, stage)\n)",
            t("jobs")
        ),
        format!(
            "CREATE TABLE {} (\n    feed_id TEXT PRIMARY KEY,\n    run_date DATE NOT NULL,\n    partner_id TEXT NOT NULL,\n    dataset TEXT NOT NULL,\n    \
             file_name TEXT NOT NULL,\n    status TEXT NOT NULL,\n    bytes BIGINT,\n    reason TEXT,\n    detail TEXT,\n    rows_read BIGINT,\n    \
             valid BIGINT,\n    rejected BIGINT,\n    duplicate BIGINT\n)",
            t("feeds")
        ),
        format!("CREATE INDEX feeds_run_date_idx ON {} (run_date)", t("feeds")),
        format!(
            "CREATE TABLE {} (\n    run_date DATE NOT NULL,\n    partner_id TEXT NOT NULL,\n    inserted BIGINT NOT NULL,\n    updated BIGINT NOT NULL,\n    \
             unchanged BIGINT NOT NULL,\n    skipped BIGINT NOT NULL,\n    duplicate BIGINT NOT NULL,\n    PRIMARY KEY (run_date, partner_id)\n)",
            t("product_diffs")
        ),
    ];
    if d == Dialect::Postgres {
        v.push("COMMENT ON TABLE medallion.runs IS 'One row per medallion run (run, backfill, schedule): status queued, running, completed, failed or skipped.'".into());
        v.push("COMMENT ON TABLE medallion.jobs IS 'The stages (bronze, silver, gold) of each run with their attempts, counts and errors.'".into());
        v.push("COMMENT ON TABLE medallion.feeds IS 'The feed registry (FD ids) with each feed''s reconciliation: rows_read = valid + rejected + duplicate.'".into());
    }
    v
}

/// Creates the ledger's tables if this warehouse lacks them (once per connection).
pub async fn migrate(wh: &mut Warehouse) -> Result<Vec<String>, WarehouseError> {
    wh.migrate_with(MIGRATIONS).await
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn t(wh: &Warehouse, name: &str) -> String {
    wh.dialect().table("medallion", name)
}

/// Parameters of one statement: `p` binds a value and returns its placeholder.
#[derive(Default)]
struct Args(Vec<Param>);

impl Args {
    fn p(&mut self, v: Param) -> String {
        self.0.push(v);
        format!("${}", self.0.len())
    }
}

fn stmt(sql: String, args: Args) -> Statement {
    Statement::new(sql, args.0)
}

pub async fn start_run(wh: &mut Warehouse, run_id: &str, date: RunDate, kind: &str, stages: &[&str]) -> Result<(), WarehouseError> {
    insert_run(wh, run_id, date, kind, JobStatus::Running, stages).await
}

/// Inserts a run in `status` (running, or queued by `serve`) with its stages as queued jobs.
async fn insert_run(wh: &mut Warehouse, run_id: &str, date: RunDate, kind: &str, status: JobStatus, stages: &[&str]) -> Result<(), WarehouseError> {
    migrate(wh).await?;
    let mut a = Args::default();
    let sql = format!(
        "INSERT INTO {} (run_id, run_date, kind, status, started_at, host, pid) VALUES ({}, {}, {}, {}, {}, {}, {})",
        t(wh, "runs"),
        a.p(Param::text(run_id)),
        a.p(Param::date(&date.to_string())),
        a.p(Param::text(kind)),
        a.p(Param::text(status.as_str())),
        a.p(Param::timestamp(&now())),
        a.p(Param::text(&crate::lock::hostname())),
        a.p(Param::int(std::process::id() as i64)),
    );
    let mut statements = vec![stmt(sql, a)];
    for s in stages {
        let mut a = Args::default();
        let sql = format!("INSERT INTO {} (run_id, stage, status) VALUES ({}, {}, 'queued')", t(wh, "jobs"), a.p(Param::text(run_id)), a.p(Param::text(s)));
        statements.push(stmt(sql, a));
    }
    wh.execute_all(&statements).await.map(|_| ())
}

/// Records the partner set of a sharded run.
pub async fn set_partners(wh: &mut Warehouse, run_id: &str, partners: &std::collections::BTreeSet<String>) -> Result<(), WarehouseError> {
    migrate(wh).await?;
    let list = partners.iter().cloned().collect::<Vec<_>>().join(",");
    let mut a = Args::default();
    let sql = format!("UPDATE {} SET partners = {} WHERE run_id = {}", t(wh, "runs"), a.p(Param::text(&list)), a.p(Param::text(run_id)));
    wh.execute_all(&[stmt(sql, a)]).await.map(|_| ())
}

pub async fn job(
    wh: &mut Warehouse,
    run_id: &str,
    stage: &str,
    status: JobStatus,
    attempts: u32,
    rows: Option<u64>,
    summary: Option<&serde_json::Value>,
    error: Option<&str>,
) -> Result<(), WarehouseError> {
    migrate(wh).await?;
    let running = status == JobStatus::Running;
    let summary = summary.map(|s| s.to_string());
    let mut a = Args::default();
    let sql = format!(
        "UPDATE {} SET status = {}, attempts = {}, started_at = {}, finished_at = {}, rows = {}, summary = {}, error = {} WHERE run_id = {} AND stage = {}",
        t(wh, "jobs"),
        a.p(Param::text(status.as_str())),
        a.p(Param::int(attempts as i64)),
        if running { a.p(Param::timestamp(&now())) } else { "started_at".into() },
        a.p(Param::Timestamp((!running).then(now))),
        a.p(Param::opt_count(rows)),
        a.p(Param::opt_text(summary.as_deref())),
        a.p(Param::opt_text(error)),
        a.p(Param::text(run_id)),
        a.p(Param::text(stage)),
    );
    wh.execute_with(&sql, &a.0).await.map(|_| ())
}

pub async fn finish_run(wh: &mut Warehouse, run_id: &str, status: JobStatus, error: Option<&str>) -> Result<(), WarehouseError> {
    migrate(wh).await?;
    let mut a = Args::default();
    let run = format!(
        "UPDATE {} SET status = {}, finished_at = {}, error = {} WHERE run_id = {}",
        t(wh, "runs"),
        a.p(Param::text(status.as_str())),
        a.p(Param::timestamp(&now())),
        a.p(Param::opt_text(error)),
        a.p(Param::text(run_id)),
    );
    let run = stmt(run, a);
    let mut a = Args::default();
    // Stages a cancelled run never reached are cancelled; otherwise skipped.
    let left = if status == JobStatus::Cancelled { JobStatus::Cancelled } else { JobStatus::Skipped };
    let jobs = format!("UPDATE {} SET status = '{}' WHERE run_id = {} AND status = 'queued'", t(wh, "jobs"), left.as_str(), a.p(Param::text(run_id)));
    wh.execute_all(&[run, stmt(jobs, a)]).await.map(|_| ())
}

/// Marks the runs of a dead lock holder (`host`, `pid`) still recorded as running as
/// `abandoned`, with why; their running jobs too (their queued ones are skipped). Called by
/// the run that took over that holder's stale lake lock. Returns the abandoned run ids.
pub async fn abandon_runs(wh: &mut Warehouse, host: &str, pid: u32, why: &str) -> Result<Vec<String>, WarehouseError> {
    migrate(wh).await?;
    let mut a = Args::default();
    let sql = format!(
        "SELECT run_id FROM {} WHERE status = 'running' AND host = {} AND pid = {}",
        t(wh, "runs"),
        a.p(Param::text(host)),
        a.p(Param::int(pid as i64))
    );
    let ids: Vec<String> = wh.query_rows(&sql, &a.0).await?.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect();
    let error = format!("abandoned: its process (pid {pid} on {host}) died while it ran; its lake lock was taken over ({why})");
    let mut statements = Vec::new();
    for id in &ids {
        // The run and its running jobs alike.
        for table in ["runs", "jobs"] {
            let mut a = Args::default();
            let sql = format!(
                "UPDATE {} SET status = {}, finished_at = {}, error = {} WHERE run_id = {} AND status = 'running'",
                t(wh, table),
                a.p(Param::text(JobStatus::Abandoned.as_str())),
                a.p(Param::timestamp(&now())),
                a.p(Param::text(&error)),
                a.p(Param::text(id)),
            );
            statements.push(stmt(sql, a));
        }
        let mut a = Args::default();
        statements.push(stmt(format!("UPDATE {} SET status = 'skipped' WHERE run_id = {} AND status = 'queued'", t(wh, "jobs"), a.p(Param::text(id))), a));
    }
    if !statements.is_empty() {
        wh.execute_all(&statements).await?;
    }
    Ok(ids)
}

/// Mirrors the feed registry of `date`, with silver's reconciliation when there is one, and
/// the products diff (in one transaction). With `partners` (a sharded run), only their rows are replaced, so shards of one date
/// syncing at once touch disjoint rows.
pub async fn sync_feeds_of(
    wh: &mut Warehouse,
    date: RunDate,
    feeds: &[lake::registry::FeedRecord],
    silver: Option<&silver::SilverReport>,
    partners: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), WarehouseError> {
    migrate(wh).await?;
    // `AND partner_id IN (…)` for a shard, each id a bound parameter.
    let scope = |a: &mut Args| match partners {
        None => String::new(),
        Some(p) => format!(" AND partner_id IN ({})", p.iter().map(|x| a.p(Param::text(x))).collect::<Vec<_>>().join(", ")),
    };
    let ours = |partner: &str| partners.is_none_or(|p| p.contains(partner));
    let mut a = Args::default();
    let date_param = a.p(Param::date(&date.to_string()));
    let sql = format!("DELETE FROM {} WHERE run_date = {date_param}{}", t(wh, "feeds"), scope(&mut a));
    let mut statements = vec![stmt(sql, a)];
    for f in feeds.iter().filter(|f| ours(&f.partner)) {
        let rec = silver.and_then(|s| s.feeds.iter().find(|x| x.feed_id == f.feed_id));
        let mut a = Args::default();
        let sql = format!(
            "INSERT INTO {} (feed_id, run_date, partner_id, dataset, file_name, status, bytes, reason, detail, rows_read, valid, rejected, duplicate) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            t(wh, "feeds"),
            a.p(Param::text(&f.feed_id)),
            a.p(Param::date(&f.date.to_string())),
            a.p(Param::text(&f.partner)),
            a.p(Param::text(f.dataset.name())),
            a.p(Param::text(&f.file_name)),
            a.p(Param::text(f.status.as_str())),
            a.p(Param::int(f.bytes as i64)),
            a.p(Param::opt_text(f.reason.as_deref())),
            a.p(Param::opt_text(f.detail.as_deref())),
            a.p(Param::opt_count(rec.map(|r| r.rows_read).or(Some(f.rows)))),
            a.p(Param::opt_count(rec.map(|r| r.valid))),
            a.p(Param::opt_count(rec.map(|r| r.rejected))),
            a.p(Param::opt_count(rec.map(|r| r.duplicate))),
        );
        statements.push(stmt(sql, a));
    }
    if let Some(s) = silver {
        let mut a = Args::default();
        let date_param = a.p(Param::date(&date.to_string()));
        let sql = format!("DELETE FROM {} WHERE run_date = {date_param}{}", t(wh, "product_diffs"), scope(&mut a));
        statements.push(stmt(sql, a));
        for d in s.product_changes.iter().filter(|d| ours(&d.partner)) {
            let mut a = Args::default();
            let sql = format!(
                "INSERT INTO {} (run_date, partner_id, inserted, updated, unchanged, skipped, duplicate) VALUES ({}, {}, {}, {}, {}, {}, {})",
                t(wh, "product_diffs"),
                a.p(Param::date(&date.to_string())),
                a.p(Param::text(&d.partner)),
                a.p(Param::int(d.inserted as i64)),
                a.p(Param::int(d.updated as i64)),
                a.p(Param::int(d.unchanged as i64)),
                a.p(Param::int(d.skipped as i64)),
                a.p(Param::int(d.duplicate as i64)),
            );
            statements.push(stmt(sql, a));
        }
    }
    wh.execute_all(&statements).await.map(|_| ())
}

/// The last date a run of the whole pipeline completed (or had nothing to do), for the
/// scheduler's catch-up.
pub async fn last_done_date(wh: &mut Warehouse) -> Result<Option<RunDate>, WarehouseError> {
    migrate(wh).await?;
    let sql = format!(
        "SELECT CAST(MAX(run_date) AS TEXT) FROM {} WHERE status IN ('completed', 'skipped') AND kind IN ('run', 'schedule', 'backfill', 'watch')",
        t(wh, "runs")
    );
    let last = wh.query_strings(&sql).await?.into_iter().next().and_then(|r| r.into_iter().next().flatten());
    Ok(last.and_then(|d| d.parse().ok()))
}

/// The earliest date on or after `since` whose latest whole-pipeline run (`run`, `schedule`
/// or `backfill`) failed or was abandoned: a date the scheduler must go back to even when a
/// later date was completed since (by hand, say).
pub async fn first_failed_date(wh: &mut Warehouse, since: RunDate) -> Result<Option<RunDate>, WarehouseError> {
    migrate(wh).await?;
    let mut a = Args::default();
    let sql = format!(
        "SELECT CAST(run_date AS TEXT), status FROM {} WHERE kind IN ('run', 'schedule', 'backfill', 'watch') AND run_date >= {} ORDER BY run_date, started_at",
        t(wh, "runs"),
        a.p(Param::date(&since.to_string())),
    );
    let mut latest: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for row in wh.query_rows(&sql, &a.0).await? {
        if let [Some(date), Some(status)] = &row[..] {
            latest.insert(date.clone(), status.clone());
        }
    }
    let failed = [JobStatus::Failed.as_str(), JobStatus::Abandoned.as_str()];
    Ok(latest.into_iter().find(|(_, s)| failed.contains(&s.as_str())).and_then(|(d, _)| d.parse().ok()))
}

/// When the latest run of the whole pipeline for `date` that completed (or had nothing to do)
/// started: files that arrived after it are new to that date (`medallion watch`).
pub async fn last_done_start(wh: &mut Warehouse, date: RunDate) -> Result<Option<chrono::DateTime<chrono::Utc>>, WarehouseError> {
    migrate(wh).await?;
    let mut a = Args::default();
    let sql = format!(
        "SELECT {} FROM {} WHERE status IN ('completed', 'skipped') AND kind IN ('run', 'schedule', 'backfill', 'watch') AND run_date = {} ORDER BY started_at DESC LIMIT 1",
        wh.dialect().text("started_at"),
        t(wh, "runs"),
        a.p(Param::date(&date.to_string())),
    );
    let text = wh.query_rows(&sql, &a.0).await?.into_iter().next().and_then(|r| r.into_iter().next().flatten());
    Ok(text.and_then(|s| parse_timestamp(&s)))
}

/// A ledger timestamp: RFC 3339 (SQLite) or PostgreSQL's text form (`2026-11-30 21:44:44.1+00`).
pub fn parse_timestamp(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub runs: Vec<serde_json::Value>,
    pub feeds: Vec<serde_json::Value>,
    pub product_diffs: Vec<serde_json::Value>,
}

/// The ledger's numeric columns: JSON numbers in `status --json`.
const NUMERIC: &[&str] = &["pid", "attempts", "rows", "rows_read", "valid", "rejected", "duplicate", "inserted", "updated", "unchanged", "skipped", "bytes"];

fn objects(cols: &[&str], rows: Vec<Vec<Option<String>>>) -> Vec<serde_json::Value> {
    let value = |c: &str, v: Option<String>| match v {
        None => serde_json::Value::Null,
        Some(s) if NUMERIC.contains(&c) => s.parse::<i64>().map(serde_json::Value::from).unwrap_or(serde_json::Value::String(s)),
        Some(s) => serde_json::Value::String(s),
    };
    rows.into_iter()
        .map(|r| {
            let m: serde_json::Map<String, serde_json::Value> = cols.iter().zip(r).map(|(c, v)| (c.to_string(), value(c, v))).collect();
            serde_json::Value::Object(m)
        })
        .collect()
}

/// The ledger, read only (nothing is created: a warehouse without the ledger's tables has no
/// runs yet). A run recorded as running whose process does not hold the live lake lock
/// (`holder`) died without a word: it is shown as `abandoned` (the next run records it so).
pub async fn status(wh: &mut Warehouse, date: Option<RunDate>, limit: usize, holders: &[crate::lock::LockInfo]) -> Result<Status, WarehouseError> {
    if !wh.table_exists("medallion", "runs").await? {
        return Ok(Status::default());
    }
    let d = wh.dialect();
    // Read-only: a ledger that predates migration 4 has no `partners` column yet.
    let migrations = d.table("medallion", "schema_migrations");
    let has_partners = !wh.query_rows(&format!("SELECT version FROM {migrations} WHERE version = $1"), &[Param::int(4)]).await?.is_empty();
    let partners_col = if has_partners { "partners" } else { "CAST(NULL AS TEXT)" };
    let mut a = Args::default();
    let filter = date.map(|x| format!(" WHERE run_date = {}", a.p(Param::date(&x.to_string())))).unwrap_or_default();
    let run_cols = ["run_id", "run_date", "kind", "status", "started_at", "finished_at", "host", "pid", "error", "partners"];
    let sql = format!(
        "SELECT run_id, CAST(run_date AS TEXT), kind, status, {}, {}, host, CAST(pid AS TEXT), error, {partners_col} FROM {}{filter} ORDER BY started_at DESC LIMIT {}",
        d.text("started_at"),
        d.text("finished_at"),
        t(wh, "runs"),
        a.p(Param::int(limit as i64)),
    );
    let mut runs = objects(&run_cols, wh.query_rows(&sql, &a.0).await?);
    for r in runs.iter_mut() {
        let (host, pid) = (r["host"].as_str().unwrap_or_default().to_string(), r["pid"].as_i64().unwrap_or_default());
        if r["status"] == JobStatus::Running.as_str() && !crate::lock::run_alive_any(holders, &host, pid) {
            r["status"] = JobStatus::Abandoned.as_str().into();
            if r["error"].is_null() {
                r["error"] = format!("abandoned: its process (pid {pid} on {host}) no longer holds the lake lock; the next run records it").into();
            }
        }
    }
    let job_cols = ["stage", "status", "attempts", "rows", "started_at", "finished_at", "error"];
    for r in runs.iter_mut() {
        let id = r["run_id"].as_str().unwrap_or_default().to_string();
        let sql = format!(
            "SELECT stage, status, CAST(attempts AS TEXT), CAST(rows AS TEXT), {}, {}, error FROM {} WHERE run_id = $1 \
             ORDER BY CASE stage WHEN 'bronze' THEN 1 WHEN 'silver' THEN 2 ELSE 3 END",
            d.text("started_at"),
            d.text("finished_at"),
            t(wh, "jobs"),
        );
        let jobs = objects(&job_cols, wh.query_rows(&sql, &[Param::text(&id)]).await?);
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
             CAST(rejected AS TEXT), CAST(duplicate AS TEXT), reason, detail FROM {} WHERE run_date = $1 ORDER BY partner_id, dataset, feed_id",
            t(wh, "feeds"),
        );
        feeds = objects(&feed_cols, wh.query_rows(&sql, &[Param::date(&x)]).await?);
        let diff_cols = ["run_date", "partner_id", "inserted", "updated", "unchanged", "skipped", "duplicate"];
        let sql = format!(
            "SELECT CAST(run_date AS TEXT), partner_id, CAST(inserted AS TEXT), CAST(updated AS TEXT), CAST(unchanged AS TEXT), CAST(skipped AS TEXT), \
             CAST(duplicate AS TEXT) FROM {} WHERE run_date = $1 ORDER BY partner_id",
            t(wh, "product_diffs"),
        );
        diffs = objects(&diff_cols, wh.query_rows(&sql, &[Param::date(&x)]).await?);
    }
    Ok(Status { runs, feeds, product_diffs: diffs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> RunDate {
        s.parse().unwrap()
    }

    /// Migration 3 is the one the warehouse applied before the ledger owned it.
    #[test]
    fn migration_3_is_unchanged() {
        for (d, sums) in [
            (Dialect::Postgres, include_str!("../../gold/tests-data/gold_ddl.postgres.checksums.snap")),
            (Dialect::Sqlite, include_str!("../../gold/tests-data/gold_ddl.sqlite.checksums.snap")),
        ] {
            let want = format!("3 run ledger {}", gold::warehouse::checksum(&run_ledger_ddl(d)));
            assert!(sums.lines().any(|l| l == want), "{d:?}: {want}");
        }
    }

    /// The ledger on SQLite: its tables appear on first use, values with quotes and NULLs
    /// round-trip, and status reads them back.
    #[test]
    fn ledger_round_trip_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("ledger-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut wh = Warehouse::connect(&format!("sqlite://{}/w.db", dir.display())).await.unwrap();
            wh.migrate().await.unwrap();
            start_run(&mut wh, "r'1", d("2026-11-18"), "run", &["bronze", "silver", "gold"]).await.unwrap();
            job(&mut wh, "r'1", "bronze", JobStatus::Running, 1, None, None, None).await.unwrap();
            job(&mut wh, "r'1", "bronze", JobStatus::Completed, 1, Some(5), Some(&serde_json::json!({"a": "it's"})), None).await.unwrap();
            finish_run(&mut wh, "r'1", JobStatus::Failed, Some("silver: it's broken")).await.unwrap();
            assert_eq!(last_done_date(&mut wh).await.unwrap(), None);
            let st = status(&mut wh, Some(d("2026-11-18")), 10, &[]).await.unwrap();
            assert_eq!(st.runs.len(), 1);
            let r = &st.runs[0];
            assert_eq!((r["run_id"].as_str(), r["status"].as_str(), r["error"].as_str()), (Some("r'1"), Some("failed"), Some("silver: it's broken")));
            let jobs = r["jobs"].as_array().unwrap();
            let stages: Vec<(&str, &str)> = jobs.iter().map(|j| (j["stage"].as_str().unwrap(), j["status"].as_str().unwrap())).collect();
            assert_eq!(stages, [("bronze", "completed"), ("silver", "skipped"), ("gold", "skipped")]);
            assert_eq!(jobs[0]["rows"].as_i64(), Some(5), "counts are JSON numbers");
            assert_eq!(r["pid"].as_i64(), Some(std::process::id() as i64));
            assert!(jobs[0]["started_at"].as_str().is_some() && jobs[0]["finished_at"].as_str().is_some());
            assert!(status(&mut wh, Some(d("2026-11-19")), 10, &[]).await.unwrap().runs.is_empty());
            wh.close().await;
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
