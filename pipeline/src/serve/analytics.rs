//! `GET /v1/analytics/{daily-sales,category-kpis,order-kpis,partner-revenue,inventory,campaigns}`
//! (role reader): the warehouse's gold tables, read through [`AppState::query`] with bound
//! parameters only (the SQL text is built from the model descriptions, never from input).
//!
//! - `from` / `to` (YYYY-MM-DD, inclusive) filter the table's business date (`order_date`,
//!   `snapshot_date`); for campaigns, the campaigns active in the range (started on or before
//!   `to`, not ended before `from`). `from` after `to` is 400.
//! - `partner` / `currency` filter tables that have that column; on a table without it (e.g.
//!   `partner` on order-kpis) they are refused with 400 rather than ignored.
//! - Rows come in grain order, paginated by keyset on the grain (`limit` default 1000, max
//!   10 000; `next_cursor` until null). Pages read the warehouse as published at the time:
//!   no row is repeated or skipped, but a publish between pages shows in later pages.
//! - Money is an exact decimal string with two places: PostgreSQL's NUMERIC as text; SQLite
//!   stores NUMERIC(18,2) as REAL, formatted to exactly two places (exact for amounts under
//!   10^13). Ratios are JSON numbers, counts integers.

use axum::extract::{Query, State};
use axum::Json;
use gold::models::{GoldTable, GoldType};
use gold::warehouse::{Dialect, Param};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Reader;
use super::cursor::{self, PageError};
use super::error::{ApiError, Problem};
use super::state::AppState;

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(daily_sales))
        .routes(routes!(category_kpis))
        .routes(routes!(order_kpis))
        .routes(routes!(partner_revenue))
        .routes(routes!(inventory))
        .routes(routes!(campaigns))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// First business date (YYYY-MM-DD), inclusive.
    from: Option<String>,
    /// Last business date (YYYY-MM-DD), inclusive.
    to: Option<String>,
    /// Only this partner (tables with a partner_id column).
    partner: Option<String>,
    /// Only this ISO 4217 currency (tables with a currency column).
    currency: Option<String>,
    /// Page size, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page, unchanged.
    cursor: Option<String>,
}

/// What a listing is of, and where its previous page ended (the grain of the last row).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyticsCursor {
    t: String,
    f: (Option<String>, Option<String>, Option<String>, Option<String>),
    k: Vec<String>,
}

macro_rules! page {
    ($page:ident, $row:ident) => {
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $page {
            pub rows: Vec<$row>,
            /// Pass back as `cursor` for the next page; null on the last page.
            pub next_cursor: Option<String>,
        }
    };
}

/// gold.daily_sales: sales of fulfilled orders per order date, partner, category and currency.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DailySales {
    pub order_date: String,
    pub partner_id: String,
    pub category: String,
    pub currency: String,
    pub orders: i64,
    pub items_sold: i64,
    pub gross_revenue: String,
    pub returned_revenue: String,
    pub net_revenue: String,
}
page!(DailySalesPage, DailySales);

/// gold.category_kpis: category KPIs per order date, category and currency.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryKpis {
    pub order_date: String,
    pub category: String,
    pub currency: String,
    pub daily_revenue: String,
    pub avg_order_value: String,
    pub avg_return_rate: f64,
}
page!(CategoryKpisPage, CategoryKpis);

/// gold.order_kpis: order KPIs per order date and currency.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderKpis {
    pub order_date: String,
    pub currency: String,
    pub total_orders: i64,
    pub total_revenue: String,
    pub total_items_sold: i64,
    pub return_rate: f64,
    pub unique_customers: i64,
}
page!(OrderKpisPage, OrderKpis);

/// gold.partner_revenue: net revenue per order date, partner and currency, with the share.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerRevenue {
    pub order_date: String,
    pub partner_id: String,
    pub currency: String,
    pub orders: i64,
    pub net_revenue: String,
    pub revenue_share: f64,
}
page!(PartnerRevenuePage, PartnerRevenue);

