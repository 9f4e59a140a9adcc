//! Stages chained for one date under the lake lock: each attempt is recorded in the run
//! ledger and a stage that failed for a transient reason is retried with exponential backoff
//! and full jitter. Every command that runs a stage (`bronze`, `silver`, `gold`, `run`,
//! `backfill`, `schedule`, `demo`) goes through [`run_date`].
//!
//! A sharded run (`--partners`, [`StageOptions::partners`]) holds the locks of its partners
//! instead of the lake lock (see `lock.rs`), runs bronze and silver for those partners only,
//! and commits silver under the short lake-wide silver commit lock ([`run_silver`]); it never
//! runs gold. Gold, whoever runs it, refuses a date whose silver record does not cover every
//! partner with landed feeds ([`gold_ready`]), naming the missing partners.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lake::Location;
use tracing::Instrument;
use schemas::{JobStatus, RunDate};

use crate::stage::{Stage, StageOutcome};
use crate::{exit, ledger, lock, Failure};

/// Options of the stages themselves.
#[derive(Debug, Clone)]
pub struct StageOptions {
    /// Files bronze lands at once.
    pub concurrency: usize,
    /// Gold recomputes and republishes every date.
    pub full: bool,
    pub copy_format: gold::warehouse::CopyFormat,
    /// Bronze re-lands the date's feeds from the lake's raw copies, not the landing zone.
    pub bronze_from_raw: bool,
    /// A sharded run: bronze and silver for these partners only, under their partner locks.
    pub partners: Option<BTreeSet<String>>,
    /// Where gold's SQL runs.
    pub engine: gold::Engine,
}

impl Default for StageOptions {
    fn default() -> Self {
        StageOptions {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            full: false,
            copy_format: gold::warehouse::CopyFormat::Binary,
            bronze_from_raw: false,
            partners: None,
            engine: gold::Engine::Local,
        }
    }
}

/// Everything a run needs, opened once per command.
pub struct RunContext {
    /// Only bronze reads the landing zone.
    pub landing: Option<Location>,
    pub lake: Location,
    pub warehouse_url: String,
    pub retries: u32,
    pub lock_wait: Duration,
    pub quiet: bool,
    pub options: StageOptions,
    /// Set by SIGTERM / SIGINT: finish the current stage, start no other.
    pub stop: Arc<AtomicBool>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub date: RunDate,
    pub status: JobStatus,
    pub stages: Vec<serde_json::Value>,
    pub error: Option<String>,
}

/// A finished run: its summary, each stage's typed outcome and the exit code.
pub struct RunOutcome {
    pub summary: RunSummary,
    pub stages: Vec<StageOutcome>,
    pub code: u8,
    /// False when a queued run was no longer queued (cancelled, or claimed elsewhere): this
    /// process ran nothing and recorded nothing.
    pub ran: bool,
}

pub fn backoff(attempt: u32) -> Duration {
    let base = std::env::var("MEDALLION_RETRY_BASE_MS").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(2000);
    let exp = base.saturating_mul(1 << attempt.min(6)).min(120_000);
    // Full jitter: a random point of the window, so parallel retries spread out.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    let mixed = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    Duration::from_millis(exp / 2 + mixed % (exp / 2 + 1))
}

/// Opens the lake, the landing zone (when bronze needs it) and remembers the warehouse; a
/// first SIGTERM / SIGINT asks the run to stop after its current stage, a second exits.
pub async fn context(lake: &str, landing: Option<(&str, bool)>, warehouse: Option<&str>, retries: u32, lock_timeout: u64, quiet: bool) -> Result<RunContext, Failure> {
    let ctx = open_context(lake, landing, warehouse, retries, lock_timeout, quiet).await?;
    let flag = ctx.stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else { return };
        loop {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("medallion: second signal: exiting now");
                std::process::exit(130);
            }
            eprintln!("medallion: signal received: finishing the current stage, then stopping (send it again to stop at once)");
        }
    });
    Ok(ctx)
}

