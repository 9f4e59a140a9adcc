//! The warehouse gold is published to: PostgreSQL (schema `gold`) or the embedded SQLite
//! default (one file; gold tables under their plain names). Both get the same tables, created
//! by versioned migrations from the contract (`schemas::gold`), and the same publish
//! semantics: one transaction replaces the touched business dates of every table (and the
//! undated tables whole), verifies the row counts and records which silver runs it published.
//! A reader sees the old state or the new one, never a mix.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, Float64Type, Int64Type};
use schemas::gold::{GoldTable, GoldType, TABLES};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row};

use crate::{Dates, GoldOutput};

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
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// An open warehouse connection.
pub struct Warehouse {
    conn: Conn,
    /// The URL with any password removed, for messages.
    pub display: String,
    pub copy_format: CopyFormat,
}

/// What one publish loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadedTable {
    pub table: String,
    pub rows: u64,
    /// The business dates replaced ("all" for undated tables or a full rebuild).
    pub dates: Vec<String>,
    pub rows_deleted: u64,
}

/// A silver run whose changes a publish carries, identified by its date and a stamp of the
/// table versions it produced (a re-run of the date gets a new stamp).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedRun {
    pub silver_run_date: String,
    pub silver_stamp: String,
}

const PG_LOCK_KEY: i64 = 0x6d65_6461_6c6c; // "medall": serialises migrations and publishes

/// A versioned migration: the statements of `sql(dialect)` run once, in one transaction.
struct Migration {
    version: i64,
    name: &'static str,
    sql: fn(Dialect) -> Vec<String>,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "gold tables from the contract", sql: gold_ddl },
    Migration { version: 2, name: "gold publish ledger", sql: publish_ledger_ddl },
    Migration { version: 3, name: "run ledger", sql: run_ledger_ddl },
];

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

    fn sql_type(self, ty: GoldType) -> &'static str {
        match (self, ty) {
            (_, GoldType::Date) => "DATE",
            (_, GoldType::Text) => "TEXT",
            (Dialect::Postgres, GoldType::Int) => "BIGINT",
            (Dialect::Sqlite, GoldType::Int) => "INTEGER",
            (_, GoldType::Money) => "NUMERIC(18,2)",
            (Dialect::Postgres, GoldType::Ratio) => "DOUBLE PRECISION",
            (Dialect::Sqlite, GoldType::Ratio) => "REAL",
            (_, GoldType::Bool) => "BOOLEAN",
        }
    }
}

/// A SQL string literal (quotes doubled).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Migration 1: every gold table with its primary key (the grain), indexes and, in
/// PostgreSQL, `COMMENT ON` the table and every column from the contract.
fn gold_ddl(d: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    if d == Dialect::Postgres {
        out.push("CREATE SCHEMA IF NOT EXISTS gold".into());
        out.push("COMMENT ON SCHEMA gold IS 'medallion gold: business tables computed from silver (CONTRACT.md section 3). Published atomically per business date.'".into());
    }
    for t in TABLES {
        let name = d.table("gold", t.name);
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("{} {}{}", c.name, d.sql_type(c.ty), if c.nullable { "" } else { " NOT NULL" }))
            .collect();
        out.push(format!("CREATE TABLE {name} (\n    {},\n    PRIMARY KEY ({})\n)", cols.join(",\n    "), t.grain.join(", ")));
        for idx in t.indexes {
            out.push(format!("CREATE INDEX {}_{}_idx ON {name} ({})", t.name, idx.join("_"), idx.join(", ")));
        }
        if d == Dialect::Postgres {
            let grain = format!("{} Grain: {}.", t.doc, t.grain.join(", "));
            out.push(format!("COMMENT ON TABLE {name} IS {}", quote_literal(&grain)));
            for c in t.columns {
                out.push(format!("COMMENT ON COLUMN {name}.{} IS {}", c.name, quote_literal(c.doc)));
            }
        }
    }
    out
}

/// Migration 2: which silver runs the warehouse's gold carries.
fn publish_ledger_ddl(d: Dialect) -> Vec<String> {
    let ts = if d == Dialect::Postgres { "TIMESTAMPTZ NOT NULL DEFAULT now()" } else { "TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))" };
    vec![format!(
        "CREATE TABLE {} (\n    silver_run_date DATE PRIMARY KEY,\n    silver_stamp TEXT NOT NULL,\n    published_at {ts}\n)",
        d.table("medallion", "gold_publishes")
    )]
}

