//! Within one run: several rows for a key collapse to the newest (later feed in landing order,
//! then later row), the others counted as duplicates; quarantine and reconciliation rows.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use polars::prelude::*;
use lake::registry::FeedRecord;
use schemas::{Dataset, FeedStats};

use crate::bridge::polars_to_arrow;
use crate::clean::REASON;
use crate::tables::{self, PARTNER, RUN_DATE};
use crate::SilverError;

pub(crate) fn concat_frames(frames: Vec<DataFrame>) -> Result<DataFrame, SilverError> {
    let lfs: Vec<LazyFrame> = frames.into_iter().map(|f| f.lazy()).collect();
    Ok(concat(lfs, UnionArgs::default())?.collect()?)
}

/// Keeps the newest row per (partner, key) — later feed in landing order, then later row —
/// and counts the others as duplicates of the feed they came from. Inventory keeps only the
/// day's last file per partner (the earlier files' rows are duplicates).
/// Counts rows per feed id.
pub(crate) fn count_by_feed(df: &DataFrame) -> Result<BTreeMap<String, u64>, SilverError> {
    let mut counts = BTreeMap::new();
    for f in df.column("_feed_id")?.str()?.iter().flatten() {
        *counts.entry(f.to_string()).or_default() += 1;
    }
    Ok(counts)
}

/// Returns the kept rows, and per feed the rows kept and the rows superseded (duplicates).
#[allow(clippy::type_complexity)]
pub(crate) fn deduplicate(dataset: Dataset, df: DataFrame) -> Result<(DataFrame, BTreeMap<String, u64>, BTreeMap<String, u64>), SilverError> {
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

pub(crate) fn quarantine_batches(rejected: DataFrame, feed: &FeedRecord, run_day: i32) -> Result<Vec<RecordBatch>, SilverError> {
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

pub(crate) fn reconciliation_batches(stats: &[FeedStats], run_day: i32) -> Result<Vec<RecordBatch>, SilverError> {
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
