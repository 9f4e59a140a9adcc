//! Reconciliation of gold with silver, run before anything is published: a failed check fails
//! the run and publishes nothing. Each check is a query that returns the offending rows (an
//! empty result passes), like a dbt test. Exact checks compare exact decimal sums before
//! rounding; the checks on the computed tables allow each rounded group its half cent.
//!
//! The checks are declared beside the models they guard (`[[checks]]` in `gold/models/<table>.toml`,
//! or `gold/models/_checks.toml` when a check spans tables); the generic tests a table's
//! description implies (not_null, unique grain, accepted_values) run with [`run_tests`].

use std::sync::Arc;

use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use crate::models::{self, Check};
use crate::{GoldError, GoldOutput, Scope};

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub description: &'static str,
    /// The offending rows, rendered; empty when the check passed.
    pub failures: Vec<String>,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Registers the computed `outputs` as `out_<table>`.
fn register(ctx: &SessionContext, outputs: &[GoldOutput]) -> Result<(), GoldError> {
    for o in outputs {
        let name = format!("out_{}", o.table.name);
        let _ = ctx.deregister_table(name.as_str());
        let mem = MemTable::try_new(crate::gold_schema(o.table), vec![o.batches.clone()])?;
        ctx.register_table(name.as_str(), Arc::new(mem))?;
    }
    Ok(())
}

/// Runs every reconciliation check (each model's, in model order, then those across models)
/// over the session's silver views and the computed `outputs` (registered as `out_<table>`),
/// restricted to the scope's order dates.
pub async fn run(ctx: &SessionContext, outputs: &[GoldOutput], scope: &Scope) -> Result<Vec<CheckResult>, GoldError> {
    register(ctx, outputs)?;
    let filter = scope.order_dates.predicate("order_date").unwrap_or_else(|| "TRUE".into());
    let mut results = Vec::new();
    for c in models::reconciliation_checks() {
        let mut r = run_one(ctx, c, &filter).await?;
        if r.failures.is_empty() && ::lake::fault::point(&format!("gold.check.{}", c.name), 0).await.is_some() {
            r.failures.push("injected fault (MEDALLION_FAULT)".into());
        }
        results.push(r);
    }
    Ok(results)
}

/// Runs the generic tests (not_null, unique grain, accepted_values) of the models whose
/// outputs are given, over those outputs.
pub async fn run_tests(ctx: &SessionContext, outputs: &[GoldOutput]) -> Result<Vec<CheckResult>, GoldError> {
    register(ctx, outputs)?;
    let mut results = Vec::new();
    for o in outputs {
        let Some(m) = models::model(&o.table.name) else { continue };
        for t in m.tests.iter().filter(|t| t.kind != models::TestKind::Reconciliation) {
            results.push(run_one(ctx, &t.check, "TRUE").await?);
        }
    }
    Ok(results)
}

async fn run_one(ctx: &'_ SessionContext, c: &'static Check, filter: &str) -> Result<CheckResult, GoldError> {
    let sql = c.sql.replace("{order_filter}", filter);
    let map = |e: deltalake::datafusion::error::DataFusionError| GoldError::Model { model: format!("check {}", c.name), message: e.to_string() };
    let batches = ctx.sql(&sql).await.map_err(map)?.collect().await.map_err(map)?;
    let mut failures = Vec::new();
    for b in &batches {
        let cols: Vec<arrow::array::ArrayRef> =
            b.columns().iter().map(|a| arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8)).collect::<Result<_, _>>().map_err(|e| GoldError::Model {
                model: format!("check {}", c.name),
                message: e.to_string(),
            })?;
        for row in 0..b.num_rows() {
            let cells: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .zip(&cols)
                .map(|(f, a)| {
                    use arrow::array::{Array, AsArray};
                    let v = if a.is_null(row) { "NULL".to_string() } else { a.as_string::<i32>().value(row).to_string() };
                    format!("{}={v}", f.name())
                })
                .collect();
            failures.push(cells.join(" "));
        }
    }
    Ok(CheckResult { name: &c.name, description: &c.description, failures })
}
