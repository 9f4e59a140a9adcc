//! One silver run: every landed feed of a run date is cleaned, deduplicated and upserted, the
//! products are diffed, and the run is recorded with its per-feed reconciliation.
//!
//! Crash safety: before its first write a run records the version of every silver table in
//! `silver/_runs/{date}.json` (status `running`). A run that finds such a record left by a
//! crashed run restores every table to those versions (Delta time travel) before it starts,
//! so a re-run repairs the lake. The record is marked `completed` only after the last commit.

use std::collections::BTreeSet;

use arrow::array::RecordBatch;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use polars::prelude::*;
use lake::registry::{FeedRecord, FeedStatus, Registry};
use lake::Location;
use schemas::{paths, Dataset, FeedStats, ProductDiff, RunDate, RunStatus, SilverRecord};

use crate::bridge::{parquet_to_polars, polars_to_arrow};
use crate::clean::{clean_feed, Cleaned, REASON};
use crate::delta::Lakehouse;
use crate::tables::{self, PARTNER, RUN_DATE};
use crate::SilverError;
use crate::recovery::*;
use crate::dedup::*;
use crate::checks::*;
use crate::products::*;

/// The record of a silver run (`silver/_runs/D.json`): the one type gold reads too.
pub type SilverReport = SilverRecord;

pub(crate) fn run_record_path(lake: &Location, date: RunDate) -> Path {
    lake.path(&paths::silver_run(date))
}

pub(crate) fn all_tables() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Dataset::ALL.iter().map(|d| tables::current_table(*d)).collect();
    v.extend([tables::PRODUCTS_HISTORY, tables::PRODUCT_CHANGES, tables::QUARANTINE, tables::FEED_RECONCILIATION, tables::ORPHAN_ITEMS]);
    v
}

