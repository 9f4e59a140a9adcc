//! Gold: the contract's business tables (CONTRACT.md §3), each defined in `gold/models/` by one
//! SQL file and its description (`<table>.toml`: columns, grain, docs, tests; see `models`),
//! and run by DataFusion over the silver Delta tables. Gold is a pure function
//! of silver: every table is recomputed from the current silver state.
//!
//! Money is exact decimal until the very end, where `money()` / `money_div()` round it half
//! away from zero to NUMERIC(18,2); ratios are doubles computed from exact sums.

pub mod checks;
pub mod engine;
pub mod incremental;
pub mod lake;
pub mod models;
pub mod publish;
pub mod udf;
pub mod warehouse;

pub use engine::Engine;
pub use models::{models, Model};
pub use publish::{run_gold, GoldOptions, GoldReport};
pub use warehouse::{Warehouse, WarehouseError};

use std::sync::Arc;

use arrow::array::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::prelude::SessionContext;
use ::lake::delta::Lakehouse;
use ::lake::Location;
use schemas::{silver, Dataset};

#[derive(Debug, thiserror::Error)]
pub enum GoldError {
    #[error(transparent)]
    Delta(#[from] ::lake::delta::DeltaError),
    #[error("gold model {model}: {message}")]
    Model { model: String, message: String },
    /// A model's (or check's) SQL failed.
    #[error("gold model {model}: {source}")]
    Query { model: String, source: deltalake::datafusion::error::DataFusionError },
    /// A model's result could not be cast to the contract's types.
    #[error("gold model {model}: {context}{source}")]
    Cast { model: String, context: String, source: arrow::error::ArrowError },
    #[error("writing gold Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{path}: not a silver run record: {source}")]
    Record { path: String, source: serde_json::Error },
    #[error("query engine: {0}")]
    DataFusion(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("delta: {0}")]
    DeltaTable(#[from] deltalake::DeltaTableError),
    #[error(transparent)]
    Warehouse(#[from] warehouse::WarehouseError),
    #[error("{path}: {source}")]
    Store { path: String, source: ::lake::StoreError },
    #[error("nothing to do: {0}")]
    NothingToDo(String),
    /// The Ballista scheduler could not be reached (transient: `run` retries the stage).
    #[error("Ballista scheduler {url}: {source}")]
    Scheduler { url: String, source: std::io::Error },
    #[error("{0}")]
    Input(String),
    /// Gold does not agree with silver: nothing was published.
    #[error("reconciliation failed, nothing was published:\n{}", .0.join("\n"))]
    Reconciliation(Vec<String>),
}

impl GoldError {
    pub(crate) fn store(lake: &Location, path: &object_store::path::Path, e: object_store::Error) -> Self {
        GoldError::Store { path: lake.describe(path), source: lake.classify(e) }
    }

    pub(crate) fn query(model: impl Into<String>) -> impl FnOnce(deltalake::datafusion::error::DataFusionError) -> GoldError {
        let model = model.into();
        move |source| GoldError::Query { model, source }
    }

    /// Whether retrying later may help: the warehouse's own decision for its errors,
    /// [`::lake::is_transient`] on the cause for the rest.
    pub fn is_transient(&self) -> bool {
        match self {
            GoldError::Warehouse(w) => w.is_transient(),
            other => ::lake::is_transient(other),
        }
    }
}

/// The silver tables the models read, with the schema to use when a table does not exist yet
/// (no feed of that dataset ever arrived): gold then sees it empty.
fn inputs() -> Vec<(&'static str, arrow::datatypes::SchemaRef)> {
    let mut v: Vec<(&'static str, arrow::datatypes::SchemaRef)> =
        Dataset::ALL.iter().map(|d| (silver::current_table(*d), silver::current_schema(*d))).collect();
    v.push((silver::PRODUCT_CHANGES, silver::product_changes_schema()));
    v.push((silver::FEED_RECONCILIATION, silver::reconciliation_schema()));
    v
}

/// The names of the silver tables gold reads.
pub fn input_tables() -> impl Iterator<Item = &'static str> {
    inputs().into_iter().map(|(name, _)| name)
}

/// A session with the silver tables, the money functions and the shared views registered.
pub async fn session(lake: &Location) -> Result<SessionContext, GoldError> {
    Ok(session_with_versions(lake).await?.0)
}

/// [`session`], with the version of each silver table it reads (tables that do not exist yet
/// are absent).
pub async fn session_with_versions(lake: &Location) -> Result<(SessionContext, std::collections::BTreeMap<String, i64>), GoldError> {
    session_on(lake, &Engine::Local).await
}

/// [`session_with_versions`] on `engine`. On a cluster each silver table is the exact file
/// list of the snapshot read here (`engine::SilverScan`), with delta-rs's schema.
pub async fn session_on(lake: &Location, engine: &Engine) -> Result<(SessionContext, std::collections::BTreeMap<String, i64>), GoldError> {
    let mut versions = std::collections::BTreeMap::new();
    let ctx = engine::context(engine).await?;
    let lh = Lakehouse::new(lake)?;
    for (name, schema) in inputs() {
        match lh.open(name).await? {
            Some(table) if Lakehouse::version(&table).is_some() => {
                versions.insert(name.to_string(), Lakehouse::version(&table).expect("checked"));
                table.update_datafusion_session(&ctx.state())?;
                ctx.register_table(name, engine::delta_provider(&ctx, &table).await?)?;
            }
            _ => {
                ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
            }
        }
    }
    for v in models::views() {
        ctx.sql(&format!("CREATE VIEW {} AS {}", v.name, v.sql))
            .await
            .map_err(GoldError::query(v.name))?;
    }
    Ok((ctx, versions))
}

/// A session over the same silver tables as `ctx` in which each shared view holds only its
/// rows of the order dates `dates`, computed once: the order-dated models and the checks of a
/// publish limited to those dates then read them instead of joining silver again each.
///
/// The views are computed from the orders of those dates (a filter on the order timestamp's
/// range, which the tables' file statistics prune on) and the items of those orders only
/// (a filter on each partner's range of their order ids, then a semi-join), not from history.
pub async fn session_for_order_dates(ctx: &SessionContext, dates: &std::collections::BTreeSet<String>) -> Result<SessionContext, GoldError> {
    let out = engine::derived(ctx);
    let dated = engine::derived(ctx);
    for (name, _) in inputs() {
        let provider = ctx.table_provider(name).await?;
        out.register_table(name, provider.clone())?;
        if name != silver::current_table(Dataset::Orders) && name != silver::current_table(Dataset::OrderItems) {
            dated.register_table(name, provider)?;
        }
    }
    let orders_name = silver::current_table(Dataset::Orders);
    let orders = ctx.table(orders_name).await.map_err(GoldError::query(orders_name))?;
    let filter = order_date_filter(orders.schema().as_arrow(), dates);
    let (schema, orders) = collect_df(orders.filter(filter).map_err(GoldError::query(orders_name))?, orders_name).await?;
    let keys = order_keys(&orders)?;
    dated.register_table(orders_name, Arc::new(MemTable::try_new(schema, vec![orders])?))?;
    let items_name = silver::current_table(Dataset::OrderItems);
    let (schema, items) = narrow_rows(ctx, items_name, &keys).await?;
    dated.register_table(items_name, Arc::new(MemTable::try_new(schema, vec![items])?))?;
    for v in models::views() {
        dated.sql(&format!("CREATE VIEW {} AS {}", v.name, v.sql)).await.map_err(GoldError::query(v.name))?;
    }
    let list = if dates.is_empty() { "NULL".to_string() } else { dates.iter().map(|d| format!("DATE '{d}'")).collect::<Vec<_>>().join(", ") };
    for v in models::views() {
        let df = dated.sql(&format!("SELECT * FROM {} WHERE order_date IN ({list})", v.name)).await.map_err(GoldError::query(v.name))?;
        out.register_table(v.name, Arc::new(materialize_df(df, v.name).await?))?;
    }
    Ok(out)
}

/// Orders whose UTC date is one of `dates`: the exact test, and per run of consecutive dates
/// a range on the timestamp itself (typed as the column, so file statistics prune on it).
fn order_date_filter(schema: &arrow::datatypes::Schema, dates: &std::collections::BTreeSet<String>) -> Expr {
    use deltalake::datafusion::logical_expr::{cast, col, lit};
    let days: Vec<i32> = dates.iter().filter_map(|d| date_days(d)).collect();
    if days.is_empty() {
        return lit(false);
    }
    let exact = cast(col("order_date"), arrow::datatypes::DataType::Date32)
        .in_list(days.iter().map(|d| lit(ScalarValue::Date32(Some(*d)))).collect(), false);
    let tz = match schema.field_with_name("order_date").map(|f| f.data_type()) {
        Ok(arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, tz)) => tz.clone(),
        _ => return exact,
    };
    let at = |day: i32| lit(ScalarValue::TimestampMicrosecond(Some(i64::from(day) * 86_400_000_000), tz.clone()));
    let mut ranges: Vec<(i32, i32)> = Vec::new();
    for d in days {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == d => *end = d,
            _ => ranges.push((d, d)),
        }
    }
    let range = ranges
        .into_iter()
        .map(|(a, b)| col("order_date").gt_eq(at(a)).and(col("order_date").lt(at(b + 1))))
        .reduce(Expr::or)
        .expect("at least one date");
    range.and(exact)
}

/// The (partner_id, order_id) of `orders`' rows.
fn order_keys(orders: &[RecordBatch]) -> Result<incremental::KeySet, GoldError> {
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![Field::new("partner_id", DataType::Utf8, false), Field::new("order_id", DataType::Utf8, false)]));
    let mut parts = Vec::new();
    for b in orders {
        let col = |name: &str| arrow::compute::cast(b.column(b.schema().index_of(name).expect("orders have the key columns")), &DataType::Utf8);
        parts.push(RecordBatch::try_new(schema.clone(), vec![col("partner_id")?, col("order_id")?])?);
    }
    Ok(incremental::KeySet { columns: vec!["partner_id".into(), "order_id".into()], rows: arrow::compute::concat_batches(&schema, &parts)? })
}

