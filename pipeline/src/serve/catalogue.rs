//! The current catalogue held in memory for paging: one Delta version of silver `products`,
//! read once, sorted by (partner_id, sku), shared by every request for that version. A page is
//! then a binary search for the cursor and a short forward walk, instead of a scan and sort of
//! the whole table per request.
//!
//! What it guarantees: a [`Catalogue`] is exactly one committed version (it is built from a
//! pinned [`Snapshot`]); concurrent first requests for a version build it once; at most
//! [`KEEP`] versions are held (the latest ones asked for), so memory stays about two copies of
//! the catalogue's exposed columns (lineage-only columns are dropped). A cursor of an evicted
//! version rebuilds it.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::Date32Type;
use schemas::silver::PARTNER;
use tokio::sync::{Mutex, OnceCell};

use super::error::ApiError;
use super::silver_read::Snapshot;

/// Versions held at once.
pub const KEEP: usize = 2;
/// Silver columns never returned by the API.
const DROPPED: [&str; 2] = ["_source_file", "_row_number"];

type Slot = Arc<OnceCell<Arc<Catalogue>>>;
static CACHE: LazyLock<Mutex<Vec<(String, i64, Slot)>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// What a listing keeps.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub partner: Option<&'a str>,
    pub category: Option<&'a str>,
    /// Days since 1970-01-01: `last_changed_date` on or after it.
    pub changed_since: Option<i32>,
}

/// One version of the catalogue, sorted by (partner_id, sku).
pub struct Catalogue {
    batch: RecordBatch,
}

/// The catalogue of `snap` (a silver `products` snapshot), built on first use.
pub async fn get(table: &str, snap: &Snapshot) -> Result<Arc<Catalogue>, ApiError> {
    let slot = {
        let mut cache = CACHE.lock().await;
        let found = cache.iter().position(|(t, v, _)| t == table && *v == snap.version);
        let slot = match found {
            Some(i) => cache.remove(i).2,
            None => Arc::new(OnceCell::new()),
        };
        // Most recently asked for last; the oldest go.
        cache.push((table.to_string(), snap.version, slot.clone()));
        let excess = cache.len().saturating_sub(KEEP);
        cache.drain(..excess);
        slot
    };
    slot.get_or_try_init(|| async {
        let batches = snap.select(None, &[PARTNER, "sku"], None).await?;
        Catalogue::new(batches).map(Arc::new)
    })
    .await
    .cloned()
}

