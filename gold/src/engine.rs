//! Where gold's SQL runs: in this process (`local`, the default) or on an Apache DataFusion
//! Ballista cluster (`df://HOST:PORT`), started from our own binary (`medallion cluster`).
//!
//! Guarantees:
//! - The same models, views and UDFs run on both engines; only the physical execution differs.
//! - On the cluster each silver Delta table is read as exactly the Parquet files of the
//!   snapshot the client resolved ([`SilverScan`]): the files of that table version, no stale
//!   or uncommitted file, with the partition values recorded in the Delta log's paths, and
//!   files pruned on the partition columns by the query's filters. Our writer uses no deletion
//!   vectors and no column mapping (checked per snapshot: a table using either is refused, not
//!   misread).
//! - In-memory tables (the derived sessions' precomputed rows, checks' gold outputs) travel
//!   with the plan as Arrow IPC ([`GoldCodec`]), so every plan the local engine runs also runs
//!   on the cluster.
//! - Nothing here publishes: a failed or interrupted cluster query is an error of the compute
//!   step, before any lake or warehouse write.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use deltalake::datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use deltalake::datafusion::datasource::source::DataSourceExec;
use deltalake::datafusion::datasource::table_schema::TableSchema;
use deltalake::datafusion::datasource::{TableProvider, TableType};
use deltalake::datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry, ObjectStoreUrl};
use deltalake::datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use deltalake::datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use deltalake::datafusion::logical_expr::{utils::conjunction, Expr, TableProviderFilterPushDown};
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{udf, GoldError};

/// The query engine gold runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Local,
    /// A Ballista cluster: the scheduler's `df://HOST:PORT`.
    Ballista(String),
}

impl std::str::FromStr for Engine {
    type Err = String;

    /// `local`, or `df://HOST:PORT` (a Ballista scheduler).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s == "local" {
            return Ok(Engine::Local);
        }
        let Some(rest) = s.strip_prefix("df://") else {
            return Err(format!("engine {s:?}: expected `local` or `df://HOST:PORT` (a Ballista scheduler)"));
        };
        let url = Url::parse(s).map_err(|e| format!("engine {s:?}: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) || url.port().is_none() || !matches!(url.path(), "" | "/") {
            return Err(format!("engine {s:?}: expected df://HOST:PORT, got df://{rest}"));
        }
        if !cfg!(feature = "cluster") {
            return Err(format!("engine {s:?}: this medallion was built without the `cluster` feature"));
        }
        Ok(Engine::Ballista(s.to_string()))
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Local => f.write_str("local"),
            Engine::Ballista(url) => f.write_str(url),
        }
    }
}

/// The largest plan or result message exchanged with the cluster (plans carry in-memory
/// tables: the checks' gold outputs).
pub const MAX_MESSAGE_BYTES: u32 = 1 << 30;

/// The session gold's models run in, on `engine`, with the money functions registered.
pub(crate) async fn context(engine: &Engine) -> Result<SessionContext, GoldError> {
    match engine {
        Engine::Local => {
            let ctx = SessionContext::new();
            ctx.register_udf(udf::money());
            ctx.register_udf(udf::money_div());
            Ok(ctx)
        }
        #[cfg(feature = "cluster")]
        Engine::Ballista(url) => cluster::client_context(url).await,
        #[cfg(not(feature = "cluster"))]
        Engine::Ballista(url) => Err(GoldError::Input(format!("engine {url}: built without the `cluster` feature"))),
    }
}

/// A fresh session (no tables) with the configuration, object stores, functions and query
/// planner of `ctx`: on a Ballista session its queries still run on the cluster.
pub(crate) fn derived(ctx: &SessionContext) -> SessionContext {
    let state = ctx.state();
    let derived = SessionStateBuilder::new()
        .with_config(ctx.copied_config())
        .with_runtime_env(ctx.runtime_env())
        .with_default_features()
        .with_query_planner(state.query_planner().clone())
        .with_optimizer_rules(state.optimizers().to_vec())
        .build();
    let out = SessionContext::new_with_state(derived);
    out.register_udf(udf::money());
    out.register_udf(udf::money_div());
    out
}