/// `df`'s schema and rows.
async fn collect_df(df: deltalake::datafusion::dataframe::DataFrame, what: &str) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), GoldError> {
    let schema: arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await.map_err(GoldError::query(what))?))
}

/// `df`'s rows as an in-memory table.
async fn materialize_df(df: deltalake::datafusion::dataframe::DataFrame, what: &str) -> Result<MemTable, GoldError> {
    let (schema, rows) = collect_df(df, what).await?;
    Ok(MemTable::try_new(schema, vec![rows])?)
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn date_days(d: &str) -> Option<i32> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()? - epoch).num_days()).ok()
}

/// The rows of table `name` (in `ctx`) that have one of `keys`' tuples: a semi-join, after a
/// filter that holds for those rows and that file statistics prune on (per value of the first
/// key column, the range of the last).
pub(crate) async fn narrow_rows(ctx: &SessionContext, name: &str, keys: &incremental::KeySet) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), GoldError> {
    use deltalake::datafusion::common::JoinType;
    use deltalake::datafusion::logical_expr::col;
    let mut table = ctx.table(name).await.map_err(GoldError::query(name))?;
    if let Some(f) = keys.range_filter()? {
        table = table.filter(f).map_err(GoldError::query(name))?;
    }
    let k = ctx.read_batch(keys.rows.clone()).and_then(|k| k.alias("k")).map_err(GoldError::query(name))?;
    let on: Vec<Expr> = keys.columns.iter().map(|c| col(format!("t.{c}")).eq(col(format!("k.{c}")))).collect();
    let df = table.alias("t").and_then(|t| t.join_on(k, JoinType::LeftSemi, on)).map_err(GoldError::query(name))?;
    collect_df(df, name).await
}

