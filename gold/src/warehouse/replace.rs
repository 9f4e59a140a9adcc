//! Which stored rows a publish replaces, inside its transaction: the whole dates of an output
//! (`date IN (…)`, every row for `Dates::All`) and its key tuples (`[incremental]`), the latter
//! loaded into a temporary table and matched with `(key…) IN (SELECT … FROM keys)`, which both
//! databases answer through the primary key (every key is a prefix of the grain). Deleting
//! those rows and loading the computed ones upserts the tuples and deletes the vanished ones.

use super::{classify, postgres, sqlite, Dialect, Param, Tx, TxConn, WarehouseError};
use crate::models::GoldTable;
use crate::{Dates, GoldOutput};

/// One part of what an output replaces: a `WHERE` clause with its parameters.
pub(super) struct Part {
    pub filter: String,
    pub params: Vec<Param>,
}

/// The dates an output replaces as strings, for the report ("all" for the whole table).
pub(super) fn dates_report(o: &GoldOutput) -> Vec<String> {
    match &o.dates {
        Dates::All => vec!["all".into()],
        Dates::Only(s) => s.iter().cloned().collect(),
    }
}

/// The temporary table of an output's key tuples.
fn keys_table(t: &GoldTable) -> String {
    format!("medallion_keys_{}", t.name)
}

/// Prepares what `o` replaces: loads its key tuples (if any) into a temporary table, and
/// returns the parts (none: the output replaces nothing).
pub(super) async fn prepare(tx: &mut Tx<'_>, d: Dialect, o: &GoldOutput) -> Result<Vec<Part>, WarehouseError> {
    let t = o.table;
    let mut parts = Vec::new();
    match (&o.dates, &t.date_column) {
        (Dates::All, _) => parts.push(Part { filter: String::new(), params: Vec::new() }),
        (Dates::Only(s), Some(c)) if !s.is_empty() => {
            let params: Vec<Param> = s.iter().map(|x| Param::date(x)).collect();
            let list = (1..=s.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            parts.push(Part { filter: format!(" WHERE {c} IN ({list})"), params });
        }
        _ => {}
    }
    let Some(g) = o.groups.as_ref().filter(|g| !g.is_empty()) else { return Ok(parts) };
    let keys = keys_table(t);
    let key_table = GoldTable {
        name: keys.clone(),
        doc: String::new(),
        date_column: None,
        grain: g.columns.clone(),
        indexes: Vec::new(),
        columns: g.columns.iter().map(|c| t.column(c).expect("key columns are columns").clone()).collect(),
        incremental: None,
    };
    let cols: Vec<String> = key_table.columns.iter().map(|c| format!("{} {}", c.name, super::migrations::sql_type(d, c.ty))).collect();
    let on_commit = if d == Dialect::Postgres { " ON COMMIT DROP" } else { "" };
    tx.execute(&format!("CREATE TEMPORARY TABLE {keys} ({}){on_commit}", cols.join(", ")), &[]).await?;
    let display = tx.display.clone();
    let batches = std::slice::from_ref(&g.rows);
    match &mut tx.conn {
        TxConn::Postgres(c) => postgres::load(c, &keys, &key_table, batches, super::CopyFormat::Binary).await,
        TxConn::Sqlite(c) => sqlite::load(c, &keys, &key_table, batches).await,
    }
    .map_err(|e| classify(&display, e))?;
    if d == Dialect::Postgres {
        // Statistics, so that the planner probes the primary key instead of scanning the table.
        tx.execute(&format!("ANALYZE {keys}"), &[]).await?;
    }
    let list = g.columns.join(", ");
    parts.push(Part { filter: format!(" WHERE ({list}) IN (SELECT {list} FROM {keys})"), params: Vec::new() });
    Ok(parts)
}

/// Drops the temporary table of `o`'s key tuples, if it has one.
pub(super) async fn finish(tx: &mut Tx<'_>, o: &GoldOutput) -> Result<(), WarehouseError> {
    if o.groups.as_ref().is_some_and(|g| !g.is_empty()) {
        tx.execute(&format!("DROP TABLE {}", keys_table(o.table)), &[]).await?;
    }
    Ok(())
}