/// `table`'s provider for a session: delta-rs's own locally, its exact snapshot files
/// ([`SilverScan`]) on a session that sends its queries to a cluster.
pub(crate) async fn delta_provider(ctx: &SessionContext, table: &deltalake::DeltaTable) -> Result<Arc<dyn TableProvider>, GoldError> {
    let provider = table.table_provider().await?;
    if !sends_to_cluster(ctx) {
        return Ok(provider);
    }
    Ok(Arc::new(SilverScan::from_delta(table, provider.schema())?))
}

/// Whether `ctx` is a Ballista session (its configuration carries Ballista's settings).
fn sends_to_cluster(ctx: &SessionContext) -> bool {
    #[cfg(feature = "cluster")]
    return ctx.state().config().options().extensions.get::<ballista_core::config::BallistaConfig>().is_some();
    #[cfg(not(feature = "cluster"))]
    {
        let _ = ctx;
        false
    }
}

/// One data file of a silver table's snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SilverFile {
    /// The object's path in the lake's object store (bucket-relative on S3, absolute locally).
    pub path: String,
    pub size: u64,
    /// Milliseconds since the epoch, from the Delta log (keys DataFusion's footer cache).
    pub modified_ms: i64,
    /// One value per partition column, in order (None: the null partition).
    pub partition_values: Vec<Option<String>>,
}

