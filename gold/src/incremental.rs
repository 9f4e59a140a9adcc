//! Incremental publishing: which rows of each gold table a publish replaces, so that the daily
//! cost follows the day's change, not the history.
//!
//! A publish is *keyed* when the silver runs it carries continue, one after the other, from the
//! silver state the warehouse last published (each run's `versions_before` is the previous
//! one's `versions_after`, the first starts where a run the warehouse carries ended, the last
//! ends at silver's current versions). Then everything silver changed since is a row stamped
//! with one of those runs' `_run_date`, and the state before is the tables at the first run's
//! `versions_before`: each model's `[incremental]` query (`gold/models/<table>.toml`) derives
//! from them the keys whose rows may differ, and only those rows are recomputed and replaced
//! (a key without a row any more is deleted). Anything else (a re-run that rolled silver back,
//! a backfill, a maintenance commit, a first publish, `--full`) falls back to whole dates and
//! whole undated tables. Any superset of the changed keys gives the same gold, so the result
//! is always exactly a full recomputation's.
//!
//! The change views the `[incremental]` queries read (registered for the publish only):
//! - `{pending_run_dates}`: replaced by the list of the carried runs' dates (`DATE '…', …`),
//!   for filters on `_run_date` the scan can prune on;
//! - `_changed_products (partner_id, sku, category)`: the products the runs inserted, renamed
//!   or recategorised, one row per category each has now or had in any earlier version
//!   (`Unknown` included), from silver's `products_history`;
//! - `_orders_before`: the `orders` table as of the published state (Delta time travel);
//! - `_changed_orders (partner_id, order_id, customer_id, campaign_id)`: the orders the runs
//!   wrote or whose items they wrote, as they are now and as they were before;
//! - `_changed_items`: the rows of `_fulfilled_items` of the `_changed_products` (computed
//!   from their items only).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;
use ::lake::delta::Lakehouse;
use ::lake::Location;
use schemas::{silver, Dataset, SilverRecord};

use crate::models::GoldTable;
use crate::{Dates, GoldError};

/// A set of key tuples of a gold table: the rows whose `columns` equal one of `rows`.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub columns: Vec<String>,
    /// Distinct tuples, typed as the table's columns (one batch).
    pub rows: RecordBatch,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.rows.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.num_rows() == 0
    }

    /// The distinct values of the first key column (the date of a dated table) as strings.
    pub fn first_values(&self) -> BTreeSet<String> {
        let a = arrow::compute::cast(self.rows.column(0), &DataType::Utf8).expect("key columns cast to strings");
        let a = a.as_string::<i32>();
        (0..a.len()).filter(|i| a.is_valid(*i)).map(|i| a.value(i).to_string()).collect()
    }

    /// The tuples whose first value (the date of a dated table) is `first`, as a string.
    pub fn with_first(&self, first: &str) -> Result<KeySet, GoldError> {
        let a = arrow::compute::cast(self.rows.column(0), &DataType::Utf8)?;
        let keep = arrow::compute::kernels::cmp::eq(&a, &StringArray::new_scalar(first))?;
        Ok(KeySet { columns: self.columns.clone(), rows: arrow::compute::filter_record_batch(&self.rows, &keep)? })
    }

    /// A filter that every row of the tuples passes and that file statistics can prune on: per
    /// value of the first column, the range of the last one. `None` for a one-column set or
    /// columns that are not strings.
    pub fn range_filter(&self) -> Result<Option<deltalake::datafusion::logical_expr::Expr>, GoldError> {
        use deltalake::datafusion::logical_expr::{col, lit};
        let n = self.columns.len();
        if n < 2 || self.rows.columns().iter().any(|c| !matches!(c.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)) {
            return Ok(None);
        }
        let first = arrow::compute::cast(self.rows.column(0), &DataType::Utf8)?;
        let last = arrow::compute::cast(self.rows.column(n - 1), &DataType::Utf8)?;
        let (first, last) = (first.as_string::<i32>(), last.as_string::<i32>());
        let mut ranges: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for i in (0..self.rows.num_rows()).filter(|i| first.is_valid(*i) && last.is_valid(*i)) {
            let v = last.value(i);
            let r = ranges.entry(first.value(i)).or_insert((v, v));
            r.0 = r.0.min(v);
            r.1 = r.1.max(v);
        }
        let (a, b) = (self.columns[0].as_str(), self.columns[n - 1].as_str());
        Ok(Some(
            ranges
                .into_iter()
                .map(|(p, (lo, hi))| col(a).eq(lit(p)).and(col(b).between(lit(lo), lit(hi))))
                .reduce(deltalake::datafusion::logical_expr::Expr::or)
                .unwrap_or(lit(false)),
        ))
    }

    /// Whether each row of `b` (a batch of the table) has one of the tuples.
    pub fn matches(&self, t: &GoldTable, b: &RecordBatch) -> Result<BooleanArray, GoldError> {
        self.matcher(t, b.schema().as_ref())?.matches(b)
    }

    /// A matcher for batches of the table with `schema`: the tuples are encoded once (Arrow's
    /// row format, in which equal values, nulls included, have equal bytes) and each batch's
    /// rows are looked up in that set.
    pub fn matcher(&self, t: &GoldTable, schema: &Schema) -> Result<KeyMatcher, GoldError> {
        let idx: Vec<usize> = self.columns.iter().map(|c| t.columns.iter().position(|x| x.name == *c).expect("key columns are columns")).collect();
        let fields: Vec<arrow::row::SortField> = idx.iter().map(|i| arrow::row::SortField::new(schema.field(*i).data_type().clone())).collect();
        let converter = arrow::row::RowConverter::new(fields)?;
        // The tuples typed exactly as the batches' columns (row bytes depend on the type).
        let keys: Vec<ArrayRef> = idx
            .iter()
            .enumerate()
            .map(|(k, i)| arrow::compute::cast(self.rows.column(k), schema.field(*i).data_type()))
            .collect::<Result<_, _>>()?;
        let rows = converter.convert_columns(&keys)?;
        let want: HashSet<Box<[u8]>> = rows.iter().map(|r| Box::<[u8]>::from(r.as_ref())).collect();
        Ok(KeyMatcher { idx, converter, want })
    }
}

