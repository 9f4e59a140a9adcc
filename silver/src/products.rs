//! The products diff by partner and SKU (inserted / updated / unchanged / skipped / duplicate),
//! the per-SKU change log, SCD2 history and the current products table, in one pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use polars::prelude::*;
use schemas::{ChangeKind, Dataset, FeedStats, ProductDiff};

use crate::bridge::{arrow_to_polars, polars_to_arrow};
use crate::delta::Lakehouse;
use crate::tables::{self, PARTNER, RUN_DATE};
use crate::SilverError;
use crate::run::*;

/// The products diff, the per-SKU change log, SCD2 history and the current products upsert.
pub(crate) async fn upsert_products(
    lh: &Lakehouse,
    kept: DataFrame,
    run_day: i32,
    stats: &[FeedStats],
    partners_with_feed: &BTreeSet<String>,
    report: &mut SilverReport,
) -> Result<Vec<ProductDiff>, SilverError> {
    let schema = tables::current_schema(Dataset::Products);
    let current_table = lh.open_or_create(tables::current_table(Dataset::Products), schema.clone(), tables::current_partitions(Dataset::Products)).await?;
    let partners: Vec<String> = partners_with_feed.iter().cloned().collect();
    let list = partners.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
    // The stored products of these partners, joined to the run's rows by (partner, sku).
    let stored_batches = if list.is_empty() { Vec::new() } else { lh.scan(&current_table, Some(&format!("{PARTNER} IN ({list})"))).await? };
    let stored = if stored_batches.is_empty() {
        DataFrame::empty_with_schema(&Schema::from_iter(
            [PARTNER, "sku", "name", "category", "brand", "price", "currency", "quantity", "first_seen_date", "last_changed_date"]
                .iter()
                .map(|c| Field::new((*c).into(), stored_dtype(c))),
        ))
    } else {
        arrow_to_polars(&stored_batches, &schema)?
    };
    let mut prev_cols: Vec<Expr> = vec![col(PARTNER), col("sku")];
    for c in tables::PRODUCT_COMPARED.iter().chain(&["first_seen_date", "last_changed_date"]) {
        prev_cols.push(col(*c).alias(format!("_prev_{c}")));
    }
    prev_cols.push(lit(true).alias("_known"));
    let prev = stored.lazy().select(prev_cols);
    let mut changed = lit(false);
    let mut renamed = lit(false);
    for c in tables::PRODUCT_COMPARED {
        let differs = col(c).eq_missing(col(format!("_prev_{c}"))).not();
        changed = changed.or(differs.clone());
        if c == "name" || c == "category" {
            renamed = renamed.or(differs);
        }
    }
    let joined = kept
        .lazy()
        .join(prev, [col(PARTNER), col("sku")], [col(PARTNER), col("sku")], JoinArgs::new(JoinType::Left))
        .with_column(col("_known").fill_null(lit(false)))
        .with_column(
            when(col("_known").not())
                .then(lit(ChangeKind::Inserted.as_str()))
                .when(changed)
                .then(lit(ChangeKind::Updated.as_str()))
                .otherwise(lit(ChangeKind::Unchanged.as_str()))
                .alias("_change"),
        )
        .with_column(col("_known").and(renamed).alias("_renamed"))
        .with_columns([
            when(col("_known")).then(col("_prev_first_seen_date")).otherwise(lit(run_day).cast(DataType::Date)).alias("first_seen_date"),
            when(col("_change").eq(lit(ChangeKind::Unchanged.as_str()))).then(col("_prev_last_changed_date")).otherwise(lit(run_day).cast(DataType::Date)).alias("last_changed_date"),
        ])
        .collect()?;

    // Diff counts per partner; skipped = rejected rows, duplicate = superseded rows.
    let mut diffs: BTreeMap<String, ProductDiff> =
        partners.iter().map(|p| (p.clone(), ProductDiff { partner: p.clone(), ..Default::default() })).collect();
    for (p, ch) in joined.column(PARTNER)?.str()?.iter().zip(joined.column("_change")?.str()?.iter()) {
        let (Some(p), Some(ch)) = (p, ch) else { continue };
        let d = diffs.entry(p.to_string()).or_insert_with(|| ProductDiff { partner: p.to_string(), ..Default::default() });
        d.count(ChangeKind::parse(ch).unwrap_or(ChangeKind::Unchanged));
    }
    for st in stats.iter().filter(|s| s.dataset == "products") {
        if let Some(d) = diffs.get_mut(&st.partner) {
            d.skipped += st.rejected;
            d.duplicate += st.duplicate;
        }
    }
    for (p, sku) in joined
        .clone()
        .lazy()
        .filter(col("_renamed"))
        .select([col(PARTNER), col("sku")])
        .collect()?
        .column(PARTNER)?
        .str()?
        .iter()
        .zip(joined.clone().lazy().filter(col("_renamed")).select([col("sku")]).collect()?.column("sku")?.str()?.iter())
    {
        if let (Some(p), Some(s)) = (p, sku) {
            report.renamed_or_recategorised.push((p.to_string(), s.to_string()));
        }
    }

    // Change log: one row per SKU of the run (rejected and duplicate rows are counted, not listed per SKU).
    let mut log = joined
        .clone()
        .lazy()
        .select([
            lit(run_day).cast(DataType::Date).alias(RUN_DATE),
            col(PARTNER),
            col("sku"),
            col("_change").alias("change"),
            col("_feed_id"),
            col("_row_number"),
        ])
        .collect()?;
    let changes = lh.open_or_create(tables::PRODUCT_CHANGES, tables::product_changes_schema(), &[RUN_DATE]).await?;
    let log_batches = polars_to_arrow(&mut log, &tables::product_changes_schema())?;
    let date = date_string(run_day);
    lh.replace_where(changes, log_batches, &format!("{RUN_DATE} = '{date}' AND {PARTNER} IN ({})", if list.is_empty() { "''".into() } else { list.clone() })).await?;

    // SCD2: close the current version of updated SKUs, add a version for inserted and updated ones.
    let moved = joined.clone().lazy().filter(col("_change").neq(lit(ChangeKind::Unchanged.as_str())));
    let mut versions = moved
        .clone()
        .select(
            [col(PARTNER)]
                .into_iter()
                .chain(Dataset::Products.columns().iter().map(|c| col(c.name)))
                .chain([
                    lit(run_day).cast(DataType::Date).alias("valid_from"),
                    lit(NULL).cast(DataType::Date).alias("valid_to"),
                    lit(true).alias("is_current"),
                    col("_feed_id"),
                ])
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let mut closings = moved
        .filter(col("_change").eq(lit(ChangeKind::Updated.as_str())))
        .select([
            col(PARTNER),
            col("sku"),
            col("_prev_last_changed_date").alias("valid_from"),
            lit(run_day).cast(DataType::Date).alias("valid_to"),
            lit(false).alias("is_current"),
        ])
        .collect()?;
    let hist_schema = tables::products_history_schema();
    let history = lh.open_or_create(tables::PRODUCTS_HISTORY, hist_schema.clone(), &[PARTNER]).await?;
    let mut hist_batches = polars_to_arrow(&mut versions, &hist_schema)?;
    if closings.height() > 0 {
        lh.update_matched(history.clone(), polars_to_arrow(&mut closings, &closings_schema())?, &[PARTNER, "sku", "valid_from"], PARTNER).await?;
    }
    let history = lh.open_or_create(tables::PRODUCTS_HISTORY, hist_schema.clone(), &[PARTNER]).await?;
    if !hist_batches.is_empty() {
        lh.append(history, std::mem::take(&mut hist_batches)).await?;
    }

    // Current products: only inserted and updated rows are written.
    let mut current = joined.lazy().filter(col("_change").neq(lit(ChangeKind::Unchanged.as_str()))).collect()?;
    let batches = polars_to_arrow(&mut current, &schema)?;
    if !batches.is_empty() {
        lh.upsert(current_table, batches, &[PARTNER, "sku"], PARTNER, Some(NEWER)).await?;
    }
    Ok(diffs.into_values().collect())
}

pub(crate) fn closings_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType as A, Field as F};
    Arc::new(arrow::datatypes::Schema::new(vec![
        F::new(PARTNER, A::Utf8, false),
        F::new("sku", A::Utf8, false),
        F::new("valid_from", A::Date32, false),
        F::new("valid_to", A::Date32, true),
        F::new("is_current", A::Boolean, false),
    ]))
}

pub(crate) fn stored_dtype(c: &str) -> DataType {
    match c {
        "first_seen_date" | "last_changed_date" => DataType::Date,
        PARTNER => DataType::String,
        other => Dataset::Products.column(other).map(|c| crate::clean::dtype(c.ty)).unwrap_or(DataType::String),
    }
}
