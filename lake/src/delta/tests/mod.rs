//! Tests of the Delta operations on a local lake; `s3` runs them on S3 (with services).

mod s3;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use deltalake::DeltaTable;

use super::*;
use arrow::array::{
    BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array, LargeStringArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::{DataType, Field, TimeUnit};

pub(super) const NEWER: &str = "source.version >= target.version";

/// A products-like table with every type silver uses.
pub(super) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partner_id", DataType::Utf8, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(18, 4), true),
        Field::new("version", DataType::Int64, false),
        Field::new("quantity", DataType::Int32, true),
        Field::new("active", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
        Field::new("updated_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ]))
}

/// Rows of `schema()`: (partner, sku, version, price in units of 0.0001); the other columns
/// are derived from the version.
pub(super) fn batch(rows: &[(&str, &str, i64, i128)]) -> RecordBatch {
    let v = |f: fn(i64) -> i64| rows.iter().map(move |r| f(r.2));
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("{} v{}", r.1, r.2)))),
            Arc::new(
                Decimal128Array::from_iter_values(rows.iter().map(|r| r.3))
                    .with_precision_and_scale(18, 4)
                    .unwrap(),
            ),
            Arc::new(Int64Array::from_iter_values(v(|x| x))),
            Arc::new(Int32Array::from_iter_values(v(|x| x * 10).map(|x| x as i32))),
            Arc::new(BooleanArray::from_iter(v(|x| x % 2).map(|x| Some(x == 0)))),
            Arc::new(Date32Array::from_iter_values(v(|x| 20_000 + x).map(|x| x as i32))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(v(|x| 1_763_600_000_000_000 + x * 1_000_001))
                    .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

/// All rows, sorted by (partner_id, sku), as one batch.
pub(super) fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(&schema(), batches).unwrap();
    let by = |name: &str| SortColumn { values: all.column_by_name(name).unwrap().clone(), options: None };
    let indices = lexsort_to_indices(&[by("partner_id"), by("sku")], None).unwrap();
    take_record_batch(&all, &indices).unwrap()
}

/// Same columns, same types, same values (exactly: decimals compare as integers).
pub(super) fn assert_same(actual: &[RecordBatch], expected: &RecordBatch) {
    let actual = sorted(actual);
    let expected = sorted(std::slice::from_ref(expected));
    for (i, field) in schema().fields().iter().enumerate() {
        assert_eq!(actual.column(i).data_type(), field.data_type(), "type of {}", field.name());
        assert_eq!(actual.column(i).to_data(), expected.column(i).to_data(), "values of {}", field.name());
    }
}

/// (partner, sku, version) of every row, sorted.
pub(super) fn keys(batches: &[RecordBatch]) -> Vec<(String, String, i64)> {
    let all = sorted(batches);
    let s = |name: &str| all.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
    let (p, k) = (s("partner_id"), s("sku"));
    let v = all.column_by_name("version").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
    (0..all.num_rows()).map(|i| (p.value(i).to_string(), k.value(i).to_string(), v.value(i))).collect()
}

pub(super) fn key(p: &str, s: &str, v: i64) -> (String, String, i64) {
    (p.to_string(), s.to_string(), v)
}

pub(super) fn local_lake() -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lake = crate::Location::open("lake", dir.path().to_str().unwrap(), true).unwrap();
    let lh = Lakehouse::new(&lake).unwrap();
    (dir, lh)
}

