//! `medallion gold --date D`: works out which business dates the silver runs not yet in the
//! warehouse changed, recomputes exactly those (and the undated tables), reconciles them with
//! silver, writes them to the lake and publishes them in one warehouse transaction.
//!
//! Which dates: the warehouse records the silver runs (date and a stamp of the table versions
//! they produced) whose changes its gold carries. Every completed silver run missing there, or
//! re-run since, is pending; the dates to republish are their business dates (late orders and
//! status changes included, recorded by silver), their run dates (product_changes,
//! inventory_status) and every date holding an item or a snapshot of a product they inserted,
//! renamed or recategorised. A warehouse without any publish gets everything.
//!
//! When the pending runs continue from the published silver state, the publish is keyed
//! (`incremental`): whole business and run dates as above, but a product's change replaces
//! only the groups holding its items, and the undated tables only their touched keys.

use std::collections::BTreeSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use deltalake::datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use ::lake::Location;
use schemas::{paths, silver, Dataset, RunDate, RunStatus, SilverRecord};
use serde::Serialize;

use crate::checks::CheckResult;
use crate::warehouse::{LoadedTable, PublishedRun};
use crate::{incremental, models, Dates, GoldError, Scope, Warehouse};

#[derive(Debug, Clone, Default)]
pub struct GoldOptions {
    /// Recompute and republish every date (a full rebuild of gold).
    pub full: bool,
    /// Where the models run (the local engine unless a cluster is given).
    pub engine: crate::Engine,
}

#[derive(Debug, Clone, Serialize)]
pub struct GoldReport {
    pub date: String,
    pub warehouse: String,
    pub full: bool,
    /// Whether this publish replaced key tuples (`[incremental]`) rather than whole products'
    /// dates and whole undated tables (see `incremental`).
    pub keyed: bool,
    /// Warehouse migrations applied by this run.
    pub migrations: Vec<String>,
    /// The silver runs this publish carries.
    pub silver_runs: Vec<String>,
    pub order_dates: Vec<String>,
    pub run_dates: Vec<String>,
    pub snapshot_dates: Vec<String>,
    pub checks: Vec<CheckResult>,
    pub tables: Vec<LoadedTable>,
    pub lake_files_written: usize,
    pub lake_files_removed: usize,
    pub compute_seconds: f64,
    /// Writing gold Parquet to the lake.
    pub lake_seconds: f64,
    /// The warehouse transaction (delete, load, verify, commit), which runs while the lake
    /// files are written: `publish_seconds` is about the larger of the two, not their sum.
    pub warehouse_seconds: f64,
    pub publish_seconds: f64,
}

/// Silver's run record (`silver/_runs/D.json`): the type silver writes.
type SilverRun = SilverRecord;

/// The stamp of the table versions a silver run produced.
trait Stamp {
    fn stamp(&self) -> String;
}