/// [`context`] without the signal handler: for `serve`, which owns the signals itself.
pub async fn open_context(lake: &str, landing: Option<(&str, bool)>, warehouse: Option<&str>, retries: u32, lock_timeout: u64, quiet: bool) -> Result<RunContext, Failure> {
    let lake = crate::config::open_retrying("lake", lake, true, retries).await?;
    let landing = match landing {
        Some((spec, create)) => Some(crate::config::open_retrying("landing zone", spec, create, retries).await?),
        None => None,
    };
    let warehouse_url = crate::config::warehouse_url(warehouse, &lake);
    let stop = Arc::new(AtomicBool::new(false));
    // The configured engine (MEDALLION_ENGINE, or `engine` in medallion.toml) reaches every
    // command that runs gold (backfill, schedule, watch, serve); `--engine` on gold and run
    // overrides it.
    let engine = match std::env::var("MEDALLION_ENGINE") {
        Ok(s) if !s.trim().is_empty() => s.parse::<gold::Engine>().map_err(|m| Failure::usage(format!("MEDALLION_ENGINE: {m}")))?,
        _ => gold::Engine::Local,
    };
    Ok(RunContext {
        landing,
        lake,
        warehouse_url,
        retries,
        lock_wait: Duration::from_secs(lock_timeout),
        quiet,
        options: StageOptions { engine, ..StageOptions::default() },
        stop,
    })
}

/// Takes the lake lock for `command`, waiting up to the context's lock timeout.
pub async fn take_lock(ctx: &RunContext, command: &str) -> Result<lock::LakeLock, Failure> {
    lock::LakeLock::acquire(&ctx.lake, command, ctx.lock_wait).await.map_err(Failure::from)
}

/// Applies the warehouse's migrations: gold's tables, then the run ledger's.
pub async fn migrate_all(wh: &mut gold::Warehouse) -> Result<Vec<String>, gold::WarehouseError> {
    let mut applied = wh.migrate().await?;
    applied.extend(ledger::migrate(wh).await?);
    Ok(applied)
}

/// Opens the warehouse and applies its migrations, retrying while it cannot be reached.
pub async fn connect(ctx: &RunContext) -> Result<gold::Warehouse, Failure> {
    let mut attempt = 0;
    loop {
        match gold::Warehouse::connect(&ctx.warehouse_url).await {
            Ok(mut wh) => match migrate_all(&mut wh).await {
                Ok(_) => {
                    wh.copy_format = ctx.options.copy_format;
                    return Ok(wh);
                }
                Err(e) if e.is_transient() && attempt < ctx.retries => tracing::warn!("{e}"),
                Err(e) => return Err(Failure::from(e)),
            },
            Err(e) if e.is_transient() && attempt < ctx.retries => tracing::warn!("{e}"),
            Err(e) => return Err(Failure::from(e)),
        }
        let wait = backoff(attempt);
        attempt += 1;
        tracing::warn!("retrying the warehouse connection in {:.1}s (attempt {} of {})", wait.as_secs_f64(), attempt + 1, ctx.retries + 1);
        tokio::time::sleep(wait).await;
    }
}

/// Runs `stages` of one date the way every command does: takes the lake lock (before
/// anything else, so a waiting run holds nothing the holder needs), connects the warehouse,
/// runs the stages through [`run_date`] and releases the lock.
pub async fn run_locked(ctx: &RunContext, date: RunDate, kind: &str, stages: &[Stage], command: &str) -> Result<RunOutcome, Failure> {
    run_locked_spec(ctx, &RunSpec::new(date, kind, stages), command).await
}

