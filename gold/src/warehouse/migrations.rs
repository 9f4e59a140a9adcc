//! Versioned migrations, recorded in `medallion.schema_migrations` (`medallion_schema_migrations`
//! in SQLite) with a checksum of their statements: each runs once, in its own transaction,
//! under the warehouse's write lock. Gold owns versions 1 and 2 (its tables and its publish
//! ledger); other owners pass their own list to [`Warehouse::migrate_with`] (the pipeline's run
//! ledger is version 3). A migration is never edited once released: add a new version.

use super::{Dialect, Param, Warehouse, WarehouseError};
use crate::models::{self, GoldType};

/// A versioned migration: the statements of `sql(dialect)` run once, in one transaction.
#[derive(Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: fn(Dialect) -> Vec<String>,
}

/// Gold's own migrations.
pub const GOLD_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "gold tables from the contract", sql: gold_ddl },
    Migration { version: 2, name: "gold publish ledger", sql: publish_ledger_ddl },
];

pub(super) fn sql_type(d: Dialect, ty: GoldType) -> &'static str {
    match (d, ty) {
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

/// A SQL string literal (quotes doubled), for DDL text only (`COMMENT ON` takes no parameter).
fn comment_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Migration 1: every gold table with its primary key (the grain), indexes and, in
/// PostgreSQL, `COMMENT ON` the table and every column, from `gold/models/*.toml`.
pub fn gold_ddl(d: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    if d == Dialect::Postgres {
        out.push("CREATE SCHEMA IF NOT EXISTS gold".into());
        out.push("COMMENT ON SCHEMA gold IS 'medallion gold: business tables computed from silver (CONTRACT.md section 3). Published atomically per business date.'".into());
    }
    for t in models::tables() {
        let name = d.table("gold", &t.name);
        let cols: Vec<String> =
            t.columns.iter().map(|c| format!("{} {}{}", c.name, sql_type(d, c.ty), if c.nullable { "" } else { " NOT NULL" })).collect();
        out.push(format!("CREATE TABLE {name} (\n    {},\n    PRIMARY KEY ({})\n)", cols.join(",\n    "), t.grain.join(", ")));
        for idx in &t.indexes {
            out.push(format!("CREATE INDEX {}_{}_idx ON {name} ({})", t.name, idx.join("_"), idx.join(", ")));
        }
        if d == Dialect::Postgres {
            let grain = format!("{} Grain: {}.", t.doc, t.grain.join(", "));
            out.push(format!("COMMENT ON TABLE {name} IS {}", comment_literal(&grain)));
            for c in &t.columns {
                out.push(format!("COMMENT ON COLUMN {name}.{} IS {}", c.name, comment_literal(&c.doc)));
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

pub fn checksum(statements: &[String]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for s in statements {
        h.update(s.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Warehouse {
    /// Applies gold's migrations this warehouse lacks. Returns the ones applied.
    pub async fn migrate(&mut self) -> Result<Vec<String>, WarehouseError> {
        self.migrate_with(GOLD_MIGRATIONS).await
    }

    /// Applies the migrations of `list` this warehouse lacks, each in its own transaction,
    /// under a lock so that two processes never migrate at once; refuses a migration whose
    /// statements changed since it was applied. Returns the ones applied ("003 run ledger").
    /// Versions already verified on this connection are skipped.
    pub async fn migrate_with(&mut self, list: &[Migration]) -> Result<Vec<String>, WarehouseError> {
        let d = self.dialect();
        let ledger = d.table("medallion", "schema_migrations");
        let mut applied_now = Vec::new();
        for m in list {
            if self.migrated.contains(&m.version) {
                continue;
            }
            let statements = (m.sql)(d);
            let sum = checksum(&statements);
            let mut tx = self.begin_write().await?;
            if d == Dialect::Postgres {
                tx.execute("CREATE SCHEMA IF NOT EXISTS medallion", &[]).await?;
            }
            let (version_type, ts) = match d {
                Dialect::Postgres => ("BIGINT", "TIMESTAMPTZ NOT NULL DEFAULT now()"),
                Dialect::Sqlite => ("INTEGER", "TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"),
            };
            tx.execute(&format!("CREATE TABLE IF NOT EXISTS {ledger} (version {version_type} PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at {ts})"), &[])
                .await?;
            let row = tx.fetch(&format!("SELECT checksum FROM {ledger} WHERE version = $1"), &[Param::Int(Some(m.version))]).await?;
            if let Some(applied) = row.into_iter().next().and_then(|r| r.into_iter().next().flatten()) {
                if applied != sum {
                    return Err(WarehouseError::MigrationChanged { url: tx.display.clone(), version: m.version, name: m.name.into(), applied, now: sum });
                }
                drop(tx);
            } else {
                for s in &statements {
                    tx.execute(s, &[]).await?;
                }
                let params = [Param::Int(Some(m.version)), Param::text(m.name), Param::text(&sum)];
                tx.execute(&format!("INSERT INTO {ledger} (version, name, checksum) VALUES ($1, $2, $3)"), &params).await?;
                tx.commit().await?;
                applied_now.push(format!("{:03} {}", m.version, m.name));
            }
            self.migrated.insert(m.version);
        }
        Ok(applied_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DDL generated from gold/models/*.toml is exactly what the code generated from
    /// `schemas::gold` before the models moved (captured into tests-data), so existing
    /// warehouses see the same migration checksums.
    #[test]
    fn ddl_is_unchanged() {
        for (d, file, sums) in [
            (Dialect::Postgres, include_str!("../../tests-data/gold_ddl.postgres.snap"), include_str!("../../tests-data/gold_ddl.postgres.checksums.snap")),
            (Dialect::Sqlite, include_str!("../../tests-data/gold_ddl.sqlite.snap"), include_str!("../../tests-data/gold_ddl.sqlite.checksums.snap")),
        ] {
            assert_eq!(gold_ddl(d).join(";\n\n") + ";\n", file, "{d:?}");
            for m in GOLD_MIGRATIONS {
                let want = format!("{} {} {}", m.version, m.name, checksum(&(m.sql)(d)));
                assert!(sums.lines().any(|l| l == want), "{d:?}: {want} not in {sums}");
            }
        }
    }

    #[test]
    fn ddl_covers_every_table_and_comment() {
        let pg = gold_ddl(Dialect::Postgres).join(";\n");
        let lite = gold_ddl(Dialect::Sqlite).join(";\n");
        for t in models::tables() {
            assert!(pg.contains(&format!("CREATE TABLE gold.{} (", t.name)));
            assert!(lite.contains(&format!("CREATE TABLE {} (", t.name)));
            for c in &t.columns {
                assert!(pg.contains(&format!("COMMENT ON COLUMN gold.{}.{} IS", t.name, c.name)), "{}.{}", t.name, c.name);
            }
        }
        assert!(!lite.contains("COMMENT"));
    }
}