/// Migration 3: the run ledger (`medallion status` reads it): runs, their per-stage jobs, the
/// feed registry with each feed's reconciliation, and the products diff per run date.
fn run_ledger_ddl(d: Dialect) -> Vec<String> {
    let ts = if d == Dialect::Postgres { "TIMESTAMPTZ" } else { "TEXT" };
    let t = |n: &str| d.table("medallion", n);
    let mut v = vec![
        format!(
            "CREATE TABLE {} (\n    run_id TEXT PRIMARY KEY,\n    run_date DATE NOT NULL,\n    kind TEXT NOT NULL,\n    status TEXT NOT NULL,\n    \
             started_at {ts} NOT NULL,\n    finished_at {ts},\n    host TEXT NOT NULL,\n    pid BIGINT NOT NULL,\n    error TEXT\n)",
            t("runs")
        ),
        format!("CREATE INDEX runs_run_date_idx ON {} (run_date, started_at)", t("runs")),
        format!(
            "CREATE TABLE {} (\n    run_id TEXT NOT NULL,\n    stage TEXT NOT NULL,\n    status TEXT NOT NULL,\n    attempts BIGINT NOT NULL DEFAULT 0,\n    \
             started_at {ts},\n    finished_at {ts},\n    rows BIGINT,\n    summary TEXT,\n    error TEXT,\n    PRIMARY KEY (run_id, stage)\n)",
            t("jobs")
        ),
        format!(
            "CREATE TABLE {} (\n    feed_id TEXT PRIMARY KEY,\n    run_date DATE NOT NULL,\n    partner_id TEXT NOT NULL,\n    dataset TEXT NOT NULL,\n    \
             file_name TEXT NOT NULL,\n    status TEXT NOT NULL,\n    bytes BIGINT,\n    reason TEXT,\n    detail TEXT,\n    rows_read BIGINT,\n    \
             valid BIGINT,\n    rejected BIGINT,\n    duplicate BIGINT\n)",
            t("feeds")
        ),
        format!("CREATE INDEX feeds_run_date_idx ON {} (run_date)", t("feeds")),
        format!(
            "CREATE TABLE {} (\n    run_date DATE NOT NULL,\n    partner_id TEXT NOT NULL,\n    inserted BIGINT NOT NULL,\n    updated BIGINT NOT NULL,\n    \
             unchanged BIGINT NOT NULL,\n    skipped BIGINT NOT NULL,\n    duplicate BIGINT NOT NULL,\n    PRIMARY KEY (run_date, partner_id)\n)",
            t("product_diffs")
        ),
    ];
    if d == Dialect::Postgres {
        v.push("COMMENT ON TABLE medallion.runs IS 'One row per medallion run (run, backfill, schedule): status queued, running, completed, failed or skipped.'".into());
        v.push("COMMENT ON TABLE medallion.jobs IS 'The stages (bronze, silver, gold) of each run with their attempts, counts and errors.'".into());
        v.push("COMMENT ON TABLE medallion.feeds IS 'The feed registry (FD ids) with each feed''s reconciliation: rows_read = valid + rejected + duplicate.'".into());
    }
    v
}