/// gold.inventory_status: stock per snapshot date, partner, SKU and warehouse.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryStatus {
    pub snapshot_date: String,
    pub partner_id: String,
    pub sku: String,
    pub warehouse: String,
    pub product_name: Option<String>,
    pub category: Option<String>,
    pub quantity_on_hand: i64,
    pub reorder_level: i64,
    pub needs_reorder: bool,
}
page!(InventoryPage, InventoryStatus);

/// gold.campaign_performance: orders and revenue per campaign.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPerformance {
    pub partner_id: String,
    pub campaign_id: String,
    pub name: String,
    pub channel: Option<String>,
    pub start_date: String,
    pub end_date: Option<String>,
    pub budget: Option<String>,
    pub orders: i64,
    pub net_revenue: String,
    pub roas: Option<f64>,
}
page!(CampaignsPage, CampaignPerformance);

fn table(name: &str) -> Result<&'static GoldTable, ApiError> {
    gold::models::table(name).ok_or_else(|| ApiError::internal(format!("gold table {name} is not in the models")))
}

/// A column's value as text in `d`: money with exactly two places.
fn select_expr(d: Dialect, name: &str, ty: GoldType) -> String {
    match (d, ty) {
        (Dialect::Postgres, _) => format!("CAST({name} AS TEXT)"),
        // printf turns NULL into 0.00: keep NULL (nullable money, e.g. a campaign's budget).
        (Dialect::Sqlite, GoldType::Money) => format!("CASE WHEN {name} IS NULL THEN NULL ELSE printf('%.2f', {name}) END"),
        (Dialect::Sqlite, _) => name.to_string(),
    }
}

fn param(ty: GoldType, v: &str) -> Param {
    match ty {
        GoldType::Date => Param::date(v),
        GoldType::Int => v.parse().map(Param::int).unwrap_or_else(|_| Param::text(v)),
        _ => Param::text(v),
    }
}

/// A warehouse cell as the JSON value of its contract type.
fn json_value(t: &GoldTable, name: &str, ty: GoldType, v: Option<String>) -> Result<Value, ApiError> {
    let Some(v) = v else { return Ok(Value::Null) };
    let bad = || ApiError::internal(format!("gold.{}.{name}: unexpected value {v:?} in the warehouse", t.name));
    Ok(match ty {
        GoldType::Date | GoldType::Text | GoldType::Money => Value::String(v),
        GoldType::Int => Value::from(v.parse::<i64>().map_err(|_| bad())?),
        GoldType::Ratio => serde_json::Number::from_f64(v.parse::<f64>().map_err(|_| bad())?).map(Value::Number).ok_or_else(bad)?,
        GoldType::Bool => match v.as_str() {
            "true" | "t" | "1" => Value::Bool(true),
            "false" | "f" | "0" => Value::Bool(false),
            _ => return Err(bad()),
        },
    })
}

