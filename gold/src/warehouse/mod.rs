//! The warehouse gold is published to: PostgreSQL (schema `gold`) or the embedded SQLite
//! default (one file; gold tables under their plain names). Both get the same tables, created
//! by versioned migrations from the model files (`gold/models/*.toml`), and the same publish
//! semantics: one transaction replaces what each output replaces (touched business dates,
//! touched key tuples, or a whole table; see `replace.rs`), verifies the row counts and
//! records which silver runs it published.
//! A reader sees the old state or the new one, never a mix.
//!
//! Everything is written once against a small dialect seam: [`Dialect`] (names and SQL
//! spellings) and a transaction [`Tx`] that executes and fetches with bound [`Param`]s
//! (`$1`, `$2`… in both dialects). Only connecting and bulk loading differ for real: they
//! live in `postgres.rs` (COPY) and `sqlite.rs` (multi-row INSERT).

mod encode;
mod migrations;
mod postgres;
mod replace;
mod sqlite;

pub use encode::{date_string, money_string, pg_numeric};
pub use migrations::{checksum, Migration, GOLD_MIGRATIONS};

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Connection, Row};

use crate::GoldOutput;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("warehouse URL {url}: {message}")]
    Config { url: String, message: String },
    #[error("cannot reach the warehouse {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("warehouse {url}: {message}")]
    Query { url: String, message: String },
    #[error("warehouse {url}: migration {version} ({name}) was changed after it was applied (checksum {applied} in the warehouse, {now} in this binary); add a new migration instead")]
    MigrationChanged { url: String, version: i64, name: String, applied: String, now: String },
    /// A computed value no warehouse column can hold; found before anything is written.
    #[error("warehouse {url}: gold.{table}.{column}, row {row}: {message}; nothing was published")]
    Unloadable { url: String, table: String, column: String, row: usize, message: String },
    #[error("warehouse {url}: {table}: {expected} rows computed but {found} rows visible after loading; the publish was rolled back")]
    RowCount { url: String, table: String, expected: u64, found: u64 },
}

impl WarehouseError {
    /// Whether retrying later may help (the server could not be reached or the connection
    /// dropped), as opposed to a configuration or data error.
    pub fn is_transient(&self) -> bool {
        matches!(self, WarehouseError::Unreachable { .. })
    }
}

/// The PostgreSQL COPY format used to load gold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Binary,
    Text,
}

enum Conn {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

/// An open warehouse connection.
pub struct Warehouse {
    conn: Conn,
    /// The URL with any password removed, for messages.
    pub display: String,
    pub copy_format: CopyFormat,
    /// Migration versions verified on this connection.
    migrated: BTreeSet<i64>,
}

/// What one publish loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadedTable {
    pub table: String,
    pub rows: u64,
    /// The business dates replaced whole ("all": the whole table).
    pub dates: Vec<String>,
    /// The key tuples replaced besides (`[incremental]`).
    pub keys: u64,
    pub rows_deleted: u64,
}

/// A silver run whose changes a publish carries, identified by its date and a stamp of the
/// table versions it produced (a re-run of the date gets a new stamp).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedRun {
    pub silver_run_date: String,
    pub silver_stamp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// A table of `schema` (`gold` or `medallion`): `gold.t` in PostgreSQL; in SQLite, which
    /// has no schemas, gold tables keep their plain names and ledger tables get `medallion_`.
    pub fn table(self, schema: &str, name: &str) -> String {
        match (self, schema) {
            (Dialect::Postgres, s) => format!("{s}.{name}"),
            (Dialect::Sqlite, "gold") => name.to_string(),
            (Dialect::Sqlite, s) => format!("{s}_{name}"),
        }
    }

    /// The current time as a SQL expression of the type the dialect's timestamps use.
    pub fn now(self) -> &'static str {
        match self {
            Dialect::Postgres => "now()",
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    /// `expr` (a date or timestamp) as text: SQLite stores them as text already.
    pub fn text(self, expr: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({expr} AS TEXT)"),
            Dialect::Sqlite => expr.to_string(),
        }
    }
}

/// A value bound to a `$n` placeholder. Dates and timestamps are text ('YYYY-MM-DD', RFC
/// 3339): PostgreSQL gets them as `date` / `timestamptz`, SQLite as the text it stores.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Date(Option<String>),
    Timestamp(Option<String>),
}

