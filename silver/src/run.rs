//! One silver run: every landed feed of a run date is cleaned, deduplicated and upserted, the
//! products are diffed, and the run is recorded with its per-feed reconciliation.
//!
//! Crash safety: before its first write a run records the version of every silver table in
//! `silver/_runs/{date}.json` (status `running`). A run that finds such a record left by a
//! crashed run restores every table to those versions (Delta time travel) before it starts,
//! so a re-run repairs the lake. The record is marked `completed` only after the last commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use polars::prelude::*;
use lake::registry::{FeedRecord, FeedStatus, Registry};
use lake::Location;
use schemas::{paths, ChangeKind, Dataset, FeedStats, ProductDiff, RunDate, RunStatus, SilverRecord};
use serde::Serialize;

use crate::bridge::{arrow_to_polars, parquet_to_polars, polars_to_arrow};
use crate::clean::{clean_feed, Cleaned, REASON};
use crate::delta::Lakehouse;
use crate::tables::{self, PARTNER, RUN_DATE};
use crate::SilverError;

/// The record of a silver run (`silver/_runs/D.json`): the one type gold reads too.
pub type SilverReport = SilverRecord;

fn run_record_path(lake: &Location, date: RunDate) -> Path {
    lake.path(&paths::silver_run(date))
}

fn all_tables() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Dataset::ALL.iter().map(|d| tables::current_table(*d)).collect();
    v.extend([tables::PRODUCTS_HISTORY, tables::PRODUCT_CHANGES, tables::QUARANTINE, tables::FEED_RECONCILIATION, tables::ORPHAN_ITEMS]);
    v
}

fn date_string(days_since_epoch: i32) -> String {
    RunDate::from_days(days_since_epoch).map(|d| d.to_string()).unwrap_or_default()
}

/// Runs silver for `date`. Returns the report; fails (writing nothing more) if any feed's
/// reconciliation does not balance.
pub async fn run_silver(lake: &Location, date: RunDate) -> Result<SilverReport, SilverError> {
    let lh = Lakehouse::new(lake)?;
    let mut report = SilverRecord::new(date);
    report.recovered = recover_crashed_runs(lake, &lh).await?;

    let registry = Registry::new(lake);
    let mut feeds: Vec<FeedRecord> = registry.feeds_for_date(date).await?;
    feeds.sort_by(|a, b| (&a.partner, a.dataset, &a.file_name, &a.feed_id).cmp(&(&b.partner, b.dataset, &b.file_name, &b.feed_id)));
    if feeds.is_empty() {
        return Err(SilverError::NothingToDo(date.to_string()));
    }
    let unfinished: Vec<&FeedRecord> = feeds.iter().filter(|f| f.status == FeedStatus::Landing).collect();
    if let Some(f) = unfinished.first() {
        return Err(SilverError::Input(format!(
            "feed {} ({}) is still being landed; run bronze for {date} again first",
            f.feed_id, f.source
        )));
    }

    // Re-running the latest run date: undo that run first (nothing has been written since, as
    // every table is still at the version it left), so the re-run replays it exactly: the same
    // products diff, history and touched dates, not an "all unchanged" run on top of itself.
    let mut versions = current_versions(&lh).await?;
    if let Some(prev) = read_record(lake, date).await? {
        if prev.status == RunStatus::Completed && versions == prev.versions_after {
            let undone = rollback(&lh, &prev.versions_before).await?;
            if !undone.is_empty() {
                tracing::info!("re-running {date}: its previous run was undone first ({} tables)", undone.len());
                versions = current_versions(&lh).await?;
            }
        } else if prev.status == RunStatus::Completed {
            tracing::warn!("re-running {date} on top of later runs: the products diff compares with the current state; `medallion backfill --from {date}` replays history exactly");
        }
    }

    // The versions before the first write.
    report.versions_before = versions;
    save_record(lake, &report).await?;

    match write_run(lake, &lh, date, &feeds, &mut report).await {
        Ok(()) => Ok(report),
        Err(e) => {
            // Undo this run's commits so the lake stays as it was; if that fails too, the
            // record stays `running` and the next run restores the tables.
            match rollback(&lh, &report.versions_before).await {
                Ok(undone) => {
                    report.status = RunStatus::Failed;
                    report.recovered = undone;
                    report.error = Some(e.to_string());
                    let _ = save_record(lake, &report).await;
                }
                Err(re) => tracing::error!("could not undo the failed run of {date}: {re}; the next run will"),
            }
            Err(e)
        }
    }
}

