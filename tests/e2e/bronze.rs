//! Bronze end to end, each scenario on a local lake and on S3 (SeaweedFS).

use crate::common::*;

const D: &str = "2026-11-20";
const PRODUCTS: &str = "sku,name,category,price\nA-1,Lamp,home & garden,12.50\nA-2,Desk,office,$1,234.00\n";


both!(quarantines_each_kind_of_bad_file, quarantine_kinds);
both!(bom_and_crlf_files_land_clean, bom_and_crlf);
both!(relanding_is_idempotent, idempotent);
both!(malformed_rows_and_drift_are_kept, malformed_and_drift);
both!(bad_folders_are_reported_not_landed, bad_folders);

fn bronze_json(env: &Env, date: &str) -> serde_json::Value {
    medallion(env, &["bronze", "--date", date, "--json"]).ok().json()
}

fn feed<'a>(report: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    report["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feed"]["file_name"] == file)
        .unwrap_or_else(|| panic!("no feed for {file} in {report:#}"))
}

fn quarantine_kinds(env: Env) {
    ingest(&env, "acme", "products", D, "good.csv", PRODUCTS.as_bytes());
    ingest(&env, "acme", "products", D, "missing_col.csv", b"sku,name,category\nA-1,Lamp,home\n");
    ingest(&env, "acme", "products", D, "latin1.csv", b"sku,name,category,price\nA-9,Caf\xe9,food,1.00\n");
    ingest(&env, "acme", "products", D, "unterminated.csv", b"sku,name,category,price\nA-3,\"Lamp,home,1.00\n");
    ingest(&env, "acme", "products", D, "stray_quote.csv", b"sku,name,category,price\nA-3,5\" screen,tv,1.00\n");
    ingest(&env, "acme", "products", D, "dup_col.csv", b"sku,name,Name,category,price\nA-3,a,b,c,1\n");
    ingest(&env, "acme", "products", D, "empty.csv", b"");
    ingest(&env, "acme", "products", D, "binary.csv", &[0u8, 159, 146, 150, 0xff, 0xfe, 10, 1, 2, 3]);
    let r = bronze_json(&env, D);
    assert_eq!(r["landed"], 1, "{r:#}");
    assert_eq!(r["quarantined"], 7, "{r:#}");
    let expect = [
        ("missing_col.csv", "missing_column", "price"),
        ("latin1.csv", "invalid_utf8", "line 2, column \"name\""),
        ("unterminated.csv", "invalid_csv", "line 2"),
        ("stray_quote.csv", "invalid_csv", "line 2, field 2"),
        ("dup_col.csv", "duplicate_column", "\"name\""),
        ("empty.csv", "empty_file", "no header"),
        ("binary.csv", "invalid_utf8", "line 1"),
    ];
    for (file, reason, detail) in expect {
        let f = &feed(&r, file)["feed"];
        assert_eq!(f["status"], "quarantined", "{file}: {f:#}");
        assert_eq!(f["reason"], reason, "{file}: {f:#}");
        assert!(f["detail"].as_str().unwrap().contains(detail), "{file}: {f:#}");
        assert_eq!(f["rows"], 0, "a quarantined file contributes no rows");
        assert!(f.get("bronze_path").is_none(), "no bronze Parquet for {file}");
        // the raw copy is kept, unchanged, for audit
        let raw = read_lake(&env, f["raw_path"].as_str().unwrap()).expect("raw copy exists");
        assert_eq!(raw.len() as u64, f["bytes"].as_u64().unwrap());
    }
    // nothing of a quarantined file reaches bronze
    let parquet: Vec<String> = list_lake(&env, "bronze/products").into_iter().filter(|p| p.ends_with(".parquet")).collect();
    assert_eq!(parquet.len(), 1, "{parquet:?}");
    let good = &feed(&r, "good.csv")["feed"];
    let batches = read_parquet(&env, good["bronze_path"].as_str().unwrap());
    assert_eq!(column(&batches, "price"), vec![Some("12.50".into()), None]);
    // the second row has 5 fields (an unquoted thousands separator): malformed, kept raw
    assert_eq!(column(&batches, "_raw_line"), vec![None, Some("A-2,Desk,office,$1,234.00".into())]);
}

