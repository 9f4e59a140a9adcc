//! The run queue and its worker. Queued runs live in the run ledger (status `queued`), so
//! they survive a restart: at start the worker picks up what a previous server left queued.
//! The worker runs them one at a time, oldest first, through `orchestrate::run_locked_spec`:
//! the lake lock (a cron or Airflow run elsewhere still excludes it), the ledger records and
//! the retries are those of `medallion run`. A run is cancelled while queued by one
//! conditional UPDATE; a running one stops at its next stage boundary, recorded `cancelled`.
//! At shutdown the running run finishes its current stage and is recorded `cancelled`; runs
//! still queued stay queued for the next server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemas::{JobStatus, RunDate};
use tokio::sync::Notify;

use super::error::ApiError;
use super::metrics::Metrics;
use crate::orchestrate::{self, Cancel, RunContext, RunSpec};
use crate::stage::Stage;
use crate::{exit, ledger};

/// How often an idle worker looks at the ledger anyway (runs queued by another server, or
/// left queued because the lake was locked).
const POLL: Duration = Duration::from_secs(5);

/// The handle handlers and the scheduler use: queue, cancel, wake the worker.
#[derive(Clone, Default)]
pub struct JobQueue(Arc<QueueInner>);

#[derive(Default)]
struct QueueInner {
    wake: Notify,
    /// The run the worker is on (claimed, or waiting for the lake lock), with its flag.
    current: Mutex<Option<(String, Arc<Cancel>)>>,
    shutting_down: AtomicBool,
}

/// What `DELETE /v1/runs/{id}` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It was queued: it is cancelled and will not run.
    Queued,
    /// It is running in this server: it stops at its next stage boundary.
    Stopping,
    /// It is running in another process (CLI, Airflow, another server).
    RunningElsewhere,
    /// It is over: its final status.
    Finished(JobStatus),
    NotFound,
}

impl JobQueue {
    /// Records a queued run in the ledger and wakes the worker. Returns its run id.
    pub async fn enqueue(&self, wh: &mut gold::Warehouse, date: RunDate, kind: &str, stages: &[Stage]) -> Result<String, ApiError> {
        let id = orchestrate::new_run_id(date);
        let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
        ledger::queue_run(wh, &id, date, kind, &names).await?;
        self.0.wake.notify_one();
        Ok(id)
    }

    /// Cancels `run_id`: queued -> cancelled in the ledger; running here -> flagged.
    pub async fn cancel(&self, wh: &mut gold::Warehouse, run_id: &str, why: &str) -> Result<Cancelled, ApiError> {
        if ledger::cancel_queued(wh, run_id, why).await? {
            return Ok(Cancelled::Queued);
        }
        match ledger::run_status(wh, run_id).await? {
            None => Ok(Cancelled::NotFound),
            Some(JobStatus::Running) => {
                let current = self.0.current.lock().unwrap_or_else(|p| p.into_inner());
                match current.as_ref() {
                    Some((id, flag)) if id == run_id => {
                        flag.cancel(why);
                        Ok(Cancelled::Stopping)
                    }
                    _ => Ok(Cancelled::RunningElsewhere),
                }
            }
            // Not reachable in practice (nothing puts a run back to queued), answered honestly.
            Some(JobStatus::Queued) => Err(ApiError::conflict("the run changed state while being cancelled; try again")),
            Some(s) => Ok(Cancelled::Finished(s)),
        }
    }