async fn write_run(lake: &Location, lh: &Lakehouse, date: RunDate, feeds: &[FeedRecord], report: &mut SilverReport) -> Result<(), SilverError> {
    let run_day = date.days_since_epoch();
    let mut quarantine: Vec<RecordBatch> = Vec::new();
    let mut stats: Vec<FeedStats> = Vec::new();
    let mut business_days: BTreeSet<i32> = BTreeSet::new();
    let mut run_orders: Option<DataFrame> = None;
    let mut run_items: Option<DataFrame> = None;

    let has_products_feed: BTreeSet<String> =
        feeds.iter().filter(|f| f.dataset == Dataset::Products && f.status == FeedStatus::Landed).map(|f| f.partner.clone()).collect();
    for dataset in Dataset::ALL {
        let ds_feeds: Vec<&FeedRecord> = feeds.iter().filter(|f| f.dataset == dataset && f.status == FeedStatus::Landed).collect();
        if ds_feeds.is_empty() {
            continue;
        }
        // Clean every feed of the dataset (all partners), in landing order.
        let mut frames: Vec<DataFrame> = Vec::new();
        for feed in &ds_feeds {
            let path = Path::from(feed.bronze_path.clone().expect("landed feeds have a bronze path").as_str());
            let bytes = lake.store.get(&path).await.map_err(|e| SilverError::store(lake, &path, e))?.bytes().await.map_err(|e| SilverError::store(lake, &path, e))?;
            let df = parquet_to_polars(bytes).map_err(|e| SilverError::feed(feed, e))?;
            let Cleaned { valid, rejected, warnings } = clean_feed(dataset, df).map_err(|e| SilverError::feed(feed, e))?;
            let mut st = FeedStats {
                feed_id: feed.feed_id.clone(),
                partner: feed.partner.clone(),
                dataset: dataset.name().into(),
                file_name: feed.file_name.clone(),
                rows_read: feed.rows,
                rejected: rejected.height() as u64,
                warnings,
                ..Default::default()
            };
            for r in rejected.column(REASON)?.str()?.iter().flatten() {
                *st.reasons.entry(r.to_string()).or_default() += 1;
            }
            stats.push(st);
            quarantine.extend(quarantine_batches(rejected, feed, run_day)?);
            let valid = valid
                .lazy()
                .with_columns([lit(feed.partner.clone()).alias(PARTNER), lit(run_day).cast(DataType::Date).alias(RUN_DATE)])
                .collect()?;
            frames.push(valid);
        }
        let all = concat_frames(frames)?;
        let (kept, kept_counts, dup_counts) = deduplicate(dataset, all)?;
        for st in stats.iter_mut().filter(|s| s.dataset == dataset.name()) {
            st.duplicate = dup_counts.get(&st.feed_id).copied().unwrap_or(0);
            st.valid = kept_counts.get(&st.feed_id).copied().unwrap_or(0);
            // Every raw row (as counted by bronze) must be accounted for, before anything of
            // this dataset is written.
            if !st.balances() {
                return Err(SilverError::Reconciliation(format!(
                    "feed {} ({}/{}): read {} != valid {} + rejected {} + duplicate {}",
                    st.feed_id, st.partner, st.file_name, st.rows_read, st.valid, st.rejected, st.duplicate
                )));
            }
        }
        match dataset {
            Dataset::Products => {
                let diffs = upsert_products(lh, kept, run_day, &stats, &has_products_feed, report).await?;
                report.product_changes = diffs;
            }
            Dataset::Inventory => {
                replace_inventory(&lh, kept, run_day).await?;
            }
            Dataset::Orders => {
                business_days.extend(order_days_touched(lh, &kept).await?);
                run_orders = Some(kept.select([PARTNER, "order_id", "total_amount"])?);
                upsert_current(lh, dataset, kept).await?;
            }
            Dataset::OrderItems => {
                business_days.extend(item_days_touched(lh, &kept).await?);
                run_items = Some(kept.select([PARTNER, "order_id", "line_number"])?);
                upsert_current(lh, dataset, kept).await?;
            }
            _ => upsert_current(&lh, dataset, kept).await?,
        }
        lake::fault::point("silver.dataset", dataset as usize).await;
    }

    // Quarantine and reconciliation of this run date replace any earlier run of the date.
    let pred = format!("{RUN_DATE} = '{date}'");
    let q = lh.open_or_create(tables::QUARANTINE, tables::quarantine_schema(), &[RUN_DATE]).await?;
    lh.replace_where(q, quarantine, &pred).await?;
    let rec = lh.open_or_create(tables::FEED_RECONCILIATION, tables::reconciliation_schema(), &[RUN_DATE]).await?;
    lh.replace_where(rec, reconciliation_batches(&stats, run_day)?, &pred).await?;

    let partners: BTreeSet<String> = feeds.iter().filter(|f| f.status == FeedStatus::Landed).map(|f| f.partner.clone()).collect();
    let (orphans, mismatch) = post_run_checks(lh, &partners, run_orders, run_items, run_day).await?;
    report.orphan_items = orphans;
    report.total_mismatch = mismatch;
    report.business_dates = business_days.into_iter().map(date_string).collect();
    report.feeds = stats;
    report.versions_after = current_versions(lh).await?;
    report.status = RunStatus::Completed;
    save_record(lake, report).await?;
    Ok(())
}

