//! Time travel: restoring a table to an earlier version in one new commit (undoing a crashed
//! run, backfill). Restoring the current version is a no-op; the files of the version must
//! still exist (vacuum keeps them for [`super::MIN_RETENTION_HOURS`]).

use deltalake::DeltaTable;

use super::{DeltaError, Lakehouse};

impl Lakehouse {

    /// Restores the table to an earlier version, in one new commit (time travel: undoing a
    /// crashed run, backfill). Restoring the current version is a no-op. The files of that
    /// version must still exist (vacuum keeps them for [`MIN_RETENTION_HOURS`]).
    pub async fn restore(&self, table: DeltaTable, version: i64) -> Result<DeltaTable, DeltaError> {
        const OP: &str = "restore";
        let url = table.table_url().clone();
        let current = Self::version(&table);
        if version < 0 || current.is_none_or(|c| version > c) {
            return Err(DeltaError::InvalidArgument {
                table: url.to_string(),
                operation: OP,
                message: format!("cannot restore version {version}: the current version is {current:?}"),
            });
        }
        if current == Some(version) {
            return Ok(table);
        }
        let (table, metrics) = table
            .restore()
            .with_version_to_restore(version as u64) // non-negative: checked above
            .await
            .map_err(|e| self.err(&url, OP, e))?;
        tracing::debug!(
            table = %url,
            restored = version,
            version = ?table.version(),
            files_removed = metrics.num_removed_file,
            files_restored = metrics.num_restored_file,
            "restored"
        );
        Ok(table)
    }
}
