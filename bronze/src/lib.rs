//! Bronze: lands every partner file of a run date unchanged (an immutable raw copy) and as
//! Parquet with every value kept as a string plus lineage columns, after file-level checks
//! (UTF-8, RFC 4180 CSV, the dataset's required header columns). A file that fails a check is
//! quarantined whole with its reason and the run goes on. Landing is idempotent by content.

pub mod csv;
mod discover;
mod ingest;
mod land;
mod reland;
mod sink;

pub use discover::{discover, Candidate, Ignored, NOT_A_REGULAR_FILE, RESERVED_FOLDERS};
pub use ingest::{ingest_files, ingest_stream, FeedTarget, IngestError, Ingested, UPLOADS_DIR};
pub use land::{hash_file, land_date, land_date_partners, FeedOutcome, LandAction, LandReport, CHANGED_WHILE_LANDING};
pub use lake::registry::{FeedRecord, FeedStatus, Registry, RegistryError};
pub use reland::{raw_feeds, reland_date};
pub use sink::LINEAGE_COLUMNS;

use lake::StoreError;

/// Errors that stop a bronze run (problems with one file's content quarantine that file instead).
#[derive(Debug, thiserror::Error)]
pub enum BronzeError {
    #[error("{path}: {source}")]
    Store { path: String, source: StoreError },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{path}: {source}")]
    Parquet { path: String, source: parquet::errors::ParquetError },
    /// Reading a local file or writing the raw copy failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("{0}")]
    Usage(String),
}

impl BronzeError {
    /// Whether retrying later may help ([`lake::is_transient`] on the cause).
    pub fn is_transient(&self) -> bool {
        lake::is_transient(self)
    }
}