/// A session over the same silver tables as `ctx` in which each table of `narrow` holds only
/// its rows of the key tuples `keys` (computed once), and the shared views are built on them.
/// Items count only through their order (the views join them by key), so narrowing one of
/// `orders` and `order_items` narrows the other to the rows that join it.
pub(crate) async fn session_narrowed(ctx: &SessionContext, narrow: &[String], keys: &incremental::KeySet) -> Result<SessionContext, GoldError> {
    let (orders, items) = (silver::current_table(Dataset::Orders), silver::current_table(Dataset::OrderItems));
    let mut narrowed = std::collections::BTreeMap::new();
    for (name, _) in inputs().into_iter().filter(|(name, _)| narrow.iter().any(|n| n == name)) {
        narrowed.insert(name, narrow_rows(ctx, name, keys).await?);
    }
    let joined = match (narrowed.get(orders), narrowed.get(items)) {
        (Some((_, o)), None) => Some((items, narrow_rows(ctx, items, &order_keys(o)?).await?)),
        (None, Some((_, i))) => Some((orders, narrow_rows(ctx, orders, &order_keys(i)?).await?)),
        _ => None,
    };
    narrowed.extend(joined);
    let out = engine::derived(ctx);
    for (name, _) in inputs() {
        match narrowed.remove(name) {
            Some((schema, rows)) => out.register_table(name, Arc::new(MemTable::try_new(schema, vec![rows])?))?,
            None => out.register_table(name, ctx.table_provider(name).await?)?,
        };
    }
    for v in models::views() {
        out.sql(&format!("CREATE VIEW {} AS {}", v.name, v.sql)).await.map_err(GoldError::query(v.name))?;
    }
    Ok(out)
}

