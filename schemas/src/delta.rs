//! Silver's Delta Lake storage layer. Every silver table lives at `silver/<name>` in the lake
//! (a local folder or `s3://bucket/prefix`) and is read and written only through [`Lakehouse`].
//!
//! What it guarantees:
//! - Every write is exactly one Delta commit: readers see the table before or after it, never
//!   in between. On S3 a commit is a conditional PUT (`If-None-Match: *`) of the next log
//!   entry, the object_store 0.13 default, so concurrent writers never overwrite each other's
//!   commit: the loser re-checks for conflicts and commits the next version.
//!   `AWS_S3_ALLOW_UNSAFE_RENAME` is forced off whatever the environment says.
//! - Batches are conformed to the table schema before they are written: columns are matched
//!   by name and cast exactly (a value that does not fit, such as a decimal with too many
//!   digits, is an error, never a silent null or rounding). Money stays `Decimal128`.
//! - Upserts are MERGEs restricted to the partitions of the source rows, so only those
//!   partitions are scanned, and they refuse a source with duplicate keys (which MERGE would
//!   otherwise insert twice).
//! - Errors name the table URL and the operation; credentials never appear in them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::functions_aggregate::expr_fn::count;
use deltalake::datafusion::logical_expr::{col, lit, Expr};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::create_session;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::StructType;
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, TableProperty};
use url::Url;

pub use crate::paths::SILVER;

/// `delta.targetFileSize` of the tables created here (Delta's default is 100 MiB): every
/// writer (append, replace_where, MERGE, optimize) closes a data file at about this size. The
/// memory of a MERGE grows mostly with the size of the files it rewrites: upserting 50k rows
/// into a 6M-row partition peaked at 468 MiB RSS with 8 MiB files and at 650 MiB with 32 MiB
/// files; into a 3M-row partition, at 332 MiB with 8 MiB files and 416 MiB with one 39 MiB
/// file (debug build, `tests::upsert_memory_1m_rows`).
pub const TARGET_FILE_SIZE: u64 = 8 * 1024 * 1024;

/// Vacuum never deletes files removed less than this long ago unless forced: it is Delta's
/// default `deletedFileRetentionDuration` (one week), long enough for a reader still on an
/// older version and for [`Lakehouse::restore`] to the versions of the last few runs.
pub const MIN_RETENTION_HOURS: u64 = 168;

