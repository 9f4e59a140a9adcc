//! `medallion maintain` over every silver table: compaction, vacuum, checkpoint, log clean-up.


use lake::Location;
use serde::Serialize;

use crate::delta::Lakehouse;
use crate::SilverError;
use crate::run::*;

/// One table's maintenance outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TableMaintenance {
    pub table: String,
    #[serde(flatten)]
    pub report: crate::delta::MaintainReport,
}

/// `medallion maintain`: compaction, vacuum with a retention, a checkpoint and log cleanup for
/// every silver table that exists.
pub async fn maintain_all(lake: &Location, retention_hours: u64, force: bool) -> Result<Vec<TableMaintenance>, SilverError> {
    let lh = Lakehouse::new(lake)?;
    let mut out = Vec::new();
    for t in all_tables() {
        let Some(table) = lh.open(t).await? else { continue };
        if Lakehouse::version(&table).is_none() {
            continue;
        }
        let (_, report) = lh.maintain(table, retention_hours, force).await?;
        out.push(TableMaintenance { table: t.to_string(), report });
    }
    Ok(out)
}
