//! Upserts (MERGE) and partial-column updates of matched rows, each in one commit. The merge
//! is restricted to the partitions of the source rows (`target.<partition> IN (...)`), so only
//! those are scanned and rewritten, and a source with duplicate keys is refused (MERGE would
//! otherwise insert it twice).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::functions_aggregate::expr_fn::count;
use deltalake::datafusion::logical_expr::{col, lit, Expr};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::create_session;
use deltalake::DeltaTable;

use super::{source_col, target_col, DeltaError, Lakehouse};

/// What an upsert did. `inserted + updated + ignored` is the number of source rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    /// Source rows whose key was not in the table.
    pub inserted: u64,
    /// Stored rows replaced by their source row.
    pub updated: u64,
    /// Source rows whose key was stored but whose `update_when` condition was false.
    pub ignored: u64,
}

/// The options of [`Lakehouse::upsert_with`].
#[derive(Debug, Clone, Copy)]
pub struct UpsertOptions<'a> {
    /// The key columns (unique in the source).
    pub keys: &'a [&'a str],
    /// The partition column the merge is restricted to; one of the keys.
    pub partition_col: &'a str,
    /// A stored row is replaced only when this holds (SQL over `source.<col>` and
    /// `target.<col>`); `None` = always.
    pub update_when: Option<&'a str>,
}

impl Lakehouse {