/// A silver Delta table as the exact Parquet files of one snapshot (see the module docs).
#[derive(Debug, Clone)]
pub struct SilverScan {
    /// The table's schema: the data columns, then the partition columns (delta-rs's order).
    schema: SchemaRef,
    wire: SilverScanWire,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SilverScanWire {
    /// The lake's object store, `file:///` or `s3://bucket`.
    store: String,
    partition_columns: Vec<String>,
    files: Vec<SilverFile>,
}

impl SilverScan {
    /// The snapshot of `table` (its loaded version) as a scan of its files. `schema` is the
    /// schema delta-rs's own provider gives the table, which this scan reproduces exactly.
    pub fn from_delta(table: &deltalake::DeltaTable, schema: SchemaRef) -> Result<SilverScan, GoldError> {
        let name = table.table_url().to_string();
        let snapshot = table.snapshot()?;
        // Column mapping renames physical columns: the files could not be read by name.
        if let Some(mode) = snapshot.metadata().configuration().get("delta.columnMapping.mode").filter(|m| m.as_str() != "none") {
            return Err(GoldError::Input(format!("silver table {name} uses column mapping ({mode}), which the cluster scan does not read")));
        }
        let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        let root = table.table_url();
        let store = match root.scheme() {
            "file" => "file:///".to_string(),
            scheme => format!("{scheme}://{}", root.host_str().unwrap_or_default()),
        };
        let root_parts: Vec<object_store::path::PathPart<'static>> =
            Path::from_url_path(root.path()).map_err(|e| GoldError::Input(format!("silver table {name}: {e}")))?.parts().map(|p| p.as_ref().to_string().into()).collect();
        let mut files = Vec::new();
        for view in snapshot.log_data().iter() {
            let rel = view.object_store_path();
            // A deletion vector hides rows of the file: reading the file whole would be wrong.
            if view.deletion_vector_descriptor().is_some() {
                return Err(GoldError::Input(format!("silver table {name}: file {rel} has a deletion vector, which the cluster scan does not read")));
            }
            let path: Path = root_parts.iter().cloned().chain(rel.parts()).collect();
            let mut values = Vec::with_capacity(partition_columns.len());
            for column in &partition_columns {
                let prefix = format!("{column}=");
                let segment = rel.parts().find_map(|p| p.as_ref().strip_prefix(&prefix).map(str::to_string)).ok_or_else(|| {
                    GoldError::Input(format!("silver table {name}: file {rel} has no {column}=… directory (partition values are read from the Delta paths)"))
                })?;
                let decoded = percent_encoding_decode(&segment);
                values.push((decoded != "__HIVE_DEFAULT_PARTITION__").then_some(decoded));
            }
            let size = u64::try_from(view.size()).map_err(|_| GoldError::Input(format!("silver table {name}: file {rel} has a negative size")))?;
            files.push(SilverFile { path: path.to_string(), size, modified_ms: view.modification_time(), partition_values: values });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        // delta-rs types partition columns as dictionaries; the plan's partition values do not
        // survive serialisation as such, so the scan gives their plain value type.
        let fields: Vec<Arc<Field>> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, v) if partition_columns.contains(f.name()) => Arc::new(f.as_ref().clone().with_data_type(v.as_ref().clone())),
                _ => f.clone(),
            })
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let scan = SilverScan { schema, wire: SilverScanWire { store, partition_columns, files } };
        scan.check_schema(&name)?;
        Ok(scan)
    }

    fn from_wire(schema: SchemaRef, wire: SilverScanWire) -> SilverScan {
        SilverScan { schema, wire }
    }

    /// Every partition column must be a column of the schema.
    fn check_schema(&self, name: &str) -> Result<(), GoldError> {
        match self.wire.partition_columns.iter().find(|c| self.schema.index_of(c).is_err()) {
            Some(c) => Err(GoldError::Input(format!("silver table {name}: partition column {c} is not in its schema"))),
            None => Ok(()),
        }
    }

    pub fn files(&self) -> &[SilverFile] {
        &self.wire.files
    }

    /// The scan's layout: the file columns (the schema's other columns, in its order), then the
    /// partition columns (in partition order); and each schema column's index in it.
    fn layout(&self) -> DfResult<(SchemaRef, Vec<Arc<Field>>, Vec<usize>)> {
        let is_part = |f: &Field| self.wire.partition_columns.iter().any(|c| c == f.name());
        let file_fields: Vec<Arc<Field>> = self.schema.fields().iter().filter(|f| !is_part(f)).cloned().collect();
        let part_fields = self.wire.partition_columns.iter().map(|c| Ok(Arc::new(self.schema.field_with_name(c)?.clone()))).collect::<DfResult<Vec<_>>>()?;
        let names: Vec<&str> = file_fields.iter().chain(&part_fields).map(|f| f.name().as_str()).collect();
        let index = self.schema.fields().iter().map(|f| names.iter().position(|n| n == f.name()).expect("every column is in the layout")).collect();
        Ok((Arc::new(Schema::new_with_metadata(file_fields, self.schema.metadata().clone())), part_fields, index))
    }

    /// A partition value as the column's type (a dictionary-typed column gets a dictionary
    /// scalar).
    fn partition_scalar(value: &Option<String>, ty: &DataType) -> DfResult<ScalarValue> {
        let (key, value_type) = match ty {
            DataType::Dictionary(k, v) => (Some(k.as_ref().clone()), v.as_ref()),
            other => (None, other),
        };
        let v = match value {
            Some(s) => ScalarValue::try_from_string(s.clone(), value_type)?,
            None => ScalarValue::try_from(value_type)?,
        };
        Ok(match key {
            Some(k) => ScalarValue::Dictionary(Box::new(k), Box::new(v)),
            None => v,
        })
    }

    /// Whether the file's partition values pass every filter that reads partition columns
    /// only (the other filters are applied above the scan).
    fn keep(&self, file: &SilverFile, filters: &[Arc<dyn PhysicalExpr>], part_schema: &SchemaRef) -> DfResult<bool> {
        if filters.is_empty() {
            return Ok(true);
        }
        let columns = part_schema
            .fields()
            .iter()
            .zip(&file.partition_values)
            .map(|(f, v)| Self::partition_scalar(v, f.data_type())?.to_array_of_size(1))
            .collect::<DfResult<Vec<_>>>()?;
        let batch = RecordBatch::try_new(part_schema.clone(), columns)?;
        for f in filters {
            let out = f.evaluate(&batch)?.into_array(1)?;
            let out = arrow::compute::cast(&out, &DataType::Boolean)?;
            let b = arrow::array::AsArray::as_boolean(out.as_ref());
            if !(arrow::array::Array::is_valid(b, 0) && b.value(0)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn reads_partitions_only(&self, e: &Expr) -> bool {
        let cols = e.column_refs();
        !cols.is_empty() && cols.iter().all(|c| self.wire.partition_columns.iter().any(|p| p == &c.name))
    }
}

fn percent_encoding_decode(s: &str) -> String {
    // Hive path segments are percent-encoded; invalid %XX sequences stay as they are.
    percent_encoding::percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).unwrap_or_else(|_| s.to_string())
}

#[async_trait::async_trait]
impl TableProvider for SilverScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filters prune files and row groups; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (file_schema, part_fields, index) = self.layout()?;
        let part_schema: SchemaRef = Arc::new(Schema::new(part_fields.clone()));
        let part_df_schema = DFSchema::try_from(part_schema.as_ref().clone())?;
        let partition_filters = filters
            .iter()
            .filter(|f| self.reads_partitions_only(f))
            .map(|f| state.create_physical_expr(f.clone(), &part_df_schema))
            .collect::<DfResult<Vec<_>>>()?;
        let mut files = Vec::new();
        for f in &self.wire.files {
            if !self.keep(f, &partition_filters, &part_schema)? {
                continue;
            }
            let meta = ObjectMeta { location: Path::parse(&f.path).map_err(|e| DataFusionError::External(Box::new(e)))?, last_modified: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(f.modified_ms).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC), size: f.size, e_tag: None, version: None };
            let mut pf = deltalake::datafusion::datasource::listing::PartitionedFile::from(meta);
            pf.partition_values = part_fields.iter().zip(&f.partition_values).map(|(fd, v)| Self::partition_scalar(v, fd.data_type())).collect::<DfResult<_>>()?;
            files.push(pf);
        }
        let table_schema = TableSchema::builder(file_schema).with_table_partition_cols(part_fields).build();
        let layout_schema = table_schema.table_schema().clone();
        let mut source = ParquetSource::new(table_schema).with_table_parquet_options(state.table_options().parquet.clone());
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(layout_schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let partitions = state.config_options().execution.target_partitions.max(1);
        let groups = if files.is_empty() { vec![] } else { FileGroup::new(files).split_files(partitions) };
        let store = ObjectStoreUrl::parse(&self.wire.store)?;
        let config = FileScanConfigBuilder::new(store, Arc::new(source)).with_file_groups(groups).with_projection_indices(Some(match projection {
            Some(p) => p.iter().map(|i| index[*i]).collect(),
            None => index.clone(),
        }))?.with_limit(limit).build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Object stores for the lake's URLs: `file://` as DataFusion has it, and every `s3://bucket`
/// built on first use with the lake's own S3 configuration (the `AWS_*` variables, retries).
#[derive(Debug)]
pub struct LakeStores {
    inner: DefaultObjectStoreRegistry,
    lock: Mutex<()>,
}

impl Default for LakeStores {
    fn default() -> Self {
        LakeStores { inner: DefaultObjectStoreRegistry::new(), lock: Mutex::new(()) }
    }
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(s) = self.inner.get_store(url) {
            return Ok(s);
        }
        if url.scheme() != "s3" {
            return self.inner.get_store(url);
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(s) = self.inner.get_store(url) {
            return Ok(s);
        }
        let bucket = url.host_str().unwrap_or_default();
        let lake = ::lake::Location::open("lake", &format!("s3://{bucket}"), false).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.inner.register_store(url, lake.store.clone());
        Ok(lake.store)
    }
}

/// A runtime whose object stores are the lake's ([`LakeStores`]); `temp` holds spills.
pub fn lake_runtime(temp: Option<&std::path::Path>) -> DfResult<Arc<RuntimeEnv>> {
    let mut b = RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(LakeStores::default()));
    if let Some(t) = temp {
        b = b.with_temp_file_path(t);
    }
    b.build_arc()
}

