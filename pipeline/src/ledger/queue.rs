//! The ledger side of `medallion serve`'s run queue, and the typed run records its API reads.
//! A queued run is a `runs` row in status `queued` with its stages as `queued` jobs: it is in
//! the warehouse, not in memory, so it survives a restart. Every transition out of `queued`
//! (claimed by a worker, cancelled) is one conditional UPDATE, so a run is claimed or
//! cancelled exactly once, whoever races.

use gold::warehouse::Param;
use gold::{Warehouse, WarehouseError};
use schemas::{JobStatus, RunDate};
use serde::Serialize;

use super::{migrate, now, t, Args};

/// One run of the ledger (CLI, Airflow, schedule and serve runs alike) with its stage jobs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub run_id: String,
    /// The run date (YYYY-MM-DD).
    pub run_date: String,
    /// run, backfill, schedule (how the run was started).
    pub kind: String,
    /// queued, running, completed, failed, skipped, abandoned or cancelled.
    pub status: String,
    /// When the run was queued or started (RFC 3339).
    pub started_at: String,
    pub finished_at: Option<String>,
    pub host: String,
    pub pid: i64,
    pub error: Option<String>,
    pub jobs: Vec<JobRecord>,
}

/// One stage of a run: its attempts, the rows it handled and its summary counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// bronze, silver or gold.
    pub stage: String,
    pub status: String,
    pub attempts: i64,
    pub rows: Option<i64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The stage's counts (landed, quarantined, feeds, tables…), as recorded.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// What became of an attempt to claim a queued run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Claimed,
    /// It was no longer queued (cancelled, or claimed by another server): its status now.
    NotQueued(JobStatus),
    Missing,
}

/// Records a run queued by `serve`: the run and its stages, all `queued`.
pub async fn queue_run(wh: &mut Warehouse, run_id: &str, date: RunDate, kind: &str, stages: &[&str]) -> Result<(), WarehouseError> {
    super::insert_run(wh, run_id, date, kind, JobStatus::Queued, stages).await
}

/// Claims a queued run for this process (status `running`, this host and pid, started now).
pub async fn claim_run(wh: &mut Warehouse, run_id: &str) -> Result<Claim, WarehouseError> {
    migrate(wh).await?;
    let mut a = Args::default();
    let sql = format!(
        "UPDATE {} SET status = 'running', started_at = {}, host = {}, pid = {} WHERE run_id = {} AND status = 'queued'",
        t(wh, "runs"),
        a.p(Param::timestamp(&now())),
        a.p(Param::text(&crate::lock::hostname())),
        a.p(Param::int(std::process::id() as i64)),
        a.p(Param::text(run_id)),
    );
    if wh.execute_with(&sql, &a.0).await? == 1 {
        return Ok(Claim::Claimed);
    }
    Ok(match run_status(wh, run_id).await? {
        Some(s) => Claim::NotQueued(s),
        None => Claim::Missing,
    })
}