    /// Upsert (MERGE) of `batches` into the table on the `keys` columns, in one commit.
    ///
    /// The merge is restricted to the values of `partition_col` present in the source
    /// (`target.partition_col IN (...)`), so only those partitions are scanned and rewritten;
    /// `partition_col` must be one of the keys. A stored row whose key matches a source row is
    /// replaced by it when `update_when` holds (SQL over `source.<col>` and `target.<col>`,
    /// e.g. `source.version >= target.version`; `None` = always); source rows with a new key
    /// are inserted. Source keys must be unique (else [`DeltaError::DuplicateKeys`]).
    ///
    /// Memory: the target partitions are streamed through the join, not loaded; the peak grows
    /// with the size of the data files rewritten, which [`TARGET_FILE_SIZE`] bounds (50k rows
    /// into a 1M-row partition: 256 MiB peak RSS; into 3M rows: 332 MiB, debug build).
    pub async fn upsert(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        keys: &[&str],
        partition_col: &str,
        update_when: Option<&str>,
    ) -> Result<(DeltaTable, UpsertCounts), DeltaError> {
        const OP: &str = "upsert";
        let schema = self.table_schema(&table, OP)?;
        let batches = self.conform_all(&table, OP, batches, &schema)?;
        let Some(merge) = self.prepare_merge(&table, OP, batches, &schema, keys, partition_col).await? else {
            return Ok((table, UpsertCounts::default()));
        };
        let url = table.table_url().clone();
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let builder = table
            .merge(merge.source, merge.predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_session_state(Arc::new(merge.ctx.state()))
            .when_matched_update(|update| {
                let update = match update_when {
                    Some(condition) => update.predicate(condition),
                    None => update,
                };
                columns.iter().fold(update, |u, c| u.update(Column::from_name(*c), source_col(c)))
            })
            .and_then(|b| {
                b.when_not_matched_insert(|insert| {
                    columns.iter().fold(insert, |i, c| i.set(Column::from_name(*c), source_col(c)))
                })
            })
            .map_err(|e| self.err(&url, OP, e))?;
        super::before_commit().await;
        let (table, metrics) = builder.await.map_err(|e| self.err(&url, OP, e))?;
        let inserted = metrics.num_target_rows_inserted as u64;
        let updated = metrics.num_target_rows_updated as u64;
        let counts = UpsertCounts { inserted, updated, ignored: merge.rows.saturating_sub(inserted + updated) };
        tracing::debug!(
            table = %url,
            version = ?table.version(),
            inserted,
            updated,
            ignored = counts.ignored,
            files_scanned = metrics.num_target_files_scanned,
            files_skipped = metrics.num_target_files_skipped_during_scan,
            "upserted"
        );
        Ok((table, counts))
    }

    /// [`Self::upsert`] with options.
    pub async fn upsert_with(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        options: UpsertOptions<'_>,
    ) -> Result<(DeltaTable, UpsertCounts), DeltaError> {
        self.upsert(table, batches, options.keys, options.partition_col, options.update_when).await
    }


    /// Sets, on the stored rows whose `keys` match a source row, the source's other columns
    /// (one commit; a partial-column MERGE with no inserts: source rows without a stored match
    /// are ignored). The batches hold the key columns plus the columns to set, by name — e.g.
    /// closing SCD2 versions with `[partner_id, sku, valid_from, valid_to, is_current]` on keys
    /// `[partner_id, sku, valid_from]`. Like [`Self::upsert`], it only scans the partitions of
    /// `partition_col` present in the source. Returns the number of rows updated.
    pub async fn update_matched(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        keys: &[&str],
        partition_col: &str,
    ) -> Result<(DeltaTable, u64), DeltaError> {
        const OP: &str = "update_matched";
        let table_schema = self.table_schema(&table, OP)?;
        let Some(first) = batches.first() else { return Ok((table, 0)) };
        let input = first.schema();
        let mut fields = Vec::new();
        for field in input.fields() {
            let stored = table_schema.field_with_name(field.name()).map_err(|_| DeltaError::SchemaMismatch {
                table: table.table_url().to_string(),
                operation: OP,
                message: format!("column {} is not in the table", field.name()),
            })?;
            fields.push(stored.clone());
        }
        let schema = Arc::new(Schema::new(fields));
        let batches = self.conform_all(&table, OP, batches, &schema)?;
        let Some(merge) = self.prepare_merge(&table, OP, batches, &schema, keys, partition_col).await? else {
            return Ok((table, 0));
        };
        let url = table.table_url().clone();
        let set: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).filter(|c| !keys.contains(c)).collect();
        if set.is_empty() {
            return Err(DeltaError::InvalidArgument {
                table: url.to_string(),
                operation: OP,
                message: "the source rows have no column to set besides the keys".into(),
            });
        }
        super::before_commit().await;
        let (table, metrics) = table
            .merge(merge.source, merge.predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_session_state(Arc::new(merge.ctx.state()))
            .when_matched_update(|update| {
                set.iter().fold(update, |u, c| u.update(Column::from_name(*c), source_col(c)))
            })
            .map_err(|e| self.err(&url, OP, e))?
            .await
            .map_err(|e| self.err(&url, OP, e))?;
        let updated = metrics.num_target_rows_updated as u64;
        tracing::debug!(table = %url, version = ?table.version(), updated, "updated matched rows");
        Ok((table, updated))
    }

    /// The source, join predicate and session of a MERGE on `keys`, pruned to the partitions
    /// of the source; `None` when the source has no rows. Fails on duplicate source keys.
    async fn prepare_merge(
        &self,
        table: &DeltaTable,
        operation: &'static str,
        batches: Vec<RecordBatch>,
        schema: &SchemaRef,
        keys: &[&str],
        partition_col: &str,
    ) -> Result<Option<PreparedMerge>, DeltaError> {
        let url = table.table_url();
        let invalid = |message: String| DeltaError::InvalidArgument { table: url.to_string(), operation, message };
        if keys.is_empty() {
            return Err(invalid("no key columns".into()));
        }
        if !keys.contains(&partition_col) {
            return Err(invalid(format!("the partition column {partition_col} must be one of the keys {keys:?}")));
        }
        if let Some(k) = keys.iter().find(|k| schema.field_with_name(k).is_err()) {
            return Err(invalid(format!("key column {k} is not in the source rows")));
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Ok(None);
        }
        let ctx: SessionContext = create_session().into();
        let source = ctx.read_batches(batches).map_err(|e| self.err(url, operation, e))?;

        let duplicates = duplicate_keys(&source, keys).await.map_err(|e| self.err(url, operation, e))?;
        if let Some((count, example)) = duplicates {
            return Err(DeltaError::DuplicateKeys { table: url.to_string(), operation, count, example });
        }

        let partition_values = distinct_values(&source, partition_col).await.map_err(|e| self.err(url, operation, e))?;
        let predicate = keys.iter().fold(target_col(partition_col).in_list(partition_values, false), |p, k| {
            p.and(target_col(k).eq(source_col(k)))
        });
        Ok(Some(PreparedMerge { ctx, source, predicate, rows: rows as u64 }))
    }
}


struct PreparedMerge {
    ctx: SessionContext,
    source: DataFrame,
    predicate: Expr,
    rows: u64,
}


/// The number of keys occurring more than once and one of them, rendered.
async fn duplicate_keys(
    source: &DataFrame,
    keys: &[&str],
) -> Result<Option<(usize, String)>, DataFusionError> {
    let groups = keys.iter().map(|k| col(Column::from_name(*k))).collect();
    let batches = source
        .clone()
        .aggregate(groups, vec![count(lit(1)).alias("_n")])?
        .filter(col("_n").gt(lit(1_i64)))?
        .collect()
        .await?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    let options = FormatOptions::default().with_null("NULL");
    let mut example = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let formatter = ArrayFormatter::try_new(batch.column(i).as_ref(), &options)?;
        example.push(format!("{key}={}", formatter.value(0)));
    }
    Ok(Some((total, example.join(", "))))
}


/// The distinct non-null values of a column, as literals.
async fn distinct_values(
    source: &DataFrame,
    column: &str,
) -> Result<Vec<Expr>, DataFusionError> {
    let batches = source.clone().select(vec![col(Column::from_name(column))])?.distinct()?.collect().await?;
    let mut values = Vec::new();
    for batch in &batches {
        let array = batch.column(0);
        for i in 0..array.len() {
            if array.is_valid(i) {
                values.push(lit(ScalarValue::try_from_array(array, i)?));
            }
        }
    }
    Ok(values)
}
