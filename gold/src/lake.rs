//! Gold in the lake: one Parquet file per table and business date
//! (`gold/{table}/{date column}={d}/part-0.parquet`), one file per undated table. Each file is
//! written whole by one put (atomic on disk and on S3); a date that no longer has rows loses
//! its file. A file of which an incremental publish replaces only some key tuples is read,
//! those tuples' rows swapped for the new ones, and written whole again (doing it twice gives
//! the same file). Rows are in grain order, written as one batch by a deterministic writer, so
//! the same silver state gives byte-identical files however it was published. Files are
//! merged and encoded a few at a time, off the async runtime; memory is bounded by the files
//! in flight.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, SchemaRef};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use ::lake::Location;
use schemas::paths;

use crate::incremental::KeySet;
use crate::models::GoldTable;
use crate::warehouse::date_string;
use crate::{Dates, GoldError, GoldOutput};

/// Files merged and encoded at once (each holds one file's rows, stored and new).
const FILES_IN_FLIGHT: usize = 2;

fn parquet_bytes(schema: SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, GoldError> {
    // One batch: the bytes depend on the rows only, not on how they were split.
    let all = arrow::compute::concat_batches(&schema, batches)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
        .set_created_by("medallion".into())
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props))?;
    w.write(&all)?;
    w.close()?;
    Ok(buf)
}

/// What a publish does to one lake file.
enum Job {
    /// Write these rows (grain order) as the whole file.
    Put { path: Path, rows: Vec<RecordBatch> },
    /// Replace the rows of `keys`' tuples in the stored file with `new`; no rows left: delete it.
    Merge { path: Path, keys: KeySet, new: Vec<RecordBatch> },
    Delete { path: Path },
}

/// What a job did to its file.
enum Done {
    Written,
    Removed,
    Nothing,
}