/// Which business dates of the dated tables to compute (undated tables are always whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dates {
    All,
    Only(std::collections::BTreeSet<String>),
}

impl Dates {
    pub fn contains(&self, d: &str) -> bool {
        match self {
            Dates::All => true,
            Dates::Only(s) => s.contains(d),
        }
    }

    /// A SQL predicate on `column` (a DATE), or `None` for every date.
    fn predicate(&self, column: &str) -> Option<String> {
        match self {
            Dates::All => None,
            Dates::Only(s) if s.is_empty() => Some("FALSE".into()),
            Dates::Only(s) => {
                let list: Vec<String> = s.iter().map(|d| format!("DATE '{d}'")).collect();
                Some(format!("{column} IN ({})", list.join(", ")))
            }
        }
    }
}

/// The dates to compute per date column of the contract's dated tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `order_date` of daily_sales, category_kpis, order_kpis, partner_revenue.
    pub order_dates: Dates,
    /// `run_date` of product_changes.
    pub run_dates: Dates,
    /// `snapshot_date` of inventory_status.
    pub snapshot_dates: Dates,
}

impl Scope {
    pub const ALL: Scope = Scope { order_dates: Dates::All, run_dates: Dates::All, snapshot_dates: Dates::All };

    pub fn dates_of(&self, date_column: &str) -> &Dates {
        match date_column {
            "run_date" => &self.run_dates,
            "snapshot_date" => &self.snapshot_dates,
            _ => &self.order_dates,
        }
    }
}

/// One computed gold table, conformed to its model's description (`models::GoldTable`): exactly its columns,
/// in its order, with its types.
#[derive(Debug, Clone)]
pub struct GoldOutput {
    pub table: &'static models::GoldTable,
    /// The business dates this output replaces whole (`All`: the whole table; an undated table
    /// replaced by key has `Only` of none).
    pub dates: Dates,
    /// The key tuples it replaces besides (`[incremental]`; disjoint from `dates`).
    pub groups: Option<incremental::KeySet>,
    /// The new rows of what it replaces, in grain order.
    pub batches: Vec<RecordBatch>,
}

impl GoldOutput {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// The Arrow type gold uses for a contract type.
pub fn arrow_type(ty: models::GoldType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType;
    use models::GoldType;
    match ty {
        GoldType::Date => DataType::Date32,
        GoldType::Text => DataType::Utf8,
        GoldType::Int => DataType::Int64,
        GoldType::Money => udf::MONEY,
        GoldType::Ratio => DataType::Float64,
        GoldType::Bool => DataType::Boolean,
    }
}

/// The contract's Arrow schema of a gold table.
pub fn gold_schema(t: &models::GoldTable) -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        t.columns.iter().map(|c| arrow::datatypes::Field::new(&c.name, arrow_type(c.ty), c.nullable)).collect::<Vec<_>>(),
    ))
}

