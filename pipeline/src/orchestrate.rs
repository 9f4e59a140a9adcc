//! `run`, `backfill` and `schedule`: the stages chained under the lake lock, each attempt
//! recorded in the run ledger, transient failures retried with exponential backoff and jitter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lake::Location;

use crate::{exit, ledger, Failure};

pub const STAGES: [&str; 3] = ["bronze", "silver", "gold"];

pub struct RunContext {
    pub landing: Location,
    pub lake: Location,
    pub warehouse_url: String,
    pub retries: u32,
    pub lock_wait: Duration,
    pub quiet: bool,
    /// Set by SIGTERM / SIGINT: finish the current stage, start no other.
    pub stop: Arc<AtomicBool>,
}

/// How one stage ended.
pub struct StageOutcome {
    pub skipped: bool,
    pub rows: Option<u64>,
    pub summary: serde_json::Value,
    pub line: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub date: String,
    pub status: String,
    pub stages: Vec<serde_json::Value>,
    pub error: Option<String>,
}

pub fn backoff(attempt: u32) -> Duration {
    let base = std::env::var("MEDALLION_RETRY_BASE_MS").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(2000);
    let exp = base.saturating_mul(1 << attempt.min(6)).min(120_000);
    // Full jitter: a random point of the window, so parallel retries spread out.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    let mixed = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    Duration::from_millis(exp / 2 + mixed % (exp / 2 + 1))
}

async fn stage_once(ctx: &RunContext, wh: &mut gold::Warehouse, stage: &str, date: &str) -> Result<StageOutcome, Failure> {
    let run_date: schemas::RunDate = date.parse().map_err(Failure::usage)?;
    match stage {
        "bronze" => {
            let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
            let report = bronze::land_date(&ctx.landing, &ctx.lake, run_date, concurrency, &|_| {}).await?;
            let rows = report.rows_landed();
            let line = format!(
                "{} landed ({rows} rows), {} quarantined, {} already landed",
                report.count(bronze::LandAction::Landed),
                report.count(bronze::LandAction::Quarantined),
                report.count(bronze::LandAction::AlreadyLanded)
            );
            let summary = serde_json::json!({
                "landed": report.count(bronze::LandAction::Landed),
                "quarantined": report.count(bronze::LandAction::Quarantined),
                "already_landed": report.count(bronze::LandAction::AlreadyLanded),
                "ignored": report.ignored.len(),
            });
            Ok(StageOutcome { skipped: report.feeds.is_empty(), rows: Some(rows), summary, line })
        }
        "silver" => {
            let registry = bronze::Registry::new(&ctx.lake);
            match silver::run_silver(&ctx.lake, run_date).await {
                Ok(r) => {
                    let feeds = registry.feeds_for_date(run_date).await?;
                    ledger::sync_feeds(wh, date, &feeds, Some(&r)).await?;
                    let rows: u64 = r.feeds.iter().map(|f| f.rows_read).sum();
                    let line = format!(
                        "{} feeds reconciled, {} rows read, {} rejected, {} duplicate",
                        r.feeds.len(),
                        rows,
                        r.feeds.iter().map(|f| f.rejected).sum::<u64>(),
                        r.feeds.iter().map(|f| f.duplicate).sum::<u64>()
                    );
                    let summary = serde_json::json!({ "feeds": r.feeds.len(), "business_dates": r.business_dates, "product_changes": r.product_changes, "orphan_items": r.orphan_items });
                    Ok(StageOutcome { skipped: false, rows: Some(rows), summary, line })
                }
                Err(silver::SilverError::NothingToDo(_)) => {
                    let feeds = registry.feeds_for_date(run_date).await?;
                    ledger::sync_feeds(wh, date, &feeds, None).await?;
                    Ok(StageOutcome { skipped: true, rows: None, summary: serde_json::json!({}), line: "nothing landed".into() })
                }
                Err(e) => Err(Failure::from(e)),
            }
        }
        _ => match gold::run_gold(&ctx.lake, wh, run_date, &gold::GoldOptions::default()).await {
            Ok(r) => {
                let rows: u64 = r.tables.iter().map(|t| t.rows).sum();
                let line = format!("{} rows published for {} order dates ({} silver runs)", rows, r.order_dates.len(), r.silver_runs.len());
                Ok(StageOutcome { skipped: false, rows: Some(rows), summary: serde_json::to_value(&r).unwrap_or_default(), line })
            }
            Err(gold::GoldError::NothingToDo(m)) => Ok(StageOutcome { skipped: true, rows: None, summary: serde_json::json!({}), line: m }),
            Err(e) => Err(Failure::from(e)),
        },
    }
}