/// The rows of one table's batches that have one of a [`KeySet`]'s tuples.
pub struct KeyMatcher {
    idx: Vec<usize>,
    converter: arrow::row::RowConverter,
    want: HashSet<Box<[u8]>>,
}

impl KeyMatcher {
    pub fn matches(&self, b: &RecordBatch) -> Result<BooleanArray, GoldError> {
        let cols: Vec<ArrayRef> = self.idx.iter().map(|i| b.column(*i).clone()).collect();
        let rows = self.converter.convert_columns(&cols)?;
        Ok(rows.iter().map(|r| Some(self.want.contains(r.as_ref()))).collect())
    }
}

/// What a keyed publish replaces beyond whole dates: per table, the key tuples.
#[derive(Debug, Clone, Default)]
pub struct Groups(pub BTreeMap<String, KeySet>);

/// Whether the runs to publish (`uncarried`: those the warehouse does not carry) continue,
/// one after the other, from the state the warehouse carries (the latest `carried` run's
/// versions): the versions of that state and of the chain's end (to compare with silver's
/// current versions), or `None`.
pub fn chain<'a>(carried: &[&'a SilverRecord], uncarried: &[&'a SilverRecord]) -> Option<(&'a BTreeMap<String, i64>, &'a BTreeMap<String, i64>)> {
    // Versions only grow: the latest state has the largest sum.
    let start = &carried.iter().max_by_key(|r| r.versions_after.values().sum::<i64>())?.versions_after;
    let mut at = start;
    let mut left: Vec<&SilverRecord> = uncarried.to_vec();
    while !left.is_empty() {
        let i = left.iter().position(|r| r.versions_before == *at)?;
        at = &left.swap_remove(i).versions_after;
    }
    Some((start, at))
}

/// Whether the session read silver exactly at the chain's end: every table it read (`read`,
/// table → version) at the version the chain ends with, and no table the chain has missing.
pub fn reads_state(read: &BTreeMap<String, i64>, end: &BTreeMap<String, i64>) -> bool {
    crate::input_tables().all(|t| read.get(t) == end.get(t))
}

/// `DATE 'a', DATE 'b'` for `{pending_run_dates}` (`NULL` when there is none).
fn date_list(dates: &BTreeSet<String>) -> String {
    if dates.is_empty() {
        return "NULL".into();
    }
    dates.iter().map(|d| format!("DATE '{d}'")).collect::<Vec<_>>().join(", ")
}

