//! Appends and atomic replacement of rows. Every write is exactly one Delta commit (none
//! when there is nothing to write); batches are conformed to the table schema first, exactly
//! (see the crate's `delta` module docs).

use arrow::array::RecordBatch;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;

use super::{DeltaError, Lakehouse};

impl Lakehouse {

    /// Appends batches (one commit; none if there are no rows).
    pub async fn append(&self, table: DeltaTable, batches: Vec<RecordBatch>) -> Result<DeltaTable, DeltaError> {
        const OP: &str = "append";
        let schema = self.table_schema(&table, OP)?;
        let batches = self.conform_all(&table, OP, batches, &schema)?;
        if batches.is_empty() {
            return Ok(table);
        }
        let url = table.table_url().clone();
        super::before_commit().await;
        let table = table.write(batches).with_save_mode(SaveMode::Append).await.map_err(|e| self.err(&url, OP, e))?;
        tracing::debug!(table = %url, version = ?table.version(), "appended");
        Ok(table)
    }

    /// Atomically replaces the rows matching `predicate` (SQL over the table's columns, e.g.
    /// `partner_id = 'acme' AND snapshot_date = '2026-11-20'`) with `batches`, in one commit:
    /// readers see the old rows or the new ones, never a mix. Every new row must match the
    /// predicate (delta-rs checks it and fails the write otherwise). No batches (or no rows)
    /// deletes the matching rows.
    pub async fn replace_where(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        predicate: &str,
    ) -> Result<DeltaTable, DeltaError> {
        const OP: &str = "replace_where";
        let schema = self.table_schema(&table, OP)?;
        let mut batches = self.conform_all(&table, OP, batches, &schema)?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        let url = table.table_url().clone();
        super::before_commit().await;
        let table = table
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(predicate)
            .await
            .map_err(|e| self.err(&url, OP, e))?;
        tracing::debug!(table = %url, version = ?table.version(), predicate, "replaced rows");
        Ok(table)
    }
}
