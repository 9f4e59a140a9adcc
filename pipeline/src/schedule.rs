//! `medallion schedule`: runs the previous day at every cron time (UTC), catching up the
//! dates missed since the last completed run in the ledger. A date that fails stops the
//! catch-up (later dates build on it); SIGTERM finishes the current stage and exits.

use std::sync::atomic::Ordering;

use schemas::RunDate;

use crate::orchestrate::{self, RunContext};
use crate::stage::Stage;
use crate::{exit, ledger, lock, Failure};

/// Returns the exit code and, per date tried, its outcome (for `--json`).
pub async fn schedule(ctx: RunContext, cron: Cron, catch_up_days: u32, once: bool) -> Result<(u8, Vec<serde_json::Value>), Failure> {
    let mut wh = orchestrate::connect(&ctx).await?;
    let mut done: Vec<serde_json::Value> = Vec::new();
    loop {
        let yesterday = RunDate::new(chrono::Utc::now().date_naive() - chrono::Days::new(1));
        let earliest = RunDate::new(yesterday.date() - chrono::Days::new(catch_up_days.saturating_sub(1) as u64));
        let first = match ledger::last_done_date(&mut wh).await? {
            Some(d) => d.succ().unwrap_or(yesterday).max(earliest),
            None => earliest,
        };
        let mut day = first;
        while day <= yesterday && !ctx.stop.load(Ordering::SeqCst) {
            let date = day;
            let guard = lock_for_schedule(&ctx, date).await;
            if let Some(guard) = guard {
                orchestrate::abandon_dead_holder(&mut wh, &guard).await;
                let result = orchestrate::run_date(&ctx, &mut wh, date, "schedule", &Stage::ALL).await;
                guard.release().await;
                match result {
                    Ok(o) => {
                        eprintln!("schedule: {date} {}", o.summary.status);
                        done.push(serde_json::json!({ "date": date, "status": o.summary.status, "run_id": o.summary.run_id }));
                    }
                    Err(f) => {
                        eprintln!("schedule: {date} failed: {}", f.message);
                        done.push(serde_json::json!({ "date": date, "status": "failed", "error": f.message }));
                        break; // later dates wait: they build on this one
                    }
                }
            }
            let Some(next) = day.succ() else { break };
            day = next;
        }
        if once || ctx.stop.load(Ordering::SeqCst) {
            wh.close().await;
            return Ok((exit::OK, done));
        }
        let now = chrono::Utc::now();
        let next = cron.next_after(now).ok_or_else(|| Failure::usage("the cron expression never matches"))?;
        eprintln!("schedule: next run at {} UTC", next.format("%Y-%m-%d %H:%M"));
        while chrono::Utc::now() < next {
            if ctx.stop.load(Ordering::SeqCst) {
                wh.close().await;
                return Ok((exit::OK, done));
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// The lake lock for one scheduled date, or None (said on stderr) when it cannot be had now.
async fn lock_for_schedule(ctx: &RunContext, date: RunDate) -> Option<lock::LakeLock> {
    match lock::LakeLock::acquire(&ctx.lake, &format!("medallion schedule ({date})"), ctx.lock_wait).await {
        Ok(g) => Some(g),
        Err(lock::LockError::Held(m)) | Err(lock::LockError::Store(m)) => {
            eprintln!("schedule: {date} not run now: {m}");
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
