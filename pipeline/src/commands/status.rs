//! `medallion status`: the runs and their stages, each feed's reconciliation and the products
//! diff, from the run ledger in the warehouse.

use crate::cli::StatusArgs;
use crate::commands::Globals;
use crate::{config, exit, ledger, render, Failure};

pub async fn run(g: &Globals, a: StatusArgs) -> Result<u8, Failure> {
    let lake = config::open("lake", &g.lake, true).await?;
    let mut wh = config::connect_warehouse(g.warehouse.as_deref(), &lake).await?;
    crate::orchestrate::migrate_all(&mut wh).await.map_err(Failure::from)?;
    let st = ledger::status(&mut wh, a.date, a.limit).await.map_err(Failure::from)?;
    wh.close().await;
    if g.json {
        render::print_json(&st);
    } else {
        render::print_status(&st);
    }
    Ok(exit::OK)
}
