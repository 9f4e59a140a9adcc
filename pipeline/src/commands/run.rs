//! `medallion run`: the chosen stages of one date under the lake lock, recorded in the ledger,
//! transient failures retried.

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
    let mut ctx = orchestrate::context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    ctx.options.engine = a.engine;
    let o = orchestrate::run_locked(&ctx, a.date, "run", &stages, &format!("medallion run --date {}", a.date)).await?;
    if g.json {
        render::print_json(&o.summary);
    } else {
        println!("run {} {}: {} (run id {})", a.date, o.summary.status, render::stage_list(&o.summary), o.summary.run_id);
        println!("see: medallion status --date {}", a.date);
    }
    Ok(o.code)
}
