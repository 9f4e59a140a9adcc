//! The medallion contract as code (see `CONTRACT.md`): feed datasets, columns and rules,
//! lake paths, and the storage layer every stage uses to reach the lake.

pub mod contract;
/// Fault injection points for the fault-tolerance tests (`MEDALLION_FAULT`).
pub mod fault;
/// Delta Lake tables of the lake (silver and gold read and write them); behind the `delta`
/// feature so that bronze does not build delta-rs.
#[cfg(feature = "delta")]
pub mod delta;
pub mod paths;
pub mod registry;
/// The silver tables' names and schemas.
#[cfg(feature = "delta")]
pub mod silver;
pub mod store;
pub mod values;

pub use contract::{Column, ColumnType, Dataset, Rule};
pub use store::{Location, StoreError};
