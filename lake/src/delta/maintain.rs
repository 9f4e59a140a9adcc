//! Maintenance, in this order: compaction of small files (optimize, one commit if there was
//! anything to compact), vacuum of data files no longer referenced for longer than the
//! retention (including orphans of crashed writes), a checkpoint of the final version and the
//! deletion of expired log files. A retention below [`MIN_RETENTION_HOURS`] is refused unless
//! forced (only safe when nothing else reads or writes the table).

use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::DeltaTable;

use super::{DeltaError, Lakehouse};

/// Vacuum never deletes files removed less than this long ago unless forced: it is Delta's
/// default `deletedFileRetentionDuration` (one week), long enough for a reader still on an
/// older version and for [`Lakehouse::restore`] to the versions of the last few runs.
pub const MIN_RETENTION_HOURS: u64 = 168;

/// How to maintain a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintainOptions {
    /// Vacuum deletes files unreferenced for longer than this.
    pub retention_hours: u64,
    /// Allows a retention below [`MIN_RETENTION_HOURS`].
    pub force: bool,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        MaintainOptions { retention_hours: MIN_RETENTION_HOURS, force: false }
    }
}

/// What [`Lakehouse::maintain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaintainReport {
    /// Small data files that were compacted (removed from the table by optimize).
    pub files_compacted: u64,
    /// Files written by the compaction.
    pub files_written: u64,
    /// Files deleted from storage by vacuum (no longer referenced, older than the retention).
    pub files_vacuumed: u64,
    /// Version of the checkpoint written at the end.
    pub checkpoint_version: i64,
    /// Expired log files deleted (older than the table's `logRetentionDuration`, 30 days by default).
    pub logs_removed: u64,
}

impl Lakehouse {

    /// Maintenance, in this order: compacts small files (optimize, one commit if there was
    /// anything to compact), vacuums data files no longer referenced for more than
    /// `retention_hours` (including orphans of crashed writes), writes a checkpoint of the final
    /// version and deletes expired log files. A retention below [`MIN_RETENTION_HOURS`] is
    /// refused unless `force` is set (only safe when nothing else reads or writes the table).
    pub async fn maintain(
        &self,
        table: DeltaTable,
        retention_hours: u64,
        force: bool,
    ) -> Result<(DeltaTable, MaintainReport), DeltaError> {
        let url = table.table_url().clone();
        if retention_hours < MIN_RETENTION_HOURS && !force {
            return Err(DeltaError::RetentionTooShort {
                table: url.to_string(),
                requested: retention_hours,
                minimum: MIN_RETENTION_HOURS,
            });
        }
        let retention = i64::try_from(retention_hours).ok().and_then(chrono::Duration::try_hours).ok_or_else(|| {
            DeltaError::InvalidArgument {
                table: url.to_string(),
                operation: "vacuum",
                message: format!("retention of {retention_hours} h is too large"),
            }
        })?;
        let mut report = MaintainReport::default();

        let (table, optimized) =
            table.optimize().with_type(OptimizeType::Compact).await.map_err(|e| self.err(&url, "optimize", e))?;
        report.files_compacted = optimized.num_files_removed;
        report.files_written = optimized.num_files_added;

        let (table, vacuumed) = table
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(retention)
            .with_enforce_retention_duration(!force)
            .await
            .map_err(|e| self.err(&url, "vacuum", e))?;
        report.files_vacuumed = vacuumed.files_deleted.len() as u64;

        create_checkpoint(&table, None).await.map_err(|e| self.err(&url, "checkpoint", e))?;
        report.checkpoint_version = Self::version(&table).unwrap_or_default();
        report.logs_removed =
            cleanup_metadata(&table, None).await.map_err(|e| self.err(&url, "log cleanup", e))? as u64;
        tracing::debug!(table = %url, ?report, "maintained");
        Ok((table, report))
    }

    /// [`Self::maintain`] with options.
    pub async fn maintain_with(
        &self,
        table: DeltaTable,
        options: MaintainOptions,
    ) -> Result<(DeltaTable, MaintainReport), DeltaError> {
        self.maintain(table, options.retention_hours, options.force).await
    }
}