/// Cancels a run if it is still queued (its jobs too); false when it was not queued.
pub async fn cancel_queued(wh: &mut Warehouse, run_id: &str, why: &str) -> Result<bool, WarehouseError> {
    migrate(wh).await?;
    let (runs, jobs) = (t(wh, "runs"), t(wh, "jobs"));
    let mut tx = wh.begin_write().await?;
    let params = [Param::timestamp(&now()), Param::text(why), Param::text(run_id)];
    let n = tx.execute(&format!("UPDATE {runs} SET status = 'cancelled', finished_at = $1, error = $2 WHERE run_id = $3 AND status = 'queued'"), &params).await?;
    if n == 1 {
        tx.execute(&format!("UPDATE {jobs} SET status = 'cancelled' WHERE run_id = $1 AND status = 'queued'"), &[Param::text(run_id)]).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// The status of a run, None when the ledger has no such run.
pub async fn run_status(wh: &mut Warehouse, run_id: &str) -> Result<Option<JobStatus>, WarehouseError> {
    let rows = wh.query_rows(&format!("SELECT status FROM {} WHERE run_id = $1", t(wh, "runs")), &[Param::text(run_id)]).await?;
    Ok(rows.into_iter().next().and_then(|r| r.into_iter().next().flatten()).and_then(|s| JobStatus::parse(&s)))
}

/// The oldest queued run: its id, date and stages (in pipeline order).
pub async fn next_queued(wh: &mut Warehouse) -> Result<Option<(String, RunDate, Vec<String>)>, WarehouseError> {
    migrate(wh).await?;
    let sql = format!("SELECT run_id, CAST(run_date AS TEXT) FROM {} WHERE status = 'queued' ORDER BY started_at, run_id LIMIT 1", t(wh, "runs"));
    let Some(row) = wh.query_rows(&sql, &[]).await?.into_iter().next() else { return Ok(None) };
    let (Some(id), Some(date)) = (row.first().cloned().flatten(), row.get(1).cloned().flatten()) else { return Ok(None) };
    let Ok(date) = date.parse::<RunDate>() else { return Ok(None) };
    let sql = format!("SELECT stage FROM {} WHERE run_id = $1 ORDER BY CASE stage WHEN 'bronze' THEN 1 WHEN 'silver' THEN 2 ELSE 3 END", t(wh, "jobs"));
    let stages = wh.query_rows(&sql, &[Param::text(&id)]).await?.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect();
    Ok(Some((id, date, stages)))
}

/// Whether a run of `date` is queued or running (the in-service scheduler queues a date once).
pub async fn date_pending(wh: &mut Warehouse, date: RunDate) -> Result<bool, WarehouseError> {
    let sql = format!("SELECT COUNT(*) FROM {} WHERE run_date = $1 AND status IN ('queued', 'running')", t(wh, "runs"));
    let rows = wh.query_rows(&sql, &[Param::date(&date.to_string())]).await?;
    Ok(rows.first().and_then(|r| r.first().cloned().flatten()).is_some_and(|n| n != "0"))
}

/// Filters of [`list_runs`].
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub date: Option<RunDate>,
    pub status: Option<JobStatus>,
    pub run_id: Option<String>,
    pub limit: usize,
}

/// Runs of the ledger, newest first, with their jobs (read only: a warehouse without the
/// ledger's tables has none). A run recorded as running whose process does not hold the live
/// lake lock (`holder`) is reported abandoned, as `medallion status` does.
pub async fn list_runs(wh: &mut Warehouse, f: &RunFilter, holders: &[crate::lock::LockInfo]) -> Result<Vec<RunRecord>, WarehouseError> {
    if !wh.table_exists("medallion", "runs").await? {
        return Ok(Vec::new());
    }
    let d = wh.dialect();
    let mut a = Args::default();
    let mut filters = Vec::new();
    if let Some(x) = f.date {
        filters.push(format!("run_date = {}", a.p(Param::date(&x.to_string()))));
    }
    if let Some(id) = &f.run_id {
        filters.push(format!("run_id = {}", a.p(Param::text(id))));
    }
    // `abandoned` also matches runs still recorded as running; filtered again below.
    match f.status {
        Some(JobStatus::Abandoned) => filters.push("status IN ('abandoned', 'running')".into()),
        Some(s) => filters.push(format!("status = {}", a.p(Param::text(s.as_str())))),
        None => {}
    }
    let filter = if filters.is_empty() { String::new() } else { format!(" WHERE {}", filters.join(" AND ")) };
    let sql = format!(
        "SELECT run_id, CAST(run_date AS TEXT), kind, status, {}, {}, host, CAST(pid AS TEXT), error FROM {}{filter} ORDER BY started_at DESC, run_id DESC LIMIT {}",
        d.text("started_at"),
        d.text("finished_at"),
        t(wh, "runs"),
        a.p(Param::int(f.limit.max(1) as i64)),
    );
    let mut runs = Vec::new();
    for r in wh.query_rows(&sql, &a.0).await? {
        let cell = |i: usize| r.get(i).cloned().flatten();
        let mut run = RunRecord {
            run_id: cell(0).unwrap_or_default(),
            run_date: cell(1).unwrap_or_default(),
            kind: cell(2).unwrap_or_default(),
            status: cell(3).unwrap_or_default(),
            started_at: cell(4).unwrap_or_default(),
            finished_at: cell(5),
            host: cell(6).unwrap_or_default(),
            pid: cell(7).and_then(|p| p.parse().ok()).unwrap_or_default(),
            error: cell(8),
            jobs: Vec::new(),
        };
        if run.status == JobStatus::Running.as_str() && !crate::lock::run_alive_any(holders, &run.host, run.pid) {
            run.status = JobStatus::Abandoned.as_str().into();
            run.error.get_or_insert_with(|| format!("abandoned: its process (pid {} on {}) no longer holds the lake lock or a partner lock; the next run records it", run.pid, run.host));
        }
        if f.status.is_some_and(|s| s.as_str() != run.status) {
            continue;
        }
        run.jobs = jobs_of(wh, &run.run_id).await?;
        runs.push(run);
    }
    Ok(runs)
}

async fn jobs_of(wh: &mut Warehouse, run_id: &str) -> Result<Vec<JobRecord>, WarehouseError> {
    let d = wh.dialect();
    let sql = format!(
        "SELECT stage, status, CAST(attempts AS TEXT), CAST(rows AS TEXT), {}, {}, summary, error FROM {} WHERE run_id = $1 \
         ORDER BY CASE stage WHEN 'bronze' THEN 1 WHEN 'silver' THEN 2 ELSE 3 END",
        d.text("started_at"),
        d.text("finished_at"),
        t(wh, "jobs"),
    );
    let rows = wh.query_rows(&sql, &[Param::text(run_id)]).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let cell = |i: usize| r.get(i).cloned().flatten();
            JobRecord {
                stage: cell(0).unwrap_or_default(),
                status: cell(1).unwrap_or_default(),
                attempts: cell(2).and_then(|v| v.parse().ok()).unwrap_or_default(),
                rows: cell(3).and_then(|v| v.parse().ok()),
                started_at: cell(4),
                finished_at: cell(5),
                summary: cell(6).and_then(|s| serde_json::from_str(&s).ok()),
                error: cell(7),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue on SQLite: queued runs are found oldest first, claimed or cancelled exactly
    /// once, and listed with their jobs and filters.
    #[test]
    fn queue_claim_cancel_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut wh = Warehouse::connect(&format!("sqlite://{}/w.db", dir.path().display())).await.unwrap();
            let d: RunDate = "2026-11-18".parse().unwrap();
            queue_run(&mut wh, "a", d, "run", &["bronze", "silver", "gold"]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            queue_run(&mut wh, "b", d, "schedule", &["silver"]).await.unwrap();
            assert!(date_pending(&mut wh, d).await.unwrap());
            let (id, date, stages) = next_queued(&mut wh).await.unwrap().unwrap();
            assert_eq!((id.as_str(), date, stages), ("a", d, vec!["bronze".to_string(), "silver".into(), "gold".into()]));
            assert_eq!(claim_run(&mut wh, "a").await.unwrap(), Claim::Claimed);
            assert_eq!(claim_run(&mut wh, "a").await.unwrap(), Claim::NotQueued(JobStatus::Running));
            assert!(!cancel_queued(&mut wh, "a", "too late").await.unwrap(), "a claimed run is not cancelled as queued");
            assert!(cancel_queued(&mut wh, "b", "not wanted").await.unwrap());
            assert!(!cancel_queued(&mut wh, "b", "twice").await.unwrap());
            assert_eq!(claim_run(&mut wh, "b").await.unwrap(), Claim::NotQueued(JobStatus::Cancelled));
            assert_eq!(claim_run(&mut wh, "nope").await.unwrap(), Claim::Missing);
            assert!(next_queued(&mut wh).await.unwrap().is_none());
            let cancelled = list_runs(&mut wh, &RunFilter { status: Some(JobStatus::Cancelled), limit: 10, ..Default::default() }, &[]).await.unwrap();
            assert_eq!(cancelled.len(), 1);
            assert_eq!((cancelled[0].run_id.as_str(), cancelled[0].error.as_deref()), ("b", Some("not wanted")));
            assert_eq!(cancelled[0].jobs.iter().map(|j| (j.stage.as_str(), j.status.as_str())).collect::<Vec<_>>(), [("silver", "cancelled")]);
            // "a" is running for this process, which holds no lake lock: shown abandoned; its
            // started_at is when it was claimed, so it is the newest.
            let all = list_runs(&mut wh, &RunFilter { date: Some(d), limit: 10, ..Default::default() }, &[]).await.unwrap();
            assert_eq!(all.iter().map(|r| (r.run_id.as_str(), r.status.as_str())).collect::<Vec<_>>(), [("a", "abandoned"), ("b", "cancelled")]);
            super::super::finish_run(&mut wh, "a", JobStatus::Cancelled, Some("stopped")).await.unwrap();
            let a = list_runs(&mut wh, &RunFilter { run_id: Some("a".into()), limit: 1, ..Default::default() }, &[]).await.unwrap();
            assert_eq!(a[0].status, "cancelled");
            assert!(a[0].jobs.iter().all(|j| j.status == "cancelled"), "stages never reached are cancelled: {:?}", a[0].jobs);
            assert!(!date_pending(&mut wh, d).await.unwrap());
            wh.close().await;
        });
    }
}
