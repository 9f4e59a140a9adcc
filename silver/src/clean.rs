//! Cleaning and validation of one bronze feed with Polars: every value rule and dataset rule
//! of the contract, one reason per rejected row (the first failing column in contract order),
//! warn rules that null the value and count a warning.
//!
//! Each column is parsed by a Polars expression whose function is the contract's own value
//! rule (`schemas::values`), so silver cannot drift from the contract's definition of a valid
//! amount, date or code.

use std::collections::BTreeMap;

use polars::prelude::*;
use schemas::values;
use schemas::{ColumnType, Dataset, Rule};

/// Name of the column holding the rejection reason (null for valid rows).
pub const REASON: &str = "_reason";
/// Every lineage column bronze adds (never renamed, never part of the raw JSON).
const BRONZE_LINEAGE: [&str; 6] = ["_feed_id", "_source_file", "_row_number", "_line_number", "_raw_line", "_ingested_at"];
/// Bronze lineage columns carried into silver.
pub const LINEAGE: [&str; 4] = ["_feed_id", "_source_file", "_row_number", "_line_number"];

/// A feed after cleaning.
pub struct Cleaned {
    /// Valid rows: typed contract columns, lineage, warnings applied (values nulled).
    pub valid: DataFrame,
    /// Rejected rows: lineage, `_reason` and `_raw` (the raw values as a JSON object, or the
    /// raw line of a malformed row).
    pub rejected: DataFrame,
    /// Warning code → count (`invalid_email`, `invalid_country`).
    pub warnings: BTreeMap<String, u64>,
}

fn money_bounds(rules: &[Rule]) -> (Option<i64>, Option<i64>, Option<i64>) {
    let mut min = None;
    let mut max = None;
    let mut gt = None;
    for r in rules {
        match r {
            Rule::Min(v) => min = Some(*v),
            Rule::Max(v) => max = Some(*v),
            Rule::GreaterThan(v) => gt = Some(*v),
            _ => {}
        }
    }
    (min, max, gt)
}

fn in_bounds(v: i64, scale: i64, rules: &[Rule]) -> bool {
    let (min, max, gt) = money_bounds(rules);
    min.is_none_or(|m| v >= m * scale) && max.is_none_or(|m| v <= m * scale) && gt.is_none_or(|m| v > m * scale)
}

/// Applies the string rules (case, Title Case, length); None when a rule fails.
fn string_rules(s: String, rules: &[Rule]) -> Option<String> {
    let mut s = s;
    for r in rules {
        match r {
            Rule::Upper => s = s.to_uppercase(),
            Rule::Lower => s = s.to_lowercase(),
            Rule::TitleCase => s = values::title_case(&s),
            Rule::MaxLen(n) if s.chars().count() > *n => return None,
            Rule::EmailWarn if !values::is_valid_email(&s) => return None,
            Rule::CountryWarn if !values::is_valid_country(&s) => return None,
            _ => {}
        }
    }
    Some(s)
}

/// The Polars dtype a contract type is stored as in silver.
pub fn dtype(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String | ColumnType::Currency | ColumnType::Enum(_) => DataType::String,
        ColumnType::Money | ColumnType::Decimal => DataType::Decimal(18, 4),
        ColumnType::Int => DataType::Int64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date,
        ColumnType::Timestamp => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
    }
}