fn bom_and_crlf(env: Env) {
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(b"SKU , Name,CATEGORY,price\r\nA-1,Lamp,home,1.00\r\n\r\n\"B-2\",\"Desk, large\",office,\"2.00\"\r\n");
    ingest(&env, "acme", "products", D, "bom_crlf.csv", &bom);
    let r = bronze_json(&env, D);
    let f = &feed(&r, "bom_crlf.csv")["feed"];
    assert_eq!(f["status"], "landed", "{f:#}");
    assert_eq!(f["rows"], 2, "the empty CRLF line is not a row");
    assert_eq!(f["columns"], serde_json::json!(["sku", "name", "category", "price"]));
    assert_eq!(f["feed_id"], "FD00001");
    let batches = read_parquet(&env, f["bronze_path"].as_str().unwrap());
    assert_eq!(column(&batches, "sku"), vec![Some("A-1".into()), Some("B-2".into())]);
    assert_eq!(column(&batches, "name"), vec![Some("Lamp".into()), Some("Desk, large".into())]);
    assert_eq!(column(&batches, "price"), vec![Some("1.00".into()), Some("2.00".into())], "no CR left in values");
    assert_eq!(column(&batches, "_row_number"), vec![Some("1".into()), Some("2".into())]);
    assert_eq!(column(&batches, "_line_number"), vec![Some("2".into()), Some("4".into())]);
    assert_eq!(column(&batches, "_feed_id"), vec![Some("FD00001".into()); 2]);
    assert_eq!(column(&batches, "_source_file"), vec![Some("bom_crlf.csv".into()); 2]);
    // the raw copy keeps the BOM and the CRLFs: byte for byte what the partner sent
    assert_eq!(read_lake(&env, f["raw_path"].as_str().unwrap()).unwrap(), bom);
    assert!(f["bronze_path"].as_str().unwrap().starts_with("bronze/products/partner=acme/ingest_date=2026-11-20/"));
}

