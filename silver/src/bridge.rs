//! Moving frames between Polars (cleaning, diffing) and Arrow (Delta Lake) through in-memory
//! Parquet, the one format both sides read and write faithfully (decimals, dates, UTC
//! timestamps). Columns are then cast to the exact silver schema.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use polars::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("column {column}: {message}")]
    Schema { column: String, message: String },
}

/// Reads Parquet bytes into a Polars frame.
pub fn parquet_to_polars(bytes: bytes::Bytes) -> Result<DataFrame, BridgeError> {
    Ok(ParquetReader::new(std::io::Cursor::new(bytes)).finish()?)
}

/// A Polars frame as Arrow batches of exactly `schema` (by column name; a column absent from
/// the frame must be nullable and is filled with nulls).
pub fn polars_to_arrow(df: &mut DataFrame, schema: &SchemaRef) -> Result<Vec<RecordBatch>, BridgeError> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).with_compression(ParquetCompression::Uncompressed).finish(df)?;
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes::Bytes::from(buf), options)?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let col = match batch.column_by_name(f.name()) {
                Some(c) => arrow::compute::cast(c, f.data_type())?,
                None if f.is_nullable() => new_null_array(f.data_type(), batch.num_rows()),
                None => {
                    return Err(BridgeError::Schema { column: f.name().clone(), message: "missing from the frame".into() });
                }
            };
            cols.push(col);
        }
        out.push(RecordBatch::try_new(Arc::clone(schema), cols)?);
    }
    Ok(out)
}

/// Arrow batches as a Polars frame. Dictionary columns (DataFusion reads Delta partition
/// values as dictionaries) become plain columns of their value type.
pub fn arrow_to_polars(batches: &[RecordBatch], schema: &SchemaRef) -> Result<DataFrame, BridgeError> {
    use arrow::datatypes::{DataType, Field, Schema};
    let plain = |t: &DataType| match t {
        DataType::Dictionary(_, v) => v.as_ref().clone(),
        other => other.clone(),
    };
    let out_schema: SchemaRef =
        Arc::new(Schema::new(schema.fields().iter().map(|f| Field::new(f.name(), plain(f.data_type()), f.is_nullable())).collect::<Vec<_>>()));
    let mut buf = Vec::new();
    {
        let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&out_schema), None)?;
        for b in batches {
            let cols = b
                .columns()
                .iter()
                .zip(out_schema.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            w.write(&RecordBatch::try_new(Arc::clone(&out_schema), cols)?)?;
        }
        w.close()?;
    }
    parquet_to_polars(bytes::Bytes::from(buf))
}
