//! The Delta operations on S3 (SeaweedFS or MinIO from `scripts/services.sh`), concurrent
//! writers, and the memory measurement of an upsert (run by hand).

use std::sync::Arc;

use super::*;

/// A fresh prefix in the test bucket. Fails (never skips) when the S3 settings are missing.
/// The S3 test lake; fails when SeaweedFS is not configured, unless the skip is asked for
/// explicitly with MEDALLION_SKIP_SERVICE_TESTS=1 (then the skip is printed).
fn s3_lake(test: &str) -> Option<Lakehouse> {
    if std::env::var("MEDALLION_TEST_S3_BUCKET").is_err() && std::env::var("MEDALLION_SKIP_SERVICE_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: S3 test {test} (MEDALLION_SKIP_SERVICE_TESTS=1)");
        return None;
    }
    for var in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MEDALLION_TEST_S3_BUCKET"] {
        assert!(
            std::env::var(var).is_ok_and(|v| !v.is_empty()),
            "{var} is not set: S3 tests need SeaweedFS, run `eval \"$(scripts/services.sh start)\"` first"
        );
    }
    let bucket = std::env::var("MEDALLION_TEST_S3_BUCKET").unwrap();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let spec = format!("s3://{bucket}/delta-tests/{test}-{}-{nanos}", std::process::id());
    let lake = crate::Location::open("lake", &spec, false).unwrap();
    Some(Lakehouse::new(&lake).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_create_append_upsert_restore_maintain() {
    let Some(lh) = s3_lake("roundtrip") else { return };
    let url = lh.table_url("products");
    assert!(url.as_str().starts_with("s3://") && url.as_str().ends_with("/silver/products"), "{url}");
    assert!(lh.open("products").await.unwrap().is_none());
    let table = lh.open_or_create("products", schema(), &["partner_id"]).await.unwrap();
    let table = lh.append(table, vec![tricky_rows()]).await.unwrap();
    assert_same(&lh.scan(&table, None).await.unwrap(), &tricky_rows());

    let source = batch(&[("a", "s1", 2, 5), ("a", "s2", 0, 6), ("c", "s1", 1, 7)]);
    let (table, counts) =
        lh.upsert(table, vec![source], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
    assert_eq!(counts, UpsertCounts { inserted: 1, updated: 1, ignored: 1 });
    let table = lh.replace_where(table, vec![batch(&[("b", "s5", 5, 5)])], "partner_id = 'b'").await.unwrap();
    assert_eq!(Lakehouse::version(&table), Some(3));
    let reopened = lh.open("products").await.unwrap().unwrap();
    assert_eq!(
        keys(&lh.scan(&reopened, None).await.unwrap()),
        vec![key("a", "s1", 2), key("a", "s2", 1), key("a", "s3", 2), key("b", "s5", 5), key("c", "s1", 1)]
    );

    let table = lh.restore(reopened, 1).await.unwrap();
    assert_same(&lh.scan(&table, None).await.unwrap(), &tricky_rows());
    let (table, report) = lh.maintain(table, MIN_RETENTION_HOURS, false).await.unwrap();
    assert_eq!(report.checkpoint_version, 4);
    assert_same(&lh.scan(&table, None).await.unwrap(), &tricky_rows());
}

/// Peak memory and time of an upsert of 50k source rows (25k updates spread over the
/// table, 25k new keys) into a single-partition table of 1M rows (`MEDALLION_MEM_ROWS`).
/// The table is built on the first run in `MEDALLION_MEM_DIR` and restored to that state on
/// later runs, so run it twice and read the second run:
/// `MEDALLION_MEM_DIR=/tmp/mem /usr/bin/time -v <test binary> --ignored --exact delta::tests::upsert_memory_1m_rows --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn upsert_memory_1m_rows() {
    let target: usize = std::env::var("MEDALLION_MEM_ROWS").map(|v| v.parse().unwrap()).unwrap_or(1_000_000);
    const SOURCE: usize = 50_000;
    let dir = std::env::var("MEDALLION_MEM_DIR").expect("set MEDALLION_MEM_DIR to a folder for the 1M-row table");
    let lake = crate::Location::open("lake", &dir, true).unwrap();
    let lh = Lakehouse::new(&lake).unwrap();
    let rows = |skus: &[String], version: i64| {
        let rows: Vec<(&str, &str, i64, i128)> =
            skus.iter().enumerate().map(|(i, s)| ("p", s.as_str(), version, i as i128 * 10_001)).collect();
        batch(&rows)
    };
    let table = match lh.open("big").await.unwrap() {
        Some(table) => lh.restore(table, 1).await.unwrap(),
        None => {
            let table = lh.open_or_create("big", schema(), &["partner_id"]).await.unwrap();
            let batches = (0..target / 100_000)
                .map(|b| {
                    rows(&(b * 100_000..(b + 1) * 100_000).map(|i| format!("sku{i:09}")).collect::<Vec<_>>(), 1)
                })
                .collect();
            lh.append(table, batches).await.unwrap()
        }
    };
    let files = table.get_file_uris().unwrap().count();
    // Half of the source updates rows spread over the whole table, half inserts new keys.
    let skus: Vec<String> = (0..SOURCE / 2)
        .map(|i| format!("sku{:09}", i * (target / (SOURCE / 2))))
        .chain((0..SOURCE / 2).map(|i| format!("sku{:09}", target + i)))
        .collect();
    let source = rows(&skus, 2);

    let before = proc_status_kib("VmRSS");
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (Linux)");
    let start = std::time::Instant::now();
    let (table, counts) =
        lh.upsert(table, vec![source], &["partner_id", "sku"], "partner_id", Some(NEWER)).await.unwrap();
    let elapsed = start.elapsed();
    let peak = proc_status_kib("VmHWM");
    assert_eq!(counts, UpsertCounts { inserted: 25_000, updated: 25_000, ignored: 0 });
    eprintln!(
        "upsert of {SOURCE} rows into {target} rows ({files} file(s)): {:.1} s, RSS before {} MiB, peak during {} MiB, files after {}",
        elapsed.as_secs_f64(),
        before / 1024,
        peak / 1024,
        table.get_file_uris().unwrap().count()
    );
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Two writers start from the same version and commit at once: both try to write the same
/// log entry; conditional PUT lets exactly one win and the other commits the next version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_concurrent_appends_all_land() {
    let Some(lh) = s3_lake("concurrent") else { return };
    let lh = Arc::new(lh);
    // Two creators at once: both get the one table that won.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let creators: Vec<_> = (0..2)
        .map(|_| {
            let (lh, barrier) = (lh.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                lh.open_or_create("events", schema(), &["partner_id"]).await.unwrap()
            })
        })
        .collect();
    for c in creators {
        assert_eq!(Lakehouse::version(&c.await.unwrap()), Some(0));
    }
    const ROUNDS: i64 = 3;
    for round in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let writers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|partner| {
                let (lh, barrier) = (lh.clone(), barrier.clone());
                tokio::spawn(async move {
                    let table = lh.open("events").await.unwrap().unwrap();
                    let rows = batch(&[(partner, &format!("r{round}"), round, 1)]);
                    barrier.wait().await;
                    lh.append(table, vec![rows]).await.unwrap()
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    }
    let table = lh.open("events").await.unwrap().unwrap();
    assert_eq!(Lakehouse::version(&table), Some(2 * ROUNDS), "every commit landed at its own version");
    let rows = keys(&lh.scan(&table, None).await.unwrap());
    assert_eq!(rows.len(), 2 * ROUNDS as usize, "{rows:?}");
    for round in 0..ROUNDS {
        for partner in ["a", "b"] {
            assert!(rows.contains(&key(partner, &format!("r{round}"), round)), "lost {partner} r{round}");
        }
    }
}