/// The products `runs` inserted, renamed or recategorised, registered in `ctx` as the table
/// `name` (partner_id, sku); returns them too.
pub(crate) async fn register_changed_products(ctx: &SessionContext, runs: &[&SilverRecord], name: &str) -> Result<KeySet, GoldError> {
    let mut changed: BTreeSet<(String, String)> = runs.iter().flat_map(|r| r.renamed_or_recategorised.iter().cloned()).collect();
    let dates: BTreeSet<String> = runs.iter().map(|r| r.date.to_string()).collect();
    let sql = format!("SELECT partner_id, sku FROM product_changes WHERE change = 'inserted' AND sku IS NOT NULL AND _run_date IN ({})", date_list(&dates));
    for b in collect(ctx, "inserted products", &sql).await? {
        let p = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let s = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let (p, s) = (p.as_string::<i32>(), s.as_string::<i32>());
        changed.extend((0..b.num_rows()).map(|i| (p.value(i).to_string(), s.value(i).to_string())));
    }
    let schema = Arc::new(Schema::new(vec![Field::new("partner_id", DataType::Utf8, false), Field::new("sku", DataType::Utf8, false)]));
    let keys = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(changed.iter().map(|(p, _)| p.as_str()))),
            Arc::new(StringArray::from_iter_values(changed.iter().map(|(_, s)| s.as_str()))),
        ],
    )?;
    replace_table(ctx, name, Arc::new(MemTable::try_new(schema, vec![vec![keys.clone()]])?))?;
    Ok(KeySet { columns: vec!["partner_id".into(), "sku".into()], rows: keys })
}

/// Registers the change views for `runs` (see the module documentation); `before` is the
/// silver versions of the published state. `None` when the state before cannot be read
/// (e.g. vacuumed): the publish then falls back to whole dates and tables.
async fn register_changes(ctx: &SessionContext, lake: &Location, runs: &[&SilverRecord], before: &BTreeMap<String, i64>) -> Result<bool, GoldError> {
    let changed_products = register_changed_products(ctx, runs, "_changed_product_keys").await?;
    let lh = Lakehouse::new(lake)?;
    let history: Arc<dyn deltalake::datafusion::catalog::TableProvider> = match lh.open(silver::PRODUCTS_HISTORY).await? {
        Some(t) if Lakehouse::version(&t).is_some() => crate::engine::delta_provider(ctx, &t).await?,
        _ => Arc::new(MemTable::try_new(silver::products_history_schema(), vec![vec![]])?),
    };
    replace_table(ctx, "_products_history", history)?;
    let view = "SELECT DISTINCT c.partner_id, c.sku, COALESCE(p.category, 'Unknown') AS category FROM _changed_product_keys c \
                LEFT JOIN products p ON p.partner_id = c.partner_id AND p.sku = c.sku \
                UNION SELECT DISTINCT c.partner_id, c.sku, COALESCE(h.category, 'Unknown') AS category FROM _changed_product_keys c \
                JOIN _products_history h ON h.partner_id = c.partner_id AND h.sku = c.sku \
                UNION SELECT partner_id, sku, 'Unknown' AS category FROM _changed_product_keys";
    let rows = collect(ctx, "changed products", view).await?;
    let schema = rows.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(Schema::new(vec![
        Field::new("partner_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
    ])));
    replace_table(ctx, "_changed_products", Arc::new(MemTable::try_new(schema, vec![rows])?))?;
    // The items of those products, from a session whose `order_items` holds only theirs: the
    // shared view then joins them, not every item, with the orders.
    let items = crate::session_narrowed(ctx, &["order_items".to_string()], &changed_products).await?;
    materialize_from(&items, ctx, "_changed_items", "SELECT * FROM _fulfilled_items").await?;

    let orders = silver::current_table(Dataset::Orders);
    let before_orders: Arc<dyn deltalake::datafusion::catalog::TableProvider> = match (before.get(orders), lh.open(orders).await?) {
        (Some(v), Some(mut t)) => {
            if u64::try_from(*v).is_err() || t.load_version(*v as u64).await.is_err() {
                return Ok(false);
            }
            crate::engine::delta_provider(ctx, &t).await?
        }
        _ => Arc::new(MemTable::try_new(silver::current_schema(Dataset::Orders), vec![vec![]])?),
    };
    replace_table(ctx, "_orders_before", before_orders)?;
    let run_dates: BTreeSet<String> = runs.iter().map(|r| r.date.to_string()).collect();
    let runs = date_list(&run_dates);
    // The orders the runs wrote or whose items they wrote, then those orders now and before
    // (read by key: their files only, where statistics allow).
    let written = format!(
        "SELECT partner_id, order_id FROM orders WHERE _run_date IN ({runs}) \
         UNION SELECT partner_id, order_id FROM order_items WHERE _run_date IN ({runs})"
    );
    let written = collect(ctx, "changed orders", &written).await?;
    let key_schema = Arc::new(Schema::new(vec![Field::new("partner_id", DataType::Utf8, false), Field::new("order_id", DataType::Utf8, false)]));
    let mut parts = Vec::with_capacity(written.len());
    for b in &written {
        let cols: Vec<ArrayRef> = b.columns().iter().map(|c| arrow::compute::cast(c, &DataType::Utf8)).collect::<Result<_, _>>()?;
        parts.push(RecordBatch::try_new(key_schema.clone(), cols)?);
    }
    let keys = KeySet { columns: vec!["partner_id".into(), "order_id".into()], rows: arrow::compute::concat_batches(&key_schema, &parts)? };
    for (table, name) in [("orders", "_changed_orders_now"), ("_orders_before", "_changed_orders_before")] {
        let (schema, rows) = crate::narrow_rows(ctx, table, &keys).await?;
        replace_table(ctx, name, Arc::new(MemTable::try_new(schema, vec![rows])?))?;
    }
    let changed = "SELECT partner_id, order_id, customer_id, campaign_id FROM _changed_orders_now \
                   UNION SELECT partner_id, order_id, customer_id, campaign_id FROM _changed_orders_before";
    materialize(ctx, "_changed_orders", changed).await?;
    Ok(true)
}

