//! `medallion status`: the runs and their stages, each feed's reconciliation and the products
//! diff, from the run ledger in the warehouse. Read-only: it creates and migrates nothing (a
//! warehouse without a ledger has "no runs recorded yet"). A run recorded as running whose
//! process is gone (it holds no lake lock or partner lock) is shown as abandoned. A sharded
//! run shows its partners.

use crate::cli::StatusArgs;
use crate::commands::Globals;
use crate::{config, exit, ledger, lock, render, Failure};

pub async fn run(g: &Globals, a: StatusArgs) -> Result<u8, Failure> {
    let lake = config::open("lake", &g.lake, false).await?;
    let st = match config::connect_warehouse_read_only(g.warehouse.as_deref(), &lake).await? {
        Some(mut wh) => {
            let holders = lock::live_holders(&lake).await.map_err(Failure::from)?;
            let st = ledger::status(&mut wh, a.date, a.limit, &holders).await.map_err(Failure::from);
            wh.close().await;
            st?
        }
        None => ledger::Status::default(),
    };
    if g.json {
        render::print_json(&st);
    } else if st.runs.is_empty() && st.feeds.is_empty() {
        crate::out!("no runs recorded yet");
    } else {
        render::print_status(&st);
    }
    Ok(exit::OK)
}