    /// Stops the worker: the running run ends at its next stage boundary (recorded
    /// cancelled); queued runs stay queued.
    pub fn shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
        if let Some((_, flag)) = self.0.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            flag.cancel("stopped: the server shut down");
        }
        self.0.wake.notify_one();
    }

    fn stopping(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }

    fn set_current(&self, run: Option<(String, Arc<Cancel>)>) {
        *self.0.current.lock().unwrap_or_else(|p| p.into_inner()) = run;
    }

    /// The worker: until [`JobQueue::shutdown`], runs the oldest queued run, one at a time.
    pub async fn worker(self, ctx: RunContext, metrics: Metrics) {
        let mut failures: u32 = 0;
        while !self.stopping() {
            let next = async {
                let mut wh = gold::Warehouse::connect(&ctx.warehouse_url).await?;
                let next = ledger::next_queued(&mut wh).await;
                wh.close().await;
                next
            }
            .await;
            let (run_id, date, stage_names) = match next {
                Ok(Some(n)) => n,
                Ok(None) => {
                    let _ = tokio::time::timeout(POLL, self.0.wake.notified()).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("run queue: cannot read the ledger: {e}");
                    self.pause(orchestrate::backoff(failures.min(4))).await;
                    failures += 1;
                    continue;
                }
            };
            let stages: Vec<Stage> = stage_names.iter().filter_map(|s| Stage::parse(s)).collect();
            let cancel = Arc::new(Cancel::default());
            self.set_current(Some((run_id.clone(), cancel.clone())));
            if self.stopping() {
                self.set_current(None);
                break;
            }
            let spec = RunSpec { date, kind: "run", stages: &stages, queued_id: Some(run_id.clone()), cancel: Some(cancel) };
            tracing::info!("run {run_id}: starting {date} ({})", stage_names.join(", "));
            let result = orchestrate::run_locked_spec(&ctx, &spec, &format!("medallion serve (run {run_id})")).await;
            self.set_current(None);
            match result {
                Ok(o) => {
                    failures = 0;
                    tracing::info!("run {run_id}: {}{}", o.summary.status, o.summary.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default());
                    if o.ran {
                        metrics.record(&o);
                    }
                }
                Err(f) => {
                    // Before the claim (lake locked, warehouse unreachable) the run is still
                    // queued and is tried again; after it, the ledger has recorded the failure.
                    let still_queued = matches!(self.status(&ctx, &run_id).await, Some(JobStatus::Queued));
                    if still_queued {
                        tracing::warn!("run {run_id}: not started ({}); it stays queued", f.message);
                        self.pause(if f.code == exit::LOCKED { POLL } else { orchestrate::backoff(failures.min(4)) }).await;
                        failures += 1;
                    } else {
                        failures = 0;
                        tracing::warn!("run {run_id}: {}", f.message);
                        metrics.run_finished(JobStatus::Failed.as_str());
                    }
                }
            }
        }
    }

    async fn status(&self, ctx: &RunContext, run_id: &str) -> Option<JobStatus> {
        let mut wh = gold::Warehouse::connect(&ctx.warehouse_url).await.ok()?;
        let s = ledger::run_status(&mut wh, run_id).await.ok().flatten();
        wh.close().await;
        s
    }

    /// Waits `d`, or less when the server shuts down.
    async fn pause(&self, d: Duration) {
        if !self.stopping() {
            let _ = tokio::time::timeout(d, self.0.wake.notified()).await;
        }
    }
}

/// `serve --schedule`: at start and at every cron time (UTC), queues the dates the scheduler
/// would run (`schedule::plan`: the day after the last done date up to yesterday, within the
/// catch-up window), each once (a date with a queued or running run is not queued again), as
/// kind `schedule`. The worker runs them in date order like any queued run.
pub async fn schedule(state: super::state::AppState, cron: crate::schedule::Cron, catch_up_days: u32) {
    loop {
        if let Err(e) = queue_due(&state, catch_up_days).await {
            tracing::warn!("schedule: {}", e.detail);
        }
        let now = chrono::Utc::now();
        let Some(next) = cron.next_after(now) else {
            tracing::warn!("schedule: the cron expression never matches again");
            return;
        };
        tracing::info!("schedule: next run at {} UTC", next.format("%Y-%m-%d %H:%M"));
        tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
    }
}

async fn queue_due(state: &super::state::AppState, catch_up_days: u32) -> Result<(), ApiError> {
    let mut wh = state.writer().await?;
    let result = async {
        let today = RunDate::new(chrono::Utc::now().date_naive());
        let last_done = ledger::last_done_date(&mut wh).await?;
        // Queued runs are single dates: a failed date that a later completed run passed is
        // not gone back to here (it needs a replay: `medallion schedule` or `backfill`).
        for date in crate::schedule::plan(last_done, None, today, catch_up_days).dates {
            if !ledger::date_pending(&mut wh, date).await? {
                let id = state.jobs.enqueue(&mut wh, date, "schedule", &Stage::ALL).await?;
                tracing::info!("schedule: queued {date} as run {id}");
            }
        }
        Ok::<(), ApiError>(())
    }
    .await;
    wh.close().await;
    result
}