/// [`run_locked`] for a [`RunSpec`] (a queued run's id, a cancellation flag).
pub async fn run_locked_spec(ctx: &RunContext, spec: &RunSpec<'_>, command: &str) -> Result<RunOutcome, Failure> {
    let Some(partners) = &ctx.options.partners else {
        let guard = take_lock(ctx, command).await?;
        let result = async {
            let mut wh = connect(ctx).await.inspect_err(|f| crate::notify::run_failed(spec.date, None, &f.message))?;
            abandon_dead_holder(&mut wh, &guard).await;
            let r = run_spec(ctx, &mut wh, spec).await;
            wh.close().await;
            r
        }
        .await;
        guard.release().await;
        return result;
    };
    if spec.stages.contains(&Stage::Gold) {
        return Err(Failure::usage(format!(
            "--partners runs bronze and silver of a shard; gold covers every partner: run `medallion gold --date {}` once every shard has finished",
            spec.date
        )));
    }
    let guard = lock::PartnerLocks::acquire(&ctx.lake, partners, command, ctx.lock_wait).await.map_err(Failure::from)?;
    let result = async {
        let mut wh = connect(ctx).await.inspect_err(|f| crate::notify::run_failed(spec.date, None, &f.message))?;
        for (holder, why) in guard.took_over() {
            abandon_holder(&mut wh, holder, why).await;
        }
        let r = run_spec(ctx, &mut wh, spec).await;
        wh.close().await;
        r
    }
    .await;
    guard.release().await;
    result
}

/// Parses `--partners a,b,…`: each id valid (CONTRACT §1), at least one; `None` when absent.
pub fn partner_set(list: &[String]) -> Result<Option<BTreeSet<String>>, Failure> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for p in list.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        schemas::contract::validate_partner_id(p).map_err(|m| Failure::usage(format!("--partners: {m}")))?;
        set.insert(p.to_string());
    }
    if set.is_empty() {
        return Err(Failure::usage("--partners: give at least one partner id"));
    }
    Ok(Some(set))
}

/// Silver for `date`: the whole date, or, for a sharded run, its partners: prepared side by
/// side with other shards, then committed under the silver commit lock (so a shard's commits
/// are one contiguous range of table versions its run record can undo; Delta's conflict
/// checker still guards each commit, and a lost commit race is a transient error).
pub async fn run_silver(ctx: &RunContext, date: RunDate) -> Result<silver::SilverReport, silver::SilverError> {
    let Some(partners) = &ctx.options.partners else { return silver::run_silver(&ctx.lake, date).await };
    let prepared = silver::prepare_shard(&ctx.lake, date, partners).await?;
    let command = format!("medallion silver --date {date} --partners {} (commit)", partners.iter().cloned().collect::<Vec<_>>().join(","));
    let commit = lock::LakeLock::acquire_at(&ctx.lake, lock::commit_lock_path(), &command, ctx.lock_wait).await.map_err(|e| match e {
        lock::LockError::Held(message) => silver::SilverError::CommitLock { message, transient: false },
        lock::LockError::Store(message) => silver::SilverError::CommitLock { message, transient: true },
    })?;
    let r = silver::commit_shard(&ctx.lake, prepared).await;
    commit.release().await;
    r
}

/// Whether gold may publish `date`: silver's record of the date covers every partner with
/// feeds landed that date (every shard has completed silver).
pub async fn gold_ready(ctx: &RunContext, date: RunDate) -> Result<(), silver::SilverError> {
    let missing = silver::missing_partners(&ctx.lake, date).await?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(silver::SilverError::ShardsIncomplete { date: date.to_string(), missing })
}

/// When `guard` took over a stale lock, the dead holder's runs still recorded as running are
/// marked abandoned (best effort: the ledger is a record, the run goes on either way).
pub async fn abandon_dead_holder(wh: &mut gold::Warehouse, guard: &lock::LakeLock) {
    let Some((holder, why)) = &guard.took_over else { return };
    abandon_holder(wh, holder, why).await;
}

async fn abandon_holder(wh: &mut gold::Warehouse, holder: &lock::LockInfo, why: &str) {
    match ledger::abandon_runs(wh, &holder.host, holder.pid, why).await {
        Ok(ids) => {
            for id in ids {
                tracing::warn!("run {id} of {} was abandoned ({why}): marked abandoned in the ledger", holder.describe());
            }
        }
        Err(e) => tracing::warn!("could not mark the runs of the dead lock holder {} abandoned: {e}", holder.describe()),
    }
}

/// Runs `stages` for `date` (the lock must be held), recording the run and each attempt of
/// each stage in the ledger.
pub async fn run_date(ctx: &RunContext, wh: &mut gold::Warehouse, date: RunDate, kind: &str, stages: &[Stage]) -> Result<RunOutcome, Failure> {
    run_spec(ctx, wh, &RunSpec::new(date, kind, stages)).await
}

