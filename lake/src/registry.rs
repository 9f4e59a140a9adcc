//! The feed registry: one JSON document per feed under `bronze/_registry/feeds/`, with
//! structured ids (`FD00001`), plus a content-hash index under `bronze/_registry/keys/` that
//! makes landing idempotent. Ids are claimed with a create-only put, which is atomic on a
//! local disk and on S3 (conditional put), so two writers can never share an id.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use schemas::{paths, Dataset, RunDate};

use crate::location::{path, Location, StoreError};

/// Errors reading or writing the registry; each names the registry object.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("registry entry {path}: unreadable registry entry: {source}")]
    Corrupt { path: String, source: serde_json::Error },
}

impl RegistryError {
    /// Whether retrying later may help ([`crate::is_transient`]).
    pub fn is_transient(&self) -> bool {
        crate::is_transient(self)
    }
}

/// Where a feed stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedStatus {
    /// Claimed, not yet finished (a crash leaves this; the next run finishes it).
    Landing,
    /// Raw copy and bronze Parquet written.
    Landed,
    /// Refused whole (reason says why); the raw copy is kept for audit.
    Quarantined,
    /// Given up before it was landed: the file changed while it was being landed, or was
    /// replaced or removed after a crash left it `landing` (reason `changed_while_landing`).
    /// Its content no longer exists in the landing zone; readers ignore it.
    Abandoned,
}

impl FeedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedStatus::Landing => "landing",
            FeedStatus::Landed => "landed",
            FeedStatus::Quarantined => "quarantined",
            FeedStatus::Abandoned => "abandoned",
        }
    }
}

/// One landed file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedRecord {
    pub feed_id: String,
    pub partner: String,
    pub dataset: Dataset,
    /// Logical (run) date the file was landed for.
    pub date: RunDate,
    pub file_name: String,
    /// Where the file came from, as the user sees it.
    pub source: String,
    pub sha256: String,
    pub bytes: u64,
    pub status: FeedStatus,
    /// File-level quarantine reason code (`invalid_utf8`, `invalid_csv`, `missing_column`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Data rows read (the header and empty lines excluded), malformed ones included.
    pub rows: u64,
    /// Rows whose field count differs from the header's (kept raw in bronze).
    pub malformed_rows: u64,
    /// The header as normalised column names (trimmed, lower-cased).
    pub columns: Vec<String>,
    /// Columns the contract does not define (schema drift): kept in bronze, ignored by silver.
    pub extra_columns: Vec<String>,
    /// Extra columns renamed in bronze because their name collided with a lineage, helper or
    /// partition column (`old → new`); the raw copy keeps the header as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed_columns: Vec<String>,
    /// Lake path of the immutable raw copy.
    pub raw_path: String,
    /// Lake path of the bronze Parquet file (none when quarantined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bronze_path: Option<String>,
    pub ingested_at: String,
}

/// The index entry of a (date, partner, dataset, content hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyEntry {
    feed_id: String,
}

pub fn format_feed_id(n: u64) -> String {
    format!("FD{n:05}")
}

pub fn parse_feed_id(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("FD")?;
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub struct Registry<'a> {
    lake: &'a Location,
}

impl<'a> Registry<'a> {
    pub fn new(lake: &'a Location) -> Self {
        Registry { lake }
    }

    fn err(&self, path: &Path, e: object_store::Error) -> RegistryError {
        RegistryError::Store { path: self.lake.describe(path), source: self.lake.classify(e) }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, RegistryError> {
        match self.lake.store.get(path).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| self.err(path, e))?;
                let v = serde_json::from_slice(&bytes)
                    .map_err(|source| RegistryError::Corrupt { path: self.lake.describe(path), source })?;
                Ok(Some(v))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(path, e)),
        }
    }

    /// The highest feed number in use (0 when none).
    pub async fn max_feed_number(&self) -> Result<u64, RegistryError> {
        let prefix = path(&paths::registry_feeds());
        let metas: Vec<_> = self.lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| self.err(&prefix, e))?;
        Ok(metas
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".json").and_then(parse_feed_id))
            .max()
            .unwrap_or(0))
    }

    /// The feed already registered for this content, if any.
    pub async fn find_by_key(&self, date: RunDate, partner: &str, dataset: Dataset, sha256: &str) -> Result<Option<FeedRecord>, RegistryError> {
        let key = path(&paths::registry_key(date, partner, dataset, sha256));
        let Some(entry) = self.get_json::<KeyEntry>(&key).await? else {
            return Ok(None);
        };
        self.get(&entry.feed_id).await
    }

    pub async fn get(&self, feed_id: &str) -> Result<Option<FeedRecord>, RegistryError> {
        self.get_json(&path(&paths::registry_feed(feed_id))).await
    }

    /// Claims the next free id at or after `next` for `record` (status `landing`) and indexes
    /// its content key. Returns the id taken.
    pub async fn claim(&self, next: &mut u64, record: &mut FeedRecord) -> Result<(), RegistryError> {
        loop {
            *next += 1;
            record.feed_id = format_feed_id(*next);
            let path = path(&paths::registry_feed(&record.feed_id));
            let body = serde_json::to_vec_pretty(record).expect("feed record serialises");
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match self.lake.store.put_opts(&path, PutPayload::from(body), opts).await {
                Ok(_) => break,
                Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => continue,
                Err(e) => return Err(self.err(&path, e)),
            }
        }
        let key = path(&paths::registry_key(record.date, &record.partner, record.dataset, &record.sha256));
        let body = serde_json::to_vec(&KeyEntry { feed_id: record.feed_id.clone() }).expect("key serialises");
        self.lake.store.put(&key, PutPayload::from(body)).await.map_err(|e| self.err(&key, e))?;
        Ok(())
    }

    /// Writes the final state of a feed.
    pub async fn save(&self, record: &FeedRecord) -> Result<(), RegistryError> {
        let path = path(&paths::registry_feed(&record.feed_id));
        let body = serde_json::to_vec_pretty(record).expect("feed record serialises");
        self.lake.store.put(&path, PutPayload::from(body)).await.map_err(|e| self.err(&path, e))?;
        Ok(())
    }

    /// Every feed registered for a run date (all partners and datasets), in feed-id order.
    pub async fn feeds_for_date(&self, date: RunDate) -> Result<Vec<FeedRecord>, RegistryError> {
        let prefix = path(&paths::registry_keys(date));
        let metas: Vec<_> = self.lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| self.err(&prefix, e))?;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            if let Some(entry) = self.get_json::<KeyEntry>(&m.location).await? {
                if let Some(rec) = self.get(&entry.feed_id).await? {
                    out.push(rec);
                }
            }
        }
        out.sort_by(|a, b| a.feed_id.cmp(&b.feed_id));
        Ok(out)
    }

    /// Every feed in the registry, in feed-id order.
    pub async fn all_feeds(&self) -> Result<Vec<FeedRecord>, RegistryError> {
        let prefix = path(&paths::registry_feeds());
        let metas: Vec<_> = self.lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| self.err(&prefix, e))?;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            if let Some(rec) = self.get_json::<FeedRecord>(&m.location).await? {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.feed_id.cmp(&b.feed_id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_ids() {
        assert_eq!(format_feed_id(1), "FD00001");
        assert_eq!(format_feed_id(123456), "FD123456");
        assert_eq!(parse_feed_id("FD00042"), Some(42));
        assert_eq!(parse_feed_id("FD123456"), Some(123456));
        assert_eq!(parse_feed_id("FD42"), None);
        assert_eq!(parse_feed_id("XX00042"), None);
    }
}
