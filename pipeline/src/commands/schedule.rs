//! `medallion schedule`: the pipeline at every cron time, catching up missed dates.

use crate::cli::ScheduleArgs;
use crate::commands::Globals;
use crate::schedule::{schedule, Cron};
use crate::{orchestrate, Failure};

pub async fn run(g: &Globals, a: ScheduleArgs) -> Result<u8, Failure> {
    let cron = Cron::parse(&a.cron).map_err(Failure::usage)?;
    let ctx = orchestrate::context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    let (code, dates) = schedule(ctx, cron, a.catch_up_days, a.once).await?;
    if g.json {
        crate::render::print_json(&serde_json::json!({ "dates": dates }));
    }
    Ok(code)
}
