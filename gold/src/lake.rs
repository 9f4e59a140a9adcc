//! Gold in the lake: one Parquet file per table and business date
//! (`gold/{table}/{date column}={d}/part-0.parquet`), one file per undated table. Each file is
//! written whole by one put (atomic on disk and on S3); a date that no longer has rows loses
//! its file. A file of which an incremental publish replaces only some key tuples is read,
//! those tuples' rows swapped for the new ones, and written whole again (doing it twice gives
//! the same file). Rows are in grain order, written as one batch by a deterministic writer, so
//! the same silver state gives byte-identical files however it was published.

use std::collections::BTreeSet;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
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

fn parquet_bytes(schema: arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, GoldError> {
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

/// Writes `outputs` to the lake; returns the number of files written and removed.
pub async fn write(lake: &Location, outputs: &[GoldOutput]) -> Result<(usize, usize), GoldError> {
    let (mut written, mut removed) = (0, 0);
    for o in outputs {
        let t = o.table;
        let schema = crate::gold_schema(t);
        let Some(date_col) = t.date_column.as_deref() else {
            let path = lake.path(&paths::gold_file(&t.name, None));
            let rows = match &o.groups {
                // No touched key: the file stays as it is.
                Some(g) if o.dates != Dates::All && g.is_empty() => continue,
                Some(g) if o.dates != Dates::All => merge(t, read(lake, &path).await?, g, &o.batches)?,
                _ => o.batches.clone(),
            };
            put(lake, &path, parquet_bytes(schema, &rows)?, written).await?;
            written += 1;
            continue;
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
        // Dates of which only some key tuples are replaced: the stored rows of the other tuples stay.
        let group_dates = o.groups.as_ref().map(|g| g.first_values()).unwrap_or_default();
        for d in &group_dates {
            let path = lake.path(&paths::gold_file(&t.name, Some((date_col, d))));
            let new: Vec<RecordBatch> = by_date.iter().filter(|(x, _)| x == d).flat_map(|(_, b)| b.clone()).collect();
            let rows = merge(t, read(lake, &path).await?, o.groups.as_ref().expect("group dates come from groups"), &new)?;
            if rows.iter().all(|b| b.num_rows() == 0) {
                match lake.store.delete(&path).await {
                    Ok(()) => removed += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(GoldError::store(lake, &path, e)),
                }
            } else {
                put(lake, &path, parquet_bytes(schema.clone(), &rows)?, written).await?;
                written += 1;
            }
        }
        let by_date: Vec<(String, Vec<RecordBatch>)> = by_date.into_iter().filter(|(d, _)| !group_dates.contains(d)).collect();
        let present: BTreeSet<String> = by_date.iter().map(|(d, _)| d.clone()).collect();
        for (d, batches) in &by_date {
            put(lake, &lake.path(&paths::gold_file(&t.name, Some((date_col, d)))), parquet_bytes(schema.clone(), batches)?, written).await?;
            written += 1;
        }
        // Dates this output replaces that have no rows any more lose their file.
        let stale: Vec<Path> = match &o.dates {
            Dates::Only(ds) => ds.iter().filter(|d| !present.contains(*d)).map(|d| lake.path(&paths::gold_file(&t.name, Some((date_col, d))))).collect(),
            Dates::All => {
                let prefix = lake.path(&paths::gold_table(&t.name));
                let metas: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| GoldError::store(lake, &prefix, e))?;
                metas
                    .into_iter()
                    .map(|m| m.location)
                    .filter(|p| !present.iter().any(|d| *p == lake.path(&paths::gold_file(&t.name, Some((date_col, d))))))
                    .collect()
            }
        };
        for p in stale {
            match lake.store.delete(&p).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(GoldError::store(lake, &p, e)),
            }
        }
    }
    Ok((written, removed))
}

/// The rows of a gold file (none when it does not exist).
async fn read(lake: &Location, path: &Path) -> Result<Vec<RecordBatch>, GoldError> {
    let bytes = match lake.store.get(path).await {
        Ok(r) => r.bytes().await.map_err(|e| GoldError::store(lake, path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(GoldError::store(lake, path, e)),
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(64 * 1024).build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// `stored` without the rows of `keys`' tuples, plus `new` (rows of those tuples), in grain order.
fn merge(t: &GoldTable, stored: Vec<RecordBatch>, keys: &KeySet, new: &[RecordBatch]) -> Result<Vec<RecordBatch>, GoldError> {
    let schema = crate::gold_schema(t);
    let mut kept = Vec::with_capacity(stored.len() + new.len());
    let matcher = keys.matcher(t, &schema)?;
    for b in stored {
        // The stored file has the contract's schema; its batches are re-labelled to it.
        let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
        let replaced = matcher.matches(&b)?;
        kept.push(arrow::compute::filter_record_batch(&b, &arrow::compute::not(&replaced)?)?);
    }
    kept.extend(new.iter().cloned());
    let all = arrow::compute::concat_batches(&schema, &kept)?;
    if all.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let sort: Vec<arrow::compute::SortColumn> = t
        .grain
        .iter()
        .map(|g| arrow::compute::SortColumn { values: all.column(t.columns.iter().position(|c| c.name == *g).expect("grain columns are columns")).clone(), options: None })
        .collect();
    let order = arrow::compute::lexsort_to_indices(&sort, None)?;
    let cols = all.columns().iter().map(|c| arrow::compute::take(c, &order, None)).collect::<Result<Vec<_>, _>>()?;
    Ok(vec![RecordBatch::try_new(schema, cols)?])
}

async fn put(lake: &Location, path: &Path, bytes: Vec<u8>, n: usize) -> Result<(), GoldError> {
    ::lake::fault::point("gold.lake_write", n).await;
    lake.store.put(path, PutPayload::from(bytes)).await.map_err(|e| GoldError::store(lake, path, e))?;
    Ok(())
}

