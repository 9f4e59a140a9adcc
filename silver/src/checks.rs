//! After a run's upserts: the business dates it touched (for gold), orphan items and
//! `total_mismatch`, computed from the run's rows and the stored keys they meet, so the cost
//! follows the run, not the history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deltalake::datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use polars::prelude::*;

use crate::bridge::{arrow_to_polars, polars_to_arrow};
use crate::delta::Lakehouse;
use crate::tables::{self, PARTNER, RUN_DATE};
use crate::SilverError;
use crate::dedup::*;

/// A DataFusion session with the given silver tables registered under their names, and the
/// given frames registered as in-memory tables. None when a silver table does not exist yet.
pub(crate) async fn session(lh: &Lakehouse, names: &[&str], frames: Vec<(&str, DataFrame, arrow::datatypes::SchemaRef)>) -> Result<Option<SessionContext>, SilverError> {
    let ctx = SessionContext::new();
    for name in names {
        let Some(table) = lh.open(name).await? else { return Ok(None) };
        register(&ctx, name, &table).await?;
    }
    for (name, mut df, schema) in frames {
        let batches = polars_to_arrow(&mut df, &schema)?;
        let mem = deltalake::datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        ctx.register_table(name, Arc::new(mem))?;
    }
    Ok(Some(ctx))
}