/// Errors of the silver Delta layer. Every message names the table (its URL) or the lake.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("silver lake {lake}: {message}")]
    Config { lake: String, message: String },
    #[error("Delta table {table}: {operation} failed: {message}")]
    Operation { table: String, operation: &'static str, message: String },
    #[error("Delta table {table}: {operation}: data does not fit the table schema: {message}")]
    SchemaMismatch { table: String, operation: &'static str, message: String },
    #[error("Delta table {table}: {operation}: {count} key(s) occur more than once in the source rows, e.g. ({example}); deduplicate before writing")]
    DuplicateKeys { table: String, operation: &'static str, count: usize, example: String },
    #[error("Delta table {table}: {operation}: {message}")]
    InvalidArgument { table: String, operation: &'static str, message: String },
    #[error("Delta table {table}: vacuum retention of {requested} h is below the minimum of {minimum} h (readers of older versions and restores need those files); force it only when no reader or writer can be running")]
    RetentionTooShort { table: String, requested: u64, minimum: u64 },
}

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

/// Opens the Delta tables of the lake under `silver/<name>`.
pub struct Lakehouse {
    /// `file:///abs/lake/silver/` or `s3://bucket/prefix/silver/` (always with the trailing slash).
    root: Url,
    /// Passed to delta-rs for every table; holds the credentials on S3.
    storage_options: HashMap<String, String>,
    /// Values that must never appear in an error message.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Lakehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lakehouse").field("root", &self.root.as_str()).finish_non_exhaustive()
    }
}

impl Lakehouse {
    /// `lake` is the opened lake: a local folder (`local_root`) or S3 (`s3`). On S3 the storage
    /// options come from the standard variables `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`),
    /// `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`, else `us-east-1`); requests are retried like the
    /// rest of the lake's (`MEDALLION_S3_MAX_RETRIES`, default 4, within 30 s).
    pub fn new(lake: &crate::Location) -> Result<Self, DeltaError> {
        let config = |message: String| DeltaError::Config { lake: lake.display.clone(), message };
        if let Some(root) = &lake.local_root {
            let dir = root.join(SILVER);
            let root = Url::from_directory_path(&dir)
                .map_err(|()| config(format!("{} is not an absolute path", dir.display())))?;
            return Ok(Lakehouse { root, storage_options: HashMap::new(), secrets: Vec::new() });
        }
        let Some(s3) = &lake.s3 else {
            return Err(config("the lake is neither a local folder nor an S3 location".into()));
        };
        let prefix = s3.prefix.trim_matches('/');
        let spec = if prefix.is_empty() {
            format!("s3://{}/{SILVER}/", s3.bucket)
        } else {
            format!("s3://{}/{prefix}/{SILVER}/", s3.bucket)
        };
        let root = Url::parse(&spec).map_err(|e| config(format!("invalid S3 location {spec}: {e}")))?;

        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut storage_options = HashMap::new();
        let mut secrets = Vec::new();
        for (name, secret) in [
            ("AWS_ACCESS_KEY_ID", false),
            ("AWS_SECRET_ACCESS_KEY", true),
            ("AWS_SESSION_TOKEN", true),
            ("AWS_ALLOW_HTTP", false),
        ] {
            if let Some(value) = env(name) {
                if secret {
                    secrets.push(value.clone());
                }
                storage_options.insert(name.to_string(), value);
            }
        }
        if let Some(endpoint) = env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")) {
            storage_options.insert("AWS_ENDPOINT_URL".into(), endpoint);
        }
        let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        storage_options.insert("AWS_REGION".into(), region);
        // Commits must rely on conditional PUT, never on the unsafe copy-then-delete rename,
        // even if the variable is set in the environment (delta-rs reads it from there too).
        storage_options.insert("AWS_S3_ALLOW_UNSAFE_RENAME".into(), "false".into());
        let max_retries = env("MEDALLION_S3_MAX_RETRIES").and_then(|v| v.parse::<usize>().ok()).unwrap_or(4);
        storage_options.insert("max_retries".into(), max_retries.to_string());
        storage_options.insert("retry_timeout".into(), "30s".into());
        Ok(Lakehouse { root, storage_options, secrets })
    }

    /// `file:///abs/path/silver/<name>` or `s3://bucket/prefix/silver/<name>`.
    pub fn table_url(&self, name: &str) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(name);
        }
        url
    }

    /// Loads the table if it exists (`None` if it was never created).
    pub async fn open(&self, name: &str) -> Result<Option<DeltaTable>, DeltaError> {
        let url = self.checked_url(name)?;
        if let Some(dir) = local_dir(&url) {
            if !dir.join("_delta_log").is_dir() {
                return Ok(None);
            }
        }
        let mut table = self.builder(&url)?.build().map_err(|e| self.err(&url, "open", &e))?;
        if !table.verify_deltatable_existence().await.map_err(|e| self.err(&url, "open", &e))? {
            return Ok(None);
        }
        table.load().await.map_err(|e| self.err(&url, "open", &e))?;
        Ok(Some(table))
    }

    /// Loads the table, or creates it empty (version 0) with this Arrow schema and partition
    /// columns (and [`TARGET_FILE_SIZE`]). An existing table must have the same columns (names
    /// and types) and partitions. Two processes creating the same table at once both end up
    /// with the one that won.
    pub async fn open_or_create(
        &self,
        name: &str,
        schema: SchemaRef,
        partitions: &[&str],
    ) -> Result<DeltaTable, DeltaError> {
        if let Some(table) = self.open(name).await? {
            self.check_layout(&table, &schema, partitions)?;
            return Ok(table);
        }
        let url = self.checked_url(name)?;
        let fail = |e: &(dyn std::error::Error + 'static)| self.err(&url, "create", e);
        if let Some(dir) = local_dir(&url) {
            std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
        }
        let fields: StructType = schema.as_ref().try_into_kernel().map_err(|e| fail(&e))?;
        for p in partitions {
            if schema.field_with_name(p).is_err() {
                return Err(DeltaError::InvalidArgument {
                    table: url.to_string(),
                    operation: "create",
                    message: format!("partition column {p} is not in the schema"),
                });
            }
        }
        let table = self.builder(&url)?.build().map_err(|e| fail(&e))?;
        let created = table
            .create()
            .with_table_name(name)
            .with_columns(fields.fields().cloned())
            .with_partition_columns(partitions.iter().copied())
            .with_configuration_property(TableProperty::TargetFileSize, Some(TARGET_FILE_SIZE.to_string()))
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(table) => {
                tracing::debug!(table = %url, "created Delta table");
                Ok(table)
            }
            // Most likely another process created it first: use that one if it fits. Its
            // commit may take a moment to show in a listing (seen with SeaweedFS under load),
            // so look a few times before giving up.
            Err(e) => {
                for attempt in 0..5u64 {
                    if let Some(table) = self.open(name).await? {
                        self.check_layout(&table, &schema, partitions)?;
                        return Ok(table);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await;
                }
                Err(fail(&e))
            }
        }
    }

    /// Appends batches (one commit; none if there are no rows).
    pub async fn append(&self, table: DeltaTable, batches: Vec<RecordBatch>) -> Result<DeltaTable, DeltaError> {
        const OP: &str = "append";
        let schema = self.table_schema(&table, OP)?;
        let batches = self.conform_all(&table, OP, batches, &schema)?;
        if batches.is_empty() {
            return Ok(table);
        }
        let url = table.table_url().clone();
        let table = table.write(batches).with_save_mode(SaveMode::Append).await.map_err(|e| self.err(&url, OP, &e))?;
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
        let table = table
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(predicate)
            .await
            .map_err(|e| self.err(&url, OP, &e))?;
        tracing::debug!(table = %url, version = ?table.version(), predicate, "replaced rows");
        Ok(table)
    }

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
            .map_err(|e| self.err(&url, OP, &e))?;
        let (table, metrics) = builder.await.map_err(|e| self.err(&url, OP, &e))?;
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
        let (table, metrics) = table
            .merge(merge.source, merge.predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_session_state(Arc::new(merge.ctx.state()))
            .when_matched_update(|update| {
                set.iter().fold(update, |u, c| u.update(Column::from_name(*c), source_col(c)))
            })
            .map_err(|e| self.err(&url, OP, &e))?
            .await
            .map_err(|e| self.err(&url, OP, &e))?;
        let updated = metrics.num_target_rows_updated as u64;
        tracing::debug!(table = %url, version = ?table.version(), updated, "updated matched rows");
        Ok((table, updated))
    }

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
        let fail = |e: &(dyn std::error::Error + 'static)| self.err(&url, OP, e);
        let ctx: SessionContext = create_session().into();
        table.update_datafusion_session(&ctx.state()).map_err(|e| fail(&e))?;
        let provider = table.table_provider().await.map_err(|e| fail(&e))?;
        let mut df = ctx.read_table(provider).map_err(|e| fail(&e))?;
        if let Some(filter) = filter {
            let expr = df.parse_sql_expr(filter).map_err(|e| fail(&e))?;
            df = df.filter(expr).map_err(|e| fail(&e))?;
        }
        let batches = df.collect().await.map_err(|e| fail(&e))?;
        // The scan hands out view types (Utf8View) and dictionary-encoded partition values:
        // give the caller the table's own types.
        self.conform_all(table, OP, batches, &schema)
    }

    /// The table's current version (`None` if it was never committed).
    pub fn version(table: &DeltaTable) -> Option<i64> {
        table.version().and_then(|v| i64::try_from(v).ok())
    }

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
            .map_err(|e| self.err(&url, OP, &e))?;
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
            table.optimize().with_type(OptimizeType::Compact).await.map_err(|e| self.err(&url, "optimize", &e))?;
        report.files_compacted = optimized.num_files_removed;
        report.files_written = optimized.num_files_added;

        let (table, vacuumed) = table
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(retention)
            .with_enforce_retention_duration(!force)
            .await
            .map_err(|e| self.err(&url, "vacuum", &e))?;
        report.files_vacuumed = vacuumed.files_deleted.len() as u64;

        create_checkpoint(&table, None).await.map_err(|e| self.err(&url, "checkpoint", &e))?;
        report.checkpoint_version = Self::version(&table).unwrap_or_default();
        report.logs_removed =
            cleanup_metadata(&table, None).await.map_err(|e| self.err(&url, "log cleanup", &e))? as u64;
        tracing::debug!(table = %url, ?report, "maintained");
        Ok((table, report))
    }

    fn checked_url(&self, name: &str) -> Result<Url, DeltaError> {
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(DeltaError::InvalidArgument {
                table: format!("{}{name}", self.root),
                operation: "open",
                message: "table names use only a-z, 0-9, '_' and '-'".into(),
            });
        }
        Ok(self.table_url(name))
    }

    fn builder(&self, url: &Url) -> Result<DeltaTableBuilder, DeltaError> {
        Ok(DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| self.err(url, "open", &e))?
            .with_storage_options(self.storage_options.clone()))
    }

    /// An error naming the table and operation, with the whole cause chain and no secrets.
    fn err(&self, url: &Url, operation: &'static str, e: &(dyn std::error::Error + 'static)) -> DeltaError {
        let mut message = crate::store::error_chain(e);
        for secret in &self.secrets {
            message = message.replace(secret.as_str(), "***");
        }
        DeltaError::Operation { table: url.to_string(), operation, message }
    }

    fn table_schema(&self, table: &DeltaTable, operation: &'static str) -> Result<SchemaRef, DeltaError> {
        let state = table.snapshot().map_err(|e| self.err(table.table_url(), operation, &e))?;
        Ok(state.snapshot().arrow_schema())
    }

    /// An existing table must have the requested columns (names and types, in any order) and
    /// partition columns; nullability is not compared.
    fn check_layout(&self, table: &DeltaTable, requested: &SchemaRef, partitions: &[&str]) -> Result<(), DeltaError> {
        const OP: &str = "open_or_create";
        let url = table.table_url();
        let stored = self.table_schema(table, OP)?;
        // Compare in Delta's own type system (e.g. the time zone spelling of timestamps).
        let requested: Schema = requested
            .as_ref()
            .try_into_kernel()
            .and_then(|s: StructType| (&s).try_into_arrow())
            .map_err(|e| self.err(url, OP, &e))?;
        let mut problems = Vec::new();
        for field in requested.fields() {
            match stored.field_with_name(field.name()) {
                Ok(s) if s.data_type() == field.data_type() => {}
                Ok(s) => problems.push(format!(
                    "{} is {} in the table, not {}",
                    field.name(),
                    s.data_type(),
                    field.data_type()
                )),
                Err(_) => problems.push(format!("{} is missing from the table", field.name())),
            }
        }
        for field in stored.fields() {
            if requested.field_with_name(field.name()).is_err() {
                problems.push(format!("the table has an extra column {}", field.name()));
            }
        }
        let stored_partitions = table.snapshot().map_err(|e| self.err(url, OP, &e))?.metadata().partition_columns();
        if stored_partitions.iter().map(String::as_str).ne(partitions.iter().copied()) {
            problems.push(format!("it is partitioned by {stored_partitions:?}, not {partitions:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DeltaError::SchemaMismatch {
                table: url.to_string(),
                operation: OP,
                message: format!("the table exists with another layout: {}", problems.join("; ")),
            })
        }
    }

    /// Casts every batch to `schema` by column name (see the module docs); empty batches are dropped.
    fn conform_all(
        &self,
        table: &DeltaTable,
        operation: &'static str,
        batches: Vec<RecordBatch>,
        schema: &SchemaRef,
    ) -> Result<Vec<RecordBatch>, DeltaError> {
        let mismatch =
            |message: String| DeltaError::SchemaMismatch { table: table.table_url().to_string(), operation, message };
        let options = CastOptions { safe: false, ..Default::default() };
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
            if let Some(extra) = batch.schema().fields().iter().find(|f| schema.field_with_name(f.name()).is_err()) {
                return Err(mismatch(format!("column {} is not in the table", extra.name())));
            }
            let columns = schema
                .fields()
                .iter()
                .map(|field| {
                    let column = batch
                        .column_by_name(field.name())
                        .ok_or_else(|| mismatch(format!("column {} is missing", field.name())))?;
                    if column.data_type() == field.data_type() {
                        return Ok(column.clone());
                    }
                    cast_with_options(column, field.data_type(), &options).map_err(|e| {
                        mismatch(format!(
                            "column {}: {} -> {}: {e}",
                            field.name(),
                            column.data_type(),
                            field.data_type()
                        ))
                    })
                })
                .collect::<Result<Vec<ArrayRef>, DeltaError>>()?;
            out.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| mismatch(e.to_string()))?);
        }
        Ok(out)
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
        let fail = |e: &(dyn std::error::Error + 'static)| self.err(url, operation, e);
        let ctx: SessionContext = create_session().into();
        let source = ctx.read_batches(batches).map_err(|e| fail(&e))?;

        let duplicates = duplicate_keys(&source, keys).await.map_err(|e| fail(&e))?;
        if let Some((count, example)) = duplicates {
            return Err(DeltaError::DuplicateKeys { table: url.to_string(), operation, count, example });
        }

        let partition_values = distinct_values(&source, partition_col).await.map_err(|e| fail(&e))?;
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

fn source_col(name: &str) -> Expr {
    Expr::Column(Column::new(Some("source"), name))
}

fn target_col(name: &str) -> Expr {
    Expr::Column(Column::new(Some("target"), name))
}

/// The number of keys occurring more than once and one of them, rendered.
async fn duplicate_keys(
    source: &DataFrame,
    keys: &[&str],
) -> Result<Option<(usize, String)>, deltalake::datafusion::error::DataFusionError> {
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
) -> Result<Vec<Expr>, deltalake::datafusion::error::DataFusionError> {
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

/// The local folder of a `file://` table URL.
fn local_dir(url: &Url) -> Option<PathBuf> {
    (url.scheme() == "file").then(|| url.to_file_path().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array, LargeStringArray, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
    use arrow::datatypes::{DataType, Field, TimeUnit};

    const NEWER: &str = "source.version >= target.version";

    /// A products-like table with every type silver uses.
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("partner_id", DataType::Utf8, false),
            Field::new("sku", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(18, 4), true),
            Field::new("version", DataType::Int64, false),
            Field::new("quantity", DataType::Int32, true),
            Field::new("active", DataType::Boolean, true),
            Field::new("day", DataType::Date32, true),
            Field::new("updated_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]))
    }

    /// Rows of `schema()`: (partner, sku, version, price in units of 0.0001); the other columns
    /// are derived from the version.
    fn batch(rows: &[(&str, &str, i64, i128)]) -> RecordBatch {
        let v = |f: fn(i64) -> i64| rows.iter().map(move |r| f(r.2));
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("{} v{}", r.1, r.2)))),
                Arc::new(
                    Decimal128Array::from_iter_values(rows.iter().map(|r| r.3))
                        .with_precision_and_scale(18, 4)
                        .unwrap(),
                ),
                Arc::new(Int64Array::from_iter_values(v(|x| x))),
                Arc::new(Int32Array::from_iter_values(v(|x| x * 10).map(|x| x as i32))),
                Arc::new(BooleanArray::from_iter(v(|x| x % 2).map(|x| Some(x == 0)))),
                Arc::new(Date32Array::from_iter_values(v(|x| 20_000 + x).map(|x| x as i32))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(v(|x| 1_763_600_000_000_000 + x * 1_000_001))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap()
    }

    /// All rows, sorted by (partner_id, sku), as one batch.
    fn sorted(batches: &[RecordBatch]) -> RecordBatch {
        let all = concat_batches(&schema(), batches).unwrap();
        let by = |name: &str| SortColumn { values: all.column_by_name(name).unwrap().clone(), options: None };
        let indices = lexsort_to_indices(&[by("partner_id"), by("sku")], None).unwrap();
        take_record_batch(&all, &indices).unwrap()
    }

    /// Same columns, same types, same values (exactly: decimals compare as integers).
    fn assert_same(actual: &[RecordBatch], expected: &RecordBatch) {
        let actual = sorted(actual);
        let expected = sorted(std::slice::from_ref(expected));
        for (i, field) in schema().fields().iter().enumerate() {
            assert_eq!(actual.column(i).data_type(), field.data_type(), "type of {}", field.name());
            assert_eq!(actual.column(i).to_data(), expected.column(i).to_data(), "values of {}", field.name());
        }
    }

    /// (partner, sku, version) of every row, sorted.
    fn keys(batches: &[RecordBatch]) -> Vec<(String, String, i64)> {
        let all = sorted(batches);
        let s = |name: &str| all.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let (p, k) = (s("partner_id"), s("sku"));
        let v = all.column_by_name("version").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
        (0..all.num_rows()).map(|i| (p.value(i).to_string(), k.value(i).to_string(), v.value(i))).collect()
    }

    fn key(p: &str, s: &str, v: i64) -> (String, String, i64) {
        (p.to_string(), s.to_string(), v)
    }

    fn local_lake() -> (tempfile::TempDir, Lakehouse) {
        let dir = tempfile::tempdir().unwrap();
        let lake = crate::Location::open("lake", dir.path().to_str().unwrap(), true).unwrap();
        let lh = Lakehouse::new(&lake).unwrap();
        (dir, lh)
    }

    /// A fresh prefix in the test bucket. Fails (never skips) when the S3 settings are missing.
    /// The S3 test lake; fails when SeaweedFS is not configured, unless the skip is asked for
    /// explicitly with MEDALLION_SKIP_SERVICE_TESTS=1 (then the skip is printed).
    fn s3_lake(test: &str) -> Option<Lakehouse> {
        if std::env::var("MEDALLION_TEST_S3_BUCKET").is_err() && std::env::var("MEDALLION_SKIP_SERVICE_TESTS").as_deref() == Ok("1") {
            eprintln!("SKIPPED: S3 test {test} (MEDALLION_SKIP_SERVICE_TESTS=1)");
            return None;
        }
        for var in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MEDALLION_TEST_S3_BUCKET"] {
            assert!(
                std::env::var(var).is_ok_and(|v| !v.is_empty()),
                "{var} is not set: S3 tests need SeaweedFS, run `eval \"$(scripts/services.sh start)\"` first"
            );
        }
        let bucket = std::env::var("MEDALLION_TEST_S3_BUCKET").unwrap();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let spec = format!("s3://{bucket}/delta-tests/{test}-{}-{nanos}", std::process::id());
        let lake = crate::Location::open("lake", &spec, false).unwrap();
        Some(Lakehouse::new(&lake).unwrap())
    }

    /// The big decimals: 18 digits, the smallest unit, negative values.
    fn tricky_rows() -> RecordBatch {
        batch(&[
            ("a", "s1", 1, 123_456_789_012_345_678),
            ("a", "s2", 1, 1),
            ("a", "s3", 2, -1),
            ("b", "s1", 1, 999_999_999_999_999_999),
            ("b", "s2", 3, -999_999_999_999_999_999),
        ])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_append_scan_roundtrip() {
        let (dir, lh) = local_lake();
        let url = lh.table_url("products");
        assert_eq!(url.to_file_path().unwrap(), dir.path().canonicalize().unwrap().join("silver/products"));
        assert!(lh.open("products").await.unwrap().is_none());
        let err = lh.open("../escape").await.unwrap_err();
        assert!(matches!(err, DeltaError::InvalidArgument { .. }), "{err}");

        let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(0));
        let config = table.snapshot().unwrap().metadata().configuration().clone();
        assert_eq!(config.get("delta.targetFileSize"), Some(&TARGET_FILE_SIZE.to_string()));
        assert!(lh.scan(&table, None).await.unwrap().is_empty());
        let again = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        assert_eq!(Lakehouse::version(&again), Some(0));

        let other = Arc::new(Schema::new(vec![Field::new("partner_id", DataType::Int64, false)]));
        let err = lh.open_or_create("products", other, &["partner_id"]).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DeltaError::SchemaMismatch { .. }), "{msg}");
        assert!(msg.contains(url.as_str()) && msg.contains("partner_id is Utf8"), "{msg}");
        let err = lh.open_or_create("products", schema(), &["sku"]).await.unwrap_err();
        assert!(err.to_string().contains("partitioned by"), "{err}");

        let table = lh.append(table, vec![tricky_rows()]).await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(1));
        let table = lh.append(table, vec![]).await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(1), "no rows, no commit");
        let reopened = lh.open("products").await.unwrap().unwrap();
        assert_same(&lh.scan(&reopened, None).await.unwrap(), &tricky_rows());

        let some = lh.scan(&reopened, Some("partner_id = 'b' AND price > 0")).await.unwrap();
        assert_eq!(keys(&some), vec![key("b", "s1", 1)]);
        let cents = lh.scan(&reopened, Some("price = 0.0001")).await.unwrap();
        assert_eq!(keys(&cents), vec![key("a", "s2", 1)]);
        let err = lh.scan(&reopened, Some("no_such_column = 1")).await.unwrap_err();
        assert!(err.to_string().contains("scan failed"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn input_is_conformed_exactly_or_rejected() {
        let (_dir, lh) = local_lake();
        let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        // Columns in another order, a LargeUtf8 string and a Decimal128(38, 2) price: cast by name.
        let base = batch(&[("a", "s1", 1, 0)]);
        let loose = |price: Decimal128Array| {
            let mut fields = vec![
                Field::new("sku", DataType::LargeUtf8, false),
                Field::new("price", price.data_type().clone(), true),
                Field::new("partner_id", DataType::Utf8, false),
            ];
            let mut columns: Vec<ArrayRef> =
                vec![Arc::new(LargeStringArray::from(vec!["s1"])), Arc::new(price), base.column(0).clone()];
            for name in ["name", "version", "quantity", "active", "day", "updated_at"] {
                let (i, f) = schema().column_with_name(name).map(|(i, f)| (i, f.clone())).unwrap();
                fields.push(f);
                columns.push(base.column(i).clone());
            }
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
        };
        let cents = Decimal128Array::from(vec![1234_i128]).with_precision_and_scale(38, 2).unwrap();
        let table = lh.append(table, vec![loose(cents)]).await.unwrap();
        let rows = sorted(&lh.scan(&table, None).await.unwrap());
        let price = rows.column_by_name("price").unwrap().as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(price.value(0), 123_400, "12.34 is exactly 123400 units of 0.0001");

        // 10^15 has 16 integer digits: it does not fit in Decimal128(18, 4) and is refused.
        let too_big = Decimal128Array::from(vec![10_i128.pow(17)]).with_precision_and_scale(38, 2).unwrap();
        let err = lh.append(table, vec![loose(too_big)]).await.unwrap_err();
        assert!(matches!(err, DeltaError::SchemaMismatch { .. }), "{err}");
        assert!(err.to_string().contains("column price"), "{err}");

        let table = lh.open("products").await.unwrap().unwrap();
        let partial = base.clone().project(&[0, 1]).unwrap();
        let err = lh.append(table, vec![partial]).await.unwrap_err();
        assert!(err.to_string().contains("column name is missing"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replace_where_touches_only_matching_rows() {
        let (_dir, lh) = local_lake();
        let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        let table = lh.append(table, vec![tricky_rows()]).await.unwrap();

        let new_a = batch(&[("a", "s7", 7, 70_000), ("a", "s8", 8, 80_000)]);
        let table = lh.replace_where(table, vec![new_a], "partner_id = 'a'").await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(2));
        let rows = lh.scan(&table, None).await.unwrap();
        assert_eq!(keys(&rows), vec![key("a", "s7", 7), key("a", "s8", 8), key("b", "s1", 1), key("b", "s2", 3)]);

        // A new row outside the predicate is refused and nothing is committed.
        let stray = batch(&[("b", "s9", 9, 0)]);
        let err = lh.replace_where(table, vec![stray], "partner_id = 'a'").await.unwrap_err();
        assert!(matches!(err, DeltaError::Operation { operation: "replace_where", .. }), "{err}");
        let table = lh.open("products").await.unwrap().unwrap();
        assert_eq!(Lakehouse::version(&table), Some(2));

        // No rows: the matching rows are deleted, in one commit.
        let table = lh.replace_where(table, vec![], "partner_id = 'a'").await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(3));
        assert_eq!(keys(&lh.scan(&table, None).await.unwrap()), vec![key("b", "s1", 1), key("b", "s2", 3)]);
    }

    /// Like silver's inventory: partitioned by a date and the partner, replaced per run date.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replace_where_on_date_and_partner_partitions() {
        let (_dir, lh) = local_lake();
        let table = lh.open_or_create("inventory", schema(), &["day", "partner_id"]).await.unwrap();
        let table =
            lh.append(table, vec![batch(&[("a", "s1", 1, 1), ("a", "s2", 2, 2), ("b", "s1", 1, 3)])]).await.unwrap();
        // Version 1 rows are on day 20001 = 2024-10-05.
        let table = lh
            .replace_where(table, vec![batch(&[("a", "s9", 1, 9)])], "day = '2024-10-05' AND partner_id IN ('a')")
            .await
            .unwrap();
        assert_eq!(
            keys(&lh.scan(&table, None).await.unwrap()),
            vec![key("a", "s2", 2), key("a", "s9", 1), key("b", "s1", 1)]
        );
        assert_eq!(keys(&lh.scan(&table, Some("day = '2024-10-06'")).await.unwrap()), vec![key("a", "s2", 2)]);
        let late = lh.scan(&table, Some("updated_at >= '2025-11-20T00:53:22Z'")).await.unwrap();
        assert_eq!(keys(&late), vec![key("a", "s2", 2)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upsert_updates_newer_rows_and_inserts_new_keys() {
        let (_dir, lh) = local_lake();
        let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        let stored = batch(&[("a", "s1", 1, 10_000), ("a", "s2", 5, 20_000), ("b", "s1", 1, 30_000)]);
        let table = lh.append(table, vec![stored]).await.unwrap();
        let files_of_b =
            |t: &DeltaTable| t.get_file_uris().unwrap().filter(|f| f.contains("partner_id=b")).collect::<Vec<_>>();
        let b_before = files_of_b(&table);
        assert_eq!(b_before.len(), 1);

        let source = batch(&[
            ("a", "s1", 2, 123_456_789_012_345_678),  // newer: updated
            ("a", "s2", 3, 1),                        // older: ignored
            ("a", "s3", 1, -999_999_999_999_999_999), // new key: inserted
        ]);
        let (table, counts) =
            lh.upsert(table, vec![source.clone()], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
        assert_eq!(counts, UpsertCounts { inserted: 1, updated: 1, ignored: 1 });
        assert_eq!(Lakehouse::version(&table), Some(2));
        let rows = lh.scan(&table, None).await.unwrap();
        assert_eq!(keys(&rows), vec![key("a", "s1", 2), key("a", "s2", 5), key("a", "s3", 1), key("b", "s1", 1)]);
        let expected = batch(&[
            ("a", "s1", 2, 123_456_789_012_345_678),
            ("a", "s2", 5, 20_000),
            ("a", "s3", 1, -999_999_999_999_999_999),
            ("b", "s1", 1, 30_000),
        ]);
        assert_same(&rows, &expected);
        assert_eq!(files_of_b(&table), b_before, "the partition of b is neither read nor rewritten");

        // Without a condition every match is replaced.
        let (table, counts) = lh
            .upsert(table, vec![batch(&[("a", "s2", 3, 7)])], &["partner_id", "sku"], "partner_id", None)
            .await
            .unwrap();
        assert_eq!(counts, UpsertCounts { inserted: 0, updated: 1, ignored: 0 });

        // Nothing to do: no commit.
        let (table, counts) =
            lh.upsert(table, vec![], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
        assert_eq!((counts, Lakehouse::version(&table)), (UpsertCounts::default(), Some(3)));

        let dup = batch(&[("a", "s9", 1, 0), ("a", "s9", 2, 0), ("a", "s4", 1, 0)]);
        let err = lh.upsert(table, vec![dup], &["partner_id", "sku"], "partner_id", None).await.unwrap_err();
        assert!(matches!(err, DeltaError::DuplicateKeys { count: 1, .. }), "{err}");
        assert!(err.to_string().contains("partner_id=a, sku=s9"), "{err}");

        let table = lh.open("products").await.unwrap().unwrap();
        let err = lh.upsert(table, vec![batch(&[("a", "s1", 1, 0)])], &["sku"], "partner_id", None).await.unwrap_err();
        assert!(err.to_string().contains("must be one of the keys"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn update_matched_sets_only_the_given_columns() {
        let (_dir, lh) = local_lake();
        let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        let table = lh.append(table, vec![tricky_rows()]).await.unwrap();
        let changes = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("partner_id", DataType::Utf8, false),
                Field::new("sku", DataType::Utf8, false),
                Field::new("active", DataType::Boolean, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["a", "a"])),
                Arc::new(StringArray::from(vec!["s1", "nope"])),
                Arc::new(BooleanArray::from(vec![None, Some(true)])),
            ],
        )
        .unwrap();
        let (table, updated) =
            lh.update_matched(table, vec![changes], &["partner_id", "sku"], "partner_id").await.unwrap();
        assert_eq!(updated, 1);
        let rows = lh.scan(&table, Some("active IS NULL")).await.unwrap();
        assert_eq!(keys(&rows), vec![key("a", "s1", 1)]);
        let all = sorted(&lh.scan(&table, None).await.unwrap());
        let price = all.column_by_name("price").unwrap().as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(price.value(0), 123_456_789_012_345_678, "other columns keep their values");
        assert_eq!(all.num_rows(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restore_goes_back_in_time() {
        let (_dir, lh) = local_lake();
        let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        let table = lh.append(table, vec![batch(&[("a", "s1", 1, 1)])]).await.unwrap();
        let table = lh.append(table, vec![batch(&[("a", "s2", 1, 2)])]).await.unwrap();
        let (table, _) = lh
            .upsert(table, vec![batch(&[("a", "s1", 2, 3)])], &["partner_id", "sku"], "partner_id", None)
            .await
            .unwrap();
        assert_eq!(Lakehouse::version(&table), Some(3));

        let table = lh.restore(table, 1).await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(4));
        assert_eq!(keys(&lh.scan(&table, None).await.unwrap()), vec![key("a", "s1", 1)]);
        let table = lh.restore(table, 4).await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(4), "restoring the current version is a no-op");
        let err = lh.restore(table, 9).await.unwrap_err();
        assert!(matches!(err, DeltaError::InvalidArgument { .. }), "{err}");

        let table = lh.open("products").await.unwrap().unwrap();
        let table = lh.restore(table, 0).await.unwrap();
        assert!(lh.scan(&table, None).await.unwrap().is_empty(), "version 0 is the empty table");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn maintain_compacts_vacuums_and_checkpoints() {
        let (dir, lh) = local_lake();
        let mut table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        for v in 1..=5 {
            table = lh.append(table, vec![batch(&[("a", &format!("s{v}"), v, v as i128)])]).await.unwrap();
        }
        assert_eq!(table.get_file_uris().unwrap().count(), 5);

        let err = lh.maintain(table, 0, false).await.unwrap_err();
        assert!(matches!(err, DeltaError::RetentionTooShort { requested: 0, minimum: 168, .. }), "{err}");

        let table = lh.open("products").await.unwrap().unwrap();
        let (table, report) = lh.maintain(table, 0, true).await.unwrap();
        assert_eq!((report.files_compacted, report.files_written), (5, 1), "{report:?}");
        assert_eq!(report.files_vacuumed, 5, "{report:?}");
        assert_eq!(table.get_file_uris().unwrap().count(), 1);
        let log = dir.path().join("silver/products/_delta_log");
        let checkpoint = log.join(format!("{:020}.checkpoint.parquet", report.checkpoint_version));
        assert!(checkpoint.is_file(), "{} is missing", checkpoint.display());
        let data_files = walk_parquet(&dir.path().join("silver/products/partner_id=a"));
        assert_eq!(data_files, 1, "only the compacted file is left on disk");

        let reopened = lh.open("products").await.unwrap().unwrap();
        let expected: Vec<_> = (1..=5).map(|v| key("a", &format!("s{v}"), v)).collect();
        assert_eq!(keys(&lh.scan(&reopened, None).await.unwrap()), expected);

        // Nothing left to compact or vacuum: a second run only checkpoints.
        let (_, report) = lh.maintain(reopened, MIN_RETENTION_HOURS, false).await.unwrap();
        assert_eq!((report.files_compacted, report.files_vacuumed), (0, 0), "{report:?}");
    }

    fn walk_parquet(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_create_append_upsert_restore_maintain() {
        let Some(lh) = s3_lake("roundtrip") else { return };
        let url = lh.table_url("products");
        assert!(url.as_str().starts_with("s3://") && url.as_str().ends_with("/silver/products"), "{url}");
        assert!(lh.open("products").await.unwrap().is_none());
        let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
        let table = lh.append(table, vec![tricky_rows()]).await.unwrap();
        assert_same(&lh.scan(&table, None).await.unwrap(), &tricky_rows());

        let source = batch(&[("a", "s1", 2, 5), ("a", "s2", 0, 6), ("c", "s1", 1, 7)]);
        let (table, counts) =
            lh.upsert(table, vec![source], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
        assert_eq!(counts, UpsertCounts { inserted: 1, updated: 1, ignored: 1 });
        let table = lh.replace_where(table, vec![batch(&[("b", "s5", 5, 5)])], "partner_id = 'b'").await.unwrap();
        assert_eq!(Lakehouse::version(&table), Some(3));
        let reopened = lh.open("products").await.unwrap().unwrap();
        assert_eq!(
            keys(&lh.scan(&reopened, None).await.unwrap()),
            vec![key("a", "s1", 2), key("a", "s2", 1), key("a", "s3", 2), key("b", "s5", 5), key("c", "s1", 1)]
        );

        let table = lh.restore(reopened, 1).await.unwrap();
        assert_same(&lh.scan(&table, None).await.unwrap(), &tricky_rows());
        let (table, report) = lh.maintain(table, MIN_RETENTION_HOURS, false).await.unwrap();
        assert_eq!(report.checkpoint_version, 4);
        assert_same(&lh.scan(&table, None).await.unwrap(), &tricky_rows());
    }

    /// Peak memory and time of an upsert of 50k source rows (25k updates spread over the
    /// table, 25k new keys) into a single-partition table of 1M rows (`MEDALLION_MEM_ROWS`).
    /// The table is built on the first run in `MEDALLION_MEM_DIR` and restored to that state on
    /// later runs, so run it twice and read the second run:
    /// `MEDALLION_MEM_DIR=/tmp/mem /usr/bin/time -v <test binary> --ignored --exact delta::tests::upsert_memory_1m_rows --nocapture`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "measurement, run by hand"]
    async fn upsert_memory_1m_rows() {
        let target: usize = std::env::var("MEDALLION_MEM_ROWS").map(|v| v.parse().unwrap()).unwrap_or(1_000_000);
        const SOURCE: usize = 50_000;
        let dir = std::env::var("MEDALLION_MEM_DIR").expect("set MEDALLION_MEM_DIR to a folder for the 1M-row table");
        let lake = crate::Location::open("lake", &dir, true).unwrap();
        let lh = Lakehouse::new(&lake).unwrap();
        let rows = |skus: &[String], version: i64| {
            let rows: Vec<(&str, &str, i64, i128)> =
                skus.iter().enumerate().map(|(i, s)| ("p", s.as_str(), version, i as i128 * 10_001)).collect();
            batch(&rows)
        };
        let table = match lh.open("big").await.unwrap() {
            Some(table) => lh.restore(table, 1).await.unwrap(),
            None => {
                let table = lh.open_or_create("big", schema(), &["partner_id"]).await.unwrap();
                let batches = (0..target / 100_000)
                    .map(|b| {
                        rows(&(b * 100_000..(b + 1) * 100_000).map(|i| format!("sku{i:09}")).collect::<Vec<_>>(), 1)
                    })
                    .collect();
                lh.append(table, batches).await.unwrap()
            }
        };
        let files = table.get_file_uris().unwrap().count();
        // Half of the source updates rows spread over the whole table, half inserts new keys.
        let skus: Vec<String> = (0..SOURCE / 2)
            .map(|i| format!("sku{:09}", i * (target / (SOURCE / 2))))
            .chain((0..SOURCE / 2).map(|i| format!("sku{:09}", target + i)))
            .collect();
        let source = rows(&skus, 2);

        let before = proc_status_kib("VmRSS");
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (Linux)");
        let start = std::time::Instant::now();
        let (table, counts) =
            lh.upsert(table, vec![source], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
        let elapsed = start.elapsed();
        let peak = proc_status_kib("VmHWM");
        assert_eq!(counts, UpsertCounts { inserted: 25_000, updated: 25_000, ignored: 0 });
        eprintln!(
            "upsert of {SOURCE} rows into {target} rows ({files} file(s)): {:.1} s, RSS before {} MiB, peak during {} MiB, files after {}",
            elapsed.as_secs_f64(),
            before / 1024,
            peak / 1024,
            table.get_file_uris().unwrap().count()
        );
    }

    fn proc_status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Two writers start from the same version and commit at once: both try to write the same
    /// log entry; conditional PUT lets exactly one win and the other commits the next version.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_concurrent_appends_all_land() {
        let Some(lh) = s3_lake("concurrent") else { return };
        let lh = Arc::new(lh);
        // Two creators at once: both get the one table that won.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let creators: Vec<_> = (0..2)
            .map(|_| {
                let (lh, barrier) = (lh.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    lh.open_or_create("events", schema(), &["partner_id"]).await.unwrap()
                })
            })
            .collect();
        for c in creators {
            assert_eq!(Lakehouse::version(&c.await.unwrap()), Some(0));
        }
        const ROUNDS: i64 = 3;
        for round in 0..ROUNDS {
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let writers: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|partner| {
                    let (lh, barrier) = (lh.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let table = lh.open("events").await.unwrap().unwrap();
                        let rows = batch(&[(partner, &format!("r{round}"), round, 1)]);
                        barrier.wait().await;
                        lh.append(table, vec![rows]).await.unwrap()
                    })
                })
                .collect();
            for w in writers {
                w.await.unwrap();
            }
        }
        let table = lh.open("events").await.unwrap().unwrap();
        assert_eq!(Lakehouse::version(&table), Some(2 * ROUNDS), "every commit landed at its own version");
        let rows = keys(&lh.scan(&table, None).await.unwrap());
        assert_eq!(rows.len(), 2 * ROUNDS as usize, "{rows:?}");
        for round in 0..ROUNDS {
            for partner in ["a", "b"] {
                assert!(rows.contains(&key(partner, &format!("r{round}"), round)), "lost {partner} r{round}");
            }
        }
    }
}
