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
//! (`contract::validate_partner_id`, `contract::validate_file_name`); `Path` additionally
//! percent-encodes anything that could act as a separator, so no path can escape the lake.

use object_store::path::{Path, PathPart};

use crate::contract::Dataset;

pub const RAW: &str = "raw";
pub const BRONZE: &str = "bronze";
/// Silver Delta tables live under `silver/<table>`; run records under `silver/_runs/`.
pub const SILVER: &str = "silver";
/// Gold Parquet, one file per table and business date (or one per undated table).
pub const GOLD: &str = "gold";
pub const REGISTRY_FEEDS: &str = "bronze/_registry/feeds";
pub const REGISTRY_KEYS: &str = "bronze/_registry/keys";

/// `base` is a trusted constant (it may contain `/`); every part is one encoded segment.
fn join<'a>(base: &str, parts: impl IntoIterator<Item = &'a str>) -> Path {
    parts.into_iter().fold(Path::from(base), |path, part| path.join(PathPart::from(part)))
}

/// `raw/{dataset}/partner={p}/ingest_date={d}/{sha16}/{file}`.
pub fn raw_file(dataset: Dataset, partner: &str, date: &str, sha256: &str, file_name: &str) -> Path {
    let p = format!("partner={partner}");
    let d = format!("ingest_date={date}");
    join(RAW, [dataset.name(), &p, &d, &sha256[..16.min(sha256.len())], file_name])
}

/// The hive partition of one partner's bronze feeds of one dataset and date.
pub fn bronze_partition(dataset: Dataset, partner: &str, date: &str) -> Path {
    let p = format!("partner={partner}");
    let d = format!("ingest_date={date}");
    join(BRONZE, [dataset.name(), &p, &d])
}

/// `bronze/{dataset}/partner={p}/ingest_date={d}/{feed_id}.parquet`.
pub fn bronze_feed(dataset: Dataset, partner: &str, date: &str, feed_id: &str) -> Path {
    bronze_partition(dataset, partner, date).join(format!("{feed_id}.parquet").as_str())
}

/// `silver/_runs/{d}.json`: the record of silver's run for date `d`.
pub fn silver_run(date: &str) -> Path {
    join(SILVER, ["_runs", &format!("{date}.json")])
}

/// `silver/_runs/`.
pub fn silver_runs() -> Path {
    join(SILVER, ["_runs"])
}

/// `gold/{table}/{date_column}={d}/part-0.parquet`, or `gold/{table}/part-0.parquet` for an
/// undated table.
pub fn gold_file(table: &str, date: Option<(&str, &str)>) -> Path {
    match date {
        Some((column, d)) => join(GOLD, [table, &format!("{column}={d}"), "part-0.parquet"]),
        None => join(GOLD, [table, "part-0.parquet"]),
    }
}

/// `gold/{table}/`.
pub fn gold_table(table: &str) -> Path {
    join(GOLD, [table])
}

pub fn registry_feeds() -> Path {
    Path::from(REGISTRY_FEEDS)
}

pub fn registry_feed(feed_id: &str) -> Path {
    registry_feeds().join(format!("{feed_id}.json").as_str())
}

/// The idempotency key of a landing: the same content for the same partner, dataset and date.
pub fn registry_key(date: &str, partner: &str, dataset: Dataset, sha256: &str) -> Path {
    let file = format!("{sha256}.json");
    join(REGISTRY_KEYS, [date, partner, dataset.name(), &file])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let sha = "0123456789abcdef0123";
        assert_eq!(
            raw_file(Dataset::Orders, "acme", "2026-11-20", sha, "a b.csv").as_ref(),
            "raw/orders/partner=acme/ingest_date=2026-11-20/0123456789abcdef/a b.csv"
        );
        assert_eq!(
            bronze_feed(Dataset::OrderItems, "acme", "2026-11-20", "FD00001").as_ref(),
            "bronze/order_items/partner=acme/ingest_date=2026-11-20/FD00001.parquet"
        );
    }

    #[test]
    fn registry_paths_are_nested() {
        let sha = "ab".repeat(32);
        let k = registry_key("2026-11-20", "acme", Dataset::Orders, &sha);
        assert_eq!(k.as_ref(), format!("bronze/_registry/keys/2026-11-20/acme/orders/{sha}.json"));
        assert!(k.prefix_matches(&Path::from(REGISTRY_KEYS).join("2026-11-20")));
        assert_eq!(registry_feed("FD00001").as_ref(), "bronze/_registry/feeds/FD00001.json");
    }

    #[test]
    fn hostile_components_cannot_escape() {
        // Validation refuses these before they get here; the path layer still neutralises them.
        let p = raw_file(Dataset::Orders, "..", "2026-11-20", "00", "../../etc/passwd");
        assert!(p.parts().all(|part| part.as_ref() != ".." && !part.as_ref().contains('/')), "{p}");
        assert!(p.as_ref().starts_with("raw/orders/"));
    }
}
