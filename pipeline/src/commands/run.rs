//! `medallion run`: the chosen stages of one date under the lake lock, recorded in the ledger,
//! transient failures retried. With `--partners` it is a shard: bronze and silver of those
//! partners under their partner locks (gold runs once, after every shard: `medallion gold`).

use crate::cli::RunArgs;
use crate::commands::Globals;
use crate::stage::Stage;
use crate::{orchestrate, render, Failure};

pub async fn run(g: &Globals, a: RunArgs) -> Result<u8, Failure> {
    let mut stages = Vec::new();
    for s in &a.stages {
        stages.push(Stage::parse(s).ok_or_else(|| Failure::usage(format!("--stages: unknown stage {s:?} (bronze, silver, gold)")))?);
    }
    // Pipeline order, whatever order they were given in.
    stages.sort();
    stages.dedup();
    let partners = orchestrate::partner_set(&a.partners)?;
    let shard = partners.as_ref().map(|p| format!(" --partners {}", p.iter().cloned().collect::<Vec<_>>().join(","))).unwrap_or_default();
    if partners.is_some() && stages.contains(&Stage::Gold) {
        // A shard runs bronze and silver; gold runs once, after every shard.
        stages.retain(|s| *s != Stage::Gold);
        if !g.quiet && !g.json {
            eprintln!("medallion: --partners: this shard runs {}; run `medallion gold --date {}` once every shard has finished", stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(" and "), a.date);
        }
        if stages.is_empty() {
            return Err(Failure::usage("--partners: a shard runs bronze and/or silver, not gold alone"));
        }
    }
    let mut ctx = orchestrate::context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    ctx.options.partners = partners;
    ctx.options.engine = a.engine;
    let o = orchestrate::run_locked(&ctx, a.date, "run", &stages, &format!("medallion run --date {}{shard}", a.date)).await?;
    if g.json {
        render::print_json(&o.summary);
    } else {
        crate::out!("run {} {}: {} (run id {})", a.date, o.summary.status, render::stage_list(&o.summary), o.summary.run_id);
        crate::out!("see: medallion status --date {}", a.date);
    }
    Ok(o.code)
}
