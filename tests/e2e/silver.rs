//! Silver end to end: crafted feeds through bronze and silver on a local lake and on S3.

use crate::common::*;

const D1: &str = "2026-11-19";
const D2: &str = "2026-11-20";


both!(every_reason_code_and_warning, reasons_and_warnings);
both!(products_diff_and_history_across_days, products_across_days);
both!(late_orders_and_status_changes, orders_across_days);

fn land_and_silver(env: &Env, date: &str) -> serde_json::Value {
    medallion(env, &["bronze", "--date", date, "-q"]).ok();
    medallion(env, &["silver", "--date", date, "--json"]).ok().json()
}

fn feed_stats<'a>(r: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    r["feeds"].as_array().unwrap().iter().find(|f| f["file_name"] == file).unwrap_or_else(|| panic!("no stats for {file}: {r:#}"))
}

fn reasons(r: &serde_json::Value, file: &str) -> serde_json::Value {
    feed_stats(r, file)["reasons"].clone()
}

/// Rows of a silver table as JSON objects, via `medallion sql`-free access: the silver crate.
pub fn silver_rows(env: &Env, table: &str, filter: Option<&str>, order: &[&str]) -> Vec<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let lake = lake::Location::open("lake", &env.lake, true).unwrap();
        let lh = silver::delta::Lakehouse::new(&lake).unwrap();
        let Some(t) = lh.open(table).await.unwrap() else { return Vec::new() };
        let batches = lh.scan(&t, filter).await.unwrap();
        let mut buf = Vec::new();
        {
            let mut w = arrow::json::ArrayWriter::new(&mut buf);
            for b in &batches {
                w.write(b).unwrap();
            }
            w.finish().unwrap();
        }
        let mut rows: Vec<serde_json::Value> = if buf.is_empty() { Vec::new() } else { serde_json::from_slice(&buf).unwrap() };
        let key = |r: &serde_json::Value| -> Vec<(f64, String)> {
            order.iter().map(|k| (r[*k].as_f64().unwrap_or(0.0), r[*k].as_str().unwrap_or_default().to_string())).collect()
        };
        rows.sort_by(|a, b| key(a).partial_cmp(&key(b)).unwrap());
        rows
    })
}

