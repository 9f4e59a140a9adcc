//! `medallion maintain`: compaction, vacuum, checkpoint and log clean-up of the silver Delta
//! tables, under the lake lock.

use crate::cli::MaintainArgs;
use crate::commands::Globals;
use crate::{config, exit, lock, render, Failure};

pub async fn run(g: &Globals, a: MaintainArgs) -> Result<u8, Failure> {
    let lake = config::open("lake", &g.lake, true).await?;
    let guard = lock::LakeLock::acquire(&lake, "medallion maintain", std::time::Duration::from_secs(g.lock_timeout)).await?;
    let done = silver::maintain_all(&lake, a.retention_hours, a.force).await;
    guard.release().await;
    let done = done?;
    if g.json {
        render::print_json(&serde_json::json!({ "lake": lake.display, "tables": done }));
    } else {
        for t in &done {
            let r = &t.report;
            crate::out!(
                "{:<20} compacted {} files into {}, vacuumed {}, checkpoint at version {}, {} old log files removed",
                t.table, r.files_compacted, r.files_written, r.files_vacuumed, r.checkpoint_version, r.logs_removed
            );
        }
        crate::out!("maintained {} silver tables in {}", done.len(), lake.display);
    }
    Ok(exit::OK)
}