/// Checks a model's result against the contract and casts it to the contract's types: the
/// column names and order must match exactly, and a non-nullable column must hold no NULL.
fn conform(t: &'static models::GoldTable, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, GoldError> {
    let schema = gold_schema(t);
    let err = |message: String| GoldError::Model { model: t.name.clone(), message };
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let got: Vec<&str> = b.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        let want: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        if got != want {
            return Err(err(format!("returns columns {got:?}, the contract says {want:?}")));
        }
        if b.num_rows() == 0 {
            continue;
        }
        let mut cols = Vec::with_capacity(b.num_columns());
        for (c, field) in b.columns().iter().zip(schema.fields()) {
            let cast = arrow::compute::cast(c, field.data_type()).map_err(|source| GoldError::Cast {
                model: t.name.clone(),
                context: format!("column {}: ", field.name()),
                source,
            })?;
            if !field.is_nullable() && cast.null_count() > 0 {
                return Err(err(format!("column {} holds {} NULL values; the contract says it never does", field.name(), cast.null_count())));
            }
            cols.push(cast);
        }
        out.push(RecordBatch::try_new(schema.clone(), cols).map_err(|source| GoldError::Cast { model: t.name.clone(), context: String::new(), source })?);
    }
    Ok(out)
}

/// Runs one model on `ctx`, restricted to `dates` when the table is dated.
pub async fn run_model(ctx: &SessionContext, m: &Model, scope: &Scope) -> Result<GoldOutput, GoldError> {
    run_model_keyed(ctx, m, scope, None).await
}

/// Runs one model on `ctx` for the whole dates of `scope` (every row of an undated table) or,
/// with `groups`, for those dates and the rows of those key tuples (only those tuples on an
/// undated table).
pub async fn run_model_keyed(ctx: &SessionContext, m: &Model, scope: &Scope, groups: Option<&incremental::KeySet>) -> Result<GoldOutput, GoldError> {
    let table = models::table(m.name).ok_or_else(|| GoldError::Model { model: m.name.into(), message: "not a contract table".into() })?;
    let dates = match (&table.date_column, groups) {
        (Some(c), _) => scope.dates_of(c).clone(),
        (None, Some(_)) => Dates::Only(Default::default()),
        (None, None) => Dates::All,
    };
    // An undated table replaced by key reads its `narrow` tables for those keys only.
    let narrowed = match (groups.filter(|g| !g.is_empty()), &table.incremental, &table.date_column) {
        (Some(g), Some(inc), None) if !inc.narrow.is_empty() => Some(session_narrowed(ctx, &inc.narrow, g).await?),
        _ => None,
    };
    let ctx = narrowed.as_ref().unwrap_or(ctx);
    let whole = dates != Dates::Only(Default::default());
    let sql = match groups.filter(|g| !g.is_empty()) {
        _ if !whole && groups.is_none_or(|g| g.is_empty()) => None,
        None => {
            let filter = table.date_column.as_deref().and_then(|c| dates.predicate(c)).map(|p| format!(" WHERE {p}")).unwrap_or_default();
            Some(format!("SELECT * FROM ({}) AS model{filter}", m.sql))
        }
        Some(g) => {
            let name = format!("_keys_{}", table.name);
            let _ = ctx.deregister_table(name.as_str());
            ctx.register_table(name.as_str(), Arc::new(MemTable::try_new(g.rows.schema(), vec![vec![g.rows.clone()]])?))?;
            let on = g.columns.iter().map(|c| format!("m.{c} = k.{c}")).collect::<Vec<_>>().join(" AND ");
            // The whole dates, and the key tuples on other dates; the date list (a filter the
            // scans can prune on) covers both.
            let (join, filter) = match (&table.date_column, &dates) {
                (Some(c), Dates::Only(s)) if !s.is_empty() => {
                    let all: std::collections::BTreeSet<String> = s.iter().cloned().chain(g.first_values()).collect();
                    let list = |d: &std::collections::BTreeSet<String>| d.iter().map(|d| format!("DATE '{d}'")).collect::<Vec<_>>().join(", ");
                    ("LEFT JOIN", format!(" WHERE m.{c} IN ({}) AND (m.{c} IN ({}) OR k.{c} IS NOT NULL)", list(&all), list(s)))
                }
                (Some(c), _) => ("JOIN", format!(" WHERE m.{c} IN ({})", g.first_values().iter().map(|d| format!("DATE '{d}'")).collect::<Vec<_>>().join(", "))),
                (None, _) => ("JOIN", String::new()),
            };
            Some(format!("SELECT m.* FROM ({}) AS m {join} {name} AS k ON {on}{filter}", m.sql))
        }
    };
    let batches = match sql {
        None => Vec::new(),
        Some(sql) => {
            // Rows in grain order: the lake's files and the warehouse loads are then deterministic.
            let sql = format!("SELECT * FROM ({sql}) AS u ORDER BY {}", table.grain.join(", "));
            ctx.sql(&sql).await.map_err(GoldError::query(m.name))?.collect().await.map_err(GoldError::query(m.name))?
        }
    };
    Ok(GoldOutput { table, dates, groups: groups.cloned(), batches: conform(table, batches)? })
}

