//! The medallion contract as code (see `CONTRACT.md`): feed datasets, columns and rules, value
//! rules, the silver tables, the lake layout, and the typed documents stages exchange.
//! Pure: no I/O and no runtime (the `lake` crate does the I/O).

pub mod contract;
pub mod paths;
pub mod run_date;
pub mod run_record;
/// The silver tables' names and schemas.
pub mod silver;
pub mod values;

pub use contract::{Column, ColumnType, Dataset, EnumValues, Rule};
pub use paths::LakePath;
pub use run_date::RunDate;
pub use run_record::{ChangeKind, FeedStats, JobStatus, ProductDiff, RunStatus, SilverRecord};