/// A new run id: the date, the time and this process.
pub fn new_run_id(date: RunDate) -> String {
    format!("{}-{}-{}", date, chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), std::process::id())
}

/// A cancellation request for one run, checked at its stage boundaries, with why.
#[derive(Debug, Default)]
pub struct Cancel {
    requested: AtomicBool,
    why: std::sync::Mutex<Option<String>>,
}

impl Cancel {
    /// Asks the run to stop before its next stage (the first reason given is kept).
    pub fn cancel(&self, why: &str) {
        let mut w = self.why.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            *w = Some(why.to_string());
        }
        self.requested.store(true, Ordering::SeqCst);
    }

    pub fn reason(&self) -> Option<String> {
        if !self.requested.load(Ordering::SeqCst) {
            return None;
        }
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What to run: the date, the kind recorded in the ledger, the stages and, for a run queued
/// by `serve`, its pre-assigned id (the run is claimed from `queued`, not inserted) and its
/// cancellation flag.
pub struct RunSpec<'a> {
    pub date: RunDate,
    pub kind: &'a str,
    pub stages: &'a [Stage],
    pub queued_id: Option<String>,
    pub cancel: Option<Arc<Cancel>>,
}

impl<'a> RunSpec<'a> {
    pub fn new(date: RunDate, kind: &'a str, stages: &'a [Stage]) -> Self {
        RunSpec { date, kind, stages, queued_id: None, cancel: None }
    }
}

/// Why the run must not start its next stage: a signal (recorded failed, as before) or a
/// cancellation (recorded cancelled).
fn stop_reason(ctx: &RunContext, spec: &RunSpec<'_>) -> Option<(JobStatus, String)> {
    if let Some(why) = spec.cancel.as_ref().and_then(|c| c.reason()) {
        return Some((JobStatus::Cancelled, why));
    }
    ctx.stop.load(Ordering::SeqCst).then(|| (JobStatus::Failed, "stopped by a signal".to_string()))
}