fn checksum(statements: &[String]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for s in statements {
        h.update(s.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Warehouse {
    /// Opens `url`: `postgres://…` / `postgresql://…`, or `sqlite://path` (created if missing).
    pub async fn connect(url: &str) -> Result<Warehouse, WarehouseError> {
        let display = ::lake::redact_url(url);
        let config = |message: String| WarehouseError::Config { url: display.clone(), message };
        let conn = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| config(e.to_string()))?.application_name("medallion");
            let connecting = PgConnection::connect_with(&opts);
            let conn = match tokio::time::timeout(Duration::from_secs(15), connecting).await {
                Err(_) => return Err(WarehouseError::Unreachable { url: display, message: "no answer within 15 s".into() }),
                Ok(Err(e)) => return Err(classify(&display, e)),
                Ok(Ok(c)) => c,
            };
            Conn::Postgres(conn)
        } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
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
            Conn::Sqlite(SqliteConnection::connect_with(&opts).await.map_err(|e| config(e.to_string()))?)
        } else {
            return Err(config("use postgres://user@host:port/db or sqlite://path/to/file.db".into()));
        };
        Ok(Warehouse { conn, display, copy_format: CopyFormat::Binary })
    }

    pub fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Postgres(_) => Dialect::Postgres,
            Conn::Sqlite(_) => Dialect::Sqlite,
        }
    }

    fn err(&self, e: sqlx::Error) -> WarehouseError {
        classify(&self.display, e)
    }

    /// Applies the migrations this warehouse lacks, each in its own transaction, under a lock
    /// so that two processes never migrate at once. Returns the ones applied.
    pub async fn migrate(&mut self) -> Result<Vec<String>, WarehouseError> {
        let d = self.dialect();
        let display = self.display.clone();
        let e = |err: sqlx::Error| classify(&display, err);
        let ledger = d.table("medallion", "schema_migrations");
        let mut applied_now = Vec::new();
        for m in MIGRATIONS {
            let statements = (m.sql)(d);
            let sum = checksum(&statements);
            match &mut self.conn {
                Conn::Postgres(c) => {
                    let mut tx = c.begin().await.map_err(e)?;
                    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_LOCK_KEY).execute(&mut *tx).await.map_err(e)?;
                    sqlx::query("CREATE SCHEMA IF NOT EXISTS medallion").execute(&mut *tx).await.map_err(e)?;
                    sqlx::query(&format!(
                        "CREATE TABLE IF NOT EXISTS {ledger} (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    ))
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                    let row = sqlx::query(&format!("SELECT checksum FROM {ledger} WHERE version = $1")).bind(m.version).fetch_optional(&mut *tx).await.map_err(e)?;
                    if let Some(row) = row {
                        let applied: String = row.get(0);
                        if applied != sum {
                            return Err(WarehouseError::MigrationChanged { url: display, version: m.version, name: m.name.into(), applied, now: sum });
                        }
                        continue;
                    }
                    for s in &statements {
                        sqlx::query(s).execute(&mut *tx).await.map_err(e)?;
                    }
                    sqlx::query(&format!("INSERT INTO {ledger} (version, name, checksum) VALUES ($1, $2, $3)"))
                        .bind(m.version)
                        .bind(m.name)
                        .bind(&sum)
                        .execute(&mut *tx)
                        .await
                        .map_err(e)?;
                    tx.commit().await.map_err(e)?;
                }
                Conn::Sqlite(c) => {
                    // BEGIN IMMEDIATE takes the write lock up front (waits up to the busy timeout).
                    let mut tx = c.begin_with("BEGIN IMMEDIATE").await.map_err(e)?;
                    sqlx::query(&format!(
                        "CREATE TABLE IF NOT EXISTS {ledger} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
                    ))
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                    let row = sqlx::query(&format!("SELECT checksum FROM {ledger} WHERE version = ?")).bind(m.version).fetch_optional(&mut *tx).await.map_err(e)?;
                    if let Some(row) = row {
                        let applied: String = row.get(0);
                        if applied != sum {
                            return Err(WarehouseError::MigrationChanged { url: display, version: m.version, name: m.name.into(), applied, now: sum });
                        }
                        continue;
                    }
                    for s in &statements {
                        sqlx::query(s).execute(&mut *tx).await.map_err(e)?;
                    }
                    sqlx::query(&format!("INSERT INTO {ledger} (version, name, checksum) VALUES (?, ?, ?)"))
                        .bind(m.version)
                        .bind(m.name)
                        .bind(&sum)
                        .execute(&mut *tx)
                        .await
                        .map_err(e)?;
                    tx.commit().await.map_err(e)?;
                }
            }
            applied_now.push(format!("{:03} {}", m.version, m.name));
        }
        Ok(applied_now)
    }

    /// The silver runs whose changes the warehouse's gold carries: date → stamp.
    pub async fn published_runs(&mut self) -> Result<BTreeMap<String, String>, WarehouseError> {
        let t = self.dialect().table("medallion", "gold_publishes");
        let rows = self.query_strings(&format!("SELECT CAST(silver_run_date AS TEXT), silver_stamp FROM {t}")).await?;
        Ok(rows.into_iter().filter_map(|mut r| Some((r.get_mut(0)?.take()?, r.get_mut(1)?.take()?))).collect())
    }

    /// Publishes `outputs` in one transaction: for each table, deletes the rows of the dates it
    /// replaces (all rows for undated tables), loads the new rows, and checks that exactly the
    /// computed number of rows is visible for those dates; then records `runs` as published.
    /// Any failure (including a dropped connection) rolls everything back.
    pub async fn publish(&mut self, outputs: &[GoldOutput], runs: &[PublishedRun]) -> Result<Vec<LoadedTable>, WarehouseError> {
        let d = self.dialect();
        let display = self.display.clone();
        let e = |err: sqlx::Error| classify(&display, err);
        let format = self.copy_format;
        let mut loaded = Vec::new();
        match &mut self.conn {
            Conn::Postgres(c) => {
                let mut tx = c.begin().await.map_err(e)?;
                // One publisher at a time (a second one waits); readers are never blocked.
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_LOCK_KEY).execute(&mut *tx).await.map_err(e)?;
                for (i, o) in outputs.iter().enumerate() {
                    let name = d.table("gold", o.table.name);
                    let (filter, dates) = date_filter(o);
                    let deleted = sqlx::query(&format!("DELETE FROM {name}{filter}")).execute(&mut *tx).await.map_err(e)?.rows_affected();
                    let cols = o.table.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
                    let stmt = match format {
                        CopyFormat::Binary => format!("COPY {name} ({cols}) FROM STDIN WITH (FORMAT binary)"),
                        CopyFormat::Text => format!("COPY {name} ({cols}) FROM STDIN"),
                    };
                    let mut copy = tx.copy_in_raw(&stmt).await.map_err(e)?;
                    let mut buf = Vec::with_capacity(1 << 20);
                    if format == CopyFormat::Binary {
                        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
                        buf.extend_from_slice(&0i32.to_be_bytes());
                        buf.extend_from_slice(&0i32.to_be_bytes());
                    }
                    for b in &o.batches {
                        let cols = columns(o.table, b);
                        for row in 0..b.num_rows() {
                            match format {
                                CopyFormat::Binary => {
                                    buf.extend_from_slice(&(cols.len() as i16).to_be_bytes());
                                    for c in &cols {
                                        c.write_binary(row, &mut buf);
                                    }
                                }
                                CopyFormat::Text => {
                                    for (k, c) in cols.iter().enumerate() {
                                        if k > 0 {
                                            buf.push(b'\t');
                                        }
                                        c.write_text(row, &mut buf);
                                    }
                                    buf.push(b'\n');
                                }
                            }
                            if buf.len() >= 1 << 20 {
                                copy.send(std::mem::take(&mut buf)).await.map_err(e)?;
                                buf.reserve(1 << 20);
                            }
                        }
                    }
                    if format == CopyFormat::Binary {
                        buf.extend_from_slice(&(-1i16).to_be_bytes());
                    }
                    copy.send(buf).await.map_err(e)?;
                    let rows = copy.finish().await.map_err(e)?;
                    ::lake::fault::point("gold.load", i).await;
                    let found: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {name}{filter}")).fetch_one(&mut *tx).await.map_err(e)?;
                    verify(&display, o, rows, found as u64)?;
                    loaded.push(LoadedTable { table: o.table.name.into(), rows, dates, rows_deleted: deleted });
                }
                let ledger = d.table("medallion", "gold_publishes");
                for r in runs {
                    sqlx::query(&format!(
                        "INSERT INTO {ledger} (silver_run_date, silver_stamp, published_at) VALUES (CAST($1 AS DATE), $2, now()) \
                         ON CONFLICT (silver_run_date) DO UPDATE SET silver_stamp = EXCLUDED.silver_stamp, published_at = EXCLUDED.published_at"
                    ))
                    .bind(&r.silver_run_date)
                    .bind(&r.silver_stamp)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                }
                ::lake::fault::point("gold.commit", 0).await;
                tx.commit().await.map_err(e)?;
            }
            Conn::Sqlite(c) => {
                let mut tx = c.begin_with("BEGIN IMMEDIATE").await.map_err(e)?;
                for (i, o) in outputs.iter().enumerate() {
                    let name = d.table("gold", o.table.name);
                    let (filter, dates) = date_filter(o);
                    let deleted = sqlx::query(&format!("DELETE FROM {name}{filter}")).execute(&mut *tx).await.map_err(e)?.rows_affected();
                    let ncols = o.table.columns.len();
                    let cols = o.table.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
                    let per_stmt = (30_000 / ncols).clamp(1, 1000);
                    let mut rows = 0u64;
                    for b in &o.batches {
                        let acc = columns(o.table, b);
                        let mut start = 0;
                        while start < b.num_rows() {
                            let end = (start + per_stmt).min(b.num_rows());
                            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("INSERT INTO {name} ({cols}) "));
                            qb.push_values(start..end, |mut row_b, row| {
                                for c in &acc {
                                    c.bind_sqlite(row, &mut row_b);
                                }
                            });
                            rows += qb.build().execute(&mut *tx).await.map_err(e)?.rows_affected();
                            start = end;
                        }
                    }
                    ::lake::fault::point("gold.load", i).await;
                    let found: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {name}{filter}")).fetch_one(&mut *tx).await.map_err(e)?;
                    verify(&display, o, rows, found as u64)?;
                    loaded.push(LoadedTable { table: o.table.name.into(), rows, dates, rows_deleted: deleted });
                }
                let ledger = d.table("medallion", "gold_publishes");
                for r in runs {
                    sqlx::query(&format!(
                        "INSERT INTO {ledger} (silver_run_date, silver_stamp, published_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                         ON CONFLICT (silver_run_date) DO UPDATE SET silver_stamp = excluded.silver_stamp, published_at = excluded.published_at"
                    ))
                    .bind(&r.silver_run_date)
                    .bind(&r.silver_stamp)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                }
                ::lake::fault::point("gold.commit", 0).await;
                tx.commit().await.map_err(e)?;
            }
        }
        Ok(loaded)
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
        if role.is_empty() || !role.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_') || role.starts_with(|ch: char| ch.is_ascii_digit()) {
            return Err(WarehouseError::Config { url: display, message: format!("role name {role:?}: use lower-case letters, digits and _") });
        }
        let e = |err: sqlx::Error| classify(&display, err);
        let mut tx = c.begin().await.map_err(e)?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)").bind(role).fetch_one(&mut *tx).await.map_err(e)?;
        let pw = match password {
            Some(p) => format!(" PASSWORD {}", quote_literal(p)),
            None => String::new(),
        };
        let verb = if exists { "ALTER" } else { "CREATE" };
        sqlx::query(&format!("{verb} ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE{pw}")).execute(&mut *tx).await.map_err(e)?;
        for s in [
            format!("GRANT CONNECT ON DATABASE \"{}\" TO {role}", current_db(&mut tx).await.map_err(e)?),
            format!("GRANT USAGE ON SCHEMA gold TO {role}"),
            format!("GRANT SELECT ON ALL TABLES IN SCHEMA gold TO {role}"),
            format!("ALTER DEFAULT PRIVILEGES IN SCHEMA gold GRANT SELECT ON TABLES TO {role}"),
            format!("REVOKE CREATE ON SCHEMA public FROM {role}"),
        ] {
            sqlx::query(&s).execute(&mut *tx).await.map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        Ok(())
    }

    /// Runs a query and returns every row as strings (NULL as None), for status and tests.
    pub async fn query_strings(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, WarehouseError> {
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
        let display = self.display.clone();
        match &mut self.conn {
            Conn::Postgres(c) => Ok(sqlx::query(sql).fetch_all(c).await.map_err(|e| classify(&display, e))?.iter().map(cells).collect()),
            Conn::Sqlite(c) => Ok(sqlx::query(sql).fetch_all(c).await.map_err(|e| classify(&display, e))?.iter().map(cells).collect()),
        }
    }

    /// Executes statements (no result), for the ledger.
    pub async fn execute(&mut self, sql: &str) -> Result<u64, WarehouseError> {
        let r = match &mut self.conn {
            Conn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|r| r.rows_affected()),
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|r| r.rows_affected()),
        };
        r.map_err(|e| self.err(e))
    }

    pub async fn close(self) {
        let _ = match self.conn {
            Conn::Postgres(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
        };
    }
}