impl Stamp for SilverRun {
    fn stamp(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_string(&self.versions_after).expect("serialisable");
        sha2::Sha256::digest(json.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

async fn silver_runs(lake: &Location) -> Result<Vec<SilverRun>, GoldError> {
    let prefix = lake.path(&paths::silver_runs());
    let metas: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| GoldError::store(lake, &prefix, e))?;
    let records: Vec<object_store::path::Path> = metas.into_iter().map(|m| m.location).filter(|p| p.as_ref().ends_with(".json")).collect();
    let bodies = lake.get_many(records.clone()).await.map_err(|(path, e)| GoldError::store(lake, &path, e))?;
    let mut runs = Vec::with_capacity(records.len());
    for (body, path) in bodies.into_iter().zip(records) {
        // Listed but gone: a record is never deleted while gold reads, so this is an error.
        let bytes = body.ok_or_else(|| {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "run record vanished after listing").into();
            GoldError::store(lake, &path, object_store::Error::NotFound { path: path.to_string(), source })
        })?;
        runs.push(serde_json::from_slice::<SilverRun>(&bytes).map_err(|source| GoldError::Record { path: lake.describe(&path), source })?);
    }
    runs.sort_by(|a, b| a.date.cmp(&b.date));
    Ok(runs)
}

fn string_set(batches: &[RecordBatch]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for b in batches {
        let a = arrow::compute::cast(b.column(0), &DataType::Utf8).expect("dates cast to strings");
        let a = a.as_string::<i32>();
        out.extend((0..a.len()).filter(|i| a.is_valid(*i)).map(|i| a.value(i).to_string()));
    }
    out
}

async fn query_set(ctx: &SessionContext, sql: &str) -> Result<BTreeSet<String>, GoldError> {
    let map = GoldError::query;
    Ok(string_set(&ctx.sql(sql).await.map_err(map("dates to republish"))?.collect().await.map_err(map("dates to republish"))?))
}

/// The dates whose figures the products inserted, renamed or recategorised by `runs` change:
/// the order dates of their items and the snapshot dates of their inventory.
async fn dates_of_changed_products(ctx: &SessionContext, runs: &[&SilverRun]) -> Result<(BTreeSet<String>, BTreeSet<String>), GoldError> {
    let keys = incremental::register_changed_products(ctx, runs, "_changed_products").await?;
    if keys.is_empty() {
        return Ok((BTreeSet::new(), BTreeSet::new()));
    }
    // Read by key: only those products' items (and their orders) and inventory rows.
    let narrowed = crate::session_narrowed(ctx, &[silver::current_table(Dataset::OrderItems).to_string(), silver::current_table(Dataset::Inventory).to_string()], &keys).await?;
    let orders = query_set(&narrowed, "SELECT DISTINCT order_date FROM _fulfilled_items").await?;
    let snapshots = query_set(&narrowed, "SELECT DISTINCT snapshot_date FROM inventory").await?;
    Ok((orders, snapshots))
}

fn list(d: &Dates) -> Vec<String> {
    match d {
        Dates::All => vec!["all".into()],
        Dates::Only(s) => s.iter().cloned().collect(),
    }
}

/// Runs gold for `date` (see the module documentation).
pub async fn run_gold(lake: &Location, wh: &mut Warehouse, date: RunDate, opts: &GoldOptions) -> Result<GoldReport, GoldError> {
    let migrations = wh.migrate().await?;
    let runs = silver_runs(lake).await?;
    let this = runs.iter().find(|r| r.date == date);
    match this {
        Some(r) if r.status != RunStatus::Completed => {
            return Err(GoldError::Input(format!("silver's run for {date} did not complete (status {}); run silver for {date} again first", r.status)));
        }
        _ => {}
    }
    let published = wh.published_runs().await?;
    let full = opts.full || published.is_empty();
    let completed: Vec<&SilverRun> = runs.iter().filter(|r| r.status == RunStatus::Completed).collect();
    // The run asked for is always republished (re-running a date repairs it); other runs only
    // when the warehouse does not carry them yet.
    let pending: Vec<&SilverRun> = if full {
        completed.clone()
    } else {
        completed.iter().copied().filter(|r| r.date == date || published.get(&r.date.to_string()) != Some(&r.stamp())).collect()
    };
    if this.is_none() && pending.is_empty() {
        return Err(GoldError::NothingToDo(format!("silver has not run for {date} and the warehouse carries every silver run")));
    }

    let started = std::time::Instant::now();
    let (ctx, read) = crate::session_on(lake, &opts.engine).await?;
    let carried: Vec<&SilverRun> = completed.iter().copied().filter(|r| published.get(&r.date.to_string()) == Some(&r.stamp())).collect();
    let uncarried: Vec<&SilverRun> = pending.iter().copied().filter(|r| published.get(&r.date.to_string()) != Some(&r.stamp())).collect();
    let mut groups = None;
    let scope = if full {
        Scope::ALL
    } else {
        let mut order_dates: BTreeSet<String> = pending.iter().flat_map(|r| r.business_dates.iter().cloned()).collect();
        let run_dates: BTreeSet<String> = pending.iter().map(|r| r.date.to_string()).collect();
        // Keyed when the runs continue from the published state up to silver's current state.
        let before = match incremental::chain(&carried, &uncarried) {
            Some((start, end)) if incremental::reads_state(&read, end) => Some(start),
            _ => None,
        };
        let whole = Scope { order_dates: Dates::Only(order_dates.clone()), run_dates: Dates::Only(run_dates.clone()), snapshot_dates: Dates::Only(run_dates.clone()) };
        groups = match before {
            Some(before) => incremental::groups(&ctx, lake, &pending, before, &whole).await?,
            None => None,
        };
        if groups.is_some() {
            whole
        } else {
            let (item_dates, snapshot_dates) = dates_of_changed_products(&ctx, &pending).await?;
            order_dates.extend(item_dates);
            let mut snapshots = run_dates.clone();
            snapshots.extend(snapshot_dates);
            Scope { order_dates: Dates::Only(order_dates), run_dates: Dates::Only(run_dates), snapshot_dates: Dates::Only(snapshots) }
        }
    };
    tracing::debug!("gold scope (keyed: {}) after {:.2} s", groups.is_some(), started.elapsed().as_secs_f64());
    // A keyed publish reads the shared views of the order dates it computes once.
    let dated = match (&groups, &scope.order_dates) {
        (Some(g), Dates::Only(whole)) => {
            let mut dates = whole.clone();
            for m in models().iter().filter(|m| m.table.date_column.as_deref() == Some("order_date")) {
                dates.extend(g.0.get(m.name).map(|k| k.first_values()).unwrap_or_default());
            }
            Some(crate::session_for_order_dates(&ctx, &dates).await?)
        }
        _ => None,
    };
    let mut outputs = Vec::with_capacity(models().len());
    for m in models() {
        let g = groups.as_ref().and_then(|g: &incremental::Groups| g.0.get(m.name));
        let t = std::time::Instant::now();
        let on = match &dated {
            Some(d) if m.table.date_column.as_deref() == Some("order_date") => d,
            _ => &ctx,
        };
        outputs.push(crate::run_model_keyed(on, m, &scope, g).await?);
        tracing::debug!("gold model {}: {} rows in {:.2} s", m.name, outputs.last().map_or(0, |o| o.rows()), t.elapsed().as_secs_f64());
    }
    let t = std::time::Instant::now();
    let checks = crate::checks::run(dated.as_ref().unwrap_or(&ctx), &outputs, &scope).await?;
    tracing::debug!("gold checks in {:.2} s", t.elapsed().as_secs_f64());
    let compute_seconds = started.elapsed().as_secs_f64();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| {
            let shown: Vec<&str> = c.failures.iter().take(5).map(String::as_str).collect();
            format!("  {} ({}): {} rows, e.g. {}", c.name, c.description, c.failures.len(), shown.join("; "))
        })
        .collect();
    if !failed.is_empty() {
        return Err(GoldError::Reconciliation(failed));
    }