/// Parses a raw string column into its typed column; invalid or empty values become null.
fn parse_column(c: &Column, ty: ColumnType, rules: &'static [Rule]) -> PolarsResult<Column> {
    let name = c.name().clone();
    let s = c.str()?;
    let raw = s.iter().map(values::normalize);
    let out: Series = match ty {
        ColumnType::String => {
            let ca: StringChunked = s.iter().map(|v| values::clean_string(v).and_then(|v| string_rules(v, rules))).collect();
            ca.into_series()
        }
        ColumnType::Money | ColumnType::Decimal => {
            let ca: Int128Chunked = raw
                .map(|v| v.and_then(values::parse_money).filter(|m| in_bounds(*m, values::SCALE_FACTOR, rules)).map(i128::from))
                .collect();
            ca.into_decimal_unchecked(18, 4).into_series()
        }
        ColumnType::Int => {
            let ca: Int64Chunked = raw.map(|v| v.and_then(values::parse_int).filter(|i| in_bounds(*i, 1, rules))).collect();
            ca.into_series()
        }
        ColumnType::Bool => {
            let ca: BooleanChunked = raw.map(|v| v.and_then(values::parse_bool)).collect();
            ca.into_series()
        }
        ColumnType::Date => {
            let ca: Int32Chunked = raw.map(|v| v.and_then(values::parse_date)).collect();
            ca.into_date().into_series()
        }
        ColumnType::Timestamp => {
            let ca: Int64Chunked = raw.map(|v| v.and_then(values::parse_timestamp)).collect();
            ca.into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)).into_series()
        }
        ColumnType::Currency => {
            let ca: StringChunked = raw.map(|v| v.and_then(values::parse_currency)).collect();
            ca.into_series()
        }
        ColumnType::Enum(values) => {
            let ca: StringChunked = raw.map(|v| v.and_then(|s| values.parse(s))).collect();
            ca.into_series()
        }
    };
    Ok(out.with_name(name).into_column())
}

fn present(raw: &str) -> Expr {
    col(raw).str().strip_chars(lit(NULL)).str().len_bytes().gt(lit(0)).fill_null(lit(false))
}

fn raw_name(c: &str) -> String {
    format!("_raw_{c}")
}