/// For a backfill from `date`: puts every silver table back to its state before `date`, that
/// is after the last completed run of an earlier date (empty when there is none), with Delta
/// time travel (`restore` commits the old state as a new version). The records of runs of
/// `date` and later are marked `superseded`. Returns what was restored and the dates of the
/// superseded runs (a clean sequential history must run them again).
pub async fn restore_before(lake: &Location, date: RunDate) -> Result<(Vec<String>, Vec<String>), SilverError> {
    let lh = Lakehouse::new(lake)?;
    recover_crashed_runs(lake, &lh).await?;
    let dates = record_dates(lake).await?;
    let mut base: Option<SilverReport> = None;
    let mut later = Vec::new();
    for &d in &dates {
        let Some(rec) = read_record(lake, d).await? else { continue };
        if d < date {
            if rec.status == RunStatus::Completed {
                base = Some(rec);
            }
        } else if matches!(rec.status, RunStatus::Completed | RunStatus::Superseded) {
            later.push(d);
        }
    }
    let versions = base.map(|b| b.versions_after).unwrap_or_default();
    let undone = rollback(&lh, &versions).await.map_err(|e| match e {
        SilverError::Delta(d) => SilverError::Input(format!(
            "cannot restore silver to its state before {date}: {d} (files older than the vacuum retention are gone; `medallion maintain --retention-hours` keeps more history)"
        )),
        other => other,
    })?;
    for &d in &later {
        if let Some(mut rec) = read_record(lake, d).await? {
            rec.status = RunStatus::Superseded;
            save_record(lake, &rec).await?;
        }
    }
    Ok((undone, later.iter().map(RunDate::to_string).collect()))
}

/// The dates of every silver run record, in order (names that are not dates are skipped).
async fn record_dates(lake: &Location) -> Result<Vec<RunDate>, SilverError> {
    use futures::TryStreamExt;
    let prefix = lake.path(&paths::silver_runs());
    let metas: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| SilverError::store(lake, &prefix, e))?;
    let mut dates: Vec<RunDate> =
        metas.iter().filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok()).collect();
    dates.sort();
    Ok(dates)
}