    // The lake files and the warehouse transaction are written at the same time; the
    // transaction commits only once every lake file is written (a failure of either leaves
    // the warehouse as it was, and the next run rewrites the lake files).
    let started = std::time::Instant::now();
    let carried: Vec<PublishedRun> = pending.iter().map(|r| PublishedRun { silver_run_date: r.date.to_string(), silver_stamp: r.stamp() }).collect();
    let lake_write = async {
        let r = crate::lake::write(lake, &outputs).await;
        (r, started.elapsed().as_secs_f64())
    };
    let stage = async {
        let r = wh.stage(&outputs, &carried).await;
        (r, started.elapsed().as_secs_f64())
    };
    let ((lake_result, lake_seconds), (staged, staged_at)) = tokio::join!(lake_write, stage);
    let (lake_files_written, lake_files_removed) = lake_result?;
    let committing = std::time::Instant::now();
    let tables = staged?.commit().await?;
    let warehouse_seconds = staged_at + committing.elapsed().as_secs_f64();
    Ok(GoldReport {
        date: date.to_string(),
        warehouse: wh.display.clone(),
        full,
        keyed: groups.is_some(),
        migrations,
        silver_runs: pending.iter().map(|r| r.date.to_string()).collect(),
        order_dates: list(&scope.order_dates),
        run_dates: list(&scope.run_dates),
        snapshot_dates: list(&scope.snapshot_dates),
        checks,
        tables,
        lake_files_written,
        lake_files_removed,
        compute_seconds,
        lake_seconds,
        warehouse_seconds,
        publish_seconds: started.elapsed().as_secs_f64(),
    })
}
