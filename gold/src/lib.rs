//! Gold: the contract's business tables (CONTRACT.md §3), each defined by one SQL file in
//! `gold/models/` and run by DataFusion over the silver Delta tables. Gold is a pure function
//! of silver: every table is recomputed from the current silver state.
//!
//! Money is exact decimal until the very end, where `money()` / `money_div()` round it half
//! away from zero to NUMERIC(18,2); ratios are doubles computed from exact sums.

pub mod udf;

use std::sync::Arc;

use arrow::array::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;
use schemas::delta::Lakehouse;
use schemas::{silver, Dataset, Location};

/// One SQL model.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Shared views the models build on (not published).
pub const VIEWS: [Model; 2] = [
    Model { name: "_fulfilled_items", sql: include_str!("../models/_fulfilled_items.sql") },
    Model { name: "_fulfilled_orders", sql: include_str!("../models/_fulfilled_orders.sql") },
];

/// The nine gold tables, in the contract's order.
pub const MODELS: [Model; 9] = [
    Model { name: "daily_sales", sql: include_str!("../models/daily_sales.sql") },
    Model { name: "category_kpis", sql: include_str!("../models/category_kpis.sql") },
    Model { name: "order_kpis", sql: include_str!("../models/order_kpis.sql") },
    Model { name: "partner_revenue", sql: include_str!("../models/partner_revenue.sql") },
    Model { name: "product_changes", sql: include_str!("../models/product_changes.sql") },
    Model { name: "dim_products", sql: include_str!("../models/dim_products.sql") },
    Model { name: "customer_orders", sql: include_str!("../models/customer_orders.sql") },
    Model { name: "inventory_status", sql: include_str!("../models/inventory_status.sql") },
    Model { name: "campaign_performance", sql: include_str!("../models/campaign_performance.sql") },
];

#[derive(Debug, thiserror::Error)]
pub enum GoldError {
    #[error(transparent)]
    Delta(#[from] schemas::delta::DeltaError),
    #[error("gold model {model}: {message}")]
    Model { model: String, message: String },
    #[error("query engine: {0}")]
    DataFusion(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("delta: {0}")]
    DeltaTable(#[from] deltalake::DeltaTableError),
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

/// A session with the silver tables, the money functions and the shared views registered.
pub async fn session(lake: &Location) -> Result<SessionContext, GoldError> {
    let ctx = SessionContext::new();
    ctx.register_udf(udf::money());
    ctx.register_udf(udf::money_div());
    let lh = Lakehouse::new(lake)?;
    for (name, schema) in inputs() {
        match lh.open(name).await? {
            Some(table) if Lakehouse::version(&table).is_some() => {
                table.update_datafusion_session(&ctx.state())?;
                ctx.register_table(name, table.table_provider().await?)?;
            }
            _ => {
                ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
            }
        }
    }
    for v in VIEWS {
        ctx.sql(&format!("CREATE VIEW {} AS {}", v.name, v.sql))
            .await
            .map_err(|e| GoldError::Model { model: v.name.into(), message: e.to_string() })?;
    }
    Ok(ctx)
}

/// Computes every gold table from the current silver state.
pub async fn compute(lake: &Location) -> Result<Vec<(&'static str, Vec<RecordBatch>)>, GoldError> {
    let ctx = session(lake).await?;
    let mut out = Vec::with_capacity(MODELS.len());
    for m in MODELS {
        let df = ctx.sql(m.sql).await.map_err(|e| GoldError::Model { model: m.name.into(), message: e.to_string() })?;
        let batches = df.collect().await.map_err(|e| GoldError::Model { model: m.name.into(), message: e.to_string() })?;
        out.push((m.name, batches));
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
    for m in MODELS {
        ctx.sql(&format!("CREATE VIEW gold.{} AS {}", m.name, m.sql))
            .await
            .map_err(|e| GoldError::Model { model: m.name.into(), message: e.to_string() })?;
    }
    // Bronze: Parquet under bronze/<dataset>/partner=../ingest_date=../
    let base = match (&lake.local_root, &lake.s3) {
        (Some(root), _) => format!("file://{}/", root.display()),
        (None, Some(s3)) => {
            let store = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&s3.bucket).build().map_err(|e| GoldError::Model {
                model: "bronze".into(),
                message: e.to_string(),
            })?;
            let url = url::Url::parse(&format!("s3://{}", s3.bucket)).expect("bucket URL");
            ctx.runtime_env().register_object_store(&url, Arc::new(store));
            if s3.prefix.is_empty() { format!("s3://{}/", s3.bucket) } else { format!("s3://{}/{}/", s3.bucket, s3.prefix) }
        }
        _ => return Ok(ctx),
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