impl Param {
    pub fn text(s: &str) -> Param {
        Param::Text(Some(s.to_string()))
    }
    pub fn opt_text(s: Option<&str>) -> Param {
        Param::Text(s.map(str::to_string))
    }
    pub fn int(n: i64) -> Param {
        Param::Int(Some(n))
    }
    pub fn opt_count(n: Option<u64>) -> Param {
        Param::Int(n.map(|n| n as i64))
    }
    pub fn date(d: &str) -> Param {
        Param::Date(Some(d.to_string()))
    }
    pub fn timestamp(t: &str) -> Param {
        Param::Timestamp(Some(t.to_string()))
    }
}

/// One statement with its parameters, for [`Warehouse::execute_all`].
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Statement {
    pub fn new(sql: impl Into<String>, params: Vec<Param>) -> Statement {
        Statement { sql: sql.into(), params }
    }
}

/// Rows as strings (NULL as None).
pub type Rows = Vec<Vec<Option<String>>>;

fn cells<R: Row>(r: &R) -> Vec<Option<String>>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> f64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    (0..r.len())
        .map(|i| {
            r.try_get::<Option<String>, _>(i)
                .or_else(|_| r.try_get::<Option<i64>, _>(i).map(|v| v.map(|v| v.to_string())))
                .or_else(|_| r.try_get::<Option<f64>, _>(i).map(|v| v.map(|v| v.to_string())))
                .or_else(|_| r.try_get::<Option<bool>, _>(i).map(|v| v.map(|v| v.to_string())))
                .ok()
                .flatten()
        })
        .collect()
}

enum TxConn<'c> {
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
}

/// An open write transaction (the seam): statements with bound parameters, in either dialect.
/// Dropped without `commit`, it rolls back.
pub struct Tx<'c> {
    conn: TxConn<'c>,
    display: String,
}

