//! Reading a table through DataFusion, optionally filtered, as batches with exactly the
//! table's Arrow schema.

use arrow::array::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::create_session;
use deltalake::DeltaTable;

use super::{DeltaError, Lakehouse};

impl Lakehouse {

    /// Reads the rows (optionally filtered by a SQL predicate over the table's columns) through
    /// DataFusion, as batches with exactly the table's Arrow schema. An uninitialized table has
    /// no rows.
    pub async fn scan(&self, table: &DeltaTable, filter: Option<&str>) -> Result<Vec<RecordBatch>, DeltaError> {
        const OP: &str = "scan";
        if table.version().is_none() {
            return Ok(Vec::new());
        }
        let schema = self.table_schema(table, OP)?;
        let url = table.table_url().clone();
        let ctx: SessionContext = create_session().into();
        table.update_datafusion_session(&ctx.state()).map_err(|e| self.err(&url, OP, e))?;
        let provider = table.table_provider().await.map_err(|e| self.err(&url, OP, e))?;
        let mut df = ctx.read_table(provider).map_err(|e| self.err(&url, OP, e))?;
        if let Some(filter) = filter {
            let expr = df.parse_sql_expr(filter).map_err(|e| self.err(&url, OP, e))?;
            df = df.filter(expr).map_err(|e| self.err(&url, OP, e))?;
        }
        let batches = df.collect().await.map_err(|e| self.err(&url, OP, e))?;
        // The scan hands out view types (Utf8View) and dictionary-encoded partition values:
        // give the caller the table's own types.
        self.conform_all(table, OP, batches, &schema)
    }
}
