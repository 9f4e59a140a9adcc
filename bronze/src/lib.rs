//! Bronze: lands every partner file of a run date unchanged (an immutable raw copy) and as
//! Parquet with every value kept as a string plus lineage columns, after file-level checks
//! (UTF-8, RFC 4180 CSV, the dataset's required header columns). A file that fails a check is
//! quarantined whole with its reason and the run goes on. Landing is idempotent by content.

pub mod csv;
mod land;
mod sink;

pub use land::{discover, ingest_files, land_date, Candidate, FeedOutcome, Ignored, LandAction, LandReport};
pub use schemas::registry::{FeedRecord, FeedStatus, Registry, RegistryError};
pub use sink::LINEAGE_COLUMNS;

use schemas::StoreError;

/// Errors that stop a bronze run (problems with one file's content quarantine that file instead).
#[derive(Debug, thiserror::Error)]
pub enum BronzeError {
    #[error("{path}: {source}")]
    Store { path: String, source: StoreError },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{path}: {message}")]
    Parquet { path: String, message: String },
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("{0}")]
    Usage(String),
}