impl Tx<'_> {
    fn err(&self, e: sqlx::Error) -> WarehouseError {
        classify(&self.display, e)
    }

    pub async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, WarehouseError> {
        let r = match &mut self.conn {
            TxConn::Postgres(tx) => postgres::bind(sqlx::query(sql), params, &self.display)?.execute(&mut **tx).await.map(|r| r.rows_affected()),
            TxConn::Sqlite(tx) => sqlite::bind(sqlx::query(sql), params).execute(&mut **tx).await.map(|r| r.rows_affected()),
        };
        r.map_err(|e| self.err(e))
    }

    pub async fn fetch(&mut self, sql: &str, params: &[Param]) -> Result<Rows, WarehouseError> {
        let r = match &mut self.conn {
            TxConn::Postgres(tx) => postgres::bind(sqlx::query(sql), params, &self.display)?.fetch_all(&mut **tx).await.map(|rows| rows.iter().map(cells).collect()),
            TxConn::Sqlite(tx) => sqlite::bind(sqlx::query(sql), params).fetch_all(&mut **tx).await.map(|rows| rows.iter().map(cells).collect()),
        };
        r.map_err(|e| self.err(e))
    }

    /// `SELECT COUNT(*) …` as a number.
    async fn count(&mut self, sql: &str, params: &[Param]) -> Result<u64, WarehouseError> {
        let rows = self.fetch(sql, params).await?;
        Ok(rows.first().and_then(|r| r.first().cloned().flatten()).and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub async fn commit(self) -> Result<(), WarehouseError> {
        let r = match self.conn {
            TxConn::Postgres(tx) => tx.commit().await,
            TxConn::Sqlite(tx) => tx.commit().await,
        };
        r.map_err(|e| classify(&self.display, e))
    }
}

impl Warehouse {
    /// Opens `url`: `postgres://…` / `postgresql://…`, or `sqlite://path` (created if missing).
    pub async fn connect(url: &str) -> Result<Warehouse, WarehouseError> {
        let display = ::lake::redact_url(url);
        let conn = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Conn::Postgres(postgres::connect(url, &display).await?)
        } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Conn::Sqlite(sqlite::connect(path, &display).await?)
        } else {
            return Err(WarehouseError::Config { url: display, message: "use postgres://user@host:port/db or sqlite://path/to/file.db".into() });
        };
        Ok(Warehouse { conn, display, copy_format: CopyFormat::Binary, migrated: BTreeSet::new() })
    }

    /// Opens `url` for reading only: an SQLite file is opened read-only and never created
    /// (None when it does not exist); PostgreSQL connects as usual (the caller only reads).
    pub async fn connect_read_only(url: &str) -> Result<Option<Warehouse>, WarehouseError> {
        let display = ::lake::redact_url(url);
        let conn = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Conn::Postgres(postgres::connect(url, &display).await?)
        } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            match sqlite::connect_read_only(path, &display).await? {
                Some(c) => Conn::Sqlite(c),
                None => return Ok(None),
            }
        } else {
            return Err(WarehouseError::Config { url: display, message: "use postgres://user@host:port/db or sqlite://path/to/file.db".into() });
        };
        Ok(Some(Warehouse { conn, display, copy_format: CopyFormat::Binary, migrated: BTreeSet::new() }))
    }

    /// Whether `schema.name` exists (read-only catalog lookup).
    pub async fn table_exists(&mut self, schema: &str, name: &str) -> Result<bool, WarehouseError> {
        let rows = match self.dialect() {
            Dialect::Postgres => self.query_rows("SELECT CAST(to_regclass($1) AS TEXT)", &[Param::text(&format!("{schema}.{name}"))]).await?,
            Dialect::Sqlite => {
                let t = self.dialect().table(schema, name);
                self.query_rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1", &[Param::text(&t)]).await?
            }
        };
        Ok(rows.first().and_then(|r| r.first().cloned().flatten()).is_some())
    }

    pub fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Postgres(_) => Dialect::Postgres,
            Conn::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Begins a write transaction holding the warehouse's write lock: one migrator or
    /// publisher at a time (PostgreSQL: a transaction advisory lock; SQLite: BEGIN IMMEDIATE,
    /// waiting up to the busy timeout). Readers are never blocked.
    pub async fn begin_write(&mut self) -> Result<Tx<'_>, WarehouseError> {
        let display = self.display.clone();
        let conn = match &mut self.conn {
            Conn::Postgres(c) => TxConn::Postgres(postgres::begin_locked(c).await.map_err(|e| classify(&display, e))?),
            Conn::Sqlite(c) => TxConn::Sqlite(c.begin_with("BEGIN IMMEDIATE").await.map_err(|e| classify(&display, e))?),
        };
        Ok(Tx { conn, display })
    }

    /// Runs a query with bound parameters and returns every row as strings (NULL as None).
    pub async fn query_rows(&mut self, sql: &str, params: &[Param]) -> Result<Rows, WarehouseError> {
        let display = self.display.clone();
        let r = match &mut self.conn {
            Conn::Postgres(c) => postgres::bind(sqlx::query(sql), params, &display)?.fetch_all(c).await.map(|rows| rows.iter().map(cells).collect()),
            Conn::Sqlite(c) => sqlite::bind(sqlx::query(sql), params).fetch_all(c).await.map(|rows| rows.iter().map(cells).collect()),
        };
        r.map_err(|e| classify(&display, e))
    }

    /// Runs a query without parameters and returns every row as strings, for status and tests.
    pub async fn query_strings(&mut self, sql: &str) -> Result<Rows, WarehouseError> {
        self.query_rows(sql, &[]).await
    }

    /// Executes one statement with bound parameters; returns the rows affected.
    pub async fn execute_with(&mut self, sql: &str, params: &[Param]) -> Result<u64, WarehouseError> {
        let display = self.display.clone();
        let r = match &mut self.conn {
            Conn::Postgres(c) => postgres::bind(sqlx::query(sql), params, &display)?.execute(c).await.map(|r| r.rows_affected()),
            Conn::Sqlite(c) => sqlite::bind(sqlx::query(sql), params).execute(c).await.map(|r| r.rows_affected()),
        };
        r.map_err(|e| classify(&display, e))
    }

    /// Executes statements in one transaction (all or nothing); returns the rows affected.
    pub async fn execute_all(&mut self, statements: &[Statement]) -> Result<u64, WarehouseError> {
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for s in statements {
            n += tx.execute(&s.sql, &s.params).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Executes SQL text without parameters (several statements allowed), e.g. DDL.
    pub async fn execute(&mut self, sql: &str) -> Result<u64, WarehouseError> {
        let display = self.display.clone();
        let r = match &mut self.conn {
            Conn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|r| r.rows_affected()),
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|r| r.rows_affected()),
        };
        r.map_err(|e| classify(&display, e))
    }

    /// The silver runs whose changes the warehouse's gold carries: date → stamp.
    pub async fn published_runs(&mut self) -> Result<BTreeMap<String, String>, WarehouseError> {
        let t = self.dialect().table("medallion", "gold_publishes");
        let rows = self.query_strings(&format!("SELECT CAST(silver_run_date AS TEXT), silver_stamp FROM {t}")).await?;
        Ok(rows.into_iter().filter_map(|mut r| Some((r.get_mut(0)?.take()?, r.get_mut(1)?.take()?))).collect())
    }

    /// Stages the publish of `outputs` in one transaction: for each table, deletes the rows it
    /// replaces (its whole dates, its key tuples, or every row; see `replace.rs`), loads the
    /// new rows, and checks that exactly the computed number of rows is visible there; then
    /// records `runs` as published. Nothing is visible to readers until [`Staged::commit`];
    /// any failure (including a dropped connection), or dropping the `Staged`, rolls
    /// everything back.
    pub async fn stage(&mut self, outputs: &[GoldOutput], runs: &[PublishedRun]) -> Result<Staged<'_>, WarehouseError> {
        let d = self.dialect();
        let format = self.copy_format;
        for o in outputs {
            encode::check_loadable(o.table, &o.batches, d).map_err(|(column, row, message)| WarehouseError::Unloadable {
                url: self.display.clone(),
                table: o.table.name.clone(),
                column,
                row,
                message,
            })?;
        }
        let mut tx = self.begin_write().await?;
        let mut loaded = Vec::new();
        for (i, o) in outputs.iter().enumerate() {
            let name = d.table("gold", &o.table.name);
            let parts = replace::prepare(&mut tx, d, o).await?;
            let mut deleted = 0;
            for p in &parts {
                deleted += tx.execute(&format!("DELETE FROM {name}{}", p.filter), &p.params).await?;
            }
            let display = tx.display.clone();
            let rows = match &mut tx.conn {
                TxConn::Postgres(t) => postgres::load(t, &name, o.table, &o.batches, format).await,
                TxConn::Sqlite(t) => sqlite::load(t, &name, o.table, &o.batches).await,
            }
            .map_err(|e| classify(&display, e))?;
            ::lake::fault::point("gold.load", i).await;
            // The parts are disjoint: what they hold now must be exactly the computed rows.
            let mut found = 0;
            for p in &parts {
                found += tx.count(&format!("SELECT COUNT(*) FROM {name}{}", p.filter), &p.params).await?;
            }
            verify(&display, o, rows, found)?;
            replace::finish(&mut tx, o).await?;
            let keys = o.groups.as_ref().map_or(0, |g| g.len() as u64);
            loaded.push(LoadedTable { table: o.table.name.clone(), rows, dates: replace::dates_report(o), keys, rows_deleted: deleted });
        }
        let ledger = d.table("medallion", "gold_publishes");
        let upsert = format!(
            "INSERT INTO {ledger} (silver_run_date, silver_stamp, published_at) VALUES ($1, $2, {}) \
             ON CONFLICT (silver_run_date) DO UPDATE SET silver_stamp = excluded.silver_stamp, published_at = excluded.published_at",
            d.now()
        );
        for r in runs {
            tx.execute(&upsert, &[Param::date(&r.silver_run_date), Param::text(&r.silver_stamp)]).await?;
        }
        Ok(Staged { tx, loaded })
    }

    /// Creates (or updates) a login role that may only read the `gold` schema, for BI tools:
    /// USAGE on the schema, SELECT on every table now and on tables created later.
    pub async fn grant_readonly(&mut self, role: &str, password: Option<&str>) -> Result<(), WarehouseError> {
        let display = self.display.clone();
        let Conn::Postgres(c) = &mut self.conn else {
            return Err(WarehouseError::Config {
                url: display,
                message: "the embedded SQLite warehouse has no roles: give BI tools the file read-only (e.g. sqlite3 'file:warehouse.db?mode=ro')".into(),
            });
        };
        postgres::grant_readonly(c, &display, role, password).await
    }

    pub async fn close(self) {
        let _ = match self.conn {
            Conn::Postgres(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
        };
    }
}