/// Every existing silver table's current version.
async fn current_versions(lh: &Lakehouse) -> Result<BTreeMap<String, i64>, SilverError> {
    let mut out = BTreeMap::new();
    for t in all_tables() {
        if let Some(table) = lh.open(t).await? {
            if let Some(v) = Lakehouse::version(&table) {
                out.insert(t.to_string(), v);
            }
        }
    }
    Ok(out)
}

/// Restores every table to its version in `before`; tables absent from it are emptied.
async fn rollback(lh: &Lakehouse, before: &BTreeMap<String, i64>) -> Result<Vec<String>, SilverError> {
    let mut undone = Vec::new();
    for t in all_tables() {
        let Some(table) = lh.open(t).await? else { continue };
        let Some(now) = Lakehouse::version(&table) else { continue };
        match before.get(t) {
            Some(&v) if now > v => {
                lh.restore(table, v).await?;
                undone.push(format!("{t}: version {now} -> {v}"));
            }
            None if now > 0 => {
                lh.restore(table, 0).await?;
                undone.push(format!("{t}: emptied"));
            }
            _ => {}
        }
    }
    Ok(undone)
}

async fn save_record(lake: &Location, report: &SilverReport) -> Result<(), SilverError> {
    let path = run_record_path(lake, report.date);
    let body = serde_json::to_vec_pretty(report).expect("report serialises");
    lake.store.put(&path, PutPayload::from(body)).await.map_err(|e| SilverError::store(lake, &path, e))?;
    Ok(())
}

