//! `GET /v1/products` and `GET /v1/products/{partner}/{sku}` (role reader): the current
//! catalogue from silver's `products` Delta table, with each product's SCD2 history
//! (`products_history`) and change log (`product_changes`).
//!
//! Pagination is keyset by (partner_id, sku) over ONE Delta snapshot: the first page reads
//! the table's latest version and its cursor pins that version, so every page of a listing
//! reads the same rows while runs keep committing — no SKU is skipped or repeated. The cursor
//! is opaque (base64url of JSON: version, last key, the listing's filters); a cursor that does
//! not decode, belongs to other filters or names a version the table never had is refused
//! (400); a version since vacuumed (older than the Delta retention, 7 days by default) is 410.
//!
//! `changed_since=D` keeps products whose `last_changed_date` (the run date of their last
//! insert or update, kept by silver on the current row) is on or after D.

use axum::extract::{Path, Query, State};
use axum::Json;
use deltalake::datafusion::prelude::{col, lit, Expr};
use deltalake::datafusion::scalar::ScalarValue;
use schemas::silver::{self as tables, PARTNER};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Reader;
use super::cursor::{self, PageError};
use super::error::{ApiError, Problem};
use super::silver_read::{self, Snapshot};
use super::state::AppState;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_products)).routes(routes!(get_product))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this partner's products.
    partner: Option<String>,
    /// Only this category (as silver stores it: Title Case).
    category: Option<String>,
    /// Only products inserted or updated by a run of this date or later (YYYY-MM-DD).
    changed_since: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page, unchanged.
    cursor: Option<String>,
}

/// A product as the catalogue holds it now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub partner_id: String,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub brand: Option<String>,
    /// Exact decimal (at least two places).
    pub price: String,
    pub currency: Option<String>,
    pub quantity: Option<i64>,
    /// When the partner last changed the product (RFC 3339, UTC).
    pub updated_at: Option<String>,
    /// Run date of the product's insert.
    pub first_seen_date: String,
    /// Run date of its last insert or update.
    pub last_changed_date: String,
    /// Run date of the feed its values came from.
    pub run_date: String,
    /// The feed its values came from.
    pub feed_id: String,
}

/// One page of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<Product>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// The Delta version of silver `products` every page of this listing reads (null while
    /// no product was ever loaded).
    pub snapshot_version: Option<i64>,
}

/// One SCD2 version of a product.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductVersion {
    pub name: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price: Option<String>,
    pub currency: Option<String>,
    pub quantity: Option<i64>,
    pub updated_at: Option<String>,
    pub valid_from: String,
    /// Null for the current version.
    pub valid_to: Option<String>,
    pub is_current: bool,
    pub feed_id: String,
}

/// One entry of a product's change log: what a run did to it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductChange {
    pub run_date: String,
    /// inserted, updated, unchanged, skipped (rejected) or duplicate.
    pub change: String,
    pub feed_id: String,
    pub row_number: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail {
    pub product: Product,
    /// Every version, oldest first.
    pub history: Vec<ProductVersion>,
    /// Every run that sent it, oldest first.
    pub changes: Vec<ProductChange>,
    /// The Delta version of silver `products` the current row was read from.
    pub snapshot_version: i64,
}

/// What a listing is of; a cursor only continues the listing it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    partner: Option<String>,
    category: Option<String>,
    changed_since: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductCursor {
    /// The pinned Delta version.
    v: i64,
    /// The last (partner_id, sku) returned.
    k: (String, String),
    f: Filters,
}