/// Opens the warehouse, retrying while it cannot be reached.
pub async fn connect(ctx: &RunContext) -> Result<gold::Warehouse, Failure> {
    let mut attempt = 0;
    loop {
        match gold::Warehouse::connect(&ctx.warehouse_url).await {
            Ok(mut wh) => match wh.migrate().await {
                Ok(_) => return Ok(wh),
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

/// Runs `stages` for `date` (the lock must be held). Returns the summary and the exit code.
pub async fn run_date(ctx: &RunContext, wh: &mut gold::Warehouse, date: &str, kind: &str, stages: &[&str]) -> Result<(RunSummary, u8), Failure> {
    let run_id = format!("{}-{}-{}", date, chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), std::process::id());
    ledger::start_run(wh, &run_id, date, kind, stages).await?;
    let mut summary = RunSummary { run_id: run_id.clone(), date: date.into(), status: "running".into(), stages: Vec::new(), error: None };
    let mut all_skipped = true;
    for stage in stages {
        if ctx.stop.load(Ordering::SeqCst) {
            let msg = "stopped by a signal before this stage";
            ledger::finish_run(wh, &run_id, "failed", Some(msg)).await?;
            summary.status = "failed".into();
            summary.error = Some(msg.into());
            return Ok((summary, exit::FAILED));
        }
        let mut attempt: u32 = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            ledger::job(wh, &run_id, stage, "running", attempt, None, None, None).await?;
            lake::fault::point(&format!("stage.{stage}"), attempt as usize).await;
            match stage_once(ctx, wh, stage, date).await {
                Ok(o) => {
                    let status = if o.skipped { "skipped" } else { "completed" };
                    all_skipped &= o.skipped;
                    ledger::job(wh, &run_id, stage, status, attempt, o.rows, Some(&o.summary), None).await?;
                    if !ctx.quiet {
                        eprintln!("{date} {stage:<6} {status} in {:.1}s: {}", started.elapsed().as_secs_f64(), o.line);
                    }
                    summary.stages.push(serde_json::json!({ "stage": stage, "status": status, "attempts": attempt, "rows": o.rows, "summary": o.summary }));
                    break;
                }
                Err(f) if f.code == exit::UNAVAILABLE && attempt <= ctx.retries => {
                    let wait = backoff(attempt - 1);
                    tracing::warn!("{date} {stage}: {} — retrying in {:.1}s (attempt {} of {})", f.message, wait.as_secs_f64(), attempt + 1, ctx.retries + 1);
                    // The ledger may live on the same unreachable server: best effort.
                    let _ = ledger::job(wh, &run_id, stage, "running", attempt, None, None, Some(&f.message)).await;
                    tokio::time::sleep(wait).await;
                }
                Err(f) => {
                    let _ = ledger::job(wh, &run_id, stage, "failed", attempt, None, None, Some(&f.message)).await;
                    let _ = ledger::finish_run(wh, &run_id, "failed", Some(&format!("{stage}: {}", f.message))).await;
                    summary.status = "failed".into();
                    summary.error = Some(format!("{stage}: {}", f.message));
                    summary.stages.push(serde_json::json!({ "stage": stage, "status": "failed", "attempts": attempt, "error": f.message }));
                    return Err(Failure { code: f.code, message: format!("{date} {stage} failed after {attempt} attempt(s): {}", f.message) });
                }
            }
        }
    }
    let status = if all_skipped { "skipped" } else { "completed" };
    ledger::finish_run(wh, &run_id, status, None).await?;
    summary.status = status.into();
    Ok((summary, if all_skipped { exit::NOTHING_TO_DO } else { exit::OK }))
}

/// Every date from `from` to `to`, inclusive.
pub fn date_range(from: &str, to: &str) -> Result<Vec<String>, Failure> {
    let a = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").map_err(|e| Failure::usage(format!("--from {from}: {e}")))?;
    let b = chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").map_err(|e| Failure::usage(format!("--to {to}: {e}")))?;
    if b < a {
        return Err(Failure::usage(format!("--to {to} is before --from {from}")));
    }
    if (b - a).num_days() > 3660 {
        return Err(Failure::usage("a backfill covers at most ten years"));
    }
    Ok(a.iter_days().take_while(|d| *d <= b).map(|d| d.format("%Y-%m-%d").to_string()).collect())
}

/// A five-field cron expression (minute hour day-of-month month day-of-week, UTC) with `*`,
/// lists, ranges and steps.
#[derive(Debug, Clone)]
pub struct Cron {
    fields: [Vec<bool>; 5],
    dom_any: bool,
    dow_any: bool,
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!("cron {expr:?}: expected 5 fields (minute hour day month weekday), got {}", parts.len()));
        }
        let ranges = [(0u32, 59u32), (0, 23), (1, 31), (1, 12), (0, 7)];
        let mut fields: [Vec<bool>; 5] = Default::default();
        for (i, (p, (lo, hi))) in parts.iter().zip(ranges).enumerate() {
            let mut set = vec![false; hi as usize + 1];
            for item in p.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("cron {expr:?}: bad step in {item:?}"))?),
                    None => (item, 1),
                };
                if step == 0 {
                    return Err(format!("cron {expr:?}: step 0 in {item:?}"));
                }
                let (a, b) = if range == "*" {
                    (lo, hi)
                } else if let Some((a, b)) = range.split_once('-') {
                    (a.parse().map_err(|_| format!("cron {expr:?}: bad range {item:?}"))?, b.parse().map_err(|_| format!("cron {expr:?}: bad range {item:?}"))?)
                } else {
                    let v: u32 = range.parse().map_err(|_| format!("cron {expr:?}: bad value {item:?}"))?;
                    (v, if item.contains('/') { hi } else { v })
                };
                if a < lo || b > hi || a > b {
                    return Err(format!("cron {expr:?}: {item:?} is outside {lo}-{hi}"));
                }
                for v in (a..=b).step_by(step as usize) {
                    set[v as usize] = true;
                }
            }
            fields[i] = set;
        }
        if fields[4][7] {
            fields[4][0] = true;
        }
        Ok(Cron { dom_any: parts[2] == "*", dow_any: parts[4] == "*", fields })
    }

    fn matches(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        let f = &self.fields;
        let dom = f[2][t.day() as usize];
        let dow = f[4][t.weekday().num_days_from_sunday() as usize];
        // Classic cron: when both day fields are restricted, either may match.
        let day = match (self.dom_any, self.dow_any) {
            (false, false) => dom || dow,
            _ => dom && dow,
        };
        f[0][t.minute() as usize] && f[1][t.hour() as usize] && f[3][t.month() as usize] && day
    }

    /// The first matching minute strictly after `after`.
    pub fn next_after(&self, after: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::{DurationRound, TimeDelta};
        let mut t = after.duration_trunc(TimeDelta::minutes(1)).ok()? + TimeDelta::minutes(1);
        for _ in 0..(366 * 24 * 60 * 5) {
            if self.matches(t) {
                return Some(t);
            }
            t += TimeDelta::minutes(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cron_next() {
        let c = Cron::parse("0 1 * * *").unwrap();
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
        assert_eq!(c.next_after(t).unwrap(), chrono::Utc.with_ymd_and_hms(2026, 11, 21, 1, 0, 0).unwrap());
        let c = Cron::parse("*/15 * * * 1-5").unwrap();
        let sat = chrono::Utc.with_ymd_and_hms(2026, 11, 21, 10, 7, 0).unwrap();
        assert_eq!(c.next_after(sat).unwrap(), chrono::Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap());
        assert!(Cron::parse("0 1 * *").is_err());
        assert!(Cron::parse("61 1 * * *").is_err());
        assert!(Cron::parse("0 1 * * 7").unwrap().matches(chrono::Utc.with_ymd_and_hms(2026, 11, 22, 1, 0, 0).unwrap()));
    }

    #[test]
    fn ranges_and_backoff() {
        assert_eq!(date_range("2026-11-30", "2026-12-02").unwrap(), vec!["2026-11-30", "2026-12-01", "2026-12-02"]);
        assert!(date_range("2026-12-02", "2026-11-30").is_err());
        for a in 0..8 {
            let b = backoff(a).as_millis() as u64;
            let exp = (2000u64 << a.min(6)).min(120_000);
            assert!(b >= exp / 2 && b <= exp, "attempt {a}: {b} ms");
        }
    }
}