/// Reads a run's record, if any.
pub async fn read_record(lake: &Location, date: RunDate) -> Result<Option<SilverReport>, SilverError> {
    let path = run_record_path(lake, date);
    match lake.store.get(&path).await {
        Ok(r) => {
            let b = r.bytes().await.map_err(|e| SilverError::store(lake, &path, e))?;
            Ok(Some(serde_json::from_slice(&b).map_err(|source| SilverError::Record { path: lake.describe(&path), source })?))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(SilverError::store(lake, &path, e)),
    }
}

/// Undoes the writes of runs that crashed (status `running`): every table goes back to the
/// version recorded before that run's first write. Returns what was restored.
async fn recover_crashed_runs(lake: &Location, lh: &Lakehouse) -> Result<Vec<String>, SilverError> {
    let mut restored = Vec::new();
    for date in record_dates(lake).await? {
        let Some(rec) = read_record(lake, date).await? else { continue };
        if rec.status != RunStatus::Running {
            continue;
        }
        let undone = rollback(lh, &rec.versions_before).await?;
        restored.extend(undone.into_iter().map(|u| format!("{u} (run {date} was interrupted)")));
        let mut rec = rec;
        rec.status = RunStatus::Abandoned;
        save_record(lake, &rec).await?;
    }
    Ok(restored)
}

fn concat_frames(frames: Vec<DataFrame>) -> Result<DataFrame, SilverError> {
    let lfs: Vec<LazyFrame> = frames.into_iter().map(|f| f.lazy()).collect();
    Ok(concat(lfs, UnionArgs::default())?.collect()?)
}

/// Keeps the newest row per (partner, key) — later feed in landing order, then later row —
/// and counts the others as duplicates of the feed they came from. Inventory keeps only the
/// day's last file per partner (the earlier files' rows are duplicates).
/// Counts rows per feed id.
fn count_by_feed(df: &DataFrame) -> Result<BTreeMap<String, u64>, SilverError> {
    let mut counts = BTreeMap::new();
    for f in df.column("_feed_id")?.str()?.iter().flatten() {
        *counts.entry(f.to_string()).or_default() += 1;
    }
    Ok(counts)
}

/// Returns the kept rows, and per feed the rows kept and the rows superseded (duplicates).
#[allow(clippy::type_complexity)]
fn deduplicate(dataset: Dataset, df: DataFrame) -> Result<(DataFrame, BTreeMap<String, u64>, BTreeMap<String, u64>), SilverError> {
    let mut keys: Vec<Expr> = vec![col(PARTNER)];
    keys.extend(dataset.key().iter().map(|k| col(*k)));
    let lf = df
        .lazy()
        .sort_by_exprs([col(PARTNER), col("_source_file"), col("_row_number")], SortMultipleOptions::default())
        .with_row_index("_ord", None);
    let lf = if dataset == Dataset::Inventory {
        lf.with_column(col("_source_file").max().over([col(PARTNER)])?.alias("_last_file"))
            .with_column(col("_source_file").eq(col("_last_file")).alias("_in_last"))
            .with_column(
                when(col("_in_last"))
                    .then(col("_ord").max().over(keys.clone())?.eq(col("_ord")))
                    .otherwise(lit(false))
                    .alias("_keep"),
            )
    } else {
        lf.with_column(col("_ord").max().over(keys)?.eq(col("_ord")).alias("_keep"))
    };
    let all = lf.collect()?;
    let keep = all.column("_keep")?.bool()?.clone();
    let dups = count_by_feed(&all.filter(&!&keep)?)?;
    let kept = all.filter(&keep)?.drop_many(["_ord", "_keep", "_last_file", "_in_last"]);
    let kept_counts = count_by_feed(&kept)?;
    Ok((kept, kept_counts, dups))
}

fn quarantine_batches(rejected: DataFrame, feed: &FeedRecord, run_day: i32) -> Result<Vec<RecordBatch>, SilverError> {
    let mut df = rejected
        .lazy()
        .with_columns([
            lit(run_day).cast(DataType::Date).alias(RUN_DATE),
            lit(feed.partner.clone()).alias(PARTNER),
            lit(feed.dataset.name()).alias("dataset"),
            col(REASON).alias("reason"),
            col("_raw").alias("raw"),
        ])
        .collect()?;
    Ok(polars_to_arrow(&mut df, &tables::quarantine_schema())?)
}

fn reconciliation_batches(stats: &[FeedStats], run_day: i32) -> Result<Vec<RecordBatch>, SilverError> {
    if stats.is_empty() {
        return Ok(Vec::new());
    }
    let n = stats.len();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new(RUN_DATE.into(), vec![run_day; n]).cast(&DataType::Date)?,
        Column::new(PARTNER.into(), stats.iter().map(|s| s.partner.as_str()).collect::<Vec<_>>()),
        Column::new("dataset".into(), stats.iter().map(|s| s.dataset.as_str()).collect::<Vec<_>>()),
        Column::new("_feed_id".into(), stats.iter().map(|s| s.feed_id.as_str()).collect::<Vec<_>>()),
        Column::new("file_name".into(), stats.iter().map(|s| s.file_name.as_str()).collect::<Vec<_>>()),
        Column::new("rows_read".into(), stats.iter().map(|s| s.rows_read as i64).collect::<Vec<_>>()),
        Column::new("valid".into(), stats.iter().map(|s| s.valid as i64).collect::<Vec<_>>()),
        Column::new("rejected".into(), stats.iter().map(|s| s.rejected as i64).collect::<Vec<_>>()),
        Column::new("duplicate".into(), stats.iter().map(|s| s.duplicate as i64).collect::<Vec<_>>()),
        Column::new("warnings".into(), stats.iter().map(|s| s.warnings.values().sum::<u64>() as i64).collect::<Vec<_>>()),
    ])?;
    Ok(polars_to_arrow(&mut df, &tables::reconciliation_schema())?)
}

/// The update guard of every upsert: a row replaces the stored one only if it is at least as
/// new (run date, then landing order of its feed, then row order).
const NEWER: &str = "(source._run_date > target._run_date) OR (source._run_date = target._run_date AND (source._source_file > target._source_file OR (source._source_file = target._source_file AND source._row_number >= target._row_number)))";

