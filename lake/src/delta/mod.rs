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
//!
//! One operation per file, in the manner of delta-rs `operations/`: [`open`] (open, create,
//! layout check), [`write`] (append, replace_where), [`merge`] (upsert, update_matched),
//! [`scan`], [`restore`] and [`maintain`] (optimize, vacuum, checkpoint). The storage options
//! come from [`crate::Location::delta_storage_options`]: S3 is configured there only.

use std::path::PathBuf;
use std::collections::HashMap;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::SchemaRef;
use deltalake::datafusion::common::Column;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

pub use schemas::paths::SILVER;

pub mod maintain;
pub mod merge;
pub mod open;
pub mod restore;
pub mod scan;
pub mod write;
#[cfg(test)]
mod tests;

pub use maintain::{MaintainOptions, MaintainReport, MIN_RETENTION_HOURS};
pub use merge::{UpsertCounts, UpsertOptions};

/// `delta.targetFileSize` of the tables created here (Delta's default is 100 MiB): every
/// writer (append, replace_where, MERGE, optimize) closes a data file at about this size. The
/// memory of a MERGE grows mostly with the size of the files it rewrites: upserting 50k rows
/// into a 6M-row partition peaked at 468 MiB RSS with 8 MiB files and at 650 MiB with 32 MiB
/// files; into a 3M-row partition, at 332 MiB with 8 MiB files and 416 MiB with one 39 MiB
/// file (debug build, `tests::upsert_memory_1m_rows`).
pub const TARGET_FILE_SIZE: u64 = 8 * 1024 * 1024;


/// Errors of the silver Delta layer. Every message names the table (its URL) or the lake.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("silver lake {lake}: {message}")]
    Config { lake: String, message: String },
    /// delta-rs, DataFusion, Arrow or the file system failed; the cause is kept (the message
    /// shows its whole chain, credentials masked).
    #[error("Delta table {table}: {operation} failed: {}", redact_secrets(crate::error_chain(.source)))]
    Operation { table: String, operation: &'static str, source: OperationError },
    #[error("Delta table {table}: {operation}: data does not fit the table schema: {message}")]
    SchemaMismatch { table: String, operation: &'static str, message: String },
    #[error("Delta table {table}: {operation}: {count} key(s) occur more than once in the source rows, e.g. ({example}); deduplicate before writing")]
    DuplicateKeys { table: String, operation: &'static str, count: usize, example: String },
    #[error("Delta table {table}: {operation}: {message}")]
    InvalidArgument { table: String, operation: &'static str, message: String },
    #[error("Delta table {table}: vacuum retention of {requested} h is below the minimum of {minimum} h (readers of older versions and restores need those files); force it only when no reader or writer can be running")]
    RetentionTooShort { table: String, requested: u64, minimum: u64 },
}

impl DeltaError {
    /// Whether retrying later may help ([`crate::is_transient`] on the cause).
    pub fn is_transient(&self) -> bool {
        crate::is_transient(self)
    }
}

/// The library error behind a failed Delta operation.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("{0}")]
    Table(#[from] DeltaTableError),
    #[error("{0}")]
    Query(#[from] DataFusionError),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Credentials never appear in messages: the values of `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN` (where delta-rs reads them from too) are masked.
fn redact_secrets(mut message: String) -> String {
    for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Some(secret) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
            message = message.replace(secret.as_str(), "***");
        }
    }
    message
}

/// Opens the Delta tables of the lake under `silver/<name>`.
///
/// A table is loaded (its log replayed) once per `Lakehouse`: later opens bring the loaded
/// snapshot up to the table's latest version incrementally (only the commits made since are
/// read), so a run that opens a table many times pays for one load.
pub struct Lakehouse {
    /// `file:///abs/lake/silver/` or `s3://bucket/prefix/silver/` (always with the trailing slash).
    root: Url,
    /// Passed to delta-rs for every table; holds the credentials on S3.
    storage_options: HashMap<String, String>,
    /// The tables loaded so far, by name (never held across an await).
    loaded: std::sync::Mutex<HashMap<String, DeltaTable>>,
}

impl std::fmt::Debug for Lakehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lakehouse").field("root", &self.root.as_str()).finish_non_exhaustive()
    }
}

impl Lakehouse {
    /// `lake` is the opened lake: a local folder (`local_root`) or S3 (`s3`). On S3 the storage
    /// options are [`crate::Location::delta_storage_options`]: the standard variables `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`),
    /// `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`, else `us-east-1`); requests are retried like the
    /// rest of the lake's (`MEDALLION_S3_MAX_RETRIES`, default 4, within 30 s).
    pub fn new(lake: &crate::Location) -> Result<Self, DeltaError> {
        let config = |message: String| DeltaError::Config { lake: lake.display.clone(), message };
        if let Some(root) = &lake.local_root {
            let dir = root.join(SILVER);
            let root = Url::from_directory_path(&dir)
                .map_err(|()| config(format!("{} is not an absolute path", dir.display())))?;
            return Ok(Lakehouse { root, storage_options: HashMap::new(), loaded: Default::default() });
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
        Ok(Lakehouse { root, storage_options: lake.delta_storage_options(), loaded: Default::default() })
    }

    /// `file:///abs/path/silver/<name>` or `s3://bucket/prefix/silver/<name>`.
    pub fn table_url(&self, name: &str) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(name);
        }
        url
    }

    /// The table's current version (`None` if it was never committed).
    pub fn version(table: &DeltaTable) -> Option<i64> {
        table.version().and_then(|v| i64::try_from(v).ok())
    }

    pub(crate) fn checked_url(&self, name: &str) -> Result<Url, DeltaError> {
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

    pub(crate) fn builder(&self, url: &Url) -> Result<DeltaTableBuilder, DeltaError> {
        Ok(DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| self.err(url, "open", e))?
            .with_storage_options(self.storage_options.clone()))
    }

    /// An error naming the table and operation, keeping the cause.
    pub(crate) fn err(&self, url: &Url, operation: &'static str, e: impl Into<OperationError>) -> DeltaError {
        DeltaError::Operation { table: url.to_string(), operation, source: e.into() }
    }

    pub(crate) fn table_schema(&self, table: &DeltaTable, operation: &'static str) -> Result<SchemaRef, DeltaError> {
        let state = table.snapshot().map_err(|e| self.err(table.table_url(), operation, e))?;
        Ok(state.snapshot().arrow_schema())
    }

    /// Casts every batch to `schema` by column name (see the module docs); empty batches are dropped.
    pub(crate) fn conform_all(
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
}


/// Every Delta commit of this process passes here first: the fault point `delta.commit#n`
/// (the n-th commit) lets a test cut the storage at that exact place.
pub(crate) async fn before_commit() {
    static COMMITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    crate::fault::point("delta.commit", COMMITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)).await;
}

pub(crate) fn source_col(name: &str) -> Expr {
    Expr::Column(Column::new(Some("source"), name))
}

pub(crate) fn target_col(name: &str) -> Expr {
    Expr::Column(Column::new(Some("target"), name))
}


/// The local folder of a `file://` table URL.
pub(crate) fn local_dir(url: &Url) -> Option<PathBuf> {
    (url.scheme() == "file").then(|| url.to_file_path().ok()).flatten()
}