fn idempotent(env: Env) {
    ingest(&env, "acme", "products", D, "p.csv", PRODUCTS.as_bytes());
    ingest(&env, "acme", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-20,completed\n");
    let first = bronze_json(&env, D);
    assert_eq!(first["landed"], 2);
    let objects = list_lake(&env, "");
    let second = bronze_json(&env, D);
    assert_eq!(second["landed"], 0, "{second:#}");
    assert_eq!(second["already_landed"], 2, "{second:#}");
    assert_eq!(list_lake(&env, ""), objects, "a re-run writes nothing");
    // The same content under another name on the same date is the same feed.
    ingest(&env, "acme", "products", D, "p_copy.csv", PRODUCTS.as_bytes());
    let third = bronze_json(&env, D);
    assert_eq!(third["landed"], 0, "{third:#}");
    assert_eq!(third["already_landed"], 3, "{third:#}");
    // A different file under an existing name is a new feed (pushed straight into the landing
    // zone, since `ingest` refuses to replace a file with different content).
    put_landing(&env, &format!("acme/products/{D}/p.csv"), b"sku,name,category,price\nA-1,Lamp,home,13.00\n");
    let fourth = bronze_json(&env, D);
    assert_eq!(fourth["landed"], 1, "{fourth:#}");
    let new = fourth["feeds"].as_array().unwrap().iter().find(|f| f["action"] == "landed").unwrap();
    assert_eq!(new["feed"]["feed_id"], "FD00003");
    assert_eq!(new["feed"]["file_name"], "p.csv");
    // both versions' raw copies are kept
    let raws: Vec<String> = list_lake(&env, "raw/products").into_iter().filter(|p| p.ends_with("/p.csv")).collect();
    assert_eq!(raws.len(), 2, "{raws:?}");
    // The same content on another date is landed again (inventory may legitimately repeat).
    ingest(&env, "acme", "products", "2026-11-21", "p.csv", PRODUCTS.as_bytes());
    let other_day = bronze_json(&env, "2026-11-21");
    assert_eq!(other_day["landed"], 1, "{other_day:#}");
    // the registry lists them all, per date
    let feeds = medallion(&env, &["feeds", "--json", "--date", D]).ok().json();
    assert_eq!(feeds.as_array().unwrap().len(), 3, "{feeds:#}");
    let all = medallion(&env, &["feeds", "--json"]).ok().json();
    assert_eq!(all.as_array().unwrap().len(), 4);
}

fn malformed_and_drift(env: Env) {
    ingest(
        &env,
        "acme",
        "orders",
        D,
        "orders.csv",
        b"order_id,customer_id,order_date,status,gift_wrap\nO1,C1,2026-11-20,completed,yes\nO2,C1,2026-11-20,pending,no,extra\nO3,C2\n   \nO4,C3,2026-11-20,completed,\n",
    );
    let r = bronze_json(&env, D);
    let f = &feed(&r, "orders.csv")["feed"];
    assert_eq!(f["status"], "landed");
    assert_eq!(f["rows"], 5, "{f:#}");
    assert_eq!(f["malformed_rows"], 3, "{f:#}");
    assert_eq!(f["extra_columns"], serde_json::json!(["gift_wrap"]));
    let b = read_parquet(&env, f["bronze_path"].as_str().unwrap());
    assert_eq!(column(&b, "gift_wrap"), vec![Some("yes".into()), None, None, None, Some("".into())]);
    assert_eq!(
        column(&b, "_raw_line"),
        vec![None, Some("O2,C1,2026-11-20,pending,no,extra".into()), Some("O3,C2".into()), Some("   ".into()), None]
    );
    assert_eq!(column(&b, "order_id")[1], None);
}

fn bad_folders(env: Env) {
    put_landing(&env, &format!("acme/returns/{D}/r.csv"), b"a,b\n1,2\n");
    put_landing(&env, &format!("Bad.Partner/orders/{D}/o.csv"), b"a,b\n1,2\n");
    put_landing(&env, &format!("acme/orders/{D}/notes.txt"), b"hello");
    put_landing(&env, &format!("acme/orders/{D}/o.csv"), b"order_id,customer_id,order_date,status\nO1,C1,2026-11-20,completed\n");
    let r = bronze_json(&env, D);
    assert_eq!(r["landed"], 1, "{r:#}");
    let ignored = r["ignored"].as_array().unwrap();
    let reason = |needle: &str| {
        ignored.iter().find(|i| i["path"].as_str().unwrap().contains(needle)).unwrap_or_else(|| panic!("{needle} not reported: {r:#}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason("returns").contains("unknown dataset folder \"returns\""));
    assert!(reason("Bad.Partner").contains("invalid partner id"));
    assert!(reason("notes.txt").contains("not a .csv file"));
    assert!(list_lake(&env, "raw").iter().all(|p| p.starts_with("raw/orders/partner=acme/")));
}

#[test]
fn evil_partner_is_refused_before_any_write() {
    let env = local();
    let f = file(&env, "o.csv", b"order_id\n1\n");
    for partner in ["../evil", "..", "a/b", "Acme", ""] {
        let r = medallion(&env, &["ingest", "--partner", partner, "--dataset", "orders", "--date", D, f.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{partner}: {}", r.stderr);
        assert!(r.stderr.contains("invalid partner id"), "{}", r.stderr);
    }
    assert!(!std::path::Path::new(&env.landing).exists(), "nothing may be written for a refused partner id");
    assert!(is_local_empty_or_missing(&env.dir.path().join("evil")));
    // a hostile file name is refused too
    let r = medallion(&env, &["ingest", "--partner", "acme", "--dataset", "orders", "--date", D, "/"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = medallion(&env, &["ingest", "--partner", "acme", "--dataset", "refunds", "--date", D, f.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown dataset"), "{}", r.stderr);
}

#[test]
fn evil_partner_is_refused_on_s3_before_any_write() {
    let Some(env) = s3("evil") else { return };
    let f = file(&env, "o.csv", b"order_id\n1\n");
    let r = medallion(&env, &["ingest", "--partner", "../evil", "--dataset", "orders", "--date", D, f.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let bucket = s3_bucket().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let root = lake::Location::open("bucket", &format!("s3://{bucket}"), false).unwrap();
    let all: Vec<_> = rt.block_on(async {
        use futures::StreamExt;
        // hostile::s3_key_with_a_control_character… briefly holds a key that object_store
        // cannot parse; only that error is tolerated here.
        root.store
            .list(None)
            .filter_map(|r| async move {
                match r {
                    Ok(m) => Some(m),
                    Err(object_store::Error::InvalidPath { .. }) => None,
                    Err(e) => panic!("{e}"),
                }
            })
            .collect::<Vec<_>>()
            .await
    });
    assert!(all.iter().all(|m| !m.location.as_ref().contains("evil")), "an object named evil was written");
}

#[test]
fn nothing_to_do_has_its_own_exit_code() {
    let env = local();
    std::fs::create_dir_all(&env.landing).unwrap();
    let r = medallion(&env, &["bronze", "--date", D]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("nothing to do"), "{}", r.stderr);
}

#[test]
fn generated_feeds_land_with_every_defect_class() {
    let env = local();
    medallion(&env, &["generate", "--partners", "3", "--days", "2", "--rows", "60", "--start-date", "2026-11-19", "--defect-rate", "0.05", "-q"]).ok();
    let mut reasons = std::collections::BTreeSet::new();
    let mut malformed = 0;
    let mut drift = 0;
    for date in ["2026-11-19", "2026-11-20"] {
        let r = bronze_json(&env, date);
        assert!(r["landed"].as_u64().unwrap() >= 15, "{r:#}");
        for f in r["feeds"].as_array().unwrap() {
            if let Some(reason) = f["feed"]["reason"].as_str() {
                reasons.insert(reason.to_string());
            }
            malformed += f["feed"]["malformed_rows"].as_u64().unwrap();
            drift += f["feed"]["extra_columns"].as_array().unwrap().len();
        }
    }
    assert_eq!(reasons.into_iter().collect::<Vec<_>>(), vec!["invalid_csv", "invalid_utf8", "missing_column"]);
    assert!(malformed > 0, "malformed rows are generated");
    assert!(drift > 0, "extra columns are generated");
}
