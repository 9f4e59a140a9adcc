//! Silver tables: names, Arrow schemas and partitioning, derived from the contract. Silver
//! writes them; gold reads them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use crate::{ColumnType, Dataset};

pub const PARTNER: &str = "partner_id";
pub const RUN_DATE: &str = "_run_date";

pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String | ColumnType::Currency | ColumnType::Enum(_) => DataType::Utf8,
        ColumnType::Money | ColumnType::Decimal => DataType::Decimal128(18, 4),
        ColumnType::Int => DataType::Int64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => timestamp(),
    }
}

pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Lineage kept on every current-state row: where its values came from.
fn lineage() -> Vec<Field> {
    vec![
        Field::new(RUN_DATE, DataType::Date32, false),
        Field::new("_feed_id", DataType::Utf8, false),
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_row_number", DataType::Int64, false),
    ]
}

fn contract_fields(dataset: Dataset) -> Vec<Field> {
    dataset.columns().iter().map(|c| Field::new(c.name, arrow_type(c.ty), !c.required)).collect()
}

/// Current state of a dataset (`silver/<dataset>`), partitioned by partner. Inventory adds
/// `snapshot_date` (its run date) and is partitioned by it too.
pub fn current_schema(dataset: Dataset) -> SchemaRef {
    let mut fields = vec![Field::new(PARTNER, DataType::Utf8, false)];
    if dataset == Dataset::Inventory {
        fields.push(Field::new("snapshot_date", DataType::Date32, false));
    }
    fields.extend(contract_fields(dataset));
    if dataset == Dataset::Products {
        fields.push(Field::new("first_seen_date", DataType::Date32, false));
        fields.push(Field::new("last_changed_date", DataType::Date32, false));
    }
    fields.extend(lineage());
    Arc::new(Schema::new(fields))
}

pub fn current_partitions(dataset: Dataset) -> &'static [&'static str] {
    match dataset {
        Dataset::Inventory => &["snapshot_date", PARTNER],
        _ => &[PARTNER],
    }
}

pub fn current_table(dataset: Dataset) -> &'static str {
    dataset.name()
}

/// Columns compared by the products diff (CONTRACT §2).
pub const PRODUCT_COMPARED: [&str; 6] = ["name", "category", "brand", "price", "currency", "quantity"];

pub const PRODUCTS_HISTORY: &str = "products_history";
/// SCD type 2 history of products: one row per version.
pub fn products_history_schema() -> SchemaRef {
    let mut fields = vec![Field::new(PARTNER, DataType::Utf8, false)];
    fields.extend(contract_fields(Dataset::Products));
    fields.push(Field::new("valid_from", DataType::Date32, false));
    fields.push(Field::new("valid_to", DataType::Date32, true));
    fields.push(Field::new("is_current", DataType::Boolean, false));
    fields.push(Field::new("_feed_id", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

pub const PRODUCT_CHANGES: &str = "product_changes";
/// Per-SKU change log of each run.
pub fn product_changes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(RUN_DATE, DataType::Date32, false),
        Field::new(PARTNER, DataType::Utf8, false),
        Field::new("sku", DataType::Utf8, true),
        Field::new("change", DataType::Utf8, false),
        Field::new("_feed_id", DataType::Utf8, false),
        Field::new("_row_number", DataType::Int64, false),
    ]))
}

pub const QUARANTINE: &str = "quarantine";
/// Rejected rows with their reason and raw values.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(RUN_DATE, DataType::Date32, false),
        Field::new(PARTNER, DataType::Utf8, false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("_feed_id", DataType::Utf8, false),
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_row_number", DataType::Int64, false),
        Field::new("_line_number", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

pub const FEED_RECONCILIATION: &str = "feed_reconciliation";
/// Per feed and run: rows read = valid + rejected + duplicate, and warnings.
pub fn reconciliation_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(RUN_DATE, DataType::Date32, false),
        Field::new(PARTNER, DataType::Utf8, false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("_feed_id", DataType::Utf8, false),
        Field::new("file_name", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("valid", DataType::Int64, false),
        Field::new("rejected", DataType::Int64, false),
        Field::new("duplicate", DataType::Int64, false),
        Field::new("warnings", DataType::Int64, false),
    ]))
}

pub const ORPHAN_ITEMS: &str = "orphan_items";
/// Order items whose order is unknown, as of each partner's latest run.
pub fn orphan_items_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(PARTNER, DataType::Utf8, false),
        Field::new("order_id", DataType::Utf8, false),
        Field::new("line_number", DataType::Int64, false),
        Field::new(RUN_DATE, DataType::Date32, false),
    ]))
}