pub(crate) async fn register(ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<(), SilverError> {
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    ctx.register_table(name, provider)?;
    Ok(())
}

pub(crate) async fn query(ctx: &SessionContext, sql: &str) -> Result<DataFrame, SilverError> {
    let df = ctx.sql(sql).await?;
    let schema: arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(arrow_to_polars(&batches, &schema)?)
}

pub(crate) fn day_column(df: &DataFrame, name: &str) -> Result<Vec<i32>, SilverError> {
    let c = df.column(name)?.cast(&DataType::Int32)?;
    Ok(c.i32()?.iter().flatten().collect())
}

/// Business dates of the orders of this run: their new dates and, for orders already known,
/// their stored dates (an order may move between dates).
pub(crate) async fn order_days_touched(lh: &Lakehouse, kept: &DataFrame) -> Result<Vec<i32>, SilverError> {
    let mut out = day_column(&kept.clone().lazy().select([col("order_date").cast(DataType::Date).alias("d")]).collect()?, "d")?;
    let keys = kept.select([PARTNER, "order_id"])?;
    let schema = order_key_schema();
    if let Some(ctx) = session(lh, &["orders"], vec![("run", keys, schema)]).await? {
        let old = query(&ctx, "SELECT CAST(o.order_date AS DATE) AS d FROM orders o JOIN run r ON o.partner_id = r.partner_id AND o.order_id = r.order_id").await?;
        out.extend(day_column(&old, "d")?);
    }
    Ok(out)
}

/// Business dates of the orders whose items this run changes (orders stored before this run
/// or arriving in it; the latter are covered by `order_days_touched`).
pub(crate) async fn item_days_touched(lh: &Lakehouse, kept: &DataFrame) -> Result<Vec<i32>, SilverError> {
    let keys = kept.clone().lazy().select([col(PARTNER), col("order_id")]).unique(None, UniqueKeepStrategy::First).collect()?;
    let schema = order_key_schema();
    match session(lh, &["orders"], vec![("run", keys, schema)]).await? {
        Some(ctx) => {
            let d = query(&ctx, "SELECT CAST(o.order_date AS DATE) AS d FROM orders o JOIN run r ON o.partner_id = r.partner_id AND o.order_id = r.order_id").await?;
            day_column(&d, "d")
        }
        None => Ok(Vec::new()),
    }
}

/// Orphan items per partner (items whose order is unknown after the run) and
/// `total_mismatch` warnings for the orders upserted in this run.
///
/// Both are computed incrementally so that memory does not grow with history: the orphan
/// candidates are the run's items plus the stored orphans of the run's partners
/// (`silver/orphan_items`), checked against the orders table as the probe side of the join;
/// the mismatch check joins the run's orders (small) with their items.
pub(crate) async fn post_run_checks(
    lh: &Lakehouse,
    partners: &BTreeSet<String>,
    run_orders: Option<DataFrame>,
    run_items: Option<DataFrame>,
    run_day: i32,
) -> Result<(BTreeMap<String, u64>, u64), SilverError> {
    let mut orphans = BTreeMap::new();
    let mut mismatch = 0;
    if partners.is_empty() {
        return Ok((orphans, mismatch));
    }
    let list = partners.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
    let key_schema = orphan_key_schema();
    let orphan_table = lh.open_or_create(tables::ORPHAN_ITEMS, tables::orphan_items_schema(), &[PARTNER]).await?;
    let stored = lh.scan(&orphan_table, Some(&format!("{PARTNER} IN ({list})"))).await?;
    let mut candidates = if stored.is_empty() {
        None
    } else {
        Some(arrow_to_polars(&stored, &tables::orphan_items_schema())?.select([PARTNER, "order_id", "line_number"])?)
    };
    if let Some(items) = run_items {
        candidates = Some(match candidates {
            Some(c) => concat_frames(vec![c, items])?.unique_stable(None, UniqueKeepStrategy::First, None)?,
            None => items,
        });
    }
    let mut frames = Vec::new();
    if let Some(c) = candidates {
        frames.push(("candidates", c, key_schema));
    }
    if let Some(o) = run_orders {
        frames.push(("run_orders", o, run_orders_schema()));
    }
    let has_candidates = frames.iter().any(|(n, _, _)| *n == "candidates");
    let has_run_orders = frames.iter().any(|(n, _, _)| *n == "run_orders");
    let Some(ctx) = session(lh, &["orders", "order_items"], frames).await? else { return Ok((orphans, mismatch)) };
    let still = if has_candidates {
        query(
            &ctx,
            "SELECT c.partner_id, c.order_id, c.line_number FROM candidates c \
             WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.partner_id = c.partner_id AND o.order_id = c.order_id)",
        )
        .await?
    } else {
        DataFrame::empty_with_schema(&Schema::from_iter([
            Field::new(PARTNER.into(), DataType::String),
            Field::new("order_id".into(), DataType::String),
            Field::new("line_number".into(), DataType::Int64),
        ]))
    };
    for p in still.column(PARTNER)?.str()?.iter().flatten() {
        *orphans.entry(p.to_string()).or_default() += 1;
    }
    let mut still = still.lazy().with_column(lit(run_day).cast(DataType::Date).alias(RUN_DATE)).collect()?;
    let batches = polars_to_arrow(&mut still, &tables::orphan_items_schema())?;
    lh.replace_where(orphan_table, batches, &format!("{PARTNER} IN ({list})")).await?;

    if has_run_orders {
        let m = query(
            &ctx,
            "SELECT COUNT(*) AS n FROM (\
               SELECT r.partner_id, r.order_id, r.total_amount, \
                      COALESCE(SUM(CAST(i.quantity AS DECIMAL(38,4)) * i.unit_price * (1 - i.discount)), 0) AS items \
               FROM run_orders r LEFT JOIN order_items i ON r.partner_id = i.partner_id AND r.order_id = i.order_id \
               WHERE r.total_amount IS NOT NULL GROUP BY r.partner_id, r.order_id, r.total_amount) t \
             WHERE ABS(t.items - t.total_amount) > 0.01",
        )
        .await?;
        mismatch = m.column("n")?.cast(&DataType::Int64)?.i64()?.get(0).unwrap_or(0) as u64;
    }
    Ok((orphans, mismatch))
}

/// (partner_id, order_id): the key of an order.
pub(crate) fn order_key_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![F::new(PARTNER, A::Utf8, false), F::new("order_id", A::Utf8, false)]))
}

pub(crate) fn orphan_key_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![F::new(PARTNER, A::Utf8, false), F::new("order_id", A::Utf8, false), F::new("line_number", A::Int64, false)]))
}

pub(crate) fn run_orders_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![
        F::new(PARTNER, A::Utf8, false),
        F::new("order_id", A::Utf8, false),
        F::new("total_amount", A::Decimal128(18, 4), true),
    ]))
}
