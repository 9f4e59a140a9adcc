//! How gold values travel to the warehouse: PostgreSQL's binary and text COPY encodings and
//! SQLite's bound values, per column of a conformed gold batch.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, Float64Type, Int64Type};

use crate::models::{GoldTable, GoldType};
use super::Dialect;

/// A typed view of one column of a conformed gold batch.
pub(crate) enum Col<'a> {
    Date(&'a arrow::array::PrimitiveArray<Date32Type>),
    Text(&'a arrow::array::StringArray),
    Int(&'a arrow::array::PrimitiveArray<Int64Type>),
    Money(&'a arrow::array::PrimitiveArray<Decimal128Type>),
    Ratio(&'a arrow::array::PrimitiveArray<Float64Type>),
    Bool(&'a arrow::array::BooleanArray),
}

pub(crate) fn columns<'a>(t: &GoldTable, b: &'a RecordBatch) -> Vec<Col<'a>> {
    t.columns
        .iter()
        .zip(b.columns())
        .map(|(c, a)| match c.ty {
            GoldType::Date => Col::Date(a.as_primitive::<Date32Type>()),
            GoldType::Text => Col::Text(a.as_string::<i32>()),
            GoldType::Int => Col::Int(a.as_primitive::<Int64Type>()),
            GoldType::Money => Col::Money(a.as_primitive::<Decimal128Type>()),
            GoldType::Ratio => Col::Ratio(a.as_primitive::<Float64Type>()),
            GoldType::Bool => Col::Bool(a.as_boolean()),
        })
        .collect()
}

/// Largest magnitude, in cents, of a NUMERIC(18,2) value (16 integer digits).
const MAX_MONEY_CENTS: u128 = 10u128.pow(18) - 1;

/// Largest magnitude, in cents, that SQLite keeps to the cent: its NUMERIC affinity stores a
/// decimal as a REAL (a double), whose spacing stays under half a cent up to 2^45
/// (35,184,372,088,832.00; beyond it, even a correctly rounded conversion can be a cent off).
const MAX_SQLITE_MONEY_CENTS: u128 = (1u128 << 45) * 100;

/// Checks that every value of `batches` fits its warehouse column, before anything is written:
/// no NUL in text (PostgreSQL text cannot hold U+0000: silver rejects such values, so one here
/// is a bug, never to be stripped silently) and money within NUMERIC(18,2), and in SQLite
/// within what a double holds to the cent (a larger value would lose cents silently). The error is (column, 0-based row across the batches, message).
pub(crate) fn check_loadable(t: &GoldTable, batches: &[RecordBatch], dialect: Dialect) -> Result<(), (String, usize, String)> {
    let (max_cents, limit) = match dialect {
        Dialect::Postgres => (MAX_MONEY_CENTS, "does not fit NUMERIC(18,2)"),
        Dialect::Sqlite => (MAX_SQLITE_MONEY_CENTS, "is beyond ±35184372088832.00, the largest amount SQLite (which stores it as a double) holds to the cent (use the PostgreSQL warehouse for such amounts)"),
    };
    let mut base = 0;
    for b in batches {
        for (c, col) in t.columns.iter().zip(columns(t, b)) {
            let bad = match col {
                Col::Text(a) => (0..a.len()).find(|&r| a.is_valid(r) && a.value(r).contains('\0')).map(|r| (r, "text contains NUL (U+0000)".to_string())),
                Col::Money(a) => (0..a.len())
                    .find(|&r| a.is_valid(r) && a.value(r).unsigned_abs() > max_cents)
                    .map(|r| (r, format!("{} {limit}", money_string(a.value(r))))),
                _ => None,
            };
            if let Some((r, message)) = bad {
                return Err((c.name.clone(), base + r, message));
            }
        }
        base += b.num_rows();
    }
    Ok(())
}

/// Days between 1970-01-01 and 2000-01-01 (PostgreSQL's date epoch).
const PG_EPOCH_DAYS: i32 = 10_957;

pub fn date_string(days: i32) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days as i64)).format("%Y-%m-%d").to_string()
}

