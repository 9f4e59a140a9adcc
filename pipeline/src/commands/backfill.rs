//! `medallion backfill`: re-runs a range of dates in date order and ends in the state a clean
//! sequential run would have produced. Silver is first restored (Delta time travel) to its
//! state before `--from`; every date of the range, and every later date silver had already
//! run, is run again; the last date's run republishes gold in full.

use crate::cli::BackfillArgs;
use crate::commands::Globals;
use crate::stage::{Stage, StageReport};
use crate::{exit, orchestrate, render, Failure};

pub async fn run(g: &Globals, a: BackfillArgs) -> Result<u8, Failure> {
    let mut dates = orchestrate::date_range(a.from, a.to)?;
    let mut ctx = orchestrate::context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    let guard = orchestrate::take_lock(&ctx, &format!("medallion backfill --from {} --to {}", a.from, a.to)).await?;
    let result = async {
        let mut wh = orchestrate::connect(&ctx).await?;
        orchestrate::abandon_dead_holder(&mut wh, &guard).await;
        let (restored, later) = silver::restore_before(&ctx.lake, a.from).await.map_err(Failure::from)?;
        for r in &restored {
            tracing::info!("restored silver {r} (its state before {})", a.from);
        }
        let extra: Vec<schemas::RunDate> = later.iter().filter_map(|d| d.parse().ok()).filter(|d| *d > a.to).collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|d| d.to_string()).collect();
            tracing::warn!("silver had already run later dates ({}): running them again too, so the state stays sequential", list.join(", "));
            dates.extend(extra);
        }
        let mut runs = Vec::new();
        for (i, d) in dates.iter().enumerate() {
            let last = i + 1 == dates.len();
            // Gold once, at the end, in full: the restored runs may have touched dates the
            // new runs do not.
            ctx.options.full = last;
            let stages: &[Stage] = if last { &Stage::ALL } else { &[Stage::Bronze, Stage::Silver] };
            runs.push(orchestrate::run_date(&ctx, &mut wh, *d, "backfill", stages).await?);
        }
        wh.close().await;
        Ok::<_, Failure>(runs)
    }
    .await;
    guard.release().await;
    let runs = result?;
    let gold = runs.last().and_then(|r| {
        r.stages.iter().filter(|o| o.stage == Stage::Gold).find_map(|o| match &o.report {
            StageReport::Gold(g) => Some(g),
            _ => None,
        })
    });
    if g.json {
        render::print_json(&serde_json::json!({ "dates": runs.iter().map(|r| &r.summary).collect::<Vec<_>>(), "gold": gold }));
    } else {
        for r in &runs {
            println!("backfill {} {}", r.summary.date, r.summary.status);
        }
        if let Some(r) = gold {
            println!("gold republished in full: {} rows to {}", r.tables.iter().map(|t| t.rows).sum::<u64>(), r.warehouse);
        }
    }
    // Nothing to do only when no date had anything (gold included).
    Ok(if runs.iter().all(|r| r.code == exit::NOTHING_TO_DO) { exit::NOTHING_TO_DO } else { exit::OK })
}
