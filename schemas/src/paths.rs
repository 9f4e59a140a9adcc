//! Where everything lives in the lake. Stages meet only here: nothing else builds lake paths.
//!
//! ```text
//! raw/{dataset}/partner={p}/ingest_date={d}/{sha256[..16]}/{file name}   immutable raw copies
//! bronze/{dataset}/partner={p}/ingest_date={d}/{feed id}.parquet          bronze, values as strings
//! bronze/_registry/feeds/{feed id}.json                                   feed registry
//! bronze/_registry/keys/{d}/{p}/{dataset}/{sha256}.json                   content-hash index
//! silver/{table}/                                                         Delta tables
//! silver/_runs/{d}.json                                                   silver run records
//! gold/{table}/{date column}={d}/part-0.parquet                          gold, dated tables
//! gold/{table}/part-0.parquet                                             gold, undated tables
//! ```
//! Partner ids and file names are validated before they reach these functions
//! (`contract::validate_partner_id`, `contract::validate_file_name`); [`LakePath`]
//! additionally percent-encodes anything that could act as a separator, so no path can escape
//! the lake. The encoding is object_store's (`PathPart`), byte for byte: the `lake` crate turns a
//! `LakePath` into an `object_store::path::Path` without re-encoding it.

use std::fmt;

use crate::contract::Dataset;
use crate::run_date::RunDate;

/// A path inside the lake: `/`-separated segments, each already percent-encoded (see
/// [`encode_segment`]), never empty, never `.` or `..`. Pure: the `lake` crate converts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LakePath(String);

impl LakePath {
    /// A trusted constant base (it may contain `/`; empty segments are dropped). Each segment
    /// is encoded like any other.
    pub fn from_base(base: &str) -> LakePath {
        base.split('/').filter(|s| !s.is_empty()).fold(LakePath::default(), LakePath::join)
    }

    /// Appends one segment, percent-encoded: a `/` in it can never separate.
    pub fn join(self, segment: &str) -> LakePath {
        let encoded = encode_segment(segment);
        if self.0.is_empty() {
            LakePath(encoded)
        } else {
            LakePath(format!("{}/{encoded}", self.0))
        }
    }

