//! SQLite's side of the seam: opening the file (WAL, so readers keep the last committed
//! publish while a new one loads), binding parameters (dates and timestamps as the text SQLite
//! stores) and multi-row INSERT loads.

use std::time::Duration;

use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Sqlite};

use super::encode::columns;
use super::{Param, WarehouseError};
use crate::models::GoldTable;
use arrow::array::RecordBatch;

pub(super) async fn connect(path: &str, display: &str) -> Result<SqliteConnection, WarehouseError> {
    let config = |message: String| WarehouseError::Config { url: display.into(), message };
    if path.is_empty() {
        return Err(config("no file name".into()));
    }
    if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| config(format!("cannot create {}: {e}", parent.display())))?;
    }
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // WAL: readers keep seeing the last committed publish while a new one loads.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(60));
    SqliteConnection::connect_with(&opts).await.map_err(|e| config(e.to_string()))
}

/// Opens an existing file read-only (no journal mode change, nothing created); None when the
/// file does not exist.
pub(super) async fn connect_read_only(path: &str, display: &str) -> Result<Option<SqliteConnection>, WarehouseError> {
    if path.is_empty() || !std::path::Path::new(path).exists() {
        return Ok(None);
    }
    let opts = SqliteConnectOptions::new().filename(path).read_only(true).busy_timeout(Duration::from_secs(60));
    SqliteConnection::connect_with(&opts).await.map(Some).map_err(|e| WarehouseError::Config { url: display.into(), message: e.to_string() })
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// Binds `$n` placeholders (sqlx numbers SQLite's `$n` like PostgreSQL's).
pub(super) fn bind<'q>(mut q: Query<'q>, params: &[Param]) -> Query<'q> {
    for p in params {
        q = match p {
            Param::Text(v) | Param::Date(v) | Param::Timestamp(v) => q.bind(v.clone()),
            Param::Int(v) => q.bind(*v),
        };
    }
    q
}

/// Loads an output with multi-row INSERTs (at most ~30 000 bound values per statement).
pub(super) async fn load(tx: &mut sqlx::Transaction<'_, Sqlite>, name: &str, t: &GoldTable, batches: &[RecordBatch]) -> Result<u64, sqlx::Error> {
    let ncols = t.columns.len();
    let cols = t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let per_stmt = (30_000 / ncols).clamp(1, 1000);
    let mut rows = 0u64;
    for b in batches {
        let acc = columns(t, b);
        let mut start = 0;
        while start < b.num_rows() {
            let end = (start + per_stmt).min(b.num_rows());
            let mut qb = sqlx::QueryBuilder::<Sqlite>::new(format!("INSERT INTO {name} ({cols}) "));
            qb.push_values(start..end, |mut row_b, row| {
                for c in &acc {
                    c.bind_sqlite(row, &mut row_b);
                }
            });
            rows += qb.build().execute(&mut **tx).await?.rows_affected();
            start = end;
        }
    }
    Ok(rows)
}