/// Computes every gold table from the current silver state.
pub async fn compute(lake: &Location) -> Result<Vec<(&'static str, Vec<RecordBatch>)>, GoldError> {
    let ctx = session(lake).await?;
    let mut out = Vec::with_capacity(models().len());
    for m in models() {
        let o = run_model(&ctx, m, &Scope::ALL).await?;
        out.push((m.name, o.batches));
    }
    Ok(out)
}

/// A session for ad-hoc SQL (`medallion sql`): silver tables as `silver.<table>` (and
/// unqualified), gold tables as `gold.<table>` views computed from silver on the fly, and
/// bronze feeds as `bronze.<dataset>` (all landed Parquet, hive columns `partner` and
/// `ingest_date`, every value a string).
pub async fn sql_session(lake: &Location) -> Result<SessionContext, GoldError> {
    use deltalake::datafusion::prelude::ParquetReadOptions;
    let ctx = session(lake).await?;
    for schema in ["silver", "gold", "bronze"] {
        ctx.sql(&format!("CREATE SCHEMA {schema}")).await?;
    }
    for (name, _) in inputs() {
        let provider = ctx.table_provider(name).await?;
        ctx.register_table(format!("silver.{name}").as_str(), provider)?;
    }
    let lh = Lakehouse::new(lake)?;
    for extra in [silver::PRODUCTS_HISTORY, silver::QUARANTINE, silver::ORPHAN_ITEMS] {
        if let Some(table) = lh.open(extra).await? {
            if Lakehouse::version(&table).is_some() {
                table.update_datafusion_session(&ctx.state())?;
                let provider = table.table_provider().await?;
                ctx.register_table(format!("silver.{extra}").as_str(), provider.clone())?;
                ctx.register_table(extra, provider)?;
            }
        }
    }
    for m in models() {
        ctx.sql(&format!("CREATE VIEW gold.{} AS {}", m.name, m.sql))
            .await
            .map_err(GoldError::query(m.name))?;
    }
    // Bronze: Parquet under bronze/<dataset>/partner=../ingest_date=../
    // The lake's object store, configured by the lake crate (the only S3 configuration).
    let Some(base) = lake.register_in(&ctx).map_err(|source| GoldError::Store { path: lake.display.clone(), source })? else {
        return Ok(ctx);
    };
    for d in Dataset::ALL {
        let path = format!("{base}{}/{}/", schemas::paths::BRONZE, d.name());
        let options = ParquetReadOptions::default().table_partition_cols(vec![
            ("partner".to_string(), arrow::datatypes::DataType::Utf8),
            ("ingest_date".to_string(), arrow::datatypes::DataType::Utf8),
        ]);
        // A dataset that never landed has no files: it is simply not registered.
        let _ = ctx.register_parquet(format!("bronze.{}", d.name()).as_str(), &path, options).await;
    }
    Ok(ctx)
}

