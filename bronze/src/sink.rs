//! Turns CSV records into Arrow batches of strings with lineage columns, checking the header
//! against the contract and every field for UTF-8.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use schemas::Dataset;

use crate::csv::{CsvError, RecordRef};

/// Lineage columns added to every bronze row.
pub const LINEAGE_COLUMNS: [&str; 6] = ["_feed_id", "_source_file", "_row_number", "_line_number", "_raw_line", "_ingested_at"];

/// Rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 32 * 1024;

/// Why a whole file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub reason: &'static str,
    pub detail: String,
}

impl From<CsvError> for FileProblem {
    fn from(e: CsvError) -> Self {
        FileProblem { reason: "invalid_csv", detail: e.to_string() }
    }
}

pub struct Header {
    pub columns: Vec<String>,
    pub extra: Vec<String>,
    /// Extra columns renamed because their name collides with an internal one (`old → new`).
    pub renamed: Vec<String>,
    pub schema: SchemaRef,
}

/// Normalises and checks a header against the dataset's contract.
pub fn check_header(dataset: Dataset, raw: &[&[u8]], line: u64) -> Result<Header, FileProblem> {
    let mut columns = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let name = std::str::from_utf8(name).map_err(|e| FileProblem {
            reason: "invalid_utf8",
            detail: format!("line {line} (header), field {}: invalid UTF-8 at byte {} of the field", i + 1, e.valid_up_to()),
        })?;
        let mut norm = name.trim().to_lowercase();
        if norm.is_empty() {
            norm = format!("_col{}", i + 1);
        }
        if let Some(first) = columns.iter().position(|c| c == &norm) {
            return Err(FileProblem {
                reason: "duplicate_column",
                detail: format!("header names column {norm:?} twice (fields {} and {})", first + 1, i + 1),
            });
        }
        columns.push(norm);
    }
    let missing: Vec<&str> = dataset.required_columns().map(|c| c.name).filter(|n| !columns.iter().any(|c| c == n)).collect();
    if !missing.is_empty() {
        return Err(FileProblem {
            reason: "missing_column",
            detail: format!("the {dataset} header lacks required column(s): {}", missing.join(", ")),
        });
    }
    // An extra column must not collide with anything internal: a name starting with `_`
    // (lineage, helper columns) or a hive partition column of the lake (`partner`,
    // `ingest_date`) is renamed `extra_<name>` in bronze Parquet (the raw copy keeps the
    // header as sent) and reported.
    let mut renamed = Vec::new();
    for i in 0..columns.len() {
        let name = columns[i].clone();
        let generated = raw.get(i).is_some_and(|r| r.iter().all(u8::is_ascii_whitespace)); // `_col<N>`
        if dataset.column(&name).is_some() || generated || !is_internal_name(&name) {
            continue;
        }
        let mut new = format!("extra_{name}");
        while columns.contains(&new) {
            new = format!("extra_{new}");
        }
        columns[i] = new.clone();
        renamed.push(format!("{name} → {new}"));
    }
    let extra = columns.iter().filter(|c| dataset.column(c).is_none()).cloned().collect();
    let mut fields: Vec<Field> = columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect();
    fields.push(Field::new("_feed_id", DataType::Utf8, false));
    fields.push(Field::new("_source_file", DataType::Utf8, false));
    fields.push(Field::new("_row_number", DataType::Int64, false));
    fields.push(Field::new("_line_number", DataType::Int64, false));
    fields.push(Field::new("_raw_line", DataType::Utf8, true));
    fields.push(Field::new("_ingested_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false));
    Ok(Header { columns, extra, renamed, schema: Arc::new(Schema::new(fields)) })
}

/// Hive partition columns of the lake's tables (`…/partner=x/ingest_date=D/`).
const PARTITION_COLUMNS: [&str; 2] = ["partner", "ingest_date"];

/// Whether an extra header column's name could collide with a lineage, helper or partition
/// column.
fn is_internal_name(name: &str) -> bool {
    name.starts_with('_') || PARTITION_COLUMNS.contains(&name)
}

/// Collects records into batches.
pub struct BronzeSink {
    dataset: Dataset,
    feed_id: String,
    source_file: String,
    ingested_at_us: i64,
    pub header: Option<Header>,
    values: Vec<StringBuilder>,
    row_numbers: Int64Builder,
    line_numbers: Int64Builder,
    raw_lines: StringBuilder,
    pending: usize,
    pub rows: u64,
    pub malformed: u64,
    pub batches: Vec<RecordBatch>,
}

impl BronzeSink {
    pub fn new(dataset: Dataset, feed_id: &str, source_file: &str, ingested_at_us: i64) -> Self {
        BronzeSink {
            dataset,
            feed_id: feed_id.into(),
            source_file: source_file.into(),
            ingested_at_us,
            header: None,
            values: Vec::new(),
            row_numbers: Int64Builder::new(),
            line_numbers: Int64Builder::new(),
            raw_lines: StringBuilder::new(),
            pending: 0,
            rows: 0,
            malformed: 0,
            batches: Vec::new(),
        }
    }

    pub fn record(&mut self, rec: RecordRef<'_>) -> Result<(), FileProblem> {
        let Some(header) = &self.header else {
            let raw: Vec<&[u8]> = rec.fields().collect();
            let header = check_header(self.dataset, &raw, rec.line)?;
            self.values = header.columns.iter().map(|_| StringBuilder::new()).collect();
            self.header = Some(header);
            return Ok(());
        };
        self.rows += 1;
        let well_formed = rec.len() == header.columns.len();
        for (i, field) in rec.fields().enumerate() {
            let value = std::str::from_utf8(field).map_err(|e| {
                let column = header.columns.get(i).map_or_else(|| format!("extra field {}", i + 1), |c| format!("column {c:?}"));
                FileProblem {
                    reason: "invalid_utf8",
                    detail: format!("line {}, {column}: invalid UTF-8 at byte {} of the value", rec.line, e.valid_up_to()),
                }
            })?;
            if well_formed {
                self.values[i].append_value(value);
            }
        }
        if well_formed {
            self.raw_lines.append_null();
        } else {
            self.malformed += 1;
            for b in &mut self.values {
                b.append_null();
            }
            // Every byte of the raw line belongs to a field checked above, or is ASCII.
            self.raw_lines.append_value(String::from_utf8_lossy(rec.raw));
        }
        self.row_numbers.append_value(self.rows as i64);
        self.line_numbers.append_value(rec.line as i64);
        self.pending += 1;
        if self.pending >= BATCH_ROWS {
            self.flush();
        }
        Ok(())
    }

    /// Moves the rows collected so far into a batch.
    pub fn flush(&mut self) {
        let Some(header) = &self.header else { return };
        if self.pending == 0 && !self.batches.is_empty() {
            return;
        }
        let n = self.pending;
        let mut cols: Vec<ArrayRef> = self.values.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        let mut feed = StringBuilder::with_capacity(n, n * self.feed_id.len());
        let mut src = StringBuilder::with_capacity(n, n * self.source_file.len());
        for _ in 0..n {
            feed.append_value(&self.feed_id);
            src.append_value(&self.source_file);
        }
        cols.push(Arc::new(feed.finish()));
        cols.push(Arc::new(src.finish()));
        cols.push(Arc::new(self.row_numbers.finish()));
        cols.push(Arc::new(self.line_numbers.finish()));
        cols.push(Arc::new(self.raw_lines.finish()));
        cols.push(Arc::new(TimestampMicrosecondArray::from(vec![self.ingested_at_us; n]).with_timezone("UTC")));
        let batch = RecordBatch::try_new(header.schema.clone(), cols).expect("bronze batch matches its schema");
        self.batches.push(batch);
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Result<Header, FileProblem> {
        let raw: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        check_header(Dataset::Products, &raw, 1)
    }

    #[test]
    fn header_is_normalised_and_checked() {
        let h = header(&[" SKU ", "Name", "CATEGORY", "price", "color"]).unwrap();
        assert_eq!(h.columns, vec!["sku", "name", "category", "price", "color"]);
        assert_eq!(h.extra, vec!["color"]);
        let e = header(&["sku", "name", "category"]).err().unwrap();
        assert_eq!(e.reason, "missing_column");
        assert!(e.detail.contains("price"), "{}", e.detail);
        let e = header(&["sku", "name", "Sku", "category", "price"]).err().unwrap();
        assert_eq!(e.reason, "duplicate_column");
        let h = header(&["sku", "name", "category", "price", ""]).unwrap();
        assert_eq!(h.extra, vec!["_col5"]);
        assert!(h.renamed.is_empty());
    }

    #[test]
    fn colliding_extra_columns_are_renamed() {
        let h = header(&["sku", "_feed_id", "name", "_Present_SKU", "category", "price", "Partner", "ingest_date", "extra_partner", "_col9", "", "_raw_line"]).unwrap();
        assert_eq!(
            h.columns,
            vec!["sku", "extra__feed_id", "name", "extra__present_sku", "category", "price", "extra_extra_partner", "extra_ingest_date", "extra_partner", "extra__col9", "_col11", "extra__raw_line"]
        );
        assert_eq!(h.renamed.len(), 6, "{:?}", h.renamed);
        assert!(h.renamed.contains(&"_present_sku → extra__present_sku".to_string()));
        let names: Vec<&str> = h.schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn invalid_utf8_in_header() {
        let raw: Vec<&[u8]> = vec![b"sku", b"na\xffme"];
        let e = check_header(Dataset::Products, &raw, 1).err().unwrap();
        assert_eq!(e.reason, "invalid_utf8");
        assert!(e.detail.contains("field 2"), "{}", e.detail);
    }
}