/// A publish loaded in its open transaction, waiting to be committed.
pub struct Staged<'c> {
    tx: Tx<'c>,
    loaded: Vec<LoadedTable>,
}

impl Staged<'_> {
    /// Makes the publish visible, all at once.
    pub async fn commit(self) -> Result<Vec<LoadedTable>, WarehouseError> {
        ::lake::fault::point("gold.commit", 0).await;
        self.tx.commit().await?;
        Ok(self.loaded)
    }
}

fn verify(url: &str, o: &GoldOutput, loaded: u64, visible: u64) -> Result<(), WarehouseError> {
    let expected = o.rows() as u64;
    for found in [loaded, visible] {
        if found != expected {
            return Err(WarehouseError::RowCount { url: url.into(), table: o.table.name.clone(), expected, found });
        }
    }
    Ok(())
}

/// Maps a driver error to a message that names the server, telling transient failures (the
/// server cannot be reached, the connection dropped) from the rest.
fn classify(url: &str, e: sqlx::Error) -> WarehouseError {
    let message = ::lake::error_chain(&e);
    match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed | sqlx::Error::Tls(_) => {
            WarehouseError::Unreachable { url: url.into(), message }
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // admin_shutdown, crash_shutdown, cannot_connect_now, connection failures.
            Some("57P01") | Some("57P02") | Some("57P03") | Some("08000") | Some("08003") | Some("08006") | Some("08001") | Some("08004") => {
                WarehouseError::Unreachable { url: url.into(), message }
            }
            _ => WarehouseError::Query { url: url.into(), message },
        },
        _ => WarehouseError::Query { url: url.into(), message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seam on a real SQLite file: migrations (gold's and an owner's), bound parameters in
    /// any placeholder order, quotes in values, NULLs, all-or-nothing batches.
    #[test]
    fn sqlite_migrations_and_bound_parameters() {
        let dir = std::env::temp_dir().join(format!("gold-wh-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut wh = Warehouse::connect(&format!("sqlite://{}/w.db", dir.display())).await.unwrap();
            assert_eq!(wh.migrate().await.unwrap(), ["001 gold tables from the contract", "002 gold publish ledger"]);
            assert!(wh.migrate().await.unwrap().is_empty());
            fn owner(d: Dialect) -> Vec<String> {
                vec![format!("CREATE TABLE {} (k TEXT PRIMARY KEY, d DATE, n BIGINT)", d.table("medallion", "t"))]
            }
            let m = [Migration { version: 99, name: "test table", sql: owner }];
            assert_eq!(wh.migrate_with(&m).await.unwrap(), ["099 test table"]);
            let t = wh.dialect().table("medallion", "t");
            let ins = format!("INSERT INTO {t} (n, d, k) VALUES ($3, $2, $1)");
            let n = wh
                .execute_all(&[
                    Statement::new(ins.clone(), vec![Param::text("it's"), Param::date("2026-11-18"), Param::int(7)]),
                    Statement::new(ins.clone(), vec![Param::text("b"), Param::Date(None), Param::opt_count(None)]),
                ])
                .await
                .unwrap();
            assert_eq!(n, 2);
            // A failing batch leaves nothing behind.
            let dup = Statement::new(ins.clone(), vec![Param::text("c"), Param::Date(None), Param::int(1)]);
            assert!(wh.execute_all(&[dup.clone(), dup]).await.is_err());
            let rows = wh.query_rows(&format!("SELECT k, d, n FROM {t} WHERE k <> $1 ORDER BY k"), &[Param::text("zz")]).await.unwrap();
            assert_eq!(rows, vec![vec![Some("b".into()), None, None], vec![Some("it's".into()), Some("2026-11-18".into()), Some("7".into())]]);
            wh.close().await;
            // A new connection verifies the applied checksums and applies nothing.
            let mut wh = Warehouse::connect(&format!("sqlite://{}/w.db", dir.display())).await.unwrap();
            assert!(wh.migrate_with(&m).await.unwrap().is_empty());
            wh.close().await;
            let mut wh = Warehouse::connect(&format!("sqlite://{}/w.db", dir.display())).await.unwrap();
            fn changed(d: Dialect) -> Vec<String> {
                vec![format!("CREATE TABLE {} (k TEXT)", d.table("medallion", "t"))]
            }
            let err = wh.migrate_with(&[Migration { version: 99, name: "test table", sql: changed }]).await.unwrap_err();
            assert!(matches!(err, WarehouseError::MigrationChanged { version: 99, .. }), "{err}");
            wh.close().await;
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