/// Registers the result of `sql` as the in-memory table `name` (computed once, read by several
/// `[incremental]` queries).
async fn materialize(ctx: &SessionContext, name: &str, sql: &str) -> Result<(), GoldError> {
    materialize_from(ctx, ctx, name, sql).await
}

/// [`materialize`] with `sql` run in `from` and the table registered in `ctx`.
async fn materialize_from(from: &SessionContext, ctx: &SessionContext, name: &str, sql: &str) -> Result<(), GoldError> {
    let df = from.sql(sql).await.map_err(GoldError::query(name))?;
    let schema: Arc<Schema> = Arc::new(df.schema().as_arrow().clone());
    let rows = df.collect().await.map_err(GoldError::query(name))?;
    replace_table(ctx, name, Arc::new(MemTable::try_new(schema, vec![rows])?))
}

fn replace_table(ctx: &SessionContext, name: &str, t: Arc<dyn deltalake::datafusion::catalog::TableProvider>) -> Result<(), GoldError> {
    let _ = ctx.deregister_table(name);
    ctx.register_table(name, t)?;
    Ok(())
}

async fn collect(ctx: &SessionContext, what: &str, sql: &str) -> Result<Vec<RecordBatch>, GoldError> {
    let map = GoldError::query;
    ctx.sql(sql).await.map_err(map(what))?.collect().await.map_err(map(what))
}