/// The functions gold's SQL calls besides DataFusion's own.
pub fn gold_functions() -> HashMap<String, Arc<deltalake::datafusion::logical_expr::ScalarUDF>> {
    [udf::money(), udf::money_div()].into_iter().map(|f| (f.name().to_string(), Arc::new(f))).collect()
}

/// A state for `config` with DataFusion's functions and gold's, and the lake's object stores.
pub fn gold_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> DfResult<SessionState> {
    use deltalake::datafusion::execution::FunctionRegistry;
    let mut state = SessionStateBuilder::new().with_default_features().with_config(config).with_runtime_env(runtime).build();
    for f in gold_functions().into_values() {
        state.register_udf(f)?;
    }
    Ok(state)
}

#[cfg(feature = "cluster")]
pub mod cluster;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse() {
        assert_eq!("local".parse::<Engine>(), Ok(Engine::Local));
        assert_eq!("".parse::<Engine>(), Ok(Engine::Local));
        let cluster = "df://127.0.0.1:50050".parse::<Engine>();
        if cfg!(feature = "cluster") {
            assert_eq!(cluster, Ok(Engine::Ballista("df://127.0.0.1:50050".into())));
        } else {
            assert!(cluster.unwrap_err().contains("built without the `cluster` feature"));
        }
        assert!("df://127.0.0.1".parse::<Engine>().is_err());
        assert!("http://127.0.0.1:50050".parse::<Engine>().is_err());
        assert!("df://h:1/x".parse::<Engine>().is_err());
    }

    #[tokio::test]
    async fn partition_filters_prune_files_exactly() {
        use deltalake::datafusion::physical_plan::displayable;
        use deltalake::datafusion::prelude::{col, lit};
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true), Field::new("partner_id", DataType::Utf8, true)]));
        let file = |name: &str, p: Option<&str>| SilverFile { path: format!("t/{name}.parquet"), size: 10, modified_ms: 0, partition_values: vec![p.map(String::from)] };
        let wire = SilverScanWire {
            store: "file:///".into(),
            partition_columns: vec!["partner_id".into()],
            files: vec![file("one", Some("a")), file("two", Some("b")), file("three", None)],
        };
        let scan = SilverScan::from_wire(schema, wire);
        let state = SessionContext::new().state();
        let shown = |plan: Arc<dyn ExecutionPlan>| displayable(plan.as_ref()).indent(true).to_string();
        let only_a = shown(scan.scan(&state, None, &[col("partner_id").eq(lit("a"))], None).await.unwrap());
        assert!(only_a.contains("one.parquet") && !only_a.contains("two.parquet") && !only_a.contains("three.parquet"), "{only_a}");
        let nulls = shown(scan.scan(&state, None, &[col("partner_id").is_null()], None).await.unwrap());
        assert!(nulls.contains("three.parquet") && !nulls.contains("one.parquet"), "{nulls}");
        // A filter on a data column prunes no file (it is applied above the scan).
        let all = shown(scan.scan(&state, None, &[col("x").gt(lit(1i64))], None).await.unwrap());
        assert!(["one", "two", "three"].iter().all(|f| all.contains(&format!("{f}.parquet"))), "{all}");
    }

    #[tokio::test]
    async fn scans_keep_the_table_column_order() {
        // delta-rs keeps the table's order: the partition column may come first.
        let schema = Arc::new(Schema::new(vec![
            Field::new("partner_id", DataType::Utf8, true),
            Field::new("x", DataType::Int64, true),
            Field::new("y", DataType::Utf8, true),
        ]));
        let wire = SilverScanWire { store: "file:///".into(), partition_columns: vec!["partner_id".into()], files: vec![] };
        let scan = SilverScan::from_wire(schema.clone(), wire);
        let state = SessionContext::new().state();
        let names = |s: SchemaRef| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
        assert_eq!(names(scan.scan(&state, None, &[], None).await.unwrap().schema()), ["partner_id", "x", "y"]);
        assert_eq!(names(scan.scan(&state, Some(&vec![2, 0]), &[], None).await.unwrap().schema()), ["y", "partner_id"]);
    }

    #[test]
    fn hive_segments_decode() {
        assert_eq!(percent_encoding_decode("acme%20co"), "acme co");
        assert_eq!(percent_encoding_decode("a%2"), "a%2");
        assert_eq!(percent_encoding_decode("plain"), "plain");
        assert_eq!(percent_encoding_decode("%é1"), "%é1");
    }

}
