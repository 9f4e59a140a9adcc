//! Reconciliation of gold with silver, run before anything is published: a failed check fails
//! the run and publishes nothing. Each check is a query that returns the offending rows (an
//! empty result passes), like a dbt test. Exact checks compare exact decimal sums before
//! rounding; the checks on the computed tables allow each rounded group its half cent.

use std::sync::Arc;

use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

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

struct Check {
    name: &'static str,
    description: &'static str,
    sql: &'static str,
}

/// `{order_filter}` is replaced by the scope's predicate on `order_date` (TRUE for all dates).
const CHECKS: &[Check] = &[
    Check {
        name: "net_revenue_equals_total_revenue",
        description: "per date and currency, the exact sum of daily_sales net revenue equals order_kpis total_revenue",
        sql: "WITH a AS (
                SELECT order_date, currency, SUM(line_amount) - SUM(CASE WHEN is_returned THEN line_amount ELSE 0 END) AS v
                FROM _fulfilled_items WHERE {order_filter} GROUP BY order_date, currency),
              b AS (
                SELECT order_date, currency, SUM(net) AS v
                FROM _fulfilled_orders WHERE {order_filter} GROUP BY order_date, currency)
              SELECT CAST(COALESCE(a.order_date, b.order_date) AS VARCHAR) AS d, COALESCE(a.currency, b.currency) AS c,
                     CAST(a.v AS VARCHAR) AS daily_sales_net, CAST(b.v AS VARCHAR) AS order_kpis_total
              FROM a FULL OUTER JOIN b ON a.order_date = b.order_date AND a.currency = b.currency
              WHERE COALESCE(a.v, 0) <> COALESCE(b.v, 0)",
    },
    Check {
        name: "gross_revenue_equals_silver",
        description: "per date and currency, the exact sum of daily_sales gross revenue equals the sum of line_amount of fulfilled items in silver",
        sql: "WITH s AS (
                SELECT CAST(o.order_date AS DATE) AS order_date, o.currency,
                       SUM(CAST(i.quantity AS DECIMAL(38, 4)) * i.unit_price * (1 - i.discount)) AS v
                FROM order_items i JOIN orders o ON o.partner_id = i.partner_id AND o.order_id = i.order_id
                WHERE o.status IN ('completed', 'returned') GROUP BY CAST(o.order_date AS DATE), o.currency),
              g AS (
                SELECT order_date, currency, SUM(line_amount) AS v
                FROM _fulfilled_items GROUP BY order_date, currency)
              SELECT * FROM (
                SELECT COALESCE(g.order_date, s.order_date) AS order_date, COALESCE(g.currency, s.currency) AS c,
                       CAST(g.v AS VARCHAR) AS daily_sales_gross, CAST(s.v AS VARCHAR) AS silver_gross,
                       COALESCE(g.v, 0) <> COALESCE(s.v, 0) AS differs
                FROM g FULL OUTER JOIN s ON g.order_date = s.order_date AND g.currency = s.currency) t
              WHERE differs AND {order_filter}",
    },
    Check {
        name: "tables_agree",
        description: "per date and currency, daily_sales items and net revenue, partner_revenue orders and net revenue agree with order_kpis (counts exactly, rounded money within half a cent per group)",
        sql: "WITH ds AS (
                SELECT order_date, currency, SUM(items_sold) AS items, SUM(net_revenue) AS net, COUNT(*) AS n
                FROM out_daily_sales GROUP BY order_date, currency),
              pr AS (
                SELECT order_date, currency, SUM(orders) AS orders, SUM(net_revenue) AS net, COUNT(*) AS n
                FROM out_partner_revenue GROUP BY order_date, currency)
              SELECT CAST(k.order_date AS VARCHAR) AS d, k.currency AS c,
                     k.total_items_sold, ds.items, k.total_orders, pr.orders,
                     CAST(k.total_revenue AS VARCHAR) AS total_revenue, CAST(ds.net AS VARCHAR) AS daily_sales_net, CAST(pr.net AS VARCHAR) AS partner_net
              FROM out_order_kpis k
              LEFT JOIN ds ON ds.order_date = k.order_date AND ds.currency = k.currency
              LEFT JOIN pr ON pr.order_date = k.order_date AND pr.currency = k.currency
              WHERE k.total_items_sold <> COALESCE(ds.items, 0)
                 OR k.total_orders <> COALESCE(pr.orders, 0)
                 OR ABS(CAST(k.total_revenue AS DOUBLE) - CAST(COALESCE(ds.net, 0) AS DOUBLE)) > 0.005 * (COALESCE(ds.n, 0) + 1) + 1e-9
                 OR ABS(CAST(k.total_revenue AS DOUBLE) - CAST(COALESCE(pr.net, 0) AS DOUBLE)) > 0.005 * (COALESCE(pr.n, 0) + 1) + 1e-9",
    },
    Check {
        name: "revenue_share_sums_to_one",
        description: "per date and currency with revenue, partner_revenue revenue_share sums to 1 (and is 0 everywhere when the revenue is 0)",
        sql: "SELECT CAST(order_date AS VARCHAR) AS d, currency AS c, SUM(revenue_share) AS total_share, CAST(SUM(net_revenue) AS VARCHAR) AS net
              FROM out_partner_revenue GROUP BY order_date, currency
              HAVING (SUM(net_revenue) > 0 AND ABS(SUM(revenue_share) - 1.0) > 1e-9)
                  OR (SUM(net_revenue) = 0 AND MAX(ABS(revenue_share)) > 0)",
    },
];

/// Runs every check over the session's silver views and the computed `outputs` (registered as
/// `out_<table>`), restricted to the scope's order dates.
pub async fn run(ctx: &SessionContext, outputs: &[GoldOutput], scope: &Scope) -> Result<Vec<CheckResult>, GoldError> {
    for o in outputs {
        let name = format!("out_{}", o.table.name);
        let _ = ctx.deregister_table(name.as_str());
        let mem = MemTable::try_new(crate::gold_schema(o.table), vec![o.batches.clone()])?;
        ctx.register_table(name.as_str(), Arc::new(mem))?;
    }
    let filter = scope.order_dates.predicate("order_date").unwrap_or_else(|| "TRUE".into());
    let mut results = Vec::new();
    for c in CHECKS {
        let sql = c.sql.replace("{order_filter}", &filter);
        let model = format!("check {}", c.name);
        let batches = ctx.sql(&sql).await.map_err(GoldError::query(&model))?.collect().await.map_err(GoldError::query(&model))?;
        let mut failures = Vec::new();
        for b in &batches {
            let cols: Vec<arrow::array::ArrayRef> =
                b.columns().iter().map(|a| arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8)).collect::<Result<_, _>>().map_err(|source| GoldError::Cast {
                    model: format!("check {}", c.name),
                    context: String::new(),
                    source,
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
        if failures.is_empty() && ::lake::fault::point(&format!("gold.check.{}", c.name), 0).await.is_some() {
            failures.push("injected fault (MEDALLION_FAULT)".into());
        }
        results.push(CheckResult { name: c.name, description: c.description, failures });
    }
    Ok(results)
}
