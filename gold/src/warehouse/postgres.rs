//! PostgreSQL's side of the seam: connecting, the advisory write lock, binding parameters
//! (dates and timestamps as `date` / `timestamptz`), COPY loads and the read-only BI role.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection};
use sqlx::{Connection, Postgres};

use super::encode::columns;
use super::{classify, CopyFormat, Param, WarehouseError};
use crate::models::GoldTable;
use arrow::array::RecordBatch;

const LOCK_KEY: i64 = 0x6d65_6461_6c6c; // "medall": serialises migrations and publishes

pub(super) async fn connect(url: &str, display: &str) -> Result<PgConnection, WarehouseError> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| WarehouseError::Config { url: display.into(), message: e.to_string() })?
        .application_name("medallion");
    match tokio::time::timeout(Duration::from_secs(15), PgConnection::connect_with(&opts)).await {
        Err(_) => Err(WarehouseError::Unreachable { url: display.into(), message: "no answer within 15 s".into() }),
        Ok(Err(e)) => Err(classify(display, e)),
        Ok(Ok(c)) => Ok(c),
    }
}

/// A transaction holding the advisory lock: one migrator or publisher at a time (a second one
/// waits); readers are never blocked.
pub(super) async fn begin_locked(c: &mut PgConnection) -> Result<sqlx::Transaction<'_, Postgres>, sqlx::Error> {
    let mut tx = c.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(&mut *tx).await?;
    Ok(tx)
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

pub(super) fn bind<'q>(mut q: Query<'q>, params: &[Param], display: &str) -> Result<Query<'q>, WarehouseError> {
    let bad = |what: &str, v: &str| WarehouseError::Query { url: display.into(), message: format!("{what} parameter {v:?} is not valid") };
    for p in params {
        q = match p {
            Param::Text(v) => q.bind(v.clone()),
            Param::Int(v) => q.bind(*v),
            Param::Date(v) => {
                let d = v.as_deref().map(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad("date", s))).transpose()?;
                q.bind(d)
            }
            Param::Timestamp(v) => {
                let t = v
                    .as_deref()
                    .map(|s| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&chrono::Utc)).map_err(|_| bad("timestamp", s)))
                    .transpose()?;
                q.bind(t)
            }
        };
    }
    Ok(q)
}

/// Loads an output with COPY (binary or text); returns the rows COPY reports.
pub(super) async fn load(tx: &mut sqlx::Transaction<'_, Postgres>, name: &str, t: &GoldTable, batches: &[RecordBatch], format: CopyFormat) -> Result<u64, sqlx::Error> {
    let cols = t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let stmt = match format {
        CopyFormat::Binary => format!("COPY {name} ({cols}) FROM STDIN WITH (FORMAT binary)"),
        CopyFormat::Text => format!("COPY {name} ({cols}) FROM STDIN"),
    };
    let mut copy = tx.copy_in_raw(&stmt).await?;
    let mut buf = Vec::with_capacity(1 << 20);
    if format == CopyFormat::Binary {
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
    }
    for b in batches {
        let cols = columns(t, b);
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
                copy.send(std::mem::take(&mut buf)).await?;
                buf.reserve(1 << 20);
            }
        }
    }
    if format == CopyFormat::Binary {
        buf.extend_from_slice(&(-1i16).to_be_bytes());
    }
    copy.send(buf).await?;
    copy.finish().await
}

/// See [`super::Warehouse::grant_readonly`]. Role statements take no parameters: the server
/// quotes the role (`%I`) and the password (`%L`) with `format()` inside a DO block, the
/// password read from a transaction-local setting bound as a parameter.
pub(super) async fn grant_readonly(c: &mut PgConnection, display: &str, role: &str, password: Option<&str>) -> Result<(), WarehouseError> {
    if role.is_empty() || !role.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_') || role.starts_with(|ch: char| ch.is_ascii_digit()) {
        return Err(WarehouseError::Config { url: display.into(), message: format!("role name {role:?}: use lower-case letters, digits and _") });
    }
    let e = |err: sqlx::Error| classify(display, err);
    let mut tx = c.begin().await.map_err(e)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)").bind(role).fetch_one(&mut *tx).await.map_err(e)?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    // The password never appears in any statement text (sqlx logs statement texts at debug
    // level, and so may the server): it is a bound parameter of set_config (local to this
    // transaction), which the DO block reads back. The role name is validated above.
    let role_sql = match password {
        Some(p) => {
            sqlx::query("SELECT set_config('medallion.role_password', $1, true)").bind(p).execute(&mut *tx).await.map_err(e)?;
            format!(
                "DO $medallion$ BEGIN EXECUTE format('{verb} ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', '{role}', \
                 current_setting('medallion.role_password')); END $medallion$"
            )
        }
        None => format!("{verb} ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
    };
    sqlx::query(&role_sql).execute(&mut *tx).await.map_err(e)?;
    if password.is_some() {
        sqlx::query("SELECT set_config('medallion.role_password', '', true)").execute(&mut *tx).await.map_err(e)?;
    }
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut *tx).await.map_err(e)?;
    for s in [
        format!("GRANT CONNECT ON DATABASE \"{db}\" TO {role}"),
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
