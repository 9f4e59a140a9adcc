//! Replaying a range of dates in date order (`backfill`, and `schedule` when a date before an
//! already completed one failed): ends in the state a clean sequential run would have
//! produced. Silver is first restored (Delta time travel) to its state before `from`; every
//! date of the range, and every later date silver had already run, is run again; the last
//! date's run republishes gold in full. With `bronze_from_raw`, every raw copy of the range is
//! checked before silver is touched.

use schemas::RunDate;

use crate::orchestrate::{self, RunContext, RunOutcome};
use crate::stage::Stage;
use crate::Failure;

/// Replays `from..=to` (the lake lock must be held), recording each date as a run of `kind`.
pub async fn replay(ctx: &mut RunContext, wh: &mut gold::Warehouse, from: RunDate, to: RunDate, kind: &str) -> Result<Vec<RunOutcome>, Failure> {
    let mut dates = orchestrate::date_range(from, to)?;
    if ctx.options.bronze_from_raw {
        for d in &dates {
            bronze::raw_feeds(&ctx.lake, *d).await?;
        }
    }
    let (restored, later) = silver::restore_before(&ctx.lake, from).await.map_err(Failure::from)?;
    for r in &restored {
        tracing::info!("restored silver {r} (its state before {from})");
    }
    let extra: Vec<RunDate> = later.iter().filter_map(|d| d.parse().ok()).filter(|d| *d > to).collect();
    if !extra.is_empty() {
        let list: Vec<String> = extra.iter().map(|d| d.to_string()).collect();
        tracing::warn!("silver had already run later dates ({}): running them again too, so the state stays sequential", list.join(", "));
        dates.extend(extra);
    }
    let full = ctx.options.full;
    let mut runs = Vec::new();
    for (i, d) in dates.iter().enumerate() {
        let last = i + 1 == dates.len();
        // Gold once, at the end, in full: the restored runs may have touched dates the new
        // runs do not.
        ctx.options.full = last;
        let stages: &[Stage] = if last { &Stage::ALL } else { &[Stage::Bronze, Stage::Silver] };
        let r = orchestrate::run_date(ctx, wh, *d, kind, stages).await;
        ctx.options.full = full;
        runs.push(r?);
    }
    Ok(runs)
}