fn bad(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{what}: {e}"))
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` parameter.
pub(crate) fn epoch_days(name: &str, value: &str) -> Result<i32, ApiError> {
    let d: schemas::RunDate = value.parse().map_err(|e| bad(name, e))?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let days = (chrono::NaiveDate::parse_from_str(&d.to_string(), "%Y-%m-%d").map_err(|e| bad(name, e))? - epoch).num_days();
    i32::try_from(days).map_err(|e| bad(name, e))
}

pub(crate) fn check_partner(partner: &str) -> Result<(), ApiError> {
    schemas::contract::validate_partner_id(partner).map_err(|e| bad("partner", e))
}

fn and_all(filters: Vec<Expr>) -> Option<Expr> {
    filters.into_iter().reduce(Expr::and)
}

/// A silver row as a [`Product`]: lineage columns renamed, the rest dropped.
fn product(mut row: Map<String, Value>) -> Result<Product, ApiError> {
    for (from, to) in [("_run_date", "run_date"), ("_feed_id", "feed_id")] {
        if let Some(v) = row.remove(from) {
            row.insert(to.into(), v);
        }
    }
    serde_json::from_value(Value::Object(row)).map_err(|e| ApiError::internal(format!("silver products: unexpected row: {e}")))
}

#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "products",
    params(ListQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page of the current catalogue, in (partner_id, sku) order", body = ProductPage),
        (status = 400, description = "Bad parameter or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role may not read", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The cursor's snapshot was vacuumed: start a new listing", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The lake is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_products(_: Reader, State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Json<ProductPage>, ApiError> {
    let limit = cursor::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    if let Some(p) = &q.partner {
        check_partner(p)?;
    }
    let filters = Filters {
        partner: q.partner.clone(),
        category: q.category.clone(),
        changed_since: q.changed_since.as_deref().map(|d| epoch_days("changed_since", d)).transpose()?,
    };
    let after: Option<ProductCursor> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    if let Some(c) = &after {
        if c.f != filters {
            return Err(PageError::OtherListing("partner, category, changed_since").into());
        }
    }
    let Some(snap) = silver_read::open(&state.lake, tables::current_table(schemas::Dataset::Products), after.as_ref().map(|c| c.v)).await? else {
        return Ok(Json(ProductPage { items: Vec::new(), next_cursor: None, snapshot_version: None }));
    };
    let (items, more) = page(&snap, &filters, after.as_ref().map(|c| &c.k), limit).await?;
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(cursor::encode(&ProductCursor { v: snap.version, k: (last.partner_id.clone(), last.sku.clone()), f: filters })),
        _ => None,
    };
    Ok(Json(ProductPage { items, next_cursor, snapshot_version: Some(snap.version) }))
}

/// The `limit` products after `after` in (partner_id, sku) order, and whether more follow.
async fn page(snap: &Snapshot, f: &Filters, after: Option<&(String, String)>, limit: usize) -> Result<(Vec<Product>, bool), ApiError> {
    let mut conds = Vec::new();
    if let Some(p) = &f.partner {
        conds.push(col(PARTNER).eq(lit(p.as_str())));
    }
    if let Some(c) = &f.category {
        conds.push(col("category").eq(lit(c.as_str())));
    }
    if let Some(d) = f.changed_since {
        conds.push(col("last_changed_date").gt_eq(lit(ScalarValue::Date32(Some(d)))));
    }
    if let Some((p, s)) = after {
        // The redundant `partner_id >= p` lets DataFusion prune whole partner partitions.
        conds.push(col(PARTNER).gt_eq(lit(p.as_str())));
        conds.push(col(PARTNER).gt(lit(p.as_str())).or(col(PARTNER).eq(lit(p.as_str())).and(col("sku").gt(lit(s.as_str())))));
    }
    let batches = snap.select(and_all(conds), &[PARTNER, "sku"], Some(limit + 1)).await?;
    let mut items = snap.rows(&batches)?.into_iter().map(product).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > limit;
    items.truncate(limit);
    Ok((items, more))
}

#[utoipa::path(
    get,
    path = "/v1/products/{partner}/{sku}",
    tag = "products",
    params(("partner" = String, Path, description = "Partner id"), ("sku" = String, Path, description = "SKU, as listed by /v1/products (upper case)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The current row, its SCD2 history and its change log", body = ProductDetail),
        (status = 400, description = "Bad partner id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role may not read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The lake is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_product(_: Reader, State(state): State<AppState>, Path((partner, sku)): Path<(String, String)>) -> Result<Json<ProductDetail>, ApiError> {
    check_partner(&partner)?;
    let not_found = || ApiError::not_found(format!("no product {sku:?} of partner {partner:?} in the catalogue"));
    let key = || col(PARTNER).eq(lit(partner.as_str())).and(col("sku").eq(lit(sku.as_str())));
    let Some(snap) = silver_read::open(&state.lake, tables::current_table(schemas::Dataset::Products), None).await? else {
        return Err(not_found());
    };
    let rows = snap.rows(&snap.select(Some(key()), &[], Some(1)).await?)?;
    let product = product(rows.into_iter().next().ok_or_else(not_found)?)?;
    let mut history = Vec::new();
    if let Some(h) = silver_read::open(&state.lake, tables::PRODUCTS_HISTORY, None).await? {
        for mut row in h.rows(&h.select(Some(key()), &["valid_from"], None).await?)? {
            if let Some(v) = row.remove("_feed_id") {
                row.insert("feed_id".into(), v);
            }
            history.push(serde_json::from_value(Value::Object(row)).map_err(|e| ApiError::internal(format!("silver products_history: unexpected row: {e}")))?);
        }
    }
    let mut changes = Vec::new();
    if let Some(c) = silver_read::open(&state.lake, tables::PRODUCT_CHANGES, None).await? {
        for mut row in c.rows(&c.select(Some(key()), &[tables::RUN_DATE, "_row_number"], None).await?)? {
            for (from, to) in [("_run_date", "run_date"), ("_feed_id", "feed_id"), ("_row_number", "row_number")] {
                if let Some(v) = row.remove(from) {
                    row.insert(to.into(), v);
                }
            }
            changes.push(serde_json::from_value(Value::Object(row)).map_err(|e| ApiError::internal(format!("silver product_changes: unexpected row: {e}")))?);
        }
    }
    Ok(Json(ProductDetail { product, history, changes, snapshot_version: snap.version }))
}