fn reasons_and_warnings(env: Env) {
    ingest(
        &env,
        "acme",
        "products",
        D2,
        "products.csv",
        "sku,name,category,brand,price,currency,quantity,updated_at\n\
         a-1, Big   Lamp ,home & GARDEN,Acme,\"$1,234.50\",usd,3,2026-11-20T10:00:00+02:00\n\
         ,n,c,,1,,1,\n\
         a-3,,c,,1,,1,\n\
         a-4,n,,,1,,1,\n\
         a-5,n,c,,,,1,\n\
         a-6,n,c,,12.34567,,1,\n\
         a-7,n,c,,-1,,1,\n\
         a-8,n,c,,1,dollars,1,\n\
         a-9,n,c,,1,,3.0,\n\
         a-10,n,c,,1,,1,yesterday\n\
         a-11,n,c,,1,,1\n"
            .as_bytes(),
    );
    ingest(
        &env,
        "acme",
        "customers",
        D2,
        "customers.csv",
        b"customer_id,email,first_name,last_name,country,signup_date\nC1,A@Example.com,Ana,Smith,us,2026-01-02\nC2,not-an-email,Ben,,USA,\nC3,,,,,2026-02-30\n",
    );
    ingest(
        &env,
        "acme",
        "campaigns",
        D2,
        "campaigns.csv",
        b"campaign_id,name,channel,start_date,end_date,budget\nK1,Sale,EMAIL,2026-11-01,2026-10-01,100\nK2,Sale,email,2026-11-01,,\nK3,,email,2026-11-01,,\nK4,x,y,,,\n",
    );
    ingest(
        &env,
        "acme",
        "orders",
        D2,
        "orders.csv",
        b"order_id,customer_id,order_date,status,currency,campaign_id,total_amount\nO1,C1,2026-11-20T10:00:00Z,Completed,eur,K2,20.00\nO2,C1,2026-11-20,shipped,,,\nO3,,2026-11-20,pending,,,\nO4,C1,2026-11-31,pending,,,\nO5,C1,2026-11-20,pending,dollars,,\nO6,C1,2026-11-20,pending,,,1.2.3\nO7,C1,2026-11-20,pending,,,99.00\nO8,C1,2026-11-20,completed,,,5.00\n",
    );
    ingest(
        &env,
        "acme",
        "order_items",
        D2,
        "items.csv",
        b"order_id,line_number,sku,quantity,unit_price,discount,returned\nO1,1,a-1,2,10.00,,no\nO1,0,a-1,1,1,,\nO1,2,a-1,0,1,,\nO1,3,a-1,1,free,,\nO1,4,a-1,1,1,1.5,\nO1,5,a-1,1,1,,maybe\nO1,6,,1,1,,\nO1,1,a-1,2,10.00,,no\nO7,1,zz,1,5,0.5,\nX9,1,a-1,1,1,,\n",
    );
    let r = land_and_silver(&env, D2);
    let p = reasons(&r, "products.csv");
    assert_eq!(
        p,
        serde_json::json!({"missing_sku": 1, "missing_name": 1, "missing_category": 1, "missing_price": 1, "invalid_price": 2,
            "invalid_currency": 1, "invalid_quantity": 1, "invalid_updated_at": 1, "malformed_row": 1}),
        "{r:#}"
    );
    let c = feed_stats(&r, "customers.csv");
    assert_eq!(c["reasons"], serde_json::json!({"invalid_signup_date": 1}));
    assert_eq!(c["warnings"], serde_json::json!({"invalid_email": 1, "invalid_country": 1}));
    assert_eq!(reasons(&r, "campaigns.csv"), serde_json::json!({"invalid_range": 1, "missing_name": 1, "missing_start_date": 1}));
    assert_eq!(
        reasons(&r, "orders.csv"),
        serde_json::json!({"invalid_status": 1, "missing_customer_id": 1, "invalid_order_date": 1, "invalid_currency": 1, "invalid_total_amount": 1})
    );
    let items = feed_stats(&r, "items.csv");
    assert_eq!(
        items["reasons"],
        serde_json::json!({"invalid_line_number": 1, "invalid_quantity": 1, "invalid_unit_price": 1, "invalid_discount": 1, "invalid_returned": 1, "missing_sku": 1})
    );
    assert_eq!(items["duplicate"], 1, "O1 line 1 twice: the later wins");
    // Every feed balances.
    for f in r["feeds"].as_array().unwrap() {
        let (read, v, rej, dup) = (f["rows_read"].as_u64().unwrap(), f["valid"].as_u64().unwrap(), f["rejected"].as_u64().unwrap(), f["duplicate"].as_u64().unwrap());
        assert_eq!(read, v + rej + dup, "{f:#}");
    }
    assert_eq!(r["orphan_items"], serde_json::json!({"acme": 1}), "X9 has no order");
    assert_eq!(r["total_mismatch"], 2, "O7 says 99.00, its items sum to 2.50; O8 has no items; O1 says 20.00 = 2 x 10.00");
    // Silver values are typed and cleaned.
    let prods = silver_rows(&env, "products", None, &["sku"]);
    assert_eq!(prods.len(), 1);
    assert_eq!(prods[0]["sku"], "A-1");
    assert_eq!(prods[0]["name"], "Big Lamp");
    assert_eq!(prods[0]["category"], "Home & Garden");
    assert_eq!(prods[0]["price"], 1234.5);
    assert_eq!(prods[0]["currency"], "USD");
    let q = silver_rows(&env, "quarantine", Some("dataset = 'products'"), &["_row_number"]);
    assert_eq!(q.len(), 10);
    assert_eq!(q[0]["reason"], "missing_sku");
    assert!(q[0]["raw"].as_str().unwrap().contains("\"name\":\"n\""), "{:#}", q[0]);
    assert_eq!(q[9]["reason"], "malformed_row");
    assert_eq!(q[9]["raw"], "a-11,n,c,,1,,1");
    let orders = silver_rows(&env, "orders", None, &["order_id"]);
    assert_eq!(orders.iter().map(|o| o["order_id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["O1", "O7", "O8"]);
    assert_eq!(orders[0]["status"], "completed");
    assert_eq!(orders[0]["currency"], "EUR");
}

fn products_across_days(env: Env) {
    let h = "sku,name,category,price,quantity\n";
    ingest(&env, "acme", "products", D1, "p.csv", format!("{h}A,Lamp,home,10.00,1\nB,Desk,office,20.00,2\nC,Mug,kitchen,5.00,3\n").as_bytes());
    let r1 = land_and_silver(&env, D1);
    assert_eq!(r1["product_changes"], serde_json::json!([{"partner": "acme", "inserted": 3, "updated": 0, "unchanged": 0, "skipped": 0, "duplicate": 0}]));
    // Day 2: A updated (price), B re-sent unchanged (12.345 != 12.35 style: parsed compare), C twice
    // (the later row wins; it is unchanged), D new, E rejected.
    ingest(
        &env,
        "acme",
        "products",
        D2,
        "p.csv",
        format!("{h}A,Lamp,home,11.00,1\nb, Desk ,OFFICE,$20.0,2\nC,Mug,kitchen,6.00,3\nC,Mug,kitchen,5.000,3\nD,Pen,office,1.50,9\nE,Bad,office,x,1\n").as_bytes(),
    );
    let r2 = land_and_silver(&env, D2);
    assert_eq!(r2["product_changes"], serde_json::json!([{"partner": "acme", "inserted": 1, "updated": 1, "unchanged": 2, "skipped": 1, "duplicate": 1}]), "{r2:#}");
    let current = silver_rows(&env, "products", None, &["sku"]);
    assert_eq!(current.len(), 4);
    assert_eq!(current[0]["price"], 11.0);
    assert_eq!(current[0]["first_seen_date"], D1);
    assert_eq!(current[0]["last_changed_date"], D2);
    assert_eq!(current[1]["last_changed_date"], D1, "B did not change");
    let hist = silver_rows(&env, "products_history", Some("sku = 'A'"), &["valid_from"]);
    assert_eq!(hist.len(), 2, "{hist:#?}");
    assert_eq!(hist[0]["valid_from"], D1);
    assert_eq!(hist[0]["valid_to"], D2);
    assert_eq!(hist[0]["is_current"], false);
    assert_eq!(hist[1]["valid_from"], D2);
    assert!(hist[1].get("valid_to").is_none_or(|v| v.is_null()));
    assert_eq!(hist[1]["is_current"], true);
    let all_hist = silver_rows(&env, "products_history", None, &["sku", "valid_from"]);
    assert_eq!(all_hist.len(), 5);
    // Re-running day 2 (the latest run) replays it exactly: the same diff, the same history
    // and state, no extra versions (the contract: re-running a date gives identical gold).
    let log_before = silver_rows(&env, "product_changes", Some(&format!("_run_date = '{D2}'")), &["sku"]);
    let again = medallion(&env, &["silver", "--date", D2, "--json"]).ok().json();
    assert_eq!(again["product_changes"], r2["product_changes"], "{again:#}");
    assert_eq!(silver_rows(&env, "products_history", None, &["sku", "valid_from"]), all_hist);
    assert_eq!(silver_rows(&env, "products", None, &["sku"]), current);
    assert_eq!(silver_rows(&env, "product_changes", Some(&format!("_run_date = '{D2}'")), &["sku"]), log_before);
}

fn orders_across_days(env: Env) {
    let oh = "order_id,customer_id,order_date,status\n";
    let ih = "order_id,line_number,sku,quantity,unit_price\n";
    ingest(&env, "acme", "orders", D1, "o.csv", format!("{oh}O1,C1,2026-11-19T23:30:00-01:00,pending\n").as_bytes());
    ingest(&env, "acme", "order_items", D1, "i.csv", format!("{ih}O1,1,A,1,10\nO2,1,A,1,10\n").as_bytes());
    let r1 = land_and_silver(&env, D1);
    assert_eq!(r1["business_dates"], serde_json::json!(["2026-11-20"]), "23:30-01:00 is the 20th in UTC");
    assert_eq!(r1["orphan_items"], serde_json::json!({"acme": 1}));
    // Day 2: O1 completes; O2 arrives late, dated the 18th; its item stops being an orphan.
    ingest(&env, "acme", "orders", D2, "o.csv", format!("{oh}O1,C1,2026-11-19T23:30:00-01:00,completed\nO2,C2,2026-11-18 12:00:00,returned\n").as_bytes());
    let r2 = land_and_silver(&env, D2);
    assert_eq!(r2["business_dates"], serde_json::json!(["2026-11-18", "2026-11-20"]), "{r2:#}");
    assert_eq!(r2["orphan_items"], serde_json::json!({}), "{r2:#}");
    let orders = silver_rows(&env, "orders", None, &["order_id"]);
    assert_eq!(orders[0]["status"], "completed");
    assert_eq!(orders[1]["status"], "returned");
    // Re-running day 1 now must not roll O1 back: newest (by run date) wins.
    medallion(&env, &["silver", "--date", D1, "--json"]).ok();
    assert_eq!(silver_rows(&env, "orders", Some("order_id = 'O1'"), &[])[0]["status"], "completed");
}

#[test]
fn inventory_snapshot_is_the_days_last_file() {
    let env = local();
    let h = "sku,warehouse,quantity_on_hand,reorder_level\n";
    ingest(&env, "acme", "inventory", D1, "inv_a.csv", format!("{h}A,east,5,1\nB,east,7,\n").as_bytes());
    ingest(&env, "acme", "inventory", D1, "inv_b.csv", format!("{h}A,east,4,1\nA,east,3,1\n").as_bytes());
    let r = land_and_silver(&env, D1);
    assert_eq!(feed_stats(&r, "inv_a.csv")["duplicate"], 2, "{r:#}");
    assert_eq!(feed_stats(&r, "inv_b.csv")["duplicate"], 1);
    assert_eq!(feed_stats(&r, "inv_b.csv")["valid"], 1);
    let inv = silver_rows(&env, "inventory", None, &["sku"]);
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0]["quantity_on_hand"], 3);
    assert_eq!(inv[0]["snapshot_date"], D1);
    // Another day's snapshot does not touch this one.
    ingest(&env, "acme", "inventory", D2, "inv.csv", format!("{h}C,west,1,0\n").as_bytes());
    land_and_silver(&env, D2);
    assert_eq!(silver_rows(&env, "inventory", None, &["snapshot_date"]).len(), 2);
}

#[test]
fn generated_feeds_reconcile_and_read_back_in_python_deltalake() {
    let env = local();
    medallion(&env, &["generate", "--partners", "2", "--days", "2", "--rows", "80", "--start-date", D1, "--defect-rate", "0.2", "-q"]).ok();
    let mut reasons = std::collections::BTreeSet::new();
    for d in [D1, D2] {
        let r = land_and_silver(&env, d);
        for f in r["feeds"].as_array().unwrap() {
            assert_eq!(
                f["rows_read"].as_u64().unwrap(),
                f["valid"].as_u64().unwrap() + f["rejected"].as_u64().unwrap() + f["duplicate"].as_u64().unwrap()
            );
            for k in f["reasons"].as_object().unwrap().keys() {
                reasons.insert(k.clone());
            }
        }
    }
    for expected in ["malformed_row", "invalid_price", "missing_sku", "invalid_quantity", "invalid_order_date", "invalid_status", "invalid_discount"] {
        assert!(reasons.contains(expected), "{expected} not produced: {reasons:?}");
    }
    // Another Delta implementation reads the same tables.
    let python = std::env::var("MEDALLION_VENV").map(|v| format!("{v}/bin/python")).unwrap_or_else(|_| {
        if std::env::var("MEDALLION_SKIP_SERVICE_TESTS").as_deref() == Ok("1") {
            String::new()
        } else {
            panic!("MEDALLION_VENV is not set: run the tests through scripts/test.sh (it installs the deltalake package)")
        }
    });
    if python.is_empty() {
        eprintln!("SKIPPED: python deltalake interop (MEDALLION_SKIP_SERVICE_TESTS=1)");
        return;
    }
    let lake = std::fs::canonicalize(&env.lake).unwrap();
    // Counted by the Python `deltalake` package (delta-rs's Python binding, through pyarrow).
    let script = r#"
import os, sys, json
from deltalake import DeltaTable
print(json.dumps({t: DeltaTable(sys.argv[1] + "/silver/" + t).to_pyarrow_table().num_rows for t in sys.argv[2:]}), flush=True)
# deltalake 1.6 + pyarrow 26 sometimes abort in a thread's teardown at interpreter exit
# ("terminate called without an active exception"); the counts are already out.
os._exit(0)
"#;
    let tables = ["products", "customers", "orders", "order_items", "inventory", "campaigns", "quarantine", "products_history"];
    let out = std::process::Command::new(&python).arg("-c").arg(script).arg(lake.to_str().unwrap()).args(tables).output().unwrap();
    assert!(out.status.success(), "python deltalake failed: {}", String::from_utf8_lossy(&out.stderr));
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for t in tables {
        let ours = silver_rows(&env, t, None, &[]).len() as u64;
        assert!(ours > 0, "{t} is empty");
        assert_eq!(counts[t].as_u64(), Some(ours), "{t}: python deltalake sees {} rows, medallion {ours}", counts[t]);
    }
}

/// Products of a lake as comparable rows (lineage that legitimately differs is left out).
fn state(env: &Env) -> Vec<Vec<serde_json::Value>> {
    let strip = |mut rows: Vec<serde_json::Value>| {
        for r in rows.iter_mut() {
            r.as_object_mut().unwrap().retain(|k, _| !k.starts_with("_ingested"));
        }
        rows
    };
    vec![
        strip(silver_rows(env, "products", None, &["sku"])),
        strip(silver_rows(env, "products_history", None, &["sku", "valid_from"])),
        strip(silver_rows(env, "orders", None, &["order_id"])),
        strip(silver_rows(env, "quarantine", None, &["_run_date", "_feed_id", "_row_number"])),
        strip(silver_rows(env, "feed_reconciliation", None, &["_run_date", "_feed_id"])),
    ]
}

#[test]
fn an_interrupted_run_is_undone_and_redone() {
    let feeds = |env: &Env| {
        let h = "sku,name,category,price\n";
        ingest(env, "acme", "products", D1, "p.csv", format!("{h}A,Lamp,home,10.00\nB,Desk,office,x\n").as_bytes());
        ingest(env, "acme", "products", D2, "p.csv", format!("{h}A,Lamp,home,12.00\nC,Mug,kitchen,3\n").as_bytes());
        ingest(env, "acme", "orders", D2, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-20,completed\n");
    };
    // Reference: a clean sequential run.
    let clean = local();
    feeds(&clean);
    land_and_silver(&clean, D1);
    land_and_silver(&clean, D2);

    // Crashed: day 2 wrote everything but died before marking its run completed. Its record
    // still says `running`, with the versions from before its first write.
    let env = local();
    feeds(&env);
    let r1 = land_and_silver(&env, D1);
    land_and_silver(&env, D2);
    let record_path = std::path::Path::new(&env.lake).join(format!("silver/_runs/{D2}.json"));
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    record["status"] = "running".into();
    record["versions_before"] = r1["versions_after"].clone();
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();

    let again = medallion(&env, &["silver", "--date", D2, "--json"]).ok().json();
    let recovered = again["recovered"].as_array().unwrap();
    assert!(recovered.iter().any(|r| r.as_str().unwrap().starts_with("products:")), "{again:#}");
    assert!(recovered.iter().any(|r| r.as_str().unwrap().contains("emptied")), "orders was created by the interrupted run: {again:#}");
    assert_eq!(again["product_changes"][0]["updated"], 1, "the redo sees day 1's state again: {again:#}");
    assert_eq!(state(&env), state(&clean), "the repaired lake equals a clean sequential run");
}

#[test]
fn maintain_compacts_and_checkpoints() {
    let env = local();
    for (i, d) in ["2026-11-17", "2026-11-18", D1, D2].iter().enumerate() {
        ingest(&env, "acme", "customers", d, "c.csv", format!("customer_id,email\nC{i},c{i}@example.com\n").as_bytes());
        land_and_silver(&env, d);
    }
    let r = medallion(&env, &["maintain", "--json"]).ok().json();
    let customers = r["tables"].as_array().unwrap().iter().find(|t| t["table"] == "customers").unwrap().clone();
    assert!(customers["files_compacted"].as_u64().unwrap() >= 2, "{r:#}");
    let log = std::path::Path::new(&env.lake).join("silver/customers/_delta_log");
    assert!(std::fs::read_dir(&log).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".checkpoint.parquet")));
    assert_eq!(silver_rows(&env, "customers", None, &["customer_id"]).len(), 4, "compaction keeps every row");
    let short = medallion(&env, &["maintain", "--retention-hours", "1"]);
    assert_eq!(short.code, 2, "{}", short.stderr);
    assert!(short.stderr.contains("below the minimum"), "{}", short.stderr);
}