/// The key tuples each table with an `[incremental]` block replaces for `runs` (the carried
/// runs and the date asked for), with the state before at `before`; on a dated table, tuples
/// of a date it replaces whole are left out. `None`: fall back to whole dates and tables.
pub async fn groups(
    ctx: &SessionContext,
    lake: &Location,
    runs: &[&SilverRecord],
    before: &BTreeMap<String, i64>,
    whole: &crate::Scope,
) -> Result<Option<Groups>, GoldError> {
    if !register_changes(ctx, lake, runs, before).await? {
        return Ok(None);
    }
    let dates: BTreeSet<String> = runs.iter().map(|r| r.date.to_string()).collect();
    let mut out = BTreeMap::new();
    for m in crate::models() {
        let t = &m.table;
        let Some(inc) = &t.incremental else { continue };
        let sql = inc.touched.replace("{pending_run_dates}", &date_list(&dates));
        let cols = inc.key.iter().map(|k| format!("k.{k}")).collect::<Vec<_>>().join(", ");
        let mut filter = String::new();
        if let Some(d) = &t.date_column {
            if let Dates::Only(s) = whole.dates_of(d) {
                if !s.is_empty() {
                    filter = format!(" WHERE k.{} NOT IN ({})", inc.key[0], date_list(s));
                }
            }
        }
        let sql = format!("SELECT DISTINCT {cols} FROM ({sql}) AS k{filter} ORDER BY {cols}");
        let batches = collect(ctx, &format!("{} [incremental] touched", t.name), &sql).await.map_err(|e| match e {
            GoldError::Query { source, .. } => GoldError::Model { model: t.name.clone(), message: format!("[incremental] touched: {source}") },
            e => e,
        })?;
        let schema = Arc::new(Schema::new(
            inc.key.iter().map(|k| Field::new(k, crate::arrow_type(t.column(k).expect("validated").ty), false)).collect::<Vec<_>>(),
        ));
        let mut cast = Vec::new();
        for b in &batches {
            let cols: Vec<ArrayRef> = b.columns().iter().zip(schema.fields()).map(|(c, f)| arrow::compute::cast(c, f.data_type())).collect::<Result<_, _>>()?;
            if cols.iter().any(|c| c.null_count() > 0) {
                return Err(GoldError::Model { model: t.name.clone(), message: "[incremental] touched returns NULL keys".into() });
            }
            cast.push(RecordBatch::try_new(schema.clone(), cols)?);
        }
        let rows = arrow::compute::concat_batches(&schema, &cast)?;
        tracing::debug!("gold [incremental] {}: {} keys", t.name, rows.num_rows());
        out.insert(t.name.clone(), KeySet { columns: inc.key.clone(), rows });
    }
    Ok(Some(Groups(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(date: &str, before: &[(&str, i64)], after: &[(&str, i64)]) -> SilverRecord {
        let mut r = SilverRecord::new(date.parse().unwrap());
        r.versions_before = before.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        r.versions_after = after.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        r
    }

    /// Keyed only when the uncarried runs continue the published state one after the other.
    #[test]
    fn chain_follows_versions_from_the_published_state() {
        let a = run("2026-11-18", &[], &[("orders", 1)]);
        let b = run("2026-11-19", &[("orders", 1)], &[("orders", 2)]);
        let c = run("2026-11-20", &[("orders", 2)], &[("orders", 3)]);
        let (start, end) = chain(&[&a], &[&c, &b]).unwrap();
        assert_eq!((start["orders"], end["orders"]), (1, 3));
        // Nothing new: the chain is the published state itself.
        assert_eq!(chain(&[&a, &b], &[]).map(|(s, e)| (s["orders"], e["orders"])), Some((2, 2)));
        // A gap (e.g. a rollback's restore commit between b and c), or no published state.
        let c2 = run("2026-11-20", &[("orders", 4)], &[("orders", 5)]);
        assert!(chain(&[&a, &b], &[&c2]).is_none());
        assert!(chain(&[], &[&a]).is_none());
    }

    #[test]
    fn key_sets_match_rows_by_tuple() {
        let t = crate::models::table("category_kpis").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("order_date", DataType::Date32, false), Field::new("category", DataType::Utf8, false)]));
        let keys = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::Date32Array::from(vec![20_411, 20_412])), Arc::new(StringArray::from(vec!["Home", "Garden"]))],
        )
        .unwrap();
        let k = KeySet { columns: vec!["order_date".into(), "category".into()], rows: keys };
        assert_eq!(k.first_values().into_iter().collect::<Vec<_>>(), ["2025-11-19", "2025-11-20"]);
        let one = k.with_first("2025-11-20").unwrap();
        assert_eq!((one.len(), one.rows.column(1).as_string::<i32>().value(0)), (1, "Garden"));
        assert!(k.with_first("2025-11-21").unwrap().is_empty());
        let out = crate::gold_schema(t);
        let cols: Vec<ArrayRef> = out
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "order_date" => Arc::new(arrow::array::Date32Array::from(vec![20_411, 20_411, 20_412])) as ArrayRef,
                "category" => Arc::new(StringArray::from(vec!["Home", "Garden", "Garden"])) as ArrayRef,
                _ => arrow::array::new_null_array(f.data_type(), 3),
            })
            .collect();
        let b = RecordBatch::try_new(Arc::new(Schema::new(out.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>())), cols).unwrap();
        assert_eq!(k.matches(t, &b).unwrap(), BooleanArray::from(vec![true, false, true]));
    }
}