/// Writes `outputs` to the lake; returns the number of files written and removed.
pub async fn write(lake: &Location, outputs: &[GoldOutput]) -> Result<(usize, usize), GoldError> {
    let mut jobs: Vec<(&'static GoldTable, Job)> = Vec::new();
    for o in outputs {
        jobs.extend(plan(lake, o).await?.into_iter().map(|j| (o.table, j)));
    }
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Tasks (not a borrowing stream, whose future rustc cannot prove `Send` in callers); an
    // error drops the set, which aborts the others.
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = Vec::new();
    for (t, job) in jobs {
        if tasks.len() >= FILES_IN_FLIGHT {
            done.push(joined(tasks.join_next().await.expect("a task is running"))?);
        }
        tasks.spawn(run(lake.clone(), t, job, written.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        done.push(joined(r)?);
    }
    Ok((done.iter().filter(|d| matches!(d, Done::Written)).count(), done.iter().filter(|d| matches!(d, Done::Removed)).count()))
}

/// The jobs of one output: its whole files, the files it merges by key, the dates it empties.
async fn plan(lake: &Location, o: &GoldOutput) -> Result<Vec<Job>, GoldError> {
    let t = o.table;
    let Some(date_col) = t.date_column.as_deref() else {
        let path = lake.path(&paths::gold_file(&t.name, None));
        return Ok(match &o.groups {
            // No touched key: the file stays as it is.
            Some(g) if o.dates != Dates::All && g.is_empty() => vec![],
            Some(g) if o.dates != Dates::All => vec![Job::Merge { path, keys: g.clone(), new: o.batches.clone() }],
            _ => vec![Job::Put { path, rows: o.batches.clone() }],
        });
    };
    // Rows are sorted by the grain, which leads with the date: each date is one run.
    let idx = t.columns.iter().position(|c| c.name == date_col).expect("date column is a column");
    let mut by_date: Vec<(String, Vec<RecordBatch>)> = Vec::new();
    for b in &o.batches {
        let dates = b.column(idx).as_primitive::<Date32Type>();
        let mut start = 0;
        while start < b.num_rows() {
            let d = dates.value(start);
            let mut end = start + 1;
            while end < b.num_rows() && dates.value(end) == d {
                end += 1;
            }
            let ds = date_string(d);
            let slice = b.slice(start, end - start);
            match by_date.last_mut() {
                Some((last, v)) if *last == ds => v.push(slice),
                _ => by_date.push((ds, vec![slice])),
            }
            start = end;
        }
    }
    let mut jobs = Vec::new();
    // Dates of which only some key tuples are replaced: the stored rows of the other tuples stay.
    let group_dates = o.groups.as_ref().map(|g| g.first_values()).unwrap_or_default();
    for d in &group_dates {
        // Only this date's tuples: the matcher then encodes what this file can hold.
        let keys = o.groups.as_ref().expect("group dates come from groups").with_first(d)?;
        let new: Vec<RecordBatch> = by_date.iter().filter(|(x, _)| x == d).flat_map(|(_, b)| b.clone()).collect();
        jobs.push(Job::Merge { path: date_file(lake, t, date_col, d), keys, new });
    }
    let by_date: Vec<(String, Vec<RecordBatch>)> = by_date.into_iter().filter(|(d, _)| !group_dates.contains(d)).collect();
    let present: BTreeSet<String> = by_date.iter().map(|(d, _)| d.clone()).collect();
    // Dates this output replaces that have no rows any more lose their file.
    let stale: Vec<Path> = match &o.dates {
        Dates::Only(ds) => ds.iter().filter(|d| !present.contains(*d)).map(|d| date_file(lake, t, date_col, d)).collect(),
        Dates::All => {
            let prefix = lake.path(&paths::gold_table(&t.name));
            let metas: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| GoldError::store(lake, &prefix, e))?;
            metas.into_iter().map(|m| m.location).filter(|p| !present.iter().any(|d| *p == date_file(lake, t, date_col, d))).collect()
        }
    };
    jobs.extend(by_date.into_iter().map(|(d, rows)| Job::Put { path: date_file(lake, t, date_col, &d), rows }));
    jobs.extend(stale.into_iter().map(|path| Job::Delete { path }));
    Ok(jobs)
}

fn date_file(lake: &Location, t: &GoldTable, date_col: &str, d: &str) -> Path {
    lake.path(&paths::gold_file(&t.name, Some((date_col, d))))
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> T {
    r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Runs `f` on a blocking thread (merging and encoding are CPU work).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, GoldError> + Send + 'static) -> Result<T, GoldError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn run(lake: Location, t: &'static GoldTable, job: Job, written: Arc<std::sync::atomic::AtomicUsize>) -> Result<Done, GoldError> {
    let lake = &lake;
    let (path, rows) = match job {
        Job::Put { path, rows } => (path, rows),
        Job::Merge { path, keys, new } => {
            let stored = read(lake, &path).await?;
            let rows = blocking(move || merge(t, stored, &keys, &new)).await?;
            if rows.iter().all(|b| b.num_rows() == 0) {
                return delete(lake, &path).await;
            }
            (path, rows)
        }
        Job::Delete { path } => return delete(lake, &path).await,
    };
    let schema = crate::gold_schema(t);
    let bytes = blocking(move || parquet_bytes(schema, &rows)).await?;
    ::lake::fault::point("gold.lake_write", written.fetch_add(1, std::sync::atomic::Ordering::SeqCst)).await;
    lake.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| GoldError::store(lake, &path, e))?;
    Ok(Done::Written)
}

async fn delete(lake: &Location, path: &Path) -> Result<Done, GoldError> {
    match lake.store.delete(path).await {
        Ok(()) => Ok(Done::Removed),
        Err(object_store::Error::NotFound { .. }) => Ok(Done::Nothing),
        Err(e) => Err(GoldError::store(lake, path, e)),
    }
}

/// The rows of a gold file (none when it does not exist).
async fn read(lake: &Location, path: &Path) -> Result<Vec<RecordBatch>, GoldError> {
    let bytes = match lake.store.get(path).await {
        Ok(r) => r.bytes().await.map_err(|e| GoldError::store(lake, path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(GoldError::store(lake, path, e)),
    };
    blocking(move || {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(64 * 1024).build()?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    })
    .await
}

/// `stored` without the rows of `keys`' tuples, plus `new` (rows of those tuples), in grain
/// order: the grain compared in Arrow's row format (ascending, nulls last, as the models'
/// `ORDER BY`). Each side is put in order if it is not already (a stored file written by this
/// code is; the new rows are small), then the two sorted runs are merged in one pass; they
/// share no grain tuple.
fn merge(t: &GoldTable, stored: Vec<RecordBatch>, keys: &KeySet, new: &[RecordBatch]) -> Result<Vec<RecordBatch>, GoldError> {
    let schema = crate::gold_schema(t);
    let matcher = keys.matcher(t, &schema)?;
    let mut kept = Vec::with_capacity(stored.len());
    for b in stored {
        // The stored file has the contract's schema; its batches are re-labelled to it.
        let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
        let replaced = matcher.matches(&b)?;
        kept.push(arrow::compute::filter_record_batch(&b, &arrow::compute::not(&replaced)?)?);
    }
    let kept = arrow::compute::concat_batches(&schema, &kept)?;
    let new = arrow::compute::concat_batches(&schema, new)?;
    let grain: Vec<usize> = t.grain.iter().map(|g| t.columns.iter().position(|c| c.name == *g).expect("grain columns are columns")).collect();
    let order = arrow::compute::SortOptions { descending: false, nulls_first: false };
    let converter = arrow::row::RowConverter::new(grain.iter().map(|i| arrow::row::SortField::new_with_options(schema.field(*i).data_type().clone(), order)).collect())?;
    let rows = |b: &RecordBatch| converter.convert_columns(&grain.iter().map(|i| b.column(*i).clone()).collect::<Vec<_>>());
    let (a, b) = (rows(&kept)?, rows(&new)?);
    let sorted = |r: &arrow::row::Rows| -> Vec<usize> {
        let mut idx: Vec<usize> = (0..r.num_rows()).collect();
        if !(1..r.num_rows()).all(|i| r.row(i - 1) <= r.row(i)) {
            idx.sort_unstable_by(|x, y| r.row(*x).cmp(&r.row(*y)));
        }
        idx
    };
    let (ia, ib) = (sorted(&a), sorted(&b));
    let (mut i, mut j) = (0, 0);
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ia.len() + ib.len());
    while i < ia.len() && j < ib.len() {
        if b.row(ib[j]) < a.row(ia[i]) {
            out.push((1, ib[j]));
            j += 1;
        } else {
            out.push((0, ia[i]));
            i += 1;
        }
    }
    out.extend(ia[i..].iter().map(|&x| (0, x)));
    out.extend(ib[j..].iter().map(|&x| (1, x)));
    if out.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![arrow::compute::interleave_record_batch(&[&kept, &new], &out)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};

    /// The linear merge orders rows as a full sort of the grain would.
    #[test]
    fn merge_keeps_grain_order() {
        let t = crate::models::table("inventory_status").expect("a model");
        let schema = crate::gold_schema(t);
        let batch = |rows: &[(i32, &str, &str, &str, i64)]| {
            let cols: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .map(|f| match f.name().as_str() {
                    "snapshot_date" => Arc::new(Date32Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef,
                    "partner_id" => Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as ArrayRef,
                    "sku" => Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef,
                    "warehouse" => Arc::new(StringArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())) as ArrayRef,
                    "quantity_on_hand" | "reorder_level" => Arc::new(Int64Array::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())) as ArrayRef,
                    "needs_reorder" => Arc::new(arrow::array::BooleanArray::from(vec![false; rows.len()])) as ArrayRef,
                    _ => arrow::array::new_null_array(f.data_type(), rows.len()),
                })
                .collect();
            RecordBatch::try_new(schema.clone(), cols).unwrap()
        };
        let stored = batch(&[(1, "a", "S1", "W1", 1), (1, "a", "S2", "W1", 1), (1, "b", "S1", "W1", 1), (1, "b", "S3", "W2", 1)]);
        let keys = KeySet {
            columns: vec!["snapshot_date".into(), "partner_id".into(), "sku".into()],
            rows: RecordBatch::try_new(
                Arc::new(arrow::datatypes::Schema::new(vec![
                    arrow::datatypes::Field::new("snapshot_date", arrow::datatypes::DataType::Date32, false),
                    arrow::datatypes::Field::new("partner_id", arrow::datatypes::DataType::Utf8, false),
                    arrow::datatypes::Field::new("sku", arrow::datatypes::DataType::Utf8, false),
                ])),
                vec![Arc::new(Date32Array::from(vec![1, 1])), Arc::new(StringArray::from(vec!["a", "b"])), Arc::new(StringArray::from(vec!["S2", "S0"]))],
            )
            .unwrap(),
        };
        // S2 of a is replaced (two warehouses now), S0 of b is new.
        // New rows need not come in order.
        let new = batch(&[(1, "a", "S2", "W9", 7), (1, "b", "S0", "W1", 7), (1, "a", "S2", "W0", 7)]);
        let out = merge(t, vec![stored], &keys, &[new]).unwrap();
        let out = arrow::compute::concat_batches(&schema, &out).unwrap();
        let col = |n: &str| out.column(schema.index_of(n).unwrap()).as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(col("partner_id"), ["a", "a", "a", "b", "b", "b"]);
        assert_eq!(col("sku"), ["S1", "S2", "S2", "S0", "S1", "S3"]);
        assert_eq!(col("warehouse"), ["W1", "W0", "W9", "W1", "W1", "W2"]);
        // Nothing left: no rows (the file is deleted).
        let all = KeySet { columns: vec!["snapshot_date".into()], rows: RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new("snapshot_date", arrow::datatypes::DataType::Date32, false)])),
            vec![Arc::new(Date32Array::from(vec![1]))],
        ).unwrap() };
        assert!(merge(t, vec![out], &all, &[]).unwrap().is_empty());
    }
}