async fn upsert_current(lh: &Lakehouse, dataset: Dataset, mut kept: DataFrame) -> Result<(), SilverError> {
    let schema = tables::current_schema(dataset);
    let batches = polars_to_arrow(&mut kept, &schema)?;
    let table = lh.open_or_create(tables::current_table(dataset), schema, tables::current_partitions(dataset)).await?;
    if batches.is_empty() {
        return Ok(());
    }
    let mut keys = vec![PARTNER];
    keys.extend(dataset.key());
    lh.upsert(table, batches, &keys, PARTNER, Some(NEWER)).await?;
    Ok(())
}

async fn replace_inventory(lh: &Lakehouse, kept: DataFrame, run_day: i32) -> Result<(), SilverError> {
    let partners: Vec<String> = kept.column(PARTNER)?.str()?.unique()?.iter().flatten().map(str::to_string).collect();
    let mut df = kept.lazy().with_column(lit(run_day).cast(DataType::Date).alias("snapshot_date")).collect()?;
    let schema = tables::current_schema(Dataset::Inventory);
    let batches = polars_to_arrow(&mut df, &schema)?;
    let table = lh.open_or_create(tables::current_table(Dataset::Inventory), schema, tables::current_partitions(Dataset::Inventory)).await?;
    if partners.is_empty() {
        return Ok(());
    }
    let list = partners.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
    lh.replace_where(table, batches, &format!("snapshot_date = '{}' AND {PARTNER} IN ({list})", date_string(run_day))).await?;
    Ok(())
}

/// A DataFusion session with the given silver tables registered under their names, and the
/// given frames registered as in-memory tables. None when a silver table does not exist yet.
async fn session(lh: &Lakehouse, names: &[&str], frames: Vec<(&str, DataFrame, arrow::datatypes::SchemaRef)>) -> Result<Option<SessionContext>, SilverError> {
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

async fn register(ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<(), SilverError> {
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    ctx.register_table(name, provider)?;
    Ok(())
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<DataFrame, SilverError> {
    let df = ctx.sql(sql).await?;
    let schema: arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(arrow_to_polars(&batches, &schema)?)
}

fn day_column(df: &DataFrame, name: &str) -> Result<Vec<i32>, SilverError> {
    let c = df.column(name)?.cast(&DataType::Int32)?;
    Ok(c.i32()?.iter().flatten().collect())
}

/// Business dates of the orders of this run: their new dates and, for orders already known,
/// their stored dates (an order may move between dates).
async fn order_days_touched(lh: &Lakehouse, kept: &DataFrame) -> Result<Vec<i32>, SilverError> {
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
async fn item_days_touched(lh: &Lakehouse, kept: &DataFrame) -> Result<Vec<i32>, SilverError> {
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
async fn post_run_checks(
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
fn order_key_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![F::new(PARTNER, A::Utf8, false), F::new("order_id", A::Utf8, false)]))
}

fn orphan_key_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![F::new(PARTNER, A::Utf8, false), F::new("order_id", A::Utf8, false), F::new("line_number", A::Int64, false)]))
}

fn run_orders_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![
        F::new(PARTNER, A::Utf8, false),
        F::new("order_id", A::Utf8, false),
        F::new("total_amount", A::Decimal128(18, 4), true),
    ]))
}

