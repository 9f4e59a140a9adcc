//! `medallion bronze|silver|gold`: one stage of one date, through the same entry point as
//! `run --stages` (lock, ledger records, retries), printing that stage's own report.

use crate::cli::{BronzeArgs, CopyFormatArg, GoldArgs, SilverArgs};
use crate::commands::Globals;
use crate::orchestrate::{self, RunContext};
use crate::stage::{Stage, StageReport};
use crate::{exit, render, Failure};

async fn one_stage(g: &Globals, ctx: &RunContext, date: schemas::RunDate, stage: Stage) -> Result<(StageReport, f64), Failure> {
    let shard = ctx.options.partners.as_ref().map(|p| format!(" --partners {}", p.iter().cloned().collect::<Vec<_>>().join(","))).unwrap_or_default();
    let command = format!("medallion {stage} --date {date}{shard}");
    let mut outcome = orchestrate::run_locked(ctx, date, "run", &[stage], &command).await?;
    let o = outcome.stages.pop().ok_or_else(|| Failure::failed(format!("{date} {stage}: {}", outcome.summary.error.unwrap_or_default())))?;
    if let StageReport::Skipped(why) = &o.report {
        if !g.json {
            eprintln!("medallion: nothing to do: {why}");
        }
    }
    Ok((o.report, o.seconds))
}

pub async fn bronze(g: &Globals, a: BronzeArgs) -> Result<u8, Failure> {
    let mut ctx = orchestrate::context(&g.lake, Some((&a.landing, false)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    ctx.options.partners = orchestrate::partner_set(&a.partners)?;
    if let Some(c) = a.concurrency {
        ctx.options.concurrency = c.max(1);
    }
    let (report, seconds) = one_stage(g, &ctx, a.date, Stage::Bronze).await?;
    let StageReport::Bronze(report) = report else { return Ok(exit::NOTHING_TO_DO) };
    if g.json {
        render::print_json(&render::bronze_json(&report, &ctx.lake.display, seconds));
    } else {
        render::print_bronze(a.date, &report, &ctx.lake.display, seconds);
    }
    if report.feeds.is_empty() {
        if !g.json {
            let landing = ctx.landing.as_ref().map(|l| l.display.as_str()).unwrap_or_default();
            eprintln!("medallion: nothing to do: no feeds for {} under {landing}", a.date);
        }
        return Ok(exit::NOTHING_TO_DO);
    }
    Ok(exit::OK)
}

pub async fn silver(g: &Globals, a: SilverArgs) -> Result<u8, Failure> {
    let mut ctx = orchestrate::context(&g.lake, None, g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    ctx.options.partners = orchestrate::partner_set(&a.partners)?;
    match one_stage(g, &ctx, a.date, Stage::Silver).await? {
        (StageReport::Silver(r), seconds) => {
            if g.json {
                render::print_json(&r);
            } else {
                render::print_silver(&r, seconds);
            }
            Ok(exit::OK)
        }
        _ => Ok(exit::NOTHING_TO_DO),
    }
}

pub async fn gold(g: &Globals, a: GoldArgs) -> Result<u8, Failure> {
    let mut ctx = orchestrate::context(&g.lake, None, g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    ctx.options.full = a.full;
    ctx.options.engine = a.engine;
    ctx.options.copy_format = match a.copy_format {
        CopyFormatArg::Binary => gold::warehouse::CopyFormat::Binary,
        CopyFormatArg::Text => gold::warehouse::CopyFormat::Text,
    };
    match one_stage(g, &ctx, a.date, Stage::Gold).await? {
        (StageReport::Gold(r), _) => {
            if g.json {
                render::print_json(&r);
            } else {
                render::print_gold(&r);
            }
            Ok(exit::OK)
        }
        _ => Ok(exit::NOTHING_TO_DO),
    }
}