impl Catalogue {
    /// From batches already sorted by (partner_id, sku).
    pub fn new(batches: Vec<RecordBatch>) -> Result<Catalogue, ApiError> {
        let err = |e: arrow::error::ArrowError| ApiError::internal(format!("silver products: {e}"));
        let Some(first) = batches.first() else {
            return Ok(Catalogue { batch: RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty())) });
        };
        let batch = arrow::compute::concat_batches(&first.schema(), &batches).map_err(err)?;
        let keep: Vec<usize> = (0..batch.num_columns()).filter(|i| !DROPPED.contains(&batch.schema().field(*i).name().as_str())).collect();
        let batch = batch.project(&keep).map_err(err)?;
        // Strings as plain Utf8, whatever the scan handed out (views, dictionaries).
        let schema = Arc::new(arrow::datatypes::Schema::new(
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    arrow::datatypes::DataType::Utf8View | arrow::datatypes::DataType::Dictionary(_, _) | arrow::datatypes::DataType::LargeUtf8 => {
                        f.as_ref().clone().with_data_type(arrow::datatypes::DataType::Utf8)
                    }
                    _ => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let batch = RecordBatch::try_new(schema, columns).map_err(err)?;
        for name in [PARTNER, "sku", "category", "last_changed_date"] {
            if batch.column_by_name(name).is_none() {
                return Err(ApiError::internal(format!("silver products: no column {name}")));
            }
        }
        Ok(Catalogue { batch })
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    fn text(&self, name: &str, i: usize) -> Option<&str> {
        let a = self.batch.column_by_name(name)?.as_string::<i32>();
        a.is_valid(i).then(|| a.value(i))
    }

    fn key(&self, i: usize) -> (&str, &str) {
        (self.text(PARTNER, i).unwrap_or_default(), self.text("sku", i).unwrap_or_default())
    }

    /// The first row whose key is after `after` and, with a partner filter, not before that
    /// partner's rows.
    fn start(&self, f: &Filter, after: Option<(&str, &str)>) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            // Both are prefixes of the sorted rows, so their union is one too.
            let key = self.key(mid);
            let before = after.is_some_and(|a| key <= a) || f.partner.is_some_and(|p| key.0 < p);
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Up to `limit` rows after `after` that `f` keeps, and whether more follow.
    pub fn page(&self, f: &Filter, after: Option<(&str, &str)>, limit: usize) -> Result<(RecordBatch, bool), ApiError> {
        if self.len() == 0 {
            return Ok((self.batch.clone(), false));
        }
        let changed = self.batch.column_by_name("last_changed_date").map(|c| c.as_primitive::<Date32Type>().clone());
        let mut picked: Vec<u32> = Vec::with_capacity(limit + 1);
        for i in self.start(f, after)..self.len() {
            if let Some(p) = f.partner {
                if self.key(i).0 != p {
                    break;
                }
            }
            if f.category.is_some_and(|c| self.text("category", i) != Some(c)) {
                continue;
            }
            if let (Some(d), Some(ch)) = (f.changed_since, &changed) {
                if !ch.is_valid(i) || ch.value(i) < d {
                    continue;
                }
            }
            picked.push(i as u32);
            if picked.len() > limit {
                break;
            }
        }
        let more = picked.len() > limit;
        picked.truncate(limit);
        let idx = UInt32Array::from(picked);
        let columns = self
            .batch
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &idx, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::internal(format!("silver products: {e}")))?;
        let rows = RecordBatch::try_new(self.batch.schema(), columns).map_err(|e| ApiError::internal(format!("silver products: {e}")))?;
        Ok((rows, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn catalogue(rows: &[(&str, &str, &str, i32)]) -> Catalogue {
        let schema = Arc::new(Schema::new(vec![
            Field::new(PARTNER, DataType::Utf8, false),
            Field::new("sku", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, true),
            Field::new("last_changed_date", DataType::Date32, false),
            Field::new("_row_number", DataType::Int64, false),
        ]));
        let col = |k: usize| Arc::new(StringArray::from(rows.iter().map(|r| [r.0, r.1, r.2][k]).collect::<Vec<_>>())) as Arc<dyn Array>;
        let b = RecordBatch::try_new(
            schema,
            vec![col(0), col(1), col(2), Arc::new(Date32Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())), Arc::new(arrow::array::Int64Array::from(vec![0; rows.len()]))],
        )
        .unwrap();
        // Two batches, like a scan hands out.
        Catalogue::new(vec![b.slice(0, 2), b.slice(2, rows.len() - 2)]).unwrap()
    }

    fn skus(b: &RecordBatch) -> Vec<String> {
        let a = b.column_by_name("sku").unwrap().as_string::<i32>();
        (0..a.len()).map(|i| a.value(i).to_string()).collect()
    }

    #[test]
    fn pages_by_key_with_filters() {
        let c = catalogue(&[("a", "S1", "X", 1), ("a", "S2", "Y", 2), ("a", "S3", "X", 3), ("b", "S1", "X", 3), ("b", "S4", "Y", 1), ("c", "S0", "X", 5)]);
        assert!(c.batch.column_by_name("_row_number").is_none(), "lineage-only columns are dropped");
        let all = Filter::default();
        let (p, more) = c.page(&all, None, 4).unwrap();
        assert_eq!((skus(&p), more), (vec!["S1".to_string(), "S2".into(), "S3".into(), "S1".into()], true));
        let (p, more) = c.page(&all, Some(("b", "S1")), 4).unwrap();
        assert_eq!((skus(&p), more), (vec!["S4".to_string(), "S0".into()], false));
        let b = Filter { partner: Some("b"), ..Filter::default() };
        assert_eq!(skus(&c.page(&b, None, 10).unwrap().0), ["S1", "S4"]);
        assert_eq!(skus(&c.page(&b, Some(("b", "S1")), 10).unwrap().0), ["S4"]);
        let x = Filter { category: Some("X"), changed_since: Some(3), ..Filter::default() };
        let (p, more) = c.page(&x, None, 2).unwrap();
        assert_eq!((skus(&p), more), (vec!["S3".to_string(), "S1".into()], true));
        assert_eq!(skus(&c.page(&x, Some(("b", "S1")), 2).unwrap().0), ["S0"]);
        let none = Filter { partner: Some("zz"), ..Filter::default() };
        assert_eq!(c.page(&none, None, 2).unwrap().0.num_rows(), 0);
        assert_eq!(Catalogue::new(Vec::new()).unwrap().page(&all, None, 3).unwrap().0.num_rows(), 0);
    }
}
