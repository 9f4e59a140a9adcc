//! `medallion backfill`: [`replay::replay`] of a range under the lake lock. With `--from-raw`,
//! bronze re-lands each date from the lake's raw copies instead of the landing zone.

use crate::cli::BackfillArgs;
use crate::commands::Globals;
use crate::stage::{Stage, StageReport};
use crate::{exit, orchestrate, render, replay, Failure};

pub async fn run(g: &Globals, a: BackfillArgs) -> Result<u8, Failure> {
    orchestrate::date_range(a.from, a.to)?;
    let landing = (!a.from_raw).then_some((a.landing.as_str(), true));
    let mut ctx = orchestrate::context(&g.lake, landing, g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    ctx.options.bronze_from_raw = a.from_raw;
    let raw = if a.from_raw { " --from-raw" } else { "" };
    let guard = orchestrate::take_lock(&ctx, &format!("medallion backfill --from {} --to {}{raw}", a.from, a.to)).await?;
    let result = async {
        let mut wh = orchestrate::connect(&ctx).await?;
        orchestrate::abandon_dead_holder(&mut wh, &guard).await;
        let runs = replay::replay(&mut ctx, &mut wh, a.from, a.to, "backfill").await?;
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
            crate::out!("backfill {} {}", r.summary.date, r.summary.status);
        }
        if let Some(r) = gold {
            crate::out!("gold republished in full: {} rows to {}", r.tables.iter().map(|t| t.rows).sum::<u64>(), r.warehouse);
        }
    }
    // Nothing to do only when no date had anything (gold included).
    Ok(if runs.iter().all(|r| r.code == exit::NOTHING_TO_DO) { exit::NOTHING_TO_DO } else { exit::OK })
}