/// Cents as a decimal string with two places: -1234 → "-12.34".
pub fn money_string(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// PostgreSQL's binary NUMERIC for `cents` / 100: base-10000 digits, weight, sign, dscale 2.
pub fn pg_numeric(cents: i128, out: &mut Vec<u8>) {
    let a = cents.unsigned_abs();
    let (mut int, frac) = (a / 100, (a % 100) as i16 * 100);
    let mut digits: Vec<i16> = Vec::new();
    while int > 0 {
        digits.push((int % 10_000) as i16);
        int /= 10_000;
    }
    digits.reverse();
    let weight = digits.len() as i16 - 1;
    if frac != 0 {
        digits.push(frac);
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let (weight, sign) = if digits.is_empty() { (0, 0u16) } else { (weight, if cents < 0 { 0x4000 } else { 0 }) };
    out.extend_from_slice(&(8 + 2 * digits.len() as i32).to_be_bytes());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&2u16.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

fn copy_text_escape(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        format!("{v:?}")
    }
}

impl Col<'_> {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Col::Date(a) => a.is_null(row),
            Col::Text(a) => a.is_null(row),
            Col::Int(a) => a.is_null(row),
            Col::Money(a) => a.is_null(row),
            Col::Ratio(a) => a.is_null(row),
            Col::Bool(a) => a.is_null(row),
        }
    }

    pub(crate) fn write_binary(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return;
        }
        match self {
            Col::Date(a) => {
                out.extend_from_slice(&4i32.to_be_bytes());
                out.extend_from_slice(&(a.value(row) - PG_EPOCH_DAYS).to_be_bytes());
            }
            Col::Text(a) => {
                let v = a.value(row).as_bytes();
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            Col::Int(a) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&a.value(row).to_be_bytes());
            }
            Col::Money(a) => pg_numeric(a.value(row), out),
            Col::Ratio(a) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&a.value(row).to_be_bytes());
            }
            Col::Bool(a) => {
                out.extend_from_slice(&1i32.to_be_bytes());
                out.push(a.value(row) as u8);
            }
        }
    }

    pub(crate) fn write_text(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(b"\\N");
            return;
        }
        match self {
            Col::Date(a) => out.extend_from_slice(date_string(a.value(row)).as_bytes()),
            Col::Text(a) => copy_text_escape(a.value(row), out),
            Col::Int(a) => out.extend_from_slice(a.value(row).to_string().as_bytes()),
            Col::Money(a) => out.extend_from_slice(money_string(a.value(row)).as_bytes()),
            Col::Ratio(a) => out.extend_from_slice(float_text(a.value(row)).as_bytes()),
            Col::Bool(a) => out.push(if a.value(row) { b't' } else { b'f' }),
        }
    }

    pub(crate) fn bind_sqlite<'q>(&self, row: usize, b: &mut sqlx::query_builder::Separated<'_, 'q, sqlx::Sqlite, &'static str>) {
        let null = self.is_null(row);
        match self {
            Col::Date(a) => b.push_bind((!null).then(|| date_string(a.value(row)))),
            // Money goes in as its exact decimal text; the column's NUMERIC affinity stores it
            // as a number, so SQL arithmetic and BI tools see numbers.
            Col::Text(a) => b.push_bind((!null).then(|| a.value(row).to_string())),
            Col::Int(a) => b.push_bind((!null).then(|| a.value(row))),
            Col::Money(a) => b.push_bind((!null).then(|| money_string(a.value(row)))),
            Col::Ratio(a) => b.push_bind((!null).then(|| a.value(row))),
            Col::Bool(a) => b.push_bind((!null).then(|| a.value(row))),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_encoding() {
        let enc = |c: i128| {
            let mut v = Vec::new();
            pg_numeric(c, &mut v);
            let n = i16::from_be_bytes([v[4], v[5]]);
            let w = i16::from_be_bytes([v[6], v[7]]);
            let s = u16::from_be_bytes([v[8], v[9]]);
            let digits: Vec<i16> = (0..n as usize).map(|i| i16::from_be_bytes([v[12 + 2 * i], v[13 + 2 * i]])).collect();
            (w, s, digits)
        };
        assert_eq!(enc(0), (0, 0, vec![]));
        assert_eq!(enc(1), (-1, 0, vec![100])); // 0.01
        assert_eq!(enc(-1234), (0, 0x4000, vec![12, 3400])); // -12.34
        assert_eq!(enc(1_000_000), (1, 0, vec![1])); // 10000.00
        assert_eq!(enc(123_456_789_05), (2, 0, vec![1, 2345, 6789, 500])); // 123456789.05
        assert_eq!(enc(999_999_999_999_999_999), (3, 0, vec![9999, 9999, 9999, 9999, 9900])); // 9999999999999999.99
    }

    #[test]
    fn unloadable_values_are_found_before_loading() {
        use crate::models::{GoldColumn, GoldType};
        use arrow::array::{Decimal128Array, StringArray};
        use std::sync::Arc;
        let col = |name: &str, ty| GoldColumn { name: name.into(), ty, nullable: true, doc: String::new(), accepted_values: Vec::new() };
        let t = GoldTable {
            name: "t".into(),
            doc: String::new(),
            date_column: None,
            grain: Vec::new(),
            indexes: Vec::new(),
            columns: vec![col("name", GoldType::Text), col("amount", GoldType::Money)],
            incremental: None,
        };
        let batch = |names: Vec<Option<&str>>, cents: Vec<Option<i128>>| {
            let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("name", arrow::datatypes::DataType::Utf8, true),
                arrow::datatypes::Field::new("amount", arrow::datatypes::DataType::Decimal128(18, 2), true),
            ]));
            let amounts = Decimal128Array::from(cents).with_precision_and_scale(18, 2).unwrap();
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(names)), Arc::new(amounts)]).unwrap()
        };
        let ok = batch(vec![Some("a"), None], vec![Some(MAX_MONEY_CENTS as i128), Some(-(MAX_MONEY_CENTS as i128))]);
        let pg = Dialect::Postgres;
        assert_eq!(check_loadable(&t, &[ok.clone()], pg), Ok(()));
        let nul = batch(vec![Some("ok"), Some("Lamp\0")], vec![Some(1), Some(1)]);
        let (c, row, msg) = check_loadable(&t, &[ok.clone(), nul], pg).unwrap_err();
        assert_eq!((c.as_str(), row), ("name", 3));
        assert!(msg.contains("NUL"), "{msg}");
        let big = batch(vec![Some("a")], vec![Some(MAX_MONEY_CENTS as i128 + 1)]);
        assert_eq!(check_loadable(&t, &[big], pg).unwrap_err().0, "amount");
        // SQLite holds ±35,184,372,088,832.00 to the cent, not one cent more.
        let sqlite = Dialect::Sqlite;
        let edge = batch(vec![Some("a"), Some("b")], vec![Some(3_518_437_208_883_200), Some(-3_518_437_208_883_200)]);
        assert_eq!(check_loadable(&t, &[edge], sqlite), Ok(()));
        let over = batch(vec![Some("a")], vec![Some(3_518_437_208_883_201)]);
        let (c, row, msg) = check_loadable(&t, &[over], sqlite).unwrap_err();
        assert_eq!((c.as_str(), row), ("amount", 0));
        assert!(msg.contains("35184372088832.01 is beyond"), "{msg}");
        // Every amount up to the bound survives SQLite's text -> double -> cents unchanged
        // (the largest ones, where the double's spacing is closest to a cent).
        for cents in [3_518_437_208_883_200i128, 3_518_437_208_883_199, 2_468_888_866_668_889, 1_759_218_604_441_601] {
            let text = money_string(cents);
            let back = (text.parse::<f64>().unwrap() * 100.0).round() as i128;
            assert_eq!(back, cents, "{text}");
        }
    }

    #[test]
    fn text_renderings() {
        assert_eq!(money_string(-5), "-0.05");
        assert_eq!(money_string(123456), "1234.56");
        assert_eq!(date_string(20_411), "2025-11-19");
        assert_eq!(date_string(0), "1970-01-01");
        let mut out = Vec::new();
        copy_text_escape("a\tb\\c\nd", &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd");
        assert_eq!(float_text(0.1), "0.1");
        assert_eq!(float_text(1.0), "1.0");
    }

}