/// Runs one query of `medallion sql` read-only: queries (and EXPLAIN) only. DDL (`CREATE
/// EXTERNAL TABLE … LOCATION`, which would read any local file), DML (`INSERT INTO silver.…`,
/// which would commit to a Delta table without the lake lock), `COPY … TO` (which writes any
/// path) and other statements (`SET`, transactions) are refused before anything runs.
pub async fn read_only_query(
    ctx: &SessionContext,
    query: &str,
) -> Result<deltalake::datafusion::dataframe::DataFrame, deltalake::datafusion::error::DataFusionError> {
    let options = deltalake::datafusion::execution::context::SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    ctx.sql_with_options(query, options).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn strings(b: &[RecordBatch], col: &str) -> Vec<String> {
        let mut out: Vec<String> = b
            .iter()
            .flat_map(|b| {
                let a = arrow::compute::cast(b.column(b.schema().index_of(col).unwrap()), &DataType::Utf8).unwrap();
                (0..a.len()).map(|i| a.as_string::<i32>().value(i).to_string()).collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    /// Narrowing by key keeps exactly the rows of the tuples, whatever the pruning filter lets
    /// through, including keys outside every range and a partner without keys.
    #[tokio::test]
    async fn narrow_rows_keeps_exactly_the_key_tuples() {
        let schema = Arc::new(Schema::new(vec![Field::new("partner_id", DataType::Utf8, false), Field::new("order_id", DataType::Utf8, false), Field::new("v", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["p1", "p1", "p1", "p2", "p2", "p3"])),
                Arc::new(StringArray::from(vec!["a", "b", "c", "a", "z", "a"])),
                Arc::new(StringArray::from(vec!["1", "2", "3", "4", "5", "6"])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![b]]).unwrap())).unwrap();
        let key_schema = Arc::new(Schema::new(vec![Field::new("partner_id", DataType::Utf8, false), Field::new("order_id", DataType::Utf8, false)]));
        let keys = |p: Vec<&str>, o: Vec<&str>| incremental::KeySet {
            columns: vec!["partner_id".into(), "order_id".into()],
            rows: RecordBatch::try_new(key_schema.clone(), vec![Arc::new(StringArray::from(p)), Arc::new(StringArray::from(o))]).unwrap(),
        };
        // p1's range a..c holds b, which is not a key: the semi-join drops it.
        let (_, rows) = narrow_rows(&ctx, "t", &keys(vec!["p1", "p1", "p2"], vec!["a", "c", "z"])).await.unwrap();
        assert_eq!(strings(&rows, "v"), ["1", "3", "5"]);
        let (_, rows) = narrow_rows(&ctx, "t", &keys(vec![], vec![])).await.unwrap();
        assert!(strings(&rows, "v").is_empty());
    }

    /// The order-date filter keeps the orders of the dates asked for and no other, across
    /// runs of consecutive and scattered dates and midnight on either side.
    #[tokio::test]
    async fn order_date_filter_keeps_the_dates_asked_for() {
        let tz: Arc<str> = "UTC".into();
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("order_date", DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone())), false),
        ]));
        let day = |d: &str| i64::from(date_days(d).unwrap()) * 86_400_000_000;
        let ts = [day("2026-11-01") - 1, day("2026-11-01"), day("2026-11-02") + 5, day("2026-11-03") - 1, day("2026-11-03"), day("2026-11-05") + 1, day("2026-11-06")];
        let ids: Vec<String> = (0..ts.len()).map(|i| format!("o{i}")).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(ids)), Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone(tz))],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("orders", Arc::new(MemTable::try_new(schema.clone(), vec![vec![b]]).unwrap())).unwrap();
        let dates: std::collections::BTreeSet<String> = ["2026-11-01", "2026-11-02", "2026-11-05"].iter().map(|d| d.to_string()).collect();
        let rows = ctx.table("orders").await.unwrap().filter(order_date_filter(&schema, &dates)).unwrap().collect().await.unwrap();
        assert_eq!(strings(&rows, "order_id"), ["o1", "o2", "o3", "o5"]);
        let none = ctx.table("orders").await.unwrap().filter(order_date_filter(&schema, &Default::default())).unwrap().collect().await.unwrap();
        assert!(strings(&none, "order_id").is_empty());
    }
}
