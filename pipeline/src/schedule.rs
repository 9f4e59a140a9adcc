//! `medallion schedule`: runs the previous day at every cron time (UTC), catching up the
//! dates missed since the last completed run in the ledger. A date that is not done — it
//! failed, or its lake lock could not be had — stops the catch-up (later dates build on it)
//! and is tried again first at the next tick; SIGTERM finishes the current stage and exits.

use std::sync::atomic::Ordering;

use schemas::RunDate;

use crate::orchestrate::{self, RunContext};
use crate::stage::Stage;
use crate::{exit, ledger, lock, Failure};

/// Returns the exit code and, per date tried, its outcome (for `--json`).
pub async fn schedule(mut ctx: RunContext, cron: Cron, catch_up_days: u32, once: bool) -> Result<(u8, Vec<serde_json::Value>), Failure> {
    let mut wh = orchestrate::connect(&ctx).await?;
    let mut done: Vec<serde_json::Value> = Vec::new();
    loop {
        let today = RunDate::new(chrono::Utc::now().date_naive());
        let last_done = ledger::last_done_date(&mut wh).await?;
        let first_failed = ledger::first_failed_date(&mut wh, window_start(today, catch_up_days)).await?;
        let plan = plan(last_done, first_failed, today, catch_up_days);
        if plan.replay {
            let (from, to) = (plan.dates[0], *plan.dates.last().expect("a replay has dates"));
            crate::logging::progress(&format!("schedule: {from} failed but a later date was completed since: replaying {from} to {to} as a backfill"));
            if let Some(guard) = lock_for_schedule(&ctx, from).await {
                orchestrate::abandon_dead_holder(&mut wh, &guard).await;
                let result = crate::replay::replay(&mut ctx, &mut wh, from, to, "schedule").await;
                guard.release().await;
                match result {
                    Ok(runs) => {
                        for o in runs {
                            crate::logging::progress(&format!("schedule: {} {}", o.summary.date, o.summary.status));
                            done.push(serde_json::json!({ "date": o.summary.date, "status": o.summary.status, "run_id": o.summary.run_id }));
                        }
                    }
                    Err(f) => {
                        crate::logging::progress(&format!("schedule: replay from {from} failed: {}", f.message));
                        done.push(serde_json::json!({ "date": from, "status": "failed", "error": f.message }));
                    }
                }
            } else {
                done.push(serde_json::json!({ "date": from, "status": "locked" }));
            }
        }
        for date in if plan.replay { Vec::new() } else { plan.dates } {
            if ctx.stop.load(Ordering::SeqCst) {
                break;
            }
            let guard = lock_for_schedule(&ctx, date).await;
            let outcome = if let Some(guard) = guard {
                orchestrate::abandon_dead_holder(&mut wh, &guard).await;
                let result = orchestrate::run_date(&ctx, &mut wh, date, "schedule", &Stage::ALL).await;
                guard.release().await;
                match result {
                    Ok(o) => {
                        crate::logging::progress(&format!("schedule: {date} {}", o.summary.status));
                        done.push(serde_json::json!({ "date": date, "status": o.summary.status, "run_id": o.summary.run_id }));
                        if matches!(o.summary.status, schemas::JobStatus::Completed | schemas::JobStatus::Skipped) { DateOutcome::Done } else { DateOutcome::Failed }
                    }
                    Err(f) => {
                        crate::logging::progress(&format!("schedule: {date} failed: {}", f.message));
                        done.push(serde_json::json!({ "date": date, "status": "failed", "error": f.message }));
                        DateOutcome::Failed
                    }
                }
            } else {
                done.push(serde_json::json!({ "date": date, "status": "locked" }));
                DateOutcome::Locked
            };
            if outcome.stops_catch_up() {
                // Later dates wait: they build on this one, which the next tick tries first.
                break;
            }
        }
        if once || ctx.stop.load(Ordering::SeqCst) {
            wh.close().await;
            return Ok((exit::OK, done));
        }
        let now = chrono::Utc::now();
        let next = cron.next_after(now).ok_or_else(|| Failure::usage("the cron expression never matches"))?;
        crate::logging::progress(&format!("schedule: next run at {} UTC", next.format("%Y-%m-%d %H:%M")));
        while chrono::Utc::now() < next {
            if ctx.stop.load(Ordering::SeqCst) {
                wh.close().await;
                return Ok((exit::OK, done));
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// What became of one scheduled date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOutcome {
    /// Completed, or nothing to do: the ledger records it as done.
    Done,
    Failed,
    /// Its lake lock could not be had within --lock-timeout.
    Locked,
}

impl DateOutcome {
    /// A date not done stops the catch-up: later dates build on it.
    pub fn stops_catch_up(self) -> bool {
        self != DateOutcome::Done
    }
}

/// The first date of the catch-up window of `catch_up_days` ending the day before `today`.
pub fn window_start(today: RunDate, catch_up_days: u32) -> RunDate {
    let yesterday = today.pred().unwrap_or(today);
    RunDate::new(yesterday.date() - chrono::Days::new(catch_up_days.saturating_sub(1) as u64))
}

/// What a tick runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In order, ending yesterday.
    pub dates: Vec<RunDate>,
    /// The first date failed while a later one was completed since: the dates are replayed
    /// as a backfill (silver restored first), so the history stays sequential.
    pub replay: bool,
}

/// The dates a tick runs: from the day after the last done date (never before the catch-up
/// window) to yesterday. A date that failed or was locked is not done, so it stays the first
/// date of the next tick's plan; a failed date before the last done one (a later date was
/// completed by hand since) starts the plan instead, as a replay.
pub fn plan(last_done: Option<RunDate>, first_failed: Option<RunDate>, today: RunDate, catch_up_days: u32) -> Plan {
    let none = Plan { dates: Vec::new(), replay: false };
    let Some(yesterday) = today.pred() else { return none };
    let earliest = window_start(today, catch_up_days);
    let after_done = match last_done {
        Some(d) => match d.succ() {
            Some(next) => next.max(earliest),
            None => return none,
        },
        None => earliest,
    };
    let (first, replay) = match first_failed {
        Some(f) if f >= earliest && f < after_done && f <= yesterday => (f, true),
        _ => (after_done, false),
    };
    if first > yesterday {
        return none;
    }
    Plan { dates: first.iter_to(yesterday).collect(), replay }
}

/// The lake lock for one scheduled date, or None (said on stderr) when it cannot be had now.
async fn lock_for_schedule(ctx: &RunContext, date: RunDate) -> Option<lock::LakeLock> {
    match lock::LakeLock::acquire(&ctx.lake, &format!("medallion schedule ({date})"), ctx.lock_wait).await {
        Ok(g) => Some(g),
        Err(lock::LockError::Held(m)) | Err(lock::LockError::Store(m)) => {
            crate::logging::progress(&format!("schedule: {date} not run now: {m}"));
            None
        }
    }
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

    fn d(s: &str) -> RunDate {
        s.parse().unwrap()
    }

    #[test]
    fn plan_covers_the_window_after_the_last_done_date() {
        let today = d("2026-11-20");
        let dates = |last, failed, days| {
            let p = plan(last, failed, today, days);
            assert!(!p.replay);
            p.dates
        };
        assert_eq!(dates(None, None, 3), [d("2026-11-17"), d("2026-11-18"), d("2026-11-19")]);
        assert_eq!(dates(Some(d("2026-11-17")), None, 3), [d("2026-11-18"), d("2026-11-19")]);
        assert_eq!(dates(Some(d("2026-11-01")), None, 2), [d("2026-11-18"), d("2026-11-19")], "never before the window");
        assert!(dates(Some(d("2026-11-19")), None, 3).is_empty());
        assert!(dates(Some(d("2026-11-25")), None, 3).is_empty());
        assert!(dates(None, None, 0).len() <= 1);
        // The failed date is the next one anyway: an ordinary plan.
        assert_eq!(dates(Some(d("2026-11-17")), Some(d("2026-11-18")), 3), [d("2026-11-18"), d("2026-11-19")]);
        assert!(dates(Some(d("2026-11-10")), Some(d("2026-11-05")), 3).len() == 3, "a failure before the window is not gone back to");
    }

    /// A scheduled date failed, then a later date was run by hand: the ledger's last done date
    /// is past the failure, which must not hide it.
    #[test]
    fn a_failed_date_before_a_later_completed_one_is_replayed() {
        let today = d("2026-11-20");
        let p = plan(Some(d("2026-11-18")), Some(d("2026-11-17")), today, 5);
        assert_eq!(p, Plan { dates: vec![d("2026-11-17"), d("2026-11-18"), d("2026-11-19")], replay: true });
        let p = plan(Some(d("2026-11-19")), Some(d("2026-11-17")), today, 5);
        assert!(p.replay && p.dates.len() == 3, "even when nothing is new");
    }

    /// Ticks of the scheduler against a simulated ledger: a date whose lock could not be had
    /// (or that failed) stops the tick and is the first date of the next one; it is never
    /// passed over.
    #[test]
    fn a_locked_or_failed_date_is_retried_at_the_next_tick() {
        let today = d("2026-11-20");
        let mut done: Vec<RunDate> = Vec::new();
        let tick = |outcome: &dyn Fn(RunDate) -> DateOutcome, done: &mut Vec<RunDate>| {
            let mut tried = Vec::new();
            for date in plan(done.iter().max().copied(), None, today, 4).dates {
                tried.push(date);
                let o = outcome(date);
                if o == DateOutcome::Done {
                    done.push(date);
                }
                if o.stops_catch_up() {
                    break;
                }
            }
            tried
        };
        let first = tick(&|x| if x == d("2026-11-17") { DateOutcome::Locked } else { DateOutcome::Done }, &mut done);
        assert_eq!(first, [d("2026-11-16"), d("2026-11-17")], "stops at the locked date");
        let second = tick(&|x| if x == d("2026-11-18") { DateOutcome::Failed } else { DateOutcome::Done }, &mut done);
        assert_eq!(second, [d("2026-11-17"), d("2026-11-18")], "the locked date first, then stops at the failed one");
        let third = tick(&|_| DateOutcome::Done, &mut done);
        assert_eq!(third, [d("2026-11-18"), d("2026-11-19")]);
        assert_eq!(done, [d("2026-11-16"), d("2026-11-17"), d("2026-11-18"), d("2026-11-19")]);
    }

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
}