pub(crate) fn date_string(days_since_epoch: i32) -> String {
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
    in_landing_order(&mut feeds);
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
            let landed: BTreeSet<&str> = feeds.iter().filter(|f| f.status == FeedStatus::Landed).map(|f| f.feed_id.as_str()).collect();
            let applied: BTreeSet<&str> = prev.feeds.iter().map(|f| f.feed_id.as_str()).collect();
            if landed == applied {
                // Later runs have written since, and every feed of the date was applied by its
                // first run: applying them again changes nothing (the newest version wins), so
                // nothing is written and its products diff, history and change log stay.
                tracing::info!("re-running {date}: its feeds were all applied by its previous run and later dates have run since; nothing new to apply");
                return Ok(replayed(prev, report.recovered));
            }
            tracing::warn!("re-running {date} on top of later runs with feeds its previous run did not apply: the products diff compares with the current state; `medallion backfill --from {date}` replays history exactly");
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

/// Sorts a date's feeds by partner and dataset, then in landing order (file name, CONTRACT §2).
pub(crate) fn in_landing_order(feeds: &mut [FeedRecord]) {
    feeds.sort_by(|a, b| (&a.partner, a.dataset, &a.file_name, &a.feed_id).cmp(&(&b.partner, b.dataset, &b.file_name, &b.feed_id)));
}

/// The report of a re-run that applies nothing new: the same feeds and counts, a products diff
/// of only `unchanged` (CONTRACT §2), no touched business dates.
pub(crate) fn replayed(prev: SilverRecord, recovered: Vec<String>) -> SilverRecord {
    let product_changes = prev
        .product_changes
        .iter()
        .map(|d| ProductDiff { unchanged: d.inserted + d.updated + d.unchanged, inserted: 0, updated: 0, ..d.clone() })
        .collect();
    SilverRecord {
        recovered,
        product_changes,
        business_dates: Vec::new(),
        renamed_or_recategorised: Vec::new(),
        versions_before: prev.versions_after.clone(),
        ..prev
    }
}

/// An unsharded run prepares and writes one dataset at a time, so it holds one dataset's rows,
/// not the whole date's. Each dataset reconciles before it is written; a later failure is
/// undone by the caller's rollback like any other.
async fn write_run(lake: &Location, lh: &Lakehouse, date: RunDate, feeds: &[FeedRecord], report: &mut SilverReport) -> Result<(), SilverError> {
    let mut writer = Writer::new(date, feeds);
    for dataset in Dataset::ALL {
        if let Some(p) = prepare_dataset(lake, date, feeds, dataset).await? {
            writer.dataset(lh, dataset, p, report).await?;
        }
    }
    writer.finish(lake, lh, None, report).await
}

/// A run's feeds cleaned, validated, deduplicated and reconciled, before anything is written:
/// the part of a run that reads only bronze, so sharded runs do it side by side.
pub struct Prepared {
    pub(crate) date: RunDate,
    pub(crate) feeds: Vec<FeedRecord>,
    /// Each dataset's kept rows, counts and rejected rows, in `Dataset::ALL` order.
    datasets: Vec<(Dataset, PreparedDataset)>,
}

/// Reads, cleans and deduplicates every landed feed of `feeds`; fails if any feed's rows do
/// not reconcile (rows read = valid + rejected + duplicate). Writes nothing.
pub(crate) async fn prepare(lake: &Location, date: RunDate, feeds: &[FeedRecord]) -> Result<Prepared, SilverError> {
    let mut datasets = Vec::new();
    for dataset in Dataset::ALL {
        if let Some(p) = prepare_dataset(lake, date, feeds, dataset).await? {
            datasets.push((dataset, p));
        }
    }
    Ok(Prepared { date, feeds: feeds.to_vec(), datasets })
}

/// One dataset of a run, cleaned, deduplicated and reconciled.
pub(crate) struct PreparedDataset {
    /// The kept rows (one row per key).
    kept: DataFrame,
    stats: Vec<FeedStats>,
    quarantine: Vec<RecordBatch>,
}

/// [`prepare`] for one dataset (`None`: the date has no landed feed of it).
async fn prepare_dataset(lake: &Location, date: RunDate, feeds: &[FeedRecord], dataset: Dataset) -> Result<Option<PreparedDataset>, SilverError> {
    let run_day = date.days_since_epoch();
    let mut quarantine: Vec<RecordBatch> = Vec::new();
    let mut stats: Vec<FeedStats> = Vec::new();
    let ds_feeds: Vec<&FeedRecord> = feeds.iter().filter(|f| f.dataset == dataset && f.status == FeedStatus::Landed).collect();
    if ds_feeds.is_empty() {
        return Ok(None);
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
    for st in stats.iter_mut() {
        st.duplicate = dup_counts.get(&st.feed_id).copied().unwrap_or(0);
        st.valid = kept_counts.get(&st.feed_id).copied().unwrap_or(0);
        // Every raw row (as counted by bronze) must be accounted for, before anything is
        // written.
        if !st.balances() {
            return Err(SilverError::Reconciliation(format!(
                "feed {} ({}/{}): read {} != valid {} + rejected {} + duplicate {}",
                st.feed_id, st.partner, st.file_name, st.rows_read, st.valid, st.rejected, st.duplicate
            )));
        }
    }
    Ok(Some(PreparedDataset { kept, stats, quarantine }))
}

/// Writes a prepared run. `shard` limits the run-date-wide replacements (quarantine, feed
/// reconciliation) to those partners; every other write is keyed or partitioned by partner
/// already, so a shard's writes touch only its own partners' rows.
pub(crate) async fn apply(lake: &Location, lh: &Lakehouse, prepared: Prepared, shard: Option<&BTreeSet<String>>, report: &mut SilverReport) -> Result<(), SilverError> {
    let Prepared { date, feeds, datasets } = prepared;
    let mut writer = Writer::new(date, &feeds);
    for (dataset, p) in datasets {
        writer.dataset(lh, dataset, p, report).await?;
    }
    writer.finish(lake, lh, shard, report).await
}

/// The writes of a run, dataset by dataset, then the date-wide ones ([`Writer::finish`]).
struct Writer<'a> {
    date: RunDate,
    feeds: &'a [FeedRecord],
    /// Every feed's counts and rejected rows so far (the products diff reads its feeds' counts).
    stats: Vec<FeedStats>,
    quarantine: Vec<RecordBatch>,
    business_days: BTreeSet<i32>,
    run_orders: Option<DataFrame>,
    run_items: Option<DataFrame>,
    has_products_feed: BTreeSet<String>,
}

impl<'a> Writer<'a> {
    fn new(date: RunDate, feeds: &'a [FeedRecord]) -> Self {
        let has_products_feed =
            feeds.iter().filter(|f| f.dataset == Dataset::Products && f.status == FeedStatus::Landed).map(|f| f.partner.clone()).collect();
        Writer { date, feeds, stats: Vec::new(), quarantine: Vec::new(), business_days: BTreeSet::new(), run_orders: None, run_items: None, has_products_feed }
    }

    /// Upserts one dataset's kept rows (products: with the diff and history) and keeps its
    /// counts and rejected rows for [`Writer::finish`].
    async fn dataset(&mut self, lh: &Lakehouse, dataset: Dataset, p: PreparedDataset, report: &mut SilverReport) -> Result<(), SilverError> {
        let run_day = self.date.days_since_epoch();
        let PreparedDataset { kept, stats, quarantine } = p;
        self.stats.extend(stats);
        self.quarantine.extend(quarantine);
        match dataset {
            Dataset::Products => {
                let diffs = upsert_products(lh, kept, run_day, &self.stats, &self.has_products_feed, report).await?;
                report.product_changes = diffs;
            }
            Dataset::Inventory => {
                replace_inventory(lh, kept, run_day).await?;
            }
            Dataset::Orders => {
                self.business_days.extend(order_days_touched(lh, &kept).await?);
                self.run_orders = Some(kept.select([PARTNER, "order_id", "total_amount"])?);
                upsert_current(lh, dataset, kept).await?;
            }
            Dataset::OrderItems => {
                self.business_days.extend(item_days_touched(lh, &kept).await?);
                self.run_items = Some(kept.select([PARTNER, "order_id", "line_number"])?);
                upsert_current(lh, dataset, kept).await?;
            }
            _ => upsert_current(lh, dataset, kept).await?,
        }
        lake::fault::point("silver.dataset", dataset as usize).await;
        Ok(())
    }

    /// The date-wide writes (quarantine, reconciliation), the post-run checks and the record.
    async fn finish(self, lake: &Location, lh: &Lakehouse, shard: Option<&BTreeSet<String>>, report: &mut SilverReport) -> Result<(), SilverError> {
        let Writer { date, feeds, stats, quarantine, business_days, run_orders, run_items, .. } = self;
        let run_day = date.days_since_epoch();
        // Quarantine and reconciliation of this run date replace any earlier run of the date (of
        // the shard's partners, for a sharded run).
        let pred = match shard {
            None => format!("{RUN_DATE} = '{date}'"),
            Some(partners) => format!("{RUN_DATE} = '{date}' AND {PARTNER} IN ({})", sql_list(partners)),
        };
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
        if shard.is_none() {
            save_record(lake, report).await?;
        }
        Ok(())
    }
}

/// `'a', 'b'` for an SQL `IN` list of partner ids (ids are validated: `[a-z0-9_-]` only).
pub(crate) fn sql_list(partners: &BTreeSet<String>) -> String {
    if partners.is_empty() {
        return "''".into();
    }
    partners.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ")
}

/// The update guard of every upsert: a row replaces the stored one only if it is at least as
/// new (run date, then landing order of its feed, then row order).
pub(crate) const NEWER: &str = "(source._run_date > target._run_date) OR (source._run_date = target._run_date AND (source._source_file > target._source_file OR (source._source_file = target._source_file AND source._row_number >= target._row_number)))";

pub(crate) async fn upsert_current(lh: &Lakehouse, dataset: Dataset, mut kept: DataFrame) -> Result<(), SilverError> {
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

pub(crate) async fn replace_inventory(lh: &Lakehouse, kept: DataFrame, run_day: i32) -> Result<(), SilverError> {
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