/// Cleans one bronze feed. `df` holds the bronze columns (strings) and lineage.
pub fn clean_feed(dataset: Dataset, df: DataFrame) -> PolarsResult<Cleaned> {
    let columns = dataset.columns();
    let header: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    let has = |c: &str| header.iter().any(|h| h == c);

    // 0. Only contract and lineage columns keep their names. Every other column (schema
    // drift) is renamed by position to `_EXTRA_<i>`, a name no header can have (bronze
    // lower-cases headers), so that no header name can collide with a helper column below
    // (`_raw_<col>`, `_present_<col>`, `_reason`, `_warn_<code>`) or be read as a Polars
    // pattern (`*`, `^…$`). The raw JSON of rejected rows keeps the names as sent.
    let mut fields: Vec<(String, String)> = Vec::new(); // (name as sent, column name here)
    let renamed: Vec<Column> = df
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c.name().to_string();
            if dataset.column(&name).is_some() {
                fields.push((name.clone(), raw_name(&name)));
                c.clone()
            } else if BRONZE_LINEAGE.contains(&name.as_str()) {
                c.clone()
            } else {
                let internal = format!("_EXTRA_{i}");
                fields.push((name, internal.clone()));
                c.clone().with_name(internal.into())
            }
        })
        .collect();
    let df = DataFrame::new_infer_height(renamed)?;

    // 1. Keep the raw values under `_raw_<col>`; absent optional columns are null strings.
    let mut lf = df.lazy();
    let raw_cols: Vec<Expr> = columns
        .iter()
        .map(|c| if has(c.name) { col(c.name).alias(raw_name(c.name)) } else { lit(NULL).cast(DataType::String).alias(raw_name(c.name)) })
        .collect();
    lf = lf.with_columns(raw_cols);
    if !has("_raw_line") {
        lf = lf.with_column(lit(NULL).cast(DataType::String).alias("_raw_line"));
    }

    // 2. Typed values and, per column, whether it is present.
    let mut typed = Vec::new();
    for c in columns {
        let (ty, rules) = (c.ty, c.rules);
        let out = dtype(ty);
        typed.push(
            col(raw_name(c.name))
                .map(move |s| parse_column(&s, ty, rules), move |_, f| Ok(Field::new(f.name().clone(), out.clone())))
                .alias(c.name),
        );
        typed.push(present(&raw_name(c.name)).alias(format!("_present_{}", c.name)));
    }
    lf = lf.with_columns(typed);

    // 3. The reason: malformed first, then the first failing column in contract order.
    // `when(false)` seeds a chain so that every column adds one more `when`.
    let mut reason = when(col("_raw_line").is_not_null()).then(lit("malformed_row")).when(lit(false)).then(lit(NULL).cast(DataType::String));
    let mut warn_cols = Vec::new();
    for c in columns {
        let p = col(format!("_present_{}", c.name));
        let v = col(c.name);
        let is_warn = c.rules.iter().any(|r| matches!(r, Rule::EmailWarn | Rule::CountryWarn));
        if c.required {
            reason = reason.when(p.clone().not()).then(lit(format!("missing_{}", c.name)));
        }
        if is_warn {
            // A warn rule keeps the row, but NUL is invalid in any column (CONTRACT.md §1).
            let nul = col(raw_name(c.name)).str().contains_literal(lit("\0")).fill_null(lit(false));
            reason = reason.when(nul.clone()).then(lit(format!("invalid_{}", c.name)));
            let code = if c.rules.contains(&Rule::EmailWarn) { "invalid_email" } else { "invalid_country" };
            warn_cols.push((code, p.clone().and(v.clone().is_null()).and(nul.not())));
        } else {
            reason = reason.when(p.clone().and(v.clone().is_null())).then(lit(format!("invalid_{}", c.name)));
        }
        for r in c.rules {
            if let Rule::NotBefore(other) = r {
                reason = reason.when(v.clone().is_not_null().and(col(*other).is_not_null()).and(v.clone().lt(col(*other)))).then(lit("invalid_range"));
            }
        }
    }
    let reason = reason.otherwise(lit(NULL).cast(DataType::String)).alias(REASON);
    let mut warn_exprs = Vec::new();
    for (code, e) in &warn_cols {
        warn_exprs.push(e.clone().alias(format!("_warn_{code}")));
    }
    lf = lf.with_column(reason).with_columns(warn_exprs);
    let all = lf.collect()?;

    // 4. Split.
    let is_rejected = all.column(REASON)?.is_not_null();
    let rejected_all = all.filter(&is_rejected)?;
    let valid_all = all.filter(&!&is_rejected)?;

    let mut warnings = BTreeMap::new();
    for (code, _) in &warn_cols {
        let n = valid_all.column(&format!("_warn_{code}"))?.bool()?.sum().unwrap_or(0) as u64;
        if n > 0 {
            warnings.insert(code.to_string(), n);
        }
    }

    // Valid rows: contract columns with defaults, plus lineage.
    let mut keep: Vec<Expr> = Vec::new();
    for c in columns {
        let default = c.rules.iter().find_map(|r| if let Rule::Default(v) = r { Some(*v) } else { None });
        let e = match (default, c.ty) {
            (Some(d), ColumnType::Currency) => col(c.name).fill_null(lit(d)),
            (Some(d), ColumnType::Decimal | ColumnType::Money) => col(c.name).fill_null(
                lit(values::parse_money(d).expect("contract default parses") as i128).cast(DataType::Int128).cast(DataType::Decimal(18, 4)),
            ),
            (Some(d), ColumnType::Int) => col(c.name).fill_null(lit(values::parse_int(d).expect("contract default parses"))),
            (Some(d), ColumnType::Bool) => col(c.name).fill_null(lit(values::parse_bool(d).expect("contract default parses"))),
            _ => col(c.name),
        };
        keep.push(e.alias(c.name));
    }
    for l in LINEAGE {
        keep.push(col(l));
    }
    let valid = valid_all.lazy().select(keep).collect()?;

    // Rejected rows: lineage, reason and the raw values as sent.
    let raw_json = raw_values_json(&rejected_all, &fields)?;
    let mut rejected = rejected_all.select(LINEAGE.iter().copied().chain([REASON]))?;
    rejected.with_column(Column::new("_raw".into(), raw_json))?;
    Ok(Cleaned { valid, rejected, warnings })
}