/// The products diff, the per-SKU change log, SCD2 history and the current products upsert.
async fn upsert_products(
    lh: &Lakehouse,
    kept: DataFrame,
    run_day: i32,
    stats: &[FeedStats],
    partners_with_feed: &BTreeSet<String>,
    report: &mut SilverReport,
) -> Result<Vec<ProductDiff>, SilverError> {
    let schema = tables::current_schema(Dataset::Products);
    let current_table = lh.open_or_create(tables::current_table(Dataset::Products), schema.clone(), tables::current_partitions(Dataset::Products)).await?;
    let partners: Vec<String> = partners_with_feed.iter().cloned().collect();
    let list = partners.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
    // The stored products of these partners, joined to the run's rows by (partner, sku).
    let stored_batches = if list.is_empty() { Vec::new() } else { lh.scan(&current_table, Some(&format!("{PARTNER} IN ({list})"))).await? };
    let stored = if stored_batches.is_empty() {
        DataFrame::empty_with_schema(&Schema::from_iter(
            [PARTNER, "sku", "name", "category", "brand", "price", "currency", "quantity", "first_seen_date", "last_changed_date"]
                .iter()
                .map(|c| Field::new((*c).into(), stored_dtype(c))),
        ))
    } else {
        arrow_to_polars(&stored_batches, &schema)?
    };
    let mut prev_cols: Vec<Expr> = vec![col(PARTNER), col("sku")];
    for c in tables::PRODUCT_COMPARED.iter().chain(&["first_seen_date", "last_changed_date"]) {
        prev_cols.push(col(*c).alias(format!("_prev_{c}")));
    }
    prev_cols.push(lit(true).alias("_known"));
    let prev = stored.lazy().select(prev_cols);
    let mut changed = lit(false);
    let mut renamed = lit(false);
    for c in tables::PRODUCT_COMPARED {
        let differs = col(c).eq_missing(col(format!("_prev_{c}"))).not();
        changed = changed.or(differs.clone());
        if c == "name" || c == "category" {
            renamed = renamed.or(differs);
        }
    }
    let joined = kept
        .lazy()
        .join(prev, [col(PARTNER), col("sku")], [col(PARTNER), col("sku")], JoinArgs::new(JoinType::Left))
        .with_column(col("_known").fill_null(lit(false)))
        .with_column(
            when(col("_known").not())
                .then(lit(ChangeKind::Inserted.as_str()))
                .when(changed)
                .then(lit(ChangeKind::Updated.as_str()))
                .otherwise(lit(ChangeKind::Unchanged.as_str()))
                .alias("_change"),
        )
        .with_column(col("_known").and(renamed).alias("_renamed"))
        .with_columns([
            when(col("_known")).then(col("_prev_first_seen_date")).otherwise(lit(run_day).cast(DataType::Date)).alias("first_seen_date"),
            when(col("_change").eq(lit(ChangeKind::Unchanged.as_str()))).then(col("_prev_last_changed_date")).otherwise(lit(run_day).cast(DataType::Date)).alias("last_changed_date"),
        ])
        .collect()?;

    // Diff counts per partner; skipped = rejected rows, duplicate = superseded rows.
    let mut diffs: BTreeMap<String, ProductDiff> =
        partners.iter().map(|p| (p.clone(), ProductDiff { partner: p.clone(), ..Default::default() })).collect();
    for (p, ch) in joined.column(PARTNER)?.str()?.iter().zip(joined.column("_change")?.str()?.iter()) {
        let (Some(p), Some(ch)) = (p, ch) else { continue };
        let d = diffs.entry(p.to_string()).or_insert_with(|| ProductDiff { partner: p.to_string(), ..Default::default() });
        d.count(ChangeKind::parse(ch).unwrap_or(ChangeKind::Unchanged));
    }
    for st in stats.iter().filter(|s| s.dataset == "products") {
        if let Some(d) = diffs.get_mut(&st.partner) {
            d.skipped += st.rejected;
            d.duplicate += st.duplicate;
        }
    }
    for (p, sku) in joined
        .clone()
        .lazy()
        .filter(col("_renamed"))
        .select([col(PARTNER), col("sku")])
        .collect()?
        .column(PARTNER)?
        .str()?
        .iter()
        .zip(joined.clone().lazy().filter(col("_renamed")).select([col("sku")]).collect()?.column("sku")?.str()?.iter())
    {
        if let (Some(p), Some(s)) = (p, sku) {
            report.renamed_or_recategorised.push((p.to_string(), s.to_string()));
        }
    }

    // Change log: one row per SKU of the run (rejected and duplicate rows are counted, not listed per SKU).
    let mut log = joined
        .clone()
        .lazy()
        .select([
            lit(run_day).cast(DataType::Date).alias(RUN_DATE),
            col(PARTNER),
            col("sku"),
            col("_change").alias("change"),
            col("_feed_id"),
            col("_row_number"),
        ])
        .collect()?;
    let changes = lh.open_or_create(tables::PRODUCT_CHANGES, tables::product_changes_schema(), &[RUN_DATE]).await?;
    let log_batches = polars_to_arrow(&mut log, &tables::product_changes_schema())?;
    let date = date_string(run_day);
    lh.replace_where(changes, log_batches, &format!("{RUN_DATE} = '{date}' AND {PARTNER} IN ({})", if list.is_empty() { "''".into() } else { list.clone() })).await?;

    // SCD2: close the current version of updated SKUs, add a version for inserted and updated ones.
    let moved = joined.clone().lazy().filter(col("_change").neq(lit(ChangeKind::Unchanged.as_str())));
    let mut versions = moved
        .clone()
        .select(
            [col(PARTNER)]
                .into_iter()
                .chain(Dataset::Products.columns().iter().map(|c| col(c.name)))
                .chain([
                    lit(run_day).cast(DataType::Date).alias("valid_from"),
                    lit(NULL).cast(DataType::Date).alias("valid_to"),
                    lit(true).alias("is_current"),
                    col("_feed_id"),
                ])
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let mut closings = moved
        .filter(col("_change").eq(lit(ChangeKind::Updated.as_str())))
        .select([
            col(PARTNER),
            col("sku"),
            col("_prev_last_changed_date").alias("valid_from"),
            lit(run_day).cast(DataType::Date).alias("valid_to"),
            lit(false).alias("is_current"),
        ])
        .collect()?;
    let hist_schema = tables::products_history_schema();
    let history = lh.open_or_create(tables::PRODUCTS_HISTORY, hist_schema.clone(), &[PARTNER]).await?;
    let mut hist_batches = polars_to_arrow(&mut versions, &hist_schema)?;
    if closings.height() > 0 {
        lh.update_matched(history.clone(), polars_to_arrow(&mut closings, &closings_schema())?, &[PARTNER, "sku", "valid_from"], PARTNER).await?;
    }
    let history = lh.open_or_create(tables::PRODUCTS_HISTORY, hist_schema.clone(), &[PARTNER]).await?;
    if !hist_batches.is_empty() {
        lh.append(history, std::mem::take(&mut hist_batches)).await?;
    }

    // Current products: only inserted and updated rows are written.
    let mut current = joined.lazy().filter(col("_change").neq(lit(ChangeKind::Unchanged.as_str()))).collect()?;
    let batches = polars_to_arrow(&mut current, &schema)?;
    if !batches.is_empty() {
        lh.upsert(current_table, batches, &[PARTNER, "sku"], PARTNER, Some(NEWER)).await?;
    }
    Ok(diffs.into_values().collect())
}

fn closings_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![
        F::new(PARTNER, A::Utf8, false),
        F::new("sku", A::Utf8, false),
        F::new("valid_from", A::Date32, false),
        F::new("valid_to", A::Date32, true),
        F::new("is_current", A::Boolean, false),
    ]))
}

fn stored_dtype(c: &str) -> DataType {
    match c {
        "first_seen_date" | "last_changed_date" => DataType::Date,
        PARTNER => DataType::String,
        other => Dataset::Products.column(other).map(|c| crate::clean::dtype(c.ty)).unwrap_or(DataType::String),
    }
}

/// One table's maintenance outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TableMaintenance {
    pub table: String,
    #[serde(flatten)]
    pub report: crate::delta::MaintainReport,
}

/// `medallion maintain`: compaction, vacuum with a retention, a checkpoint and log cleanup for
/// every silver table that exists.
pub async fn maintain_all(lake: &Location, retention_hours: u64, force: bool) -> Result<Vec<TableMaintenance>, SilverError> {
    let lh = Lakehouse::new(lake)?;
    let mut out = Vec::new();
    for t in all_tables() {
        let Some(table) = lh.open(t).await? else { continue };
        if Lakehouse::version(&table).is_none() {
            continue;
        }
        let (_, report) = lh.maintain(table, retention_hours, force).await?;
        out.push(TableMaintenance { table: t.to_string(), report });
    }
    Ok(out)
}