/// One page of gold table `name` (see the module docs).
async fn fetch<T: serde::de::DeserializeOwned>(state: &AppState, name: &str, q: AnalyticsQuery) -> Result<(Vec<T>, Option<String>), ApiError> {
    let t = table(name)?;
    let limit = cursor::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let from = q.from.as_deref().map(|v| valid_date("from", v)).transpose()?;
    let to = q.to.as_deref().map(|v| valid_date("to", v)).transpose()?;
    if let (Some(f), Some(t)) = (&from, &to) {
        if f > t {
            return Err(ApiError::bad_request(format!("from {f} is after to {t}")));
        }
    }
    for (param, column) in [("partner", &q.partner), ("currency", &q.currency)] {
        let col = if param == "partner" { "partner_id" } else { "currency" };
        if column.is_some() && t.column(col).is_none() {
            return Err(ApiError::bad_request(format!("{param}: gold.{} has no {col} column to filter by", t.name)));
        }
    }
    if let Some(p) = &q.partner {
        super::products::check_partner(p)?;
    }
    if let Some(c) = &q.currency {
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ApiError::bad_request(format!("currency: {c:?} is not an ISO 4217 code (three upper-case letters)")));
        }
    }
    let filters = (from.clone(), to.clone(), q.partner.clone(), q.currency.clone());
    let after: Option<AnalyticsCursor> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    if let Some(c) = &after {
        if c.t != t.name || c.f != filters {
            return Err(PageError::OtherListing("table, from, to, partner, currency").into());
        }
        if c.k.len() != t.grain.len() {
            return Err(PageError::Malformed("wrong key").into());
        }
    }

    let d = state.dialect();
    let mut params: Vec<Param> = Vec::new();
    let mut p = |v: Param| {
        params.push(v);
        format!("${}", params.len())
    };
    let mut conds: Vec<String> = Vec::new();
    match (&t.date_column, t.column("start_date"), t.column("end_date")) {
        (Some(dc), _, _) => {
            if let Some(f) = &from {
                conds.push(format!("{dc} >= {}", p(Param::date(f))));
            }
            if let Some(x) = &to {
                conds.push(format!("{dc} <= {}", p(Param::date(x))));
            }
        }
        // Undated tables with a validity range (campaigns): those active in [from, to].
        (None, Some(_), Some(_)) => {
            if let Some(f) = &from {
                conds.push(format!("(end_date IS NULL OR end_date >= {})", p(Param::date(f))));
            }
            if let Some(x) = &to {
                conds.push(format!("start_date <= {}", p(Param::date(x))));
            }
        }
        (None, _, _) if from.is_some() || to.is_some() => {
            return Err(ApiError::bad_request(format!("from/to: gold.{} has no business date", t.name)));
        }
        _ => {}
    }
    if let Some(v) = &q.partner {
        conds.push(format!("partner_id = {}", p(Param::text(v))));
    }
    if let Some(v) = &q.currency {
        conds.push(format!("currency = {}", p(Param::text(v))));
    }
    if let Some(c) = &after {
        let mut keys = Vec::new();
        for (g, v) in t.grain.iter().zip(&c.k) {
            let ty = t.column(g).map(|c| c.ty).unwrap_or(GoldType::Text);
            if ty == GoldType::Date {
                valid_date("cursor", v).map_err(|_| ApiError::from(PageError::Malformed("wrong key")))?;
            }
            keys.push(p(param(ty, v)));
        }
        conds.push(format!("({}) > ({})", t.grain.join(", "), keys.join(", ")));
    }
    let select: Vec<String> = t.columns.iter().map(|c| select_expr(d, &c.name, c.ty)).collect();
    let filter = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let sql = format!(
        "SELECT {} FROM {}{filter} ORDER BY {} LIMIT {}",
        select.join(", "),
        d.table("gold", &t.name),
        t.grain.join(", "),
        p(Param::int(limit as i64 + 1)),
    );
    let rows = state.query(&sql, &params).await?;
    let more = rows.len() > limit;
    let mut out = Vec::with_capacity(rows.len().min(limit));
    let mut last_key = None;
    for row in rows.into_iter().take(limit) {
        let mut obj = Map::new();
        for (c, v) in t.columns.iter().zip(row) {
            obj.insert(c.name.clone(), json_value(t, &c.name, c.ty, v)?);
        }
        last_key = Some(t.grain.iter().map(|g| obj.get(g).map(key_text).unwrap_or_default()).collect::<Vec<_>>());
        out.push(serde_json::from_value(Value::Object(obj)).map_err(|e| ApiError::internal(format!("gold.{}: unexpected row: {e}", t.name)))?);
    }
    let next = match (more, last_key) {
        (true, Some(k)) => Some(cursor::encode(&AnalyticsCursor { t: t.name.clone(), f: filters, k })),
        _ => None,
    };
    Ok((out, next))
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A `YYYY-MM-DD` date parameter, normalised.
fn valid_date(name: &str, v: &str) -> Result<String, ApiError> {
    v.parse::<schemas::RunDate>().map(|d| d.to_string()).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

macro_rules! endpoint {
    ($fn:ident, $path:literal, $table:literal, $page:ident, $what:literal) => {
        #[utoipa::path(
            get,
            path = $path,
            tag = "analytics",
            description = $what,
            params(AnalyticsQuery),
            security(("api_key" = [])),
            responses(
                (status = 200, description = "One page of rows in grain order", body = $page),
                (status = 400, description = "Bad date, range, filter, limit or cursor", body = Problem, content_type = "application/problem+json"),
                (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
                (status = 403, description = "The key's role may not read", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "The warehouse is unreachable", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $fn(_: Reader, State(state): State<AppState>, Query(q): Query<AnalyticsQuery>) -> Result<Json<$page>, ApiError> {
            let (rows, next_cursor) = fetch(&state, $table, q).await?;
            Ok(Json($page { rows, next_cursor }))
        }
    };
}

endpoint!(daily_sales, "/v1/analytics/daily-sales", "daily_sales", DailySalesPage, "gold.daily_sales: sales of fulfilled orders per order date, partner, category and currency. Filters: from/to (order_date), partner, currency.");
endpoint!(category_kpis, "/v1/analytics/category-kpis", "category_kpis", CategoryKpisPage, "gold.category_kpis per order date, category and currency. Filters: from/to (order_date), currency (no partner).");
endpoint!(order_kpis, "/v1/analytics/order-kpis", "order_kpis", OrderKpisPage, "gold.order_kpis per order date and currency. Filters: from/to (order_date), currency (no partner).");
endpoint!(partner_revenue, "/v1/analytics/partner-revenue", "partner_revenue", PartnerRevenuePage, "gold.partner_revenue per order date, partner and currency. Filters: from/to (order_date), partner, currency.");
endpoint!(inventory, "/v1/analytics/inventory", "inventory_status", InventoryPage, "gold.inventory_status per snapshot date, partner, SKU and warehouse. Filters: from/to (snapshot_date), partner (no currency).");
endpoint!(campaigns, "/v1/analytics/campaigns", "campaign_performance", CampaignsPage, "gold.campaign_performance per partner and campaign. Filters: from/to (campaigns active in the range), partner (no currency).");

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row type has exactly its gold table's columns, and every column's JSON value
    /// deserialises into it.
    #[test]
    fn row_types_match_the_models() {
        fn check<T: serde::de::DeserializeOwned + Serialize>(name: &str) {
            let t = gold::models::table(name).unwrap();
            let mut obj = Map::new();
            for c in &t.columns {
                let v = match c.ty {
                    GoldType::Date => "2026-11-18",
                    GoldType::Text => "x",
                    GoldType::Int => "3",
                    GoldType::Money => "12.30",
                    GoldType::Ratio => "0.25",
                    GoldType::Bool => "1",
                };
                obj.insert(c.name.clone(), json_value(t, &c.name, c.ty, Some(v.into())).unwrap());
            }
            let row: T = serde_json::from_value(Value::Object(obj.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(serde_json::to_value(&row).unwrap(), Value::Object(obj), "{name}");
        }
        check::<DailySales>("daily_sales");
        check::<CategoryKpis>("category_kpis");
        check::<OrderKpis>("order_kpis");
        check::<PartnerRevenue>("partner_revenue");
        check::<InventoryStatus>("inventory_status");
        check::<CampaignPerformance>("campaign_performance");
    }

    #[test]
    fn money_is_text_with_two_places_in_both_dialects() {
        assert_eq!(select_expr(Dialect::Postgres, "net_revenue", GoldType::Money), "CAST(net_revenue AS TEXT)");
        assert_eq!(select_expr(Dialect::Sqlite, "net_revenue", GoldType::Money), "CASE WHEN net_revenue IS NULL THEN NULL ELSE printf('%.2f', net_revenue) END");
        assert_eq!(select_expr(Dialect::Sqlite, "orders", GoldType::Int), "orders");
    }
}