#[test]
fn a_run_that_does_not_reconcile_fails_and_writes_nothing() {
    let env = local();
    ingest(&env, "acme", "customers", D1, "c.csv", b"customer_id,email\nC1,a@b.co\n");
    land_and_silver(&env, D1);
    let before = state(&env);
    ingest(&env, "acme", "customers", D2, "c.csv", b"customer_id,email\nC2,x@y.co\nC3,z@y.co\n");
    ingest(&env, "acme", "products", D2, "p.csv", b"sku,name,category,price\nA,Lamp,home,1\n");
    medallion(&env, &["bronze", "--date", D2, "-q"]).ok();
    // Tamper with the registry: bronze now claims one more row than the file has.
    let feeds = medallion(&env, &["feeds", "--json", "--date", D2]).ok().json();
    let id = feeds["feeds"].as_array().unwrap().iter().find(|f| f["dataset"] == "customers").unwrap()["feed_id"].as_str().unwrap().to_string();
    let path = std::path::Path::new(&env.lake).join(format!("bronze/_registry/feeds/{id}.json"));
    let mut rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    rec["rows"] = 3.into();
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    let r = medallion(&env, &["silver", "--date", D2]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("reconciliation failed") && r.stderr.contains(&id) && r.stderr.contains("read 3 != valid 2"), "{}", r.stderr);
    assert_eq!(state(&env), before, "the products written before the check were undone");
    assert!(silver_rows(&env, "products", None, &[]).is_empty());
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(std::path::Path::new(&env.lake).join(format!("silver/_runs/{D2}.json"))).unwrap()).unwrap();
    assert_eq!(record["status"], "failed");
}