    /// The encoded path, as object_store spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The encoded segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// Whether `prefix` is this path or one of its ancestors (whole segments).
    pub fn starts_with(&self, prefix: &LakePath) -> bool {
        prefix.0.is_empty()
            || self.0 == prefix.0
            || (self.0.starts_with(&prefix.0) && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }
}

impl AsRef<str> for LakePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LakePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// object_store's segment encoding (`PathPart::from`): `.` and `..` become `%2E` and
/// `%2E%2E`; control characters, non-ASCII bytes, `/`, `\` and the characters S3 and GCS
/// advise against (`{ ^ } % ` ] " > [ ~ < # | * ?`) are percent-encoded (upper-case hex).
pub fn encode_segment(segment: &str) -> String {
    match segment {
        "." => return "%2E".into(),
        ".." => return "%2E%2E".into(),
        _ => {}
    }
    const SPECIAL: &[u8] = b"/\\{^}%`]\">[~<#|*?";
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b < 0x20 || b >= 0x7f || SPECIAL.contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

pub const RAW: &str = "raw";
pub const BRONZE: &str = "bronze";
/// Silver Delta tables live under `silver/<table>`; run records under `silver/_runs/`.
pub const SILVER: &str = "silver";
/// Gold Parquet, one file per table and business date (or one per undated table).
pub const GOLD: &str = "gold";
pub const REGISTRY_FEEDS: &str = "bronze/_registry/feeds";
pub const REGISTRY_KEYS: &str = "bronze/_registry/keys";

/// `base` is a trusted constant (it may contain `/`); every part is one encoded segment.
fn join<'a>(base: &str, parts: impl IntoIterator<Item = &'a str>) -> LakePath {
    parts.into_iter().fold(LakePath::from_base(base), LakePath::join)
}

/// `raw/{dataset}/partner={p}/ingest_date={d}/{sha16}/{file}`.
pub fn raw_file(dataset: Dataset, partner: &str, date: RunDate, sha256: &str, file_name: &str) -> LakePath {
    let p = format!("partner={partner}");
    let d = format!("ingest_date={date}");
    join(RAW, [dataset.name(), &p, &d, &sha256[..16.min(sha256.len())], file_name])
}

/// The hive partition of one partner's bronze feeds of one dataset and date.
pub fn bronze_partition(dataset: Dataset, partner: &str, date: RunDate) -> LakePath {
    let p = format!("partner={partner}");
    let d = format!("ingest_date={date}");
    join(BRONZE, [dataset.name(), &p, &d])
}

/// `bronze/{dataset}/partner={p}/ingest_date={d}/{feed_id}.parquet`.
pub fn bronze_feed(dataset: Dataset, partner: &str, date: RunDate, feed_id: &str) -> LakePath {
    bronze_partition(dataset, partner, date).join(format!("{feed_id}.parquet").as_str())
}

/// `silver/_runs/{d}.json`: the record of silver's run for date `d`.
pub fn silver_run(date: RunDate) -> LakePath {
    join(SILVER, ["_runs", &format!("{date}.json")])
}

/// `silver/_runs/`.
pub fn silver_runs() -> LakePath {
    join(SILVER, ["_runs"])
}

/// `gold/{table}/{date_column}={d}/part-0.parquet`, or `gold/{table}/part-0.parquet` for an
/// undated table.
pub fn gold_file(table: &str, date: Option<(&str, &str)>) -> LakePath {
    match date {
        Some((column, d)) => join(GOLD, [table, &format!("{column}={d}"), "part-0.parquet"]),
        None => join(GOLD, [table, "part-0.parquet"]),
    }
}

/// `gold/{table}/`.
pub fn gold_table(table: &str) -> LakePath {
    join(GOLD, [table])
}

pub fn registry_feeds() -> LakePath {
    LakePath::from_base(REGISTRY_FEEDS)
}

pub fn registry_feed(feed_id: &str) -> LakePath {
    registry_feeds().join(format!("{feed_id}.json").as_str())
}

/// The idempotency key of a landing: the same content for the same partner, dataset and date.
pub fn registry_key(date: RunDate, partner: &str, dataset: Dataset, sha256: &str) -> LakePath {
    let file = format!("{sha256}.json");
    join(REGISTRY_KEYS, [&date.to_string(), partner, dataset.name(), &file])
}

/// `bronze/_registry/keys/{d}/`: the content keys of one run date.
pub fn registry_keys(date: RunDate) -> LakePath {
    join(REGISTRY_KEYS, [date.to_string().as_str()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> RunDate {
        s.parse().unwrap()
    }

    #[test]
    fn layout() {
        let sha = "0123456789abcdef0123";
        assert_eq!(
            raw_file(Dataset::Orders, "acme", d("2026-11-20"), sha, "a b.csv").as_ref(),
            "raw/orders/partner=acme/ingest_date=2026-11-20/0123456789abcdef/a b.csv"
        );
        assert_eq!(
            bronze_feed(Dataset::OrderItems, "acme", d("2026-11-20"), "FD00001").as_ref(),
            "bronze/order_items/partner=acme/ingest_date=2026-11-20/FD00001.parquet"
        );
        assert_eq!(silver_run(d("2026-11-20")).as_str(), "silver/_runs/2026-11-20.json");
        assert_eq!(gold_file("daily_sales", Some(("order_date", "2026-11-20"))).as_str(), "gold/daily_sales/order_date=2026-11-20/part-0.parquet");
    }

    #[test]
    fn registry_paths_are_nested() {
        let sha = "ab".repeat(32);
        let k = registry_key(d("2026-11-20"), "acme", Dataset::Orders, &sha);
        assert_eq!(k.as_ref(), format!("bronze/_registry/keys/2026-11-20/acme/orders/{sha}.json"));
        assert!(k.starts_with(&registry_keys(d("2026-11-20"))));
        assert!(!k.starts_with(&LakePath::from_base("bronze/_registry/keys/2026-11-2")));
        assert_eq!(registry_feed("FD00001").as_ref(), "bronze/_registry/feeds/FD00001.json");
    }

    #[test]
    fn hostile_components_cannot_escape() {
        // Validation refuses these before they get here; the path layer still neutralises them.
        let p = raw_file(Dataset::Orders, "..", d("2026-11-20"), "00", "../../etc/passwd");
        assert!(p.segments().all(|part| part != ".." && !part.contains('/')), "{p}");
        assert_eq!(p.segments().count(), 6, "{p}");
        assert!(p.as_ref().starts_with("raw/orders/"));
        assert_eq!(p.segments().last(), Some("..%2F..%2Fetc%2Fpasswd"));
        assert_eq!(LakePath::default().join("..").as_str(), "%2E%2E");
        assert_eq!(LakePath::default().join(".").as_str(), "%2E");
    }

    #[test]
    fn encoding_is_object_stores() {
        // The same bytes as object_store's PathPart (checked against it in the lake crate).
        assert_eq!(encode_segment("a b.csv"), "a b.csv");
        assert_eq!(encode_segment("x%y#z?*|"), "x%25y%23z%3F%2A%7C");
        assert_eq!(encode_segment("é\\n"), "%C3%A9%5Cn");
        assert_eq!(encode_segment("a\tb"), "a%09b");
    }
}
