//! The lake's I/O, beneath every stage: the only place that turns a `--lake` / `--landing`
//! URL into object_store, Delta and DataFusion configuration ([`Location`]), the feed
//! registry, the Delta operations (`delta`, behind the `delta` feature so that bronze does
//! not build delta-rs), fault points, and the one decision of what is transient
//! ([`error::is_transient`]). The contract and the layout (`schemas`) stay pure.

pub mod error;
/// Fault injection points for the fault-tolerance tests (`MEDALLION_FAULT`).
pub mod fault;
pub mod location;
pub mod registry;

/// Delta Lake tables of the lake (silver and gold read and write them).
#[cfg(feature = "delta")]
pub mod delta;
/// The lake as delta-rs and DataFusion see it ([`Location::delta_storage_options`],
/// [`Location::register_in`]).
#[cfg(feature = "delta")]
mod engine;

pub use error::{error_chain, is_transient};
pub use location::{read_stream, redact_url, path, Location, S3Info, StoreError, READ_CHUNK};
pub use registry::{FeedRecord, FeedStatus, Registry, RegistryError};
