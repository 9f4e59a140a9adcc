//! Silver: cleans and types bronze feeds with Polars, quarantines bad rows with a reason,
//! keeps current state per partner and key in Delta Lake tables (upserts, newest wins),
//! diffs products by partner and SKU with SCD2 history, and records every run with a
//! per-feed reconciliation (rows read = valid + rejected + duplicate).

pub mod bridge;
mod checks;
pub mod clean;
mod dedup;
mod maintain;
mod products;
mod recovery;
pub mod run;
mod shard;

pub use lake::delta;
pub use schemas::silver as tables;

pub use maintain::{maintain_all, TableMaintenance};
pub use recovery::{read_record, restore_before};
pub use run::{run_silver, SilverReport};
pub use shard::{commit_shard, missing_partners, prepare_shard, PreparedShard};
pub use schemas::{FeedStats, ProductDiff, SilverRecord};

use lake::registry::{FeedRecord, RegistryError};
use lake::{Location, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SilverError {
    #[error("nothing to do: no feeds were landed for {0} (run bronze first)")]
    NothingToDo(String),
    #[error("{0}")]
    Input(String),
    /// Gold for a sharded date waits for every partner with landed feeds to complete silver.
    #[error("silver for {date} has not run for partners {} (their feeds are landed): every shard of the date must complete silver before gold (`medallion silver --date {date} --partners {}`)", .missing.join(", "), .missing.join(","))]
    ShardsIncomplete { date: String, missing: Vec<String> },
    /// A sharded run could not take the silver commit lock: held past the lock timeout, or
    /// the lake unreachable (`transient`: retrying the stage may help).
    #[error("the silver commit lock: {message}")]
    CommitLock { message: String, transient: bool },
    #[error("reconciliation failed, nothing was published: {0}")]
    Reconciliation(String),
    #[error("{path}: {source}")]
    Store { path: String, source: StoreError },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{path}: {source}")]
    Record { path: String, source: serde_json::Error },
    #[error("feed {feed_id} ({source_file}): {source}")]
    Feed { feed_id: String, source_file: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error(transparent)]
    Delta(#[from] delta::DeltaError),
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
    #[error(transparent)]
    Bridge(#[from] bridge::BridgeError),
    #[error("query: {0}")]
    DataFusion(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("delta: {0}")]
    DeltaTable(#[from] deltalake::DeltaTableError),
}

impl SilverError {
    pub(crate) fn store(lake: &Location, path: &object_store::path::Path, e: object_store::Error) -> Self {
        SilverError::Store { path: lake.describe(path), source: lake.classify(e) }
    }
    pub(crate) fn feed(feed: &FeedRecord, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SilverError::Feed { feed_id: feed.feed_id.clone(), source_file: feed.source.clone(), source: e.into() }
    }

    /// Whether retrying later may help ([`lake::is_transient`] on the cause).
    pub fn is_transient(&self) -> bool {
        match self {
            SilverError::CommitLock { transient, .. } => *transient,
            _ => lake::is_transient(self),
        }
    }
}