/// The raw values of rejected rows as JSON objects (header order, extra columns included), or
/// the raw line for malformed rows.
/// `fields`: (name as sent, column holding its raw value), in header order.
fn raw_values_json(df: &DataFrame, fields: &[(String, String)]) -> PolarsResult<Vec<String>> {
    let n = df.height();
    let cols: Vec<(&str, Column)> =
        fields.iter().map(|(h, name)| df.column(name).cloned().map(|c| (h.as_str(), c))).collect::<PolarsResult<_>>()?;
    let raw_line = df.column("_raw_line")?.str()?.clone();
    let strs: Vec<&StringChunked> = cols.iter().map(|(_, c)| c.str()).collect::<PolarsResult<_>>()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(line) = raw_line.get(i) {
            out.push(line.to_string());
            continue;
        }
        let mut obj = serde_json::Map::new();
        for ((name, _), ca) in cols.iter().zip(&strs) {
            obj.insert((*name).to_string(), ca.get(i).map_or(serde_json::Value::Null, |v| serde_json::Value::String(v.to_string())));
        }
        out.push(serde_json::Value::Object(obj).to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bronze(cols: &[(&str, Vec<Option<&str>>)]) -> DataFrame {
        let n = cols[0].1.len();
        let mut columns: Vec<Column> = cols.iter().map(|(name, v)| Column::new((*name).into(), v.clone())).collect();
        columns.push(Column::new("_feed_id".into(), vec!["FD00001"; n]));
        columns.push(Column::new("_source_file".into(), vec!["f.csv"; n]));
        columns.push(Column::new("_row_number".into(), (1..=n as i64).collect::<Vec<_>>()));
        columns.push(Column::new("_line_number".into(), (2..=n as i64 + 1).collect::<Vec<_>>()));
        columns.push(Column::new("_raw_line".into(), vec![None::<&str>; n]));
        DataFrame::new_infer_height(columns).unwrap()
    }

    fn reasons(c: &Cleaned) -> Vec<String> {
        c.rejected.column(REASON).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
    }

    #[test]
    fn products_reasons_in_column_order() {
        let df = bronze(&[
            ("sku", vec![Some(" ab-1 "), Some(""), Some("x"), Some("y"), Some("z"), Some("q"), Some(&"L".repeat(65))]),
            ("name", vec![Some(" Big   Lamp "), Some("n"), None, Some("n"), Some("n"), Some("n"), Some("n")]),
            ("category", vec![Some("home & GARDEN"), Some("c"), Some("c"), Some("c"), Some("c"), Some("c"), Some("c")]),
            ("price", vec![Some("$1,234.50"), Some("1"), Some("1"), Some("12.34567"), Some("-1"), Some("1"), Some("1")]),
            ("quantity", vec![Some("3"), Some("1"), Some("1"), Some("1"), Some("1"), Some("3.0"), Some("1")]),
        ]);
        let c = clean_feed(Dataset::Products, df).unwrap();
        assert_eq!(reasons(&c), vec!["missing_sku", "missing_name", "invalid_price", "invalid_price", "invalid_quantity", "invalid_sku"]);
        assert_eq!(c.valid.height(), 1);
        let v = &c.valid;
        assert_eq!(v.column("sku").unwrap().str().unwrap().get(0), Some("AB-1"));
        assert_eq!(v.column("name").unwrap().str().unwrap().get(0), Some("Big Lamp"));
        assert_eq!(v.column("category").unwrap().str().unwrap().get(0), Some("Home & Garden"));
        assert_eq!(v.column("currency").unwrap().str().unwrap().get(0), Some("USD"), "absent currency defaults to USD");
        let price = v.column("price").unwrap().cast(&DataType::String).unwrap();
        assert_eq!(price.str().unwrap().get(0), Some("1234.5000"));
        let raw: String = c.rejected.column("_raw").unwrap().str().unwrap().get(0).unwrap().to_string();
        assert!(raw.contains("\"sku\":\"\"") && raw.contains("\"price\":\"1\""), "{raw}");
    }

    #[test]
    fn warnings_keep_the_row() {
        let df = bronze(&[
            ("customer_id", vec![Some("C1"), Some("C2"), Some("C3")]),
            ("email", vec![Some(" A@Example.COM "), Some("not-an-email"), None]),
            ("country", vec![Some("us"), Some("USA"), Some("U1")]),
            ("signup_date", vec![Some("2026-11-20T01:00:00+02:00"), None, Some("2026-02-30")]),
        ]);
        let c = clean_feed(Dataset::Customers, df).unwrap();
        assert_eq!(reasons(&c), vec!["invalid_signup_date"]);
        assert_eq!(c.valid.height(), 2);
        assert_eq!(c.valid.column("email").unwrap().str().unwrap().get(0), Some("a@example.com"));
        assert_eq!(c.valid.column("email").unwrap().str().unwrap().get(1), None);
        assert_eq!(c.valid.column("country").unwrap().str().unwrap().get(0), Some("US"));
        assert_eq!(c.valid.column("country").unwrap().str().unwrap().get(1), None);
        let d = c.valid.column("signup_date").unwrap().cast(&DataType::String).unwrap();
        assert_eq!(d.str().unwrap().get(0), Some("2026-11-19"));
        assert_eq!(c.warnings.get("invalid_email"), Some(&1));
        assert_eq!(c.warnings.get("invalid_country"), Some(&1));
    }

    #[test]
    fn campaigns_range_and_items_defaults() {
        let df = bronze(&[
            ("campaign_id", vec![Some("K1"), Some("K2"), Some("K3")]),
            ("name", vec![Some("n"), Some("n"), Some("n")]),
            ("start_date", vec![Some("2026-11-10"), Some("2026-11-10"), Some("2026-11-10")]),
            ("end_date", vec![Some("2026-11-09"), Some("2026-11-10"), Some("soon")]),
            ("budget", vec![Some("0"), None, Some("5")]),
        ]);
        let c = clean_feed(Dataset::Campaigns, df).unwrap();
        assert_eq!(reasons(&c), vec!["invalid_range", "invalid_end_date"]);
        let df = bronze(&[
            ("order_id", vec![Some("O1"), Some("O1"), Some("O1"), Some("O1")]),
            ("line_number", vec![Some("1"), Some("0"), Some("2"), Some("3")]),
            ("sku", vec![Some("a"), Some("a"), Some("a"), Some("a")]),
            ("quantity", vec![Some("2"), Some("1"), Some("0"), Some("1")]),
            ("unit_price", vec![Some("10"), Some("1"), Some("1"), Some("1")]),
            ("discount", vec![None, None, None, Some("1.5")]),
        ]);
        let c = clean_feed(Dataset::OrderItems, df).unwrap();
        assert_eq!(reasons(&c), vec!["invalid_line_number", "invalid_quantity", "invalid_discount"]);
        let v = &c.valid;
        assert_eq!(v.column("sku").unwrap().str().unwrap().get(0), Some("A"));
        assert_eq!(v.column("discount").unwrap().cast(&DataType::String).unwrap().str().unwrap().get(0), Some("0.0000"));
        assert_eq!(v.column("returned").unwrap().bool().unwrap().get(0), Some(false));
    }

    #[test]
    fn malformed_rows_are_rejected_with_their_line() {
        let mut df = bronze(&[("order_id", vec![Some("O1"), None]), ("customer_id", vec![Some("C"), None])]);
        df.with_column(Column::new("_raw_line".into(), vec![None, Some("O2,C,x,y,z")])).unwrap();
        df.with_column(Column::new("order_date".into(), vec![Some("2026-11-20"), None])).unwrap();
        df.with_column(Column::new("status".into(), vec![Some("Canceled"), None])).unwrap();
        let c = clean_feed(Dataset::Orders, df).unwrap();
        assert_eq!(reasons(&c), vec!["malformed_row"]);
        assert_eq!(c.rejected.column("_raw").unwrap().str().unwrap().get(0), Some("O2,C,x,y,z"));
        assert_eq!(c.valid.column("status").unwrap().str().unwrap().get(0), Some("cancelled"));
    }

    /// CONTRACT.md §1: a value containing NUL is invalid in any column, strings and warn
    /// columns included (no warehouse text type can hold it).
    #[test]
    fn nul_is_invalid_in_every_column() {
        let df = bronze(&[
            ("sku", vec![Some("A"), Some("B"), Some("C\0"), Some("D")]),
            ("name", vec![Some("Lamp\0 deluxe"), Some("n"), Some("n"), Some("n")]),
            ("category", vec![Some("c"), Some("c"), Some("c"), Some("c")]),
            ("price", vec![Some("1"), Some("1\0"), Some("1"), Some("1")]),
        ]);
        let c = clean_feed(Dataset::Products, df).unwrap();
        assert_eq!(reasons(&c), vec!["invalid_name", "invalid_price", "invalid_sku"]);
        assert_eq!(c.valid.height(), 1);
        let raw = c.rejected.column("_raw").unwrap().str().unwrap().get(0).unwrap().to_string();
        assert!(raw.contains("Lamp\\u0000 deluxe"), "the raw value is kept as sent: {raw}");
        let df = bronze(&[
            ("customer_id", vec![Some("C1"), Some("C2"), Some("C3")]),
            ("email", vec![Some("a\0@b.co"), Some("bad"), Some("a@b.co")]),
            ("country", vec![Some("us"), Some("us"), Some("u\0")]),
        ]);
        let c = clean_feed(Dataset::Customers, df).unwrap();
        assert_eq!(reasons(&c), vec!["invalid_email", "invalid_country"], "warn rules keep a row, NUL does not");
        assert_eq!(c.warnings.get("invalid_email"), Some(&1));
    }

    /// Extra columns named like a helper column, a lineage-looking name or a Polars pattern
    /// neither crash cleaning nor shadow a contract column; the raw JSON keeps their names.
    #[test]
    fn extra_columns_never_collide_with_helpers() {
        let n = |v: &'static str| vec![Some(v), Some(v)];
        let df = bronze(&[
            ("sku", vec![Some("A"), Some("B")]),
            ("_present_sku", n("false")),
            ("_raw_sku", n("zzz")),
            ("name", vec![Some("n"), None]),
            ("_reason", n("nope")),
            ("_warn_invalid_email", n("true")),
            ("*", n("star")),
            ("^.*$", n("regex")),
            ("_extra_0", n("e")),
            ("_EXTRA_1", n("E")),
            ("category", n("c")),
            ("price", n("1")),
        ]);
        let c = clean_feed(Dataset::Products, df).unwrap();
        assert_eq!(reasons(&c), vec!["missing_name"]);
        assert_eq!(c.valid.column("sku").unwrap().str().unwrap().get(0), Some("A"));
        let raw = c.rejected.column("_raw").unwrap().str().unwrap().get(0).unwrap().to_string();
        for part in [r#""_present_sku":"false""#, r#""_raw_sku":"zzz""#, r#""sku":"B""#, r#""*":"star""#, r#""_extra_0":"e""#, r#""_EXTRA_1":"E""#] {
            assert!(raw.contains(part), "{part} in {raw}");
        }
    }

    fn valid_sample(c: &schemas::Column) -> &'static str {
        if c.rules.contains(&Rule::EmailWarn) {
            return "a@b.co";
        }
        if c.rules.contains(&Rule::CountryWarn) {
            return "us";
        }
        match c.ty {
            ColumnType::String => "x",
            ColumnType::Money | ColumnType::Decimal => "0.5",
            ColumnType::Int => "1",
            ColumnType::Bool => "true",
            ColumnType::Date => "2026-11-20",
            ColumnType::Timestamp => "2026-11-20T10:00:00Z",
            ColumnType::Currency => "usd",
            ColumnType::Enum(_) => "completed",
        }
    }

    fn invalid_sample(c: &schemas::Column) -> Option<&'static str> {
        Some(match c.ty {
            ColumnType::String if c.rules.iter().any(|r| matches!(r, Rule::MaxLen(_))) => {
                "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
            }
            ColumnType::String => return None,
            ColumnType::Money | ColumnType::Decimal => "12.34567",
            ColumnType::Int => "1.5",
            ColumnType::Bool => "maybe",
            ColumnType::Date => "2026-13-01",
            ColumnType::Timestamp => "2026-11-20T10:00",
            ColumnType::Currency => "dollars",
            ColumnType::Enum(_) => "shipped",
        })
    }

    /// Every reason code of the contract, derived from the contract itself: for each dataset
    /// and column, a missing required value and a present invalid value, one per row, each
    /// rejected with exactly its own code (warn rules keep the row instead).
    #[test]
    fn every_reason_code_of_every_dataset() {
        for dataset in Dataset::ALL {
            let cols = dataset.columns();
            let mut rows: Vec<Vec<Option<&str>>> = Vec::new();
            let mut expected: Vec<String> = Vec::new();
            let mut warned = 0;
            for (i, c) in cols.iter().enumerate() {
                let base: Vec<Option<&str>> = cols.iter().map(|c| Some(valid_sample(c))).collect();
                if c.required {
                    let mut r = base.clone();
                    r[i] = Some("   ");
                    rows.push(r);
                    expected.push(format!("missing_{}", c.name));
                }
                let is_warn = c.rules.iter().any(|r| matches!(r, Rule::EmailWarn | Rule::CountryWarn));
                if is_warn {
                    let mut r = base.clone();
                    r[i] = Some("not valid");
                    rows.push(r);
                    warned += 1;
                } else if let Some(bad) = invalid_sample(c) {
                    let mut r = base.clone();
                    r[i] = Some(bad);
                    rows.push(r);
                    expected.push(format!("invalid_{}", c.name));
                }
                for rule in c.rules {
                    match rule {
                        Rule::Min(_) | Rule::GreaterThan(_) if matches!(c.ty, ColumnType::Int | ColumnType::Money | ColumnType::Decimal) => {
                            let mut r = base.clone();
                            r[i] = Some("-1");
                            rows.push(r);
                            expected.push(format!("invalid_{}", c.name));
                        }
                        Rule::Max(_) => {
                            let mut r = base.clone();
                            r[i] = Some("1.5");
                            rows.push(r);
                            expected.push(format!("invalid_{}", c.name));
                        }
                        Rule::NotBefore(other) => {
                            let mut r = base.clone();
                            let j = cols.iter().position(|c| c.name == *other).unwrap();
                            r[j] = Some("2026-11-21");
                            rows.push(r);
                            expected.push("invalid_range".into());
                        }
                        _ => {}
                    }
                }
            }
            // one fully valid row
            rows.push(cols.iter().map(|c| Some(valid_sample(c))).collect());
            let columns: Vec<(&str, Vec<Option<&str>>)> =
                cols.iter().enumerate().map(|(i, c)| (c.name, rows.iter().map(|r| r[i]).collect())).collect();
            let c = clean_feed(dataset, bronze(&columns)).unwrap();
            assert_eq!(reasons(&c), expected, "{dataset}");
            assert_eq!(c.valid.height(), 1 + warned, "{dataset}");
            assert_eq!(c.warnings.values().sum::<u64>(), warned as u64, "{dataset}");
        }
    }
}
