//! Gold in the lake: one Parquet file per table and business date
//! (`gold/{table}/{date column}={d}/part-0.parquet`), one file per undated table. Each file is
//! written whole by one put (atomic on disk and on S3); a date that no longer has rows loses
//! its file. Rows are in grain order and the writer is deterministic, so the same silver
//! state gives byte-identical files.

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

use crate::warehouse::date_string;
use crate::{Dates, GoldError, GoldOutput};

fn parquet_bytes(schema: arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, GoldError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
        .set_created_by("medallion".into())
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props))?;
    for b in batches {
        w.write(b)?;
    }
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
            put(lake, &lake.path(&paths::gold_file(&t.name, None)), parquet_bytes(schema, &o.batches)?, written).await?;
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

async fn put(lake: &Location, path: &Path, bytes: Vec<u8>, n: usize) -> Result<(), GoldError> {
    ::lake::fault::point("gold.lake_write", n).await;
    lake.store.put(path, PutPayload::from(bytes)).await.map_err(|e| GoldError::store(lake, path, e))?;
    Ok(())
}