/// [`run_date`] for a [`RunSpec`]. A queued run already claimed or cancelled elsewhere is not
/// run: its outcome says so with its current status (exit code 1).
pub async fn run_spec(ctx: &RunContext, wh: &mut gold::Warehouse, spec: &RunSpec<'_>) -> Result<RunOutcome, Failure> {
    let (date, stages) = (spec.date, spec.stages);
    let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
    let run_id = match &spec.queued_id {
        Some(id) => {
            let (status, why) = match ledger::claim_run(wh, id).await? {
                ledger::Claim::Claimed => (None, String::new()),
                ledger::Claim::NotQueued(now) => (Some(now), format!("the run is {now}, not queued")),
                ledger::Claim::Missing => (Some(JobStatus::Failed), "the run is not in the ledger".to_string()),
            };
            if let Some(status) = status {
                let summary = RunSummary { run_id: id.clone(), date, status, stages: Vec::new(), error: Some(why) };
                return Ok(RunOutcome { summary, stages: Vec::new(), code: exit::FAILED, ran: false });
            }
            id.clone()
        }
        None => {
            let id = new_run_id(date);
            ledger::start_run(wh, &id, date, spec.kind, &names).await?;
            if let Some(p) = &ctx.options.partners {
                ledger::set_partners(wh, &id, p).await?;
            }
            id
        }
    };
    let run_span = crate::logging::run_span(&run_id, date, spec.kind);
    let mut summary = RunSummary { run_id: run_id.clone(), date, status: JobStatus::Running, stages: Vec::new(), error: None };
    let mut outcomes = Vec::new();
    let mut all_skipped = true;
    for &stage in stages {
        if let Some((status, why)) = stop_reason(ctx, spec) {
            let msg = format!("{why} before the {stage} stage");
            ledger::finish_run(wh, &run_id, status, Some(&msg)).await?;
            summary.status = status;
            summary.error = Some(msg);
            crate::notify::run_finished(&summary, &outcomes);
            return Ok(RunOutcome { summary, stages: outcomes, code: exit::FAILED, ran: true });
        }
        let mut attempt: u32 = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            ledger::job(wh, &run_id, stage.name(), JobStatus::Running, attempt, None, None, None).await?;
            lake_fault(stage, attempt).await;
            match stage.run(ctx, wh, date).instrument(crate::logging::stage_span(&run_span, stage.name())).await {
                Ok(report) => {
                    let o = StageOutcome { stage, report, seconds: started.elapsed().as_secs_f64() };
                    let skipped = o.skipped();
                    let status = if skipped { JobStatus::Skipped } else { JobStatus::Completed };
                    all_skipped &= skipped;
                    let (rows, job_summary) = (o.rows(), o.summary());
                    ledger::job(wh, &run_id, stage.name(), status, attempt, rows, Some(&job_summary), None).await?;
                    if !ctx.quiet {
                        let line = format!("{date} {:<6} {} in {:.1}s: {}", stage.name(), status.as_str(), o.seconds, o.line());
                        crate::logging::stage_span(&run_span, stage.name()).in_scope(|| crate::logging::progress(&line));
                    }
                    summary.stages.push(serde_json::json!({ "stage": stage.name(), "status": status.as_str(), "attempts": attempt, "rows": rows, "summary": job_summary }));
                    outcomes.push(o);
                    break;
                }
                Err(e) if e.is_transient() && attempt <= ctx.retries => {
                    let f = Failure::from_stage(&e);
                    let wait = backoff(attempt - 1);
                    tracing::warn!("{date} {stage}: {} — retrying in {:.1}s (attempt {} of {})", f.message, wait.as_secs_f64(), attempt + 1, ctx.retries + 1);
                    // The ledger may live on the same unreachable server: best effort.
                    let _ = ledger::job(wh, &run_id, stage.name(), JobStatus::Running, attempt, None, None, Some(&f.message)).await;
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let f = Failure::from_stage(&e);
                    let _ = ledger::job(wh, &run_id, stage.name(), JobStatus::Failed, attempt, None, None, Some(&f.message)).await;
                    let _ = ledger::finish_run(wh, &run_id, JobStatus::Failed, Some(&format!("{stage}: {}", f.message))).await;
                    summary.status = JobStatus::Failed;
                    summary.error = Some(format!("{stage}: {}", f.message));
                    crate::notify::run_finished(&summary, &outcomes);
                    return Err(Failure { message: format!("{date} {stage} failed after {attempt} attempt(s): {}", f.message), ..f });
                }
            }
        }
    }
    let status = if all_skipped { JobStatus::Skipped } else { JobStatus::Completed };
    ledger::finish_run(wh, &run_id, status, None).await?;
    summary.status = status;
    crate::notify::run_finished(&summary, &outcomes);
    Ok(RunOutcome { summary, stages: outcomes, code: if all_skipped { exit::NOTHING_TO_DO } else { exit::OK }, ran: true })
}

async fn lake_fault(stage: Stage, attempt: u32) {
    lake::fault::point(&format!("stage.{stage}"), attempt as usize).await;
}

/// Every date from `from` to `to`, inclusive.
pub fn date_range(from: RunDate, to: RunDate) -> Result<Vec<RunDate>, Failure> {
    if to < from {
        return Err(Failure::usage(format!("--to {to} is before --from {from}")));
    }
    if (to.date() - from.date()).num_days() > 3660 {
        return Err(Failure::usage("a backfill covers at most ten years"));
    }
    Ok(from.iter_to(to).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_backoff() {
        let d = |s: &str| s.parse::<RunDate>().unwrap();
        let range: Vec<String> = date_range(d("2026-11-30"), d("2026-12-02")).unwrap().iter().map(|d| d.to_string()).collect();
        assert_eq!(range, vec!["2026-11-30", "2026-12-01", "2026-12-02"]);
        assert!(date_range(d("2026-12-02"), d("2026-11-30")).is_err());
        for a in 0..8 {
            let b = backoff(a).as_millis() as u64;
            let exp = (2000u64 << a.min(6)).min(120_000);
            assert!(b >= exp / 2 && b <= exp, "attempt {a}: {b} ms");
        }
    }
}
