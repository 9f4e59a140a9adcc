//! The gold tables of CONTRACT.md §3 as data: names, grains, columns, types and the
//! definitions BI tools show (`COMMENT ON`). The warehouse DDL (PostgreSQL and SQLite), the
//! lake's gold Parquet and the check that every SQL model returns exactly these columns all
//! read this one description.

/// The type of a gold column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoldType {
    /// A calendar date (PostgreSQL `date`; SQLite `DATE` holding 'YYYY-MM-DD').
    Date,
    Text,
    /// A count (PostgreSQL `bigint`).
    Int,
    /// Money: NUMERIC(18,2), rounded half away from zero from exact sums.
    Money,
    /// A ratio: double precision computed from exact sums.
    Ratio,
    Bool,
}

#[derive(Debug, Clone, Copy)]
pub struct GoldColumn {
    pub name: &'static str,
    pub ty: GoldType,
    /// Whether the column may hold NULL (grain columns never do).
    pub nullable: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct GoldTable {
    pub name: &'static str,
    pub doc: &'static str,
    /// The business date a publish replaces the table by; `None`: replaced whole every run.
    pub date_column: Option<&'static str>,
    /// The grain: the primary key.
    pub grain: &'static [&'static str],
    /// Extra indexes for the usual filters (the primary key already leads with the date).
    pub indexes: &'static [&'static [&'static str]],
    pub columns: &'static [GoldColumn],
}

impl GoldTable {
    pub fn column(&self, name: &str) -> Option<&GoldColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn col(name: &'static str, ty: GoldType, doc: &'static str) -> GoldColumn {
    GoldColumn { name, ty, nullable: false, doc }
}

const fn opt(name: &'static str, ty: GoldType, doc: &'static str) -> GoldColumn {
    GoldColumn { name, ty, nullable: true, doc }
}

use GoldType::*;

const ORDER_DATE: &str = "UTC calendar date of the order's timestamp.";
const PARTNER: &str = "Partner (marketplace seller) id.";
const CURRENCY: &str = "The order's ISO 4217 currency.";
const CATEGORY: &str = "The product's current category (partner, sku); 'Unknown' if the product is unknown.";

/// The nine gold tables, in the contract's order.
pub const TABLES: [GoldTable; 9] = [
    GoldTable {
        name: "daily_sales",
        doc: "Sales of fulfilled orders (completed or returned) per order date, partner, category and currency.",
        date_column: Some("order_date"),
        grain: &["order_date", "partner_id", "category", "currency"],
        indexes: &[&["partner_id", "order_date"]],
        columns: &[
            col("order_date", Date, ORDER_DATE),
            col("partner_id", Text, PARTNER),
            col("category", Text, CATEGORY),
            col("currency", Text, CURRENCY),
            col("orders", Int, "Distinct fulfilled orders (partner_id, order_id) with an item in the group."),
            col("items_sold", Int, "Sum of item quantities."),
            col("gross_revenue", Money, "Sum of line_amount = quantity x unit_price x (1 - discount)."),
            col("returned_revenue", Money, "Sum of line_amount of returned items (item flagged returned, or its order returned)."),
            col("net_revenue", Money, "gross_revenue - returned_revenue, from exact sums."),
        ],
    },
    GoldTable {
        name: "category_kpis",
        doc: "Category KPIs of fulfilled orders per order date, category and currency.",
        date_column: Some("order_date"),
        grain: &["order_date", "category", "currency"],
        indexes: &[],
        columns: &[
            col("order_date", Date, ORDER_DATE),
            col("category", Text, CATEGORY),
            col("currency", Text, CURRENCY),
            col("daily_revenue", Money, "Sum of net revenue (gross - returned)."),
            col("avg_order_value", Money, "Gross revenue / distinct orders in the group, rounded from the exact quotient."),
            col("avg_return_rate", Ratio, "Returned quantity / items sold."),
        ],
    },
    GoldTable {
        name: "order_kpis",
        doc: "Order KPIs of fulfilled orders per order date and currency.",
        date_column: Some("order_date"),
        grain: &["order_date", "currency"],
        indexes: &[],
        columns: &[
            col("order_date", Date, ORDER_DATE),
            col("currency", Text, CURRENCY),
            col("total_orders", Int, "Fulfilled orders (completed or returned), with or without items."),
            col("total_revenue", Money, "Sum of net revenue; equals the sum of daily_sales.net_revenue before rounding."),
            col("total_items_sold", Int, "Sum of item quantities."),
            col("return_rate", Ratio, "Orders with at least one returned item / total_orders."),
            col("unique_customers", Int, "Distinct (partner_id, customer_id) of fulfilled orders."),
        ],
    },
    GoldTable {
        name: "partner_revenue",
        doc: "Net revenue of fulfilled orders per order date, partner and currency, with the partner's share.",
        date_column: Some("order_date"),
        grain: &["order_date", "partner_id", "currency"],
        indexes: &[&["partner_id", "order_date"]],
        columns: &[
            col("order_date", Date, ORDER_DATE),
            col("partner_id", Text, PARTNER),
            col("currency", Text, CURRENCY),
            col("orders", Int, "Fulfilled orders."),
            col("net_revenue", Money, "Sum of net revenue."),
            col("revenue_share", Ratio, "Partner net / all partners' net that day and currency; 0 when that is 0."),
        ],
    },
    GoldTable {
        name: "product_changes",
        doc: "The products diff of each run: per run date and partner, how many SKUs were inserted, updated, unchanged, skipped (rejected) or duplicate.",
        date_column: Some("run_date"),
        grain: &["run_date", "partner_id"],
        indexes: &[&["partner_id", "run_date"]],
        columns: &[
            col("run_date", Date, "The run (feed) date."),
            col("partner_id", Text, PARTNER),
            col("inserted", Int, "SKUs new to silver."),
            col("updated", Int, "SKUs whose name, category, brand, price, currency or quantity changed."),
            col("unchanged", Int, "SKUs sent again with the same values."),
            col("skipped", Int, "Rows rejected by the contract's rules (in quarantine)."),
            col("duplicate", Int, "Rows superseded by a newer row of the same SKU."),
        ],
    },
    GoldTable {
        name: "dim_products",
        doc: "The current state of every product per partner and SKU.",
        date_column: None,
        grain: &["partner_id", "sku"],
        indexes: &[],
        columns: &[
            col("partner_id", Text, PARTNER),
            col("sku", Text, "Stock keeping unit (upper-cased)."),
            col("name", Text, "Product name."),
            opt("category", Text, "Category (Title Case)."),
            opt("brand", Text, "Brand."),
            col("price", Money, "Current price."),
            col("currency", Text, "Price currency."),
            opt("quantity", Int, "Quantity in the catalog feed."),
            col("first_seen_date", Date, "Run date of the product's insert."),
            col("last_changed_date", Date, "Run date of its last insert or update."),
        ],
    },
    GoldTable {
        name: "customer_orders",
        doc: "Every customer known from the customers feed or from any order, with lifetime figures of fulfilled orders.",
        date_column: None,
        grain: &["partner_id", "customer_id"],
        indexes: &[],
        columns: &[
            col("partner_id", Text, PARTNER),
            col("customer_id", Text, "Customer id."),
            opt("full_name", Text, "First and last name joined by one space, nulls left out; null when both are."),
            opt("email", Text, "Email (lower-cased; null when invalid)."),
            opt("country", Text, "ISO 3166 alpha-2 country (null when invalid)."),
            col("orders", Int, "Fulfilled orders."),
            opt("first_order_date", Date, "Date of the first fulfilled order."),
            opt("last_order_date", Date, "Date of the last fulfilled order."),
            col("lifetime_net_revenue", Money, "Sum of net revenue of fulfilled orders; 0 when none."),
        ],
    },
    GoldTable {
        name: "inventory_status",
        doc: "Inventory snapshots per run date, partner, SKU and warehouse, with the current product and the reorder flag.",
        date_column: Some("snapshot_date"),
        grain: &["snapshot_date", "partner_id", "sku", "warehouse"],
        indexes: &[&["partner_id", "snapshot_date"]],
        columns: &[
            col("snapshot_date", Date, "Run date of the inventory feed."),
            col("partner_id", Text, PARTNER),
            col("sku", Text, "Stock keeping unit."),
            col("warehouse", Text, "Warehouse."),
            opt("product_name", Text, "Current product name; null if the product is unknown."),
            opt("category", Text, "Current product category; null if the product is unknown."),
            col("quantity_on_hand", Int, "Units on hand."),
            col("reorder_level", Int, "Reorder level (0 when not sent)."),
            col("needs_reorder", Bool, "quantity_on_hand <= reorder_level."),
        ],
    },
    GoldTable {
        name: "campaign_performance",
        doc: "Every campaign present in silver, with the fulfilled orders carrying its id.",
        date_column: None,
        grain: &["partner_id", "campaign_id"],
        indexes: &[],
        columns: &[
            col("partner_id", Text, PARTNER),
            col("campaign_id", Text, "Campaign id."),
            col("name", Text, "Campaign name."),
            opt("channel", Text, "Channel (lower-cased)."),
            col("start_date", Date, "Start date."),
            opt("end_date", Date, "End date."),
            opt("budget", Money, "Budget."),
            col("orders", Int, "Fulfilled orders carrying the campaign_id."),
            col("net_revenue", Money, "Their net revenue."),
            opt("roas", Ratio, "net_revenue / budget; null when the budget is null or 0."),
        ],
    },
];

pub fn table(name: &str) -> Option<&'static GoldTable> {
    TABLES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grains_are_columns_and_not_nullable() {
        for t in TABLES {
            for g in t.grain {
                let c = t.column(g).unwrap_or_else(|| panic!("{}: grain {g} is not a column", t.name));
                assert!(!c.nullable, "{}.{g} is in the grain", t.name);
            }
            if let Some(d) = t.date_column {
                assert_eq!(t.column(d).map(|c| c.ty), Some(GoldType::Date), "{}", t.name);
                assert_eq!(t.grain[0], d, "{}: the grain leads with the date", t.name);
            }
            for idx in t.indexes {
                assert!(idx.iter().all(|c| t.column(c).is_some()), "{}", t.name);
            }
        }
    }
}