/// The big decimals: 18 digits, the smallest unit, negative values.
pub(super) fn tricky_rows() -> RecordBatch {
    batch(&[
        ("a", "s1", 1, 123_456_789_012_345_678),
        ("a", "s2", 1, 1),
        ("a", "s3", 2, -1),
        ("b", "s1", 1, 999_999_999_999_999_999),
        ("b", "s2", 3, -999_999_999_999_999_999),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_append_scan_roundtrip() {
    let (dir, lh) = local_lake();
    let url = lh.table_url("products");
    assert_eq!(url.to_file_path().unwrap(), dir.path().canonicalize().unwrap().join("silver/products"));
    assert!(lh.open("products").await.unwrap().is_none());
    let err = lh.open("../escape").await.unwrap_err();
    assert!(matches!(err, DeltaError::InvalidArgument { .. }), "{err}");

    let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(0));
    let config = table.snapshot().unwrap().metadata().configuration().clone();
    assert_eq!(config.get("delta.targetFileSize"), Some(&TARGET_FILE_SIZE.to_string()));
    assert!(lh.scan(&table, None).await.unwrap().is_empty());
    let again = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    assert_eq!(Lakehouse::version(&again), Some(0));

    let other = Arc::new(Schema::new(vec![Field::new("partner_id", DataType::Int64, false)]));
    let err = lh.open_or_create("products", other, &["partner_id"]).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DeltaError::SchemaMismatch { .. }), "{msg}");
    assert!(msg.contains(url.as_str()) && msg.contains("partner_id is Utf8"), "{msg}");
    let err = lh.open_or_create("products", schema(), &["sku"]).await.unwrap_err();
    assert!(err.to_string().contains("partitioned by"), "{err}");

    let table = lh.append(table, vec![tricky_rows()]).await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(1));
    let table = lh.append(table, vec![]).await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(1), "no rows, no commit");
    let reopened = lh.open("products").await.unwrap().unwrap();
    assert_same(&lh.scan(&reopened, None).await.unwrap(), &tricky_rows());

    let some = lh.scan(&reopened, Some("partner_id = 'b' AND price > 0")).await.unwrap();
    assert_eq!(keys(&some), vec![key("b", "s1", 1)]);
    let cents = lh.scan(&reopened, Some("price = 0.0001")).await.unwrap();
    assert_eq!(keys(&cents), vec![key("a", "s2", 1)]);
    let err = lh.scan(&reopened, Some("no_such_column = 1")).await.unwrap_err();
    assert!(err.to_string().contains("scan failed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_is_conformed_exactly_or_rejected() {
    let (_dir, lh) = local_lake();
    let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    // Columns in another order, a LargeUtf8 string and a Decimal128(38, 2) price: cast by name.
    let base = batch(&[("a", "s1", 1, 0)]);
    let loose = |price: Decimal128Array| {
        let mut fields = vec![
            Field::new("sku", DataType::LargeUtf8, false),
            Field::new("price", price.data_type().clone(), true),
            Field::new("partner_id", DataType::Utf8, false),
        ];
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(LargeStringArray::from(vec!["s1"])), Arc::new(price), base.column(0).clone()];
        for name in ["name", "version", "quantity", "active", "day", "updated_at"] {
            let (i, f) = schema().column_with_name(name).map(|(i, f)| (i, f.clone())).unwrap();
            fields.push(f);
            columns.push(base.column(i).clone());
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    };
    let cents = Decimal128Array::from(vec![1234_i128]).with_precision_and_scale(38, 2).unwrap();
    let table = lh.append(table, vec![loose(cents)]).await.unwrap();
    let rows = sorted(&lh.scan(&table, None).await.unwrap());
    let price = rows.column_by_name("price").unwrap().as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(price.value(0), 123_400, "12.34 is exactly 123400 units of 0.0001");

    // 10^15 has 16 integer digits: it does not fit in Decimal128(18, 4) and is refused.
    let too_big = Decimal128Array::from(vec![10_i128.pow(17)]).with_precision_and_scale(38, 2).unwrap();
    let err = lh.append(table, vec![loose(too_big)]).await.unwrap_err();
    assert!(matches!(err, DeltaError::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("column price"), "{err}");

    let table = lh.open("products").await.unwrap().unwrap();
    let partial = base.clone().project(&[0, 1]).unwrap();
    let err = lh.append(table, vec![partial]).await.unwrap_err();
    assert!(err.to_string().contains("column name is missing"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_where_touches_only_matching_rows() {
    let (_dir, lh) = local_lake();
    let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    let table = lh.append(table, vec![tricky_rows()]).await.unwrap();

    let new_a = batch(&[("a", "s7", 7, 70_000), ("a", "s8", 8, 80_000)]);
    let table = lh.replace_where(table, vec![new_a], "partner_id = 'a'").await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(2));
    let rows = lh.scan(&table, None).await.unwrap();
    assert_eq!(keys(&rows), vec![key("a", "s7", 7), key("a", "s8", 8), key("b", "s1", 1), key("b", "s2", 3)]);

    // A new row outside the predicate is refused and nothing is committed.
    let stray = batch(&[("b", "s9", 9, 0)]);
    let err = lh.replace_where(table, vec![stray], "partner_id = 'a'").await.unwrap_err();
    assert!(matches!(err, DeltaError::Operation { operation: "replace_where", .. }), "{err}");
    let table = lh.open("products").await.unwrap().unwrap();
    assert_eq!(Lakehouse::version(&table), Some(2));

    // No rows: the matching rows are deleted, in one commit.
    let table = lh.replace_where(table, vec![], "partner_id = 'a'").await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(3));
    assert_eq!(keys(&lh.scan(&table, None).await.unwrap()), vec![key("b", "s1", 1), key("b", "s2", 3)]);
}

/// Like silver's inventory: partitioned by a date and the partner, replaced per run date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_where_on_date_and_partner_partitions() {
    let (_dir, lh) = local_lake();
    let table = lh.open_or_create("inventory", schema(), &["day", "partner_id"]).await.unwrap();
    let table =
        lh.append(table, vec![batch(&[("a", "s1", 1, 1), ("a", "s2", 2, 2), ("b", "s1", 1, 3)])]).await.unwrap();
    // Version 1 rows are on day 20001 = 2024-10-05.
    let table = lh
        .replace_where(table, vec![batch(&[("a", "s9", 1, 9)])], "day = '2024-10-05' AND partner_id IN ('a')")
        .await
        .unwrap();
    assert_eq!(
        keys(&lh.scan(&table, None).await.unwrap()),
        vec![key("a", "s2", 2), key("a", "s9", 1), key("b", "s1", 1)]
    );
    assert_eq!(keys(&lh.scan(&table, Some("day = '2024-10-06'")).await.unwrap()), vec![key("a", "s2", 2)]);
    let late = lh.scan(&table, Some("updated_at >= '2025-11-20T00:53:22Z'")).await.unwrap();
    assert_eq!(keys(&late), vec![key("a", "s2", 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_updates_newer_rows_and_inserts_new_keys() {
    let (_dir, lh) = local_lake();
    let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    let stored = batch(&[("a", "s1", 1, 10_000), ("a", "s2", 5, 20_000), ("b", "s1", 1, 30_000)]);
    let table = lh.append(table, vec![stored]).await.unwrap();
    let files_of_b =
        |t: &DeltaTable| t.get_file_uris().unwrap().filter(|f| f.contains("partner_id=b")).collect::<Vec<_>>();
    let b_before = files_of_b(&table);
    assert_eq!(b_before.len(), 1);

    let source = batch(&[
        ("a", "s1", 2, 123_456_789_012_345_678),  // newer: updated
        ("a", "s2", 3, 1),                        // older: ignored
        ("a", "s3", 1, -999_999_999_999_999_999), // new key: inserted
    ]);
    let (table, counts) =
        lh.upsert(table, vec![source.clone()], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
    assert_eq!(counts, UpsertCounts { inserted: 1, updated: 1, ignored: 1 });
    assert_eq!(Lakehouse::version(&table), Some(2));
    let rows = lh.scan(&table, None).await.unwrap();
    assert_eq!(keys(&rows), vec![key("a", "s1", 2), key("a", "s2", 5), key("a", "s3", 1), key("b", "s1", 1)]);
    let expected = batch(&[
        ("a", "s1", 2, 123_456_789_012_345_678),
        ("a", "s2", 5, 20_000),
        ("a", "s3", 1, -999_999_999_999_999_999),
        ("b", "s1", 1, 30_000),
    ]);
    assert_same(&rows, &expected);
    assert_eq!(files_of_b(&table), b_before, "the partition of b is neither read nor rewritten");

    // Without a condition every match is replaced.
    let (table, counts) = lh
        .upsert(table, vec![batch(&[("a", "s2", 3, 7)])], &["partner_id", "sku"], "partner_id", None)
        .await
        .unwrap();
    assert_eq!(counts, UpsertCounts { inserted: 0, updated: 1, ignored: 0 });

    // Nothing to do: no commit.
    let (table, counts) =
        lh.upsert(table, vec![], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
    assert_eq!((counts, Lakehouse::version(&table)), (UpsertCounts::default(), Some(3)));

    let dup = batch(&[("a", "s9", 1, 0), ("a", "s9", 2, 0), ("a", "s4", 1, 0)]);
    let err = lh.upsert(table, vec![dup], &["partner_id", "sku"], "partner_id", None).await.unwrap_err();
    assert!(matches!(err, DeltaError::DuplicateKeys { count: 1, .. }), "{err}");
    assert!(err.to_string().contains("partner_id=a, sku=s9"), "{err}");

    let table = lh.open("products").await.unwrap().unwrap();
    let err = lh.upsert(table, vec![batch(&[("a", "s1", 1, 0)])], &["sku"], "partner_id", None).await.unwrap_err();
    assert!(err.to_string().contains("must be one of the keys"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_matched_sets_only_the_given_columns() {
    let (_dir, lh) = local_lake();
    let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    let table = lh.append(table, vec![tricky_rows()]).await.unwrap();
    let changes = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("partner_id", DataType::Utf8, false),
            Field::new("sku", DataType::Utf8, false),
            Field::new("active", DataType::Boolean, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a", "a"])),
            Arc::new(StringArray::from(vec!["s1", "nope"])),
            Arc::new(BooleanArray::from(vec![None, Some(true)])),
        ],
    )
    .unwrap();
    let (table, updated) =
        lh.update_matched(table, vec![changes], &["partner_id", "sku"], "partner_id").await.unwrap();
    assert_eq!(updated, 1);
    let rows = lh.scan(&table, Some("active IS NULL")).await.unwrap();
    assert_eq!(keys(&rows), vec![key("a", "s1", 1)]);
    let all = sorted(&lh.scan(&table, None).await.unwrap());
    let price = all.column_by_name("price").unwrap().as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(price.value(0), 123_456_789_012_345_678, "other columns keep their values");
    assert_eq!(all.num_rows(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_goes_back_in_time() {
    let (_dir, lh) = local_lake();
    let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    let table = lh.append(table, vec![batch(&[("a", "s1", 1, 1)])]).await.unwrap();
    let table = lh.append(table, vec![batch(&[("a", "s2", 1, 2)])]).await.unwrap();
    let (table, _) = lh
        .upsert(table, vec![batch(&[("a", "s1", 2, 3)])], &["partner_id", "sku"], "partner_id", None)
        .await
        .unwrap();
    assert_eq!(Lakehouse::version(&table), Some(3));

    let table = lh.restore(table, 1).await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(4));
    assert_eq!(keys(&lh.scan(&table, None).await.unwrap()), vec![key("a", "s1", 1)]);
    let table = lh.restore(table, 4).await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(4), "restoring the current version is a no-op");
    let err = lh.restore(table, 9).await.unwrap_err();
    assert!(matches!(err, DeltaError::InvalidArgument { .. }), "{err}");

    let table = lh.open("products").await.unwrap().unwrap();
    let table = lh.restore(table, 0).await.unwrap();
    assert!(lh.scan(&table, None).await.unwrap().is_empty(), "version 0 is the empty table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_compacts_vacuums_and_checkpoints() {
    let (dir, lh) = local_lake();
    let mut table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    for v in 1..=5 {
        table = lh.append(table, vec![batch(&[("a", &format!("s{v}"), v, v as i128)])]).await.unwrap();
    }
    assert_eq!(table.get_file_uris().unwrap().count(), 5);

    let err = lh.maintain(table, 0, false).await.unwrap_err();
    assert!(matches!(err, DeltaError::RetentionTooShort { requested: 0, minimum: 168, .. }), "{err}");

    let table = lh.open("products").await.unwrap().unwrap();
    let (table, report) = lh.maintain(table, 0, true).await.unwrap();
    assert_eq!((report.files_compacted, report.files_written), (5, 1), "{report:?}");
    assert_eq!(report.files_vacuumed, 5, "{report:?}");
    assert_eq!(table.get_file_uris().unwrap().count(), 1);
    let log = dir.path().join("silver/products/_delta_log");
    let checkpoint = log.join(format!("{:020}.checkpoint.parquet", report.checkpoint_version));
    assert!(checkpoint.is_file(), "{} is missing", checkpoint.display());
    let data_files = walk_parquet(&dir.path().join("silver/products/partner_id=a"));
    assert_eq!(data_files, 1, "only the compacted file is left on disk");

    let reopened = lh.open("products").await.unwrap().unwrap();
    let expected: Vec<_> = (1..=5).map(|v| key("a", &format!("s{v}"), v)).collect();
    assert_eq!(keys(&lh.scan(&reopened, None).await.unwrap()), expected);

    // Nothing left to compact or vacuum: a second run only checkpoints.
    let (_, report) = lh.maintain(reopened, MIN_RETENTION_HOURS, false).await.unwrap();
    assert_eq!((report.files_compacted, report.files_vacuumed), (0, 0), "{report:?}");
}

fn walk_parquet(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .count()
}
