//! Read-only access to the silver Delta tables for the read endpoints. What it guarantees:
//! - A [`Snapshot`] is one table at one committed Delta version: every query on it sees exactly
//!   that version, whatever runs commit meanwhile, so a listing that pins the version of its
//!   first page reads the same rows on every page.
//! - Filters are DataFusion expressions built from typed values (`lit`), never SQL text built
//!   from request input.
//! - Rows come back as JSON objects with exact values: decimals as decimal strings (never
//!   floats), dates as `YYYY-MM-DD`, timestamps as RFC 3339 UTC.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::{col, Expr, SessionContext};
use deltalake::delta_datafusion::create_session;
use deltalake::{DeltaTable, DeltaTableError};
use lake::delta::{DeltaError, Lakehouse};
use lake::Location;
use serde_json::{Map, Value};

/// Why a silver read failed.
#[derive(Debug, thiserror::Error)]
pub enum SilverReadError {
    #[error(transparent)]
    Open(#[from] DeltaError),
    /// A cursor named a version the table never had (or the table does not exist).
    #[error("silver table {table}: version {version} does not exist (latest: {latest})")]
    UnknownVersion { table: &'static str, version: i64, latest: String },
    /// The pinned version can no longer be read (vacuumed files, cleaned-up log).
    #[error("silver table {table}: version {version} is no longer readable ({}); start a new listing", lake::error_chain(.source))]
    Expired { table: &'static str, version: i64, source: DeltaTableError },
    #[error("silver table {table}: query failed: {}", lake::error_chain(.source))]
    Query { table: &'static str, source: QueryError },
    #[error("silver table {table}: column {column}: unsupported type {data_type}")]
    Unsupported { table: &'static str, column: String, data_type: DataType },
}

/// The library error behind a failed query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Table(#[from] DeltaTableError),
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
}

impl SilverReadError {
    /// Whether retrying later may help (storage unreachable), from the error types.
    pub fn is_transient(&self) -> bool {
        lake::is_transient(self)
    }
}

/// One silver table at one committed version.
pub struct Snapshot {
    table: DeltaTable,
    name: &'static str,
    pub version: i64,
}

/// Opens `name` at `version` (`None`: the latest). `Ok(None)` when the table was never
/// created and no version was asked for; asking for a version it does not have is an error.
pub async fn open(lake: &Location, name: &'static str, version: Option<i64>) -> Result<Option<Snapshot>, SilverReadError> {
    let lh = Lakehouse::new(lake)?;
    let table = lh.open(name).await?;
    let latest = table.as_ref().and_then(Lakehouse::version);
    let (Some(mut table), Some(latest)) = (table, latest) else {
        return match version {
            None => Ok(None),
            Some(version) => Err(SilverReadError::UnknownVersion { table: name, version, latest: "none".into() }),
        };
    };
    match version {
        None => Ok(Some(Snapshot { table, name, version: latest })),
        Some(v) if v < 0 || v > latest => Err(SilverReadError::UnknownVersion { table: name, version: v, latest: latest.to_string() }),
        Some(v) if v == latest => Ok(Some(Snapshot { table, name, version: v })),
        Some(v) => {
            table.load_version(v as u64).await.map_err(|source| SilverReadError::Expired { table: name, version: v, source })?;
            Ok(Some(Snapshot { table, name, version: v }))
        }
    }
}

impl Snapshot {
    fn err(&self, e: impl Into<QueryError>) -> SilverReadError {
        SilverReadError::Query { table: self.name, source: e.into() }
    }

    /// Rows matching `filter`, sorted ascending by `order` (nulls last), at most `limit`.
    pub async fn select(&self, filter: Option<Expr>, order: &[&str], limit: Option<usize>) -> Result<Vec<RecordBatch>, SilverReadError> {
        let ctx: SessionContext = create_session().into();
        self.table.update_datafusion_session(&ctx.state()).map_err(|e| self.err(e))?;
        let provider = self.table.table_provider().await.map_err(|e| self.err(e))?;
        let mut df = ctx.read_table(provider).map_err(|e| self.err(e))?;
        if let Some(f) = filter {
            df = df.filter(f).map_err(|e| self.err(e))?;
        }
        if !order.is_empty() {
            df = df.sort(order.iter().map(|c| col(*c).sort(true, false)).collect()).map_err(|e| self.err(e))?;
        }
        if let Some(n) = limit {
            df = df.limit(0, Some(n)).map_err(|e| self.err(e))?;
        }
        df.collect().await.map_err(|e| self.err(e))
    }

    /// The rows of `batches` as JSON objects (see [`json_rows`]).
    pub fn rows(&self, batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, SilverReadError> {
        json_rows(self.name, batches)
    }
}

/// An exact decimal string of `value` with `scale` places, trailing zeros trimmed down to two
/// places (money keeps cents): 199900 at scale 4 is "19.99", 199950 is "19.995".
pub fn decimal_string(value: i128, scale: i8) -> String {
    if scale <= 0 {
        return format!("{}.00", value * 10i128.pow((-scale) as u32));
    }
    let sign = if value < 0 { "-" } else { "" };
    let a = value.unsigned_abs();
    let p = 10u128.pow(scale as u32);
    let mut frac = format!("{:0width$}", a % p, width = scale as usize);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    while frac.len() < 2 {
        frac.push('0');
    }
    format!("{sign}{}.{frac}", a / p)
}

/// Every row as a JSON object keyed by column name: strings, integers, booleans, floats as
/// JSON; decimals as exact strings ([`decimal_string`]); Date32 as `YYYY-MM-DD`; microsecond
/// timestamps as RFC 3339 UTC; NULL as null.
pub fn json_rows(table: &'static str, batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, SilverReadError> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let mut columns: Vec<Vec<Value>> = Vec::with_capacity(b.num_columns());
        for (field, array) in schema.fields().iter().zip(b.columns()) {
            columns.push(json_values(table, field.name(), array.as_ref())?);
        }
        for r in 0..b.num_rows() {
            out.push(schema.fields().iter().zip(&columns).map(|(f, c)| (f.name().clone(), c[r].clone())).collect());
        }
    }
    Ok(out)
}

fn json_values(table: &'static str, column: &str, a: &dyn Array) -> Result<Vec<Value>, SilverReadError> {
    let each = |f: &dyn Fn(usize) -> Value| (0..a.len()).map(|i| if a.is_null(i) { Value::Null } else { f(i) }).collect::<Vec<_>>();
    Ok(match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let s = arrow::compute::cast(a, &DataType::Utf8).map_err(|_| unsupported(table, column, a))?;
            let s = s.as_string::<i32>();
            (0..s.len()).map(|i| if s.is_null(i) { Value::Null } else { Value::String(s.value(i).to_string()) }).collect()
        }
        DataType::Int64 => {
            let v = a.as_primitive::<Int64Type>();
            each(&|i| Value::from(v.value(i)))
        }
        DataType::Int32 => {
            let v = a.as_primitive::<Int32Type>();
            each(&|i| Value::from(v.value(i)))
        }
        DataType::Float64 => {
            let v = a.as_primitive::<Float64Type>();
            each(&|i| serde_json::Number::from_f64(v.value(i)).map(Value::Number).unwrap_or(Value::Null))
        }
        DataType::Boolean => {
            let v = a.as_boolean();
            each(&|i| Value::Bool(v.value(i)))
        }
        DataType::Date32 => {
            let v = a.as_primitive::<Date32Type>();
            each(&|i| Value::String(gold::warehouse::date_string(v.value(i))))
        }
        DataType::Decimal128(_, scale) => {
            let (v, scale) = (a.as_primitive::<Decimal128Type>(), *scale);
            each(&|i| Value::String(decimal_string(v.value(i), scale)))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let v = a.as_primitive::<TimestampMicrosecondType>();
            each(&|i| match chrono::DateTime::from_timestamp_micros(v.value(i)) {
                Some(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                None => Value::Null,
            })
        }
        _ => return Err(unsupported(table, column, a)),
    })
}

fn unsupported(table: &'static str, column: &str, a: &dyn Array) -> SilverReadError {
    SilverReadError::Unsupported { table, column: column.to_string(), data_type: a.data_type().clone() }
}

/// Unknown versions are the client's (400), expired ones are gone (410), unreachable storage
/// is 503, anything else 500.
impl From<SilverReadError> for super::error::ApiError {
    fn from(e: SilverReadError) -> Self {
        use super::error::ApiError;
        match &e {
            SilverReadError::UnknownVersion { .. } => ApiError::bad_request(format!("cursor: {e}")),
            SilverReadError::Expired { .. } => ApiError::new(axum::http::StatusCode::GONE, crate::exit::USAGE, e.to_string()),
            _ if e.is_transient() => ApiError::unavailable(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn decimals_are_exact_strings() {
        assert_eq!(decimal_string(199900, 4), "19.99");
        assert_eq!(decimal_string(199950, 4), "19.995");
        assert_eq!(decimal_string(-5, 4), "-0.0005");
        assert_eq!(decimal_string(0, 4), "0.00");
        assert_eq!(decimal_string(100, 2), "1.00");
        assert_eq!(decimal_string(7, 0), "7.00");
        assert_eq!(decimal_string(i128::from(i64::MAX), 4), "922337203685477.5807");
    }

    #[test]
    fn rows_as_json() {
        use arrow::array::{BooleanArray, Date32Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("d", DataType::Date32, true),
            Field::new("m", DataType::Decimal128(18, 4), true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a\"b"), None])),
                Arc::new(Int64Array::from(vec![Some(3), None])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(Date32Array::from(vec![Some(20_775), None])),
                Arc::new(Decimal128Array::from(vec![Some(123_4500), None]).with_precision_and_scale(18, 4).unwrap()),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_795_000_000_000_000), None]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let rows = json_rows("t", &[b]).unwrap();
        assert_eq!(
            Value::Object(rows[0].clone()),
            serde_json::json!({"s": "a\"b", "n": 3, "b": true, "d": "2026-11-18", "m": "123.45", "t": "2026-11-18T11:06:40Z"})
        );
        assert!(rows[1].values().all(Value::is_null));
    }
}