async fn current_db(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT current_database()").fetch_one(&mut **tx).await
}

fn verify(url: &str, o: &GoldOutput, loaded: u64, visible: u64) -> Result<(), WarehouseError> {
    let expected = o.rows() as u64;
    for found in [loaded, visible] {
        if found != expected {
            return Err(WarehouseError::RowCount { url: url.into(), table: o.table.name.into(), expected, found });
        }
    }
    Ok(())
}

/// ` WHERE date_col IN (…)` for the dates an output replaces ('' for all rows), and the dates
/// as strings for the report.
fn date_filter(o: &GoldOutput) -> (String, Vec<String>) {
    match (&o.dates, o.table.date_column) {
        (Dates::Only(s), Some(c)) => {
            let list: Vec<String> = s.iter().map(|x| quote_literal(x)).collect();
            let list = if list.is_empty() { "NULL".to_string() } else { list.join(", ") };
            (format!(" WHERE {c} IN ({list})"), s.iter().cloned().collect())
        }
        _ => (String::new(), vec!["all".into()]),
    }
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

/// A typed view of one column of a conformed gold batch.
enum Col<'a> {
    Date(&'a arrow::array::PrimitiveArray<Date32Type>),
    Text(&'a arrow::array::StringArray),
    Int(&'a arrow::array::PrimitiveArray<Int64Type>),
    Money(&'a arrow::array::PrimitiveArray<Decimal128Type>),
    Ratio(&'a arrow::array::PrimitiveArray<Float64Type>),
    Bool(&'a arrow::array::BooleanArray),
}

fn columns<'a>(t: &GoldTable, b: &'a RecordBatch) -> Vec<Col<'a>> {
    t.columns
        .iter()
        .zip(b.columns())
        .map(|(c, a)| match c.ty {
            GoldType::Date => Col::Date(a.as_primitive::<Date32Type>()),
            GoldType::Text => Col::Text(a.as_string::<i32>()),
            GoldType::Int => Col::Int(a.as_primitive::<Int64Type>()),
            GoldType::Money => Col::Money(a.as_primitive::<Decimal128Type>()),
            GoldType::Ratio => Col::Ratio(a.as_primitive::<Float64Type>()),
            GoldType::Bool => Col::Bool(a.as_boolean()),
        })
        .collect()
}

/// Days between 1970-01-01 and 2000-01-01 (PostgreSQL's date epoch).
const PG_EPOCH_DAYS: i32 = 10_957;

pub fn date_string(days: i32) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days as i64)).format("%Y-%m-%d").to_string()
}

/// Cents as a decimal string with two places: -1234 → "-12.34".
pub fn money_string(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// PostgreSQL's binary NUMERIC for `cents` / 100: base-10000 digits, weight, sign, dscale 2.
pub fn pg_numeric(cents: i128, out: &mut Vec<u8>) {
    let a = cents.unsigned_abs();
    let (mut int, frac) = (a / 100, (a % 100) as i16 * 100);
    let mut digits: Vec<i16> = Vec::new();
    while int > 0 {
        digits.push((int % 10_000) as i16);
        int /= 10_000;
    }
    digits.reverse();
    let weight = digits.len() as i16 - 1;
    if frac != 0 {
        digits.push(frac);
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let (weight, sign) = if digits.is_empty() { (0, 0u16) } else { (weight, if cents < 0 { 0x4000 } else { 0 }) };
    out.extend_from_slice(&(8 + 2 * digits.len() as i32).to_be_bytes());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&2u16.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

fn copy_text_escape(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        format!("{v:?}")
    }
}

impl Col<'_> {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Col::Date(a) => a.is_null(row),
            Col::Text(a) => a.is_null(row),
            Col::Int(a) => a.is_null(row),
            Col::Money(a) => a.is_null(row),
            Col::Ratio(a) => a.is_null(row),
            Col::Bool(a) => a.is_null(row),
        }
    }

    fn write_binary(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return;
        }
        match self {
            Col::Date(a) => {
                out.extend_from_slice(&4i32.to_be_bytes());
                out.extend_from_slice(&(a.value(row) - PG_EPOCH_DAYS).to_be_bytes());
            }
            Col::Text(a) => {
                let v = a.value(row).as_bytes();
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            Col::Int(a) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&a.value(row).to_be_bytes());
            }
            Col::Money(a) => pg_numeric(a.value(row), out),
            Col::Ratio(a) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&a.value(row).to_be_bytes());
            }
            Col::Bool(a) => {
                out.extend_from_slice(&1i32.to_be_bytes());
                out.push(a.value(row) as u8);
            }
        }
    }

    fn write_text(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(b"\\N");
            return;
        }
        match self {
            Col::Date(a) => out.extend_from_slice(date_string(a.value(row)).as_bytes()),
            Col::Text(a) => copy_text_escape(a.value(row), out),
            Col::Int(a) => out.extend_from_slice(a.value(row).to_string().as_bytes()),
            Col::Money(a) => out.extend_from_slice(money_string(a.value(row)).as_bytes()),
            Col::Ratio(a) => out.extend_from_slice(float_text(a.value(row)).as_bytes()),
            Col::Bool(a) => out.push(if a.value(row) { b't' } else { b'f' }),
        }
    }

    fn bind_sqlite<'q>(&self, row: usize, b: &mut sqlx::query_builder::Separated<'_, 'q, sqlx::Sqlite, &'static str>) {
        let null = self.is_null(row);
        match self {
            Col::Date(a) => b.push_bind((!null).then(|| date_string(a.value(row)))),
            // Money goes in as its exact decimal text; the column's NUMERIC affinity stores it
            // as a number, so SQL arithmetic and BI tools see numbers.
            Col::Text(a) => b.push_bind((!null).then(|| a.value(row).to_string())),
            Col::Int(a) => b.push_bind((!null).then(|| a.value(row))),
            Col::Money(a) => b.push_bind((!null).then(|| money_string(a.value(row)))),
            Col::Ratio(a) => b.push_bind((!null).then(|| a.value(row))),
            Col::Bool(a) => b.push_bind((!null).then(|| a.value(row))),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_encoding() {
        let enc = |c: i128| {
            let mut v = Vec::new();
            pg_numeric(c, &mut v);
            let n = i16::from_be_bytes([v[4], v[5]]);
            let w = i16::from_be_bytes([v[6], v[7]]);
            let s = u16::from_be_bytes([v[8], v[9]]);
            let digits: Vec<i16> = (0..n as usize).map(|i| i16::from_be_bytes([v[12 + 2 * i], v[13 + 2 * i]])).collect();
            (w, s, digits)
        };
        assert_eq!(enc(0), (0, 0, vec![]));
        assert_eq!(enc(1), (-1, 0, vec![100])); // 0.01
        assert_eq!(enc(-1234), (0, 0x4000, vec![12, 3400])); // -12.34
        assert_eq!(enc(1_000_000), (1, 0, vec![1])); // 10000.00
        assert_eq!(enc(123_456_789_05), (2, 0, vec![1, 2345, 6789, 500])); // 123456789.05
        assert_eq!(enc(999_999_999_999_999_999), (3, 0, vec![9999, 9999, 9999, 9999, 9900])); // 9999999999999999.99
    }

    #[test]
    fn text_renderings() {
        assert_eq!(money_string(-5), "-0.05");
        assert_eq!(money_string(123456), "1234.56");
        assert_eq!(date_string(20_411), "2025-11-19");
        assert_eq!(date_string(0), "1970-01-01");
        let mut out = Vec::new();
        copy_text_escape("a\tb\\c\nd", &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd");
        assert_eq!(float_text(0.1), "0.1");
        assert_eq!(float_text(1.0), "1.0");
    }

    #[test]
    fn ddl_covers_every_table_and_comment() {
        let pg = gold_ddl(Dialect::Postgres).join(";\n");
        let lite = gold_ddl(Dialect::Sqlite).join(";\n");
        for t in TABLES {
            assert!(pg.contains(&format!("CREATE TABLE gold.{} (", t.name)));
            assert!(lite.contains(&format!("CREATE TABLE {} (", t.name)));
            for c in t.columns {
                assert!(pg.contains(&format!("COMMENT ON COLUMN gold.{}.{} IS", t.name, c.name)), "{}.{}", t.name, c.name);
            }
        }
        assert!(!lite.contains("COMMENT"));
    }
}
