//! Gold models against hand-computed expectations on a crafted data set (CONTRACT.md §3).

use crate::common::*;

const D: &str = "2026-11-19";

/// Every gold table as JSON rows (decimals as exact strings), sorted by their grain.
fn gold_tables(env: &Env) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
    use arrow::datatypes::DataType;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let lake = lake::Location::open("lake", &env.lake, true).unwrap();
        let mut out = std::collections::BTreeMap::new();
        for (name, batches) in gold::compute(&lake).await.unwrap() {
            let mut rows = Vec::new();
            for b in batches {
                let cols: Vec<arrow::array::ArrayRef> = b
                    .columns()
                    .iter()
                    .map(|c| match c.data_type() {
                        DataType::Decimal128(_, _) | DataType::Dictionary(_, _) | DataType::Utf8View | DataType::Date32 => {
                            arrow::compute::cast(c, &DataType::Utf8).unwrap()
                        }
                        _ => c.clone(),
                    })
                    .collect();
                let fields: Vec<arrow::datatypes::Field> = b
                    .schema()
                    .fields()
                    .iter()
                    .zip(&cols)
                    .map(|(f, c)| arrow::datatypes::Field::new(f.name(), c.data_type().clone(), true))
                    .collect();
                let b = arrow::array::RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), cols).unwrap();
                let mut buf = Vec::new();
                {
                    let mut w = arrow::json::writer::ArrayWriter::new(&mut buf);
                    w.write(&b).unwrap();
                    w.finish().unwrap();
                }
                if !buf.is_empty() {
                    let v: Vec<serde_json::Value> = serde_json::from_slice(&buf).unwrap();
                    rows.extend(v);
                }
            }
            rows.sort_by_key(|r| r.to_string());
            out.insert(name.to_string(), rows);
        }
        out
    })
}

fn find<'a>(rows: &'a [serde_json::Value], keys: &[(&str, &str)]) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| keys.iter().all(|(k, v)| r[*k].as_str() == Some(*v)))
        .unwrap_or_else(|| panic!("no row {keys:?} in {rows:#?}"))
}

#[test]
fn every_gold_table_matches_hand_computed_figures() {
    let env = local();
    ingest(&env, "acme", "products", D, "p.csv", b"sku,name,category,price\nA,Lamp,home,10.00\nB,Desk,office,3.333\n");
    ingest(&env, "acme", "customers", D, "c.csv", b"customer_id,email,first_name,last_name,country\nC1,a@x.co,Ana,Smith,us\nC2,,,,\nC4,,Bo,,\n");
    ingest(&env, "acme", "campaigns", D, "k.csv", b"campaign_id,name,channel,start_date,budget\nK1,Sale,Email,2026-11-01,100\nK2,Free,social,2026-11-01,0\nK3,Open,social,2026-11-01,\n");
    ingest(
        &env,
        "acme",
        "orders",
        D,
        "o.csv",
        b"order_id,customer_id,order_date,status,currency,campaign_id\n\
          O1,C1,2026-11-19T10:00:00Z,completed,USD,K1\n\
          O2,C1,2026-11-19T11:00:00Z,returned,USD,K1\n\
          O3,C2,2026-11-19T12:00:00Z,pending,USD,\n\
          O4,C3,2026-11-19T13:00:00Z,cancelled,USD,\n\
          O5,C2,2026-11-19T14:00:00Z,completed,USD,K2\n\
          O6,C1,2026-11-20T00:30:00+02:00,completed,eur,\n",
    );
    ingest(
        &env,
        "acme",
        "order_items",
        D,
        "i.csv",
        b"order_id,line_number,sku,quantity,unit_price,discount,returned\n\
          O1,1,A,2,10.00,0.1,no\nO1,2,B,1,0.005,,yes\nO1,3,Z,3,1.00,,\nO2,1,A,1,10.00,,\n\
          O3,1,A,1,10,,\nO4,1,A,1,10,,\nO6,1,A,1,7.125,,\nX1,1,A,1,5,,\n",
    );
    ingest(&env, "acme", "inventory", D, "inv.csv", b"sku,warehouse,quantity_on_hand,reorder_level\nA,east,5,5\nZ,west,1,0\n");
    ingest(&env, "beta", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C9,2026-11-19T09:00:00Z,completed\n");
    ingest(&env, "beta", "order_items", D, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,Q,1,9.00\n");
    medallion(&env, &["bronze", "--date", D, "-q"]).ok();
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
    let g = gold_tables(&env);

    let ds = &g["daily_sales"];
    assert_eq!(ds.len(), 5, "{ds:#?}");
    let home = find(ds, &[("partner_id", "acme"), ("category", "Home"), ("currency", "USD")]);
    assert_eq!((home["orders"].as_i64(), home["items_sold"].as_i64()), (Some(2), Some(3)));
    assert_eq!((home["gross_revenue"].as_str(), home["returned_revenue"].as_str(), home["net_revenue"].as_str()), (Some("28.00"), Some("10.00"), Some("18.00")));
    let office = find(ds, &[("category", "Office")]);
    assert_eq!((office["gross_revenue"].as_str(), office["returned_revenue"].as_str(), office["net_revenue"].as_str()), (Some("0.01"), Some("0.01"), Some("0.00")), "0.005 rounds half away from zero; net from exact sums");
    let unknown = find(ds, &[("partner_id", "acme"), ("category", "Unknown")]);
    assert_eq!((unknown["items_sold"].as_i64(), unknown["gross_revenue"].as_str()), (Some(3), Some("3.00")));
    let eur = find(ds, &[("currency", "EUR")]);
    assert_eq!((eur["order_date"].as_str(), eur["gross_revenue"].as_str()), (Some("2026-11-19"), Some("7.13")), "00:30+02:00 is the 19th in UTC");
    find(ds, &[("partner_id", "beta"), ("category", "Unknown")]);

    let ck = &g["category_kpis"];
    let unknown = find(ck, &[("category", "Unknown"), ("currency", "USD")]);
    assert_eq!((unknown["daily_revenue"].as_str(), unknown["avg_order_value"].as_str()), (Some("12.00"), Some("6.00")), "acme/O1 and beta/O1 are two orders");
    let home = find(ck, &[("category", "Home"), ("currency", "USD")]);
    assert_eq!((home["daily_revenue"].as_str(), home["avg_order_value"].as_str()), (Some("18.00"), Some("14.00")));
    assert!((home["avg_return_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);

    let ok = &g["order_kpis"];
    let usd = find(ok, &[("currency", "USD")]);
    assert_eq!(usd["total_orders"].as_i64(), Some(4), "O1, O2, O5 (no items) and beta O1");
    assert_eq!(usd["total_revenue"].as_str(), Some("30.00"));
    assert_eq!(usd["total_items_sold"].as_i64(), Some(8));
    assert_eq!(usd["return_rate"].as_f64(), Some(0.5));
    assert_eq!(usd["unique_customers"].as_i64(), Some(3));

    let pr = &g["partner_revenue"];
    let acme = find(pr, &[("partner_id", "acme"), ("currency", "USD")]);
    assert_eq!((acme["orders"].as_i64(), acme["net_revenue"].as_str()), (Some(3), Some("21.00")));
    assert!((acme["revenue_share"].as_f64().unwrap() - 0.7).abs() < 1e-12);
    assert_eq!(find(pr, &[("partner_id", "acme"), ("currency", "EUR")])["revenue_share"].as_f64(), Some(1.0));

    assert_eq!(g["product_changes"].len(), 1, "beta sent no products feed");
    let pc = &g["product_changes"][0];
    assert_eq!((pc["run_date"].as_str(), pc["inserted"].as_i64(), pc["skipped"].as_i64()), (Some(D), Some(2), Some(0)));

    let dp = &g["dim_products"];
    assert_eq!(find(dp, &[("sku", "B")])["price"].as_str(), Some("3.33"));
    assert_eq!(find(dp, &[("sku", "A")])["first_seen_date"].as_str(), Some(D));

    let co = &g["customer_orders"];
    assert_eq!(co.len(), 5, "C1, C2, C3 (order only), C4 (feed only), beta C9: {co:#?}");
    let c1 = find(co, &[("partner_id", "acme"), ("customer_id", "C1")]);
    assert_eq!((c1["full_name"].as_str(), c1["country"].as_str(), c1["orders"].as_i64()), (Some("Ana Smith"), Some("US"), Some(3)));
    assert_eq!(c1["lifetime_net_revenue"].as_str(), Some("28.13"), "21.00 + 0 + 7.125");
    let c2 = find(co, &[("customer_id", "C2")]);
    assert!(c2["full_name"].is_null() || c2.get("full_name").is_none());
    assert_eq!((c2["orders"].as_i64(), c2["lifetime_net_revenue"].as_str()), (Some(1), Some("0.00")));
    let c3 = find(co, &[("customer_id", "C3")]);
    assert_eq!((c3["orders"].as_i64(), c3["lifetime_net_revenue"].as_str()), (Some(0), Some("0.00")));
    assert_eq!(find(co, &[("customer_id", "C4")])["full_name"].as_str(), Some("Bo"));

    let inv = &g["inventory_status"];
    let a = find(inv, &[("sku", "A")]);
    assert_eq!((a["product_name"].as_str(), a["needs_reorder"].as_bool()), (Some("Lamp"), Some(true)));
    let z = find(inv, &[("sku", "Z")]);
    assert!(z.get("product_name").is_none_or(|v| v.is_null()));
    assert_eq!(z["needs_reorder"].as_bool(), Some(false));

    let cp = &g["campaign_performance"];
    assert_eq!(cp.len(), 3);
    let k1 = find(cp, &[("campaign_id", "K1")]);
    assert_eq!((k1["orders"].as_i64(), k1["net_revenue"].as_str(), k1["budget"].as_str()), (Some(2), Some("21.00"), Some("100.00")));
    assert!((k1["roas"].as_f64().unwrap() - 0.21).abs() < 1e-12);
    let k2 = find(cp, &[("campaign_id", "K2")]);
    assert!(k2.get("roas").is_none_or(|v| v.is_null()), "budget 0: {k2}");
    assert_eq!(k2["orders"].as_i64(), Some(1));
    let k3 = find(cp, &[("campaign_id", "K3")]);
    assert!(k3.get("roas").is_none_or(|v| v.is_null()));
    assert_eq!(k3["net_revenue"].as_str(), Some("0.00"));

    // The same figures in both warehouses: the embedded SQLite default and PostgreSQL.
    let expected = lake_gold(&env.lake);
    medallion(&env, &["gold", "--date", D, "-q"]).ok();
    let sqlite = format!("sqlite://{}/warehouse.db", env.lake);
    assert_eq!(warehouse_gold(&sqlite), expected);
    if let Some(pg) = postgres("hand") {
        medallion(&env, &["gold", "--date", D, "-q", "--warehouse", &pg.url]).ok();
        assert_eq!(warehouse_gold(&pg.url), expected);
        medallion(&env, &["gold", "--date", D, "-q", "--warehouse", &pg.url, "--copy-format", "text"]).ok();
        assert_eq!(warehouse_gold(&pg.url), expected, "text COPY loads the same values as binary COPY");
    }
    assert!(expected["order_kpis"].iter().any(|r| r[1] == "USD" && r[3] == "30.00"), "{:?}", expected["order_kpis"]);
}

both!(sql_over_bronze_silver_and_gold, sql_over_the_lake);

fn sql_over_the_lake(env: Env) {
    ingest(&env, "acme", "orders", D, "o.csv", b"order_id,customer_id,order_date,status,note\nO1,C1,2026-11-19T10:00:00Z,completed,hi\nO2,C1,2026-11-19,shipped,x\n");
    ingest(&env, "acme", "order_items", D, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,A,2,1.25\n");
    medallion(&env, &["bronze", "--date", D, "-q"]).ok();
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
    let csv = |q: &str| medallion(&env, &["sql", q, "--format", "csv"]).ok().stdout;
    assert_eq!(csv("SELECT partner, ingest_date, order_id, note FROM bronze.orders ORDER BY order_id"), "partner,ingest_date,order_id,note\nacme,2026-11-19,O1,hi\nacme,2026-11-19,O2,x\n");
    assert_eq!(csv("SELECT order_id, status FROM silver.orders"), "order_id,status\nO1,completed\n");
    assert_eq!(csv("SELECT reason FROM silver.quarantine"), "reason\ninvalid_status\n");
    assert_eq!(csv("SELECT partner_id, gross_revenue FROM gold.daily_sales"), "partner_id,gross_revenue\nacme,2.50\n");
    let json = medallion(&env, &["sql", "SELECT total_orders FROM gold.order_kpis", "--format", "json"]).ok().json();
    assert_eq!(json, serde_json::json!([{"total_orders": 1}]));
    let table = medallion(&env, &["sql", "SELECT COUNT(*) AS n FROM orders"]).ok().stdout;
    assert!(table.contains("| n |") && table.contains("| 1 |"), "{table}");
    let bad = medallion(&env, &["sql", "SELECT * FROM nowhere"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("nowhere"), "{}", bad.stderr);
}

/// Runs bronze, silver and gold for a date into the given warehouses; returns gold's JSON
/// report of the first warehouse.
fn run_day(env: &Env, date: &str, warehouses: &[&str]) -> serde_json::Value {
    medallion(env, &["bronze", "--date", date, "-q"]).ok();
    medallion(env, &["silver", "--date", date, "-q"]).ok();
    let mut first = None;
    for w in warehouses {
        let r = medallion(env, &["gold", "--date", date, "--json", "--warehouse", w]).ok().json();
        first.get_or_insert(r);
    }
    first.unwrap()
}

fn lake_gold_files(env: &Env) -> Vec<(String, Vec<u8>)> {
    list_lake(env, "gold").into_iter().map(|p| {
        let bytes = read_lake(env, &p).unwrap();
        (p, bytes)
    }).collect()
}

both!(incremental_publishing_equals_full_recomputation, incremental_equals_full);

/// Day after day, the published gold (only the touched dates are replaced) equals a full
/// recomputation from silver, in SQLite and PostgreSQL alike; re-running a date changes
/// nothing, byte for byte in the lake.
fn incremental_equals_full(env: Env) {
    let Some(pg) = postgres("incr") else { return };
    let sqlite = format!("sqlite://{}/wh.db", env.dir.path().display());
    medallion(&env, &["generate", "--partners", "2", "--days", "3", "--rows", "40", "--start-date", "2026-11-18", "--out", &env.landing, "-q"]).ok();
    let mut republished_older = false;
    for date in ["2026-11-18", "2026-11-19", "2026-11-20"] {
        let report = run_day(&env, date, &[&sqlite, &pg.url]);
        assert!(report["checks"].as_array().unwrap().iter().all(|c| c["failures"].as_array().unwrap().is_empty()), "{report:#}");
        let dates: Vec<&str> = report["order_dates"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
        republished_older |= dates.iter().any(|d| *d < date && *d != "all");
        let expected = lake_gold(&env.lake);
        assert!(!expected["daily_sales"].is_empty());
        assert_eq!(warehouse_gold(&sqlite), expected, "SQLite after {date}");
        assert_eq!(warehouse_gold(&pg.url), expected, "PostgreSQL after {date}");
    }
    assert!(republished_older, "the generator's late orders and status changes republish older dates");

    // Idempotence: re-running the last date leaves every table and every lake file identical.
    let files = lake_gold_files(&env);
    let (before_sqlite, before_pg) = (warehouse_gold(&sqlite), warehouse_gold(&pg.url));
    for w in [&sqlite, &pg.url] {
        medallion(&env, &["gold", "--date", "2026-11-20", "-q", "--warehouse", w]).ok();
    }
    assert_eq!(warehouse_gold(&sqlite), before_sqlite);
    assert_eq!(warehouse_gold(&pg.url), before_pg);
    assert_eq!(lake_gold_files(&env), files, "gold Parquet is byte-identical after a re-run");
    // And a full rebuild gives the same again.
    medallion(&env, &["gold", "--date", "2026-11-20", "--full", "-q", "--warehouse", &pg.url]).ok();
    assert_eq!(warehouse_gold(&pg.url), before_pg);
    assert_eq!(lake_gold_files(&env), files);
}

#[test]
fn late_changes_republish_older_dates() {
    let env = local();
    let d1 = "2026-11-18";
    let d2 = "2026-11-19";
    ingest(&env, "acme", "products", d1, "p.csv", b"sku,name,category,price\nA,Lamp,home,10.00\n");
    ingest(&env, "acme", "orders", d1, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-18T10:00:00Z,pending\nO2,C1,2026-11-18T11:00:00Z,completed\n");
    ingest(&env, "acme", "order_items", d1, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,A,1,10\nO2,1,A,2,10\n");
    let r1 = run_day(&env, d1, &["sqlite://wh.db"]);
    assert_eq!(r1["full"], true, "a warehouse without any publish gets everything");
    // Day 2: O1 (of day 1) completes, the lamp moves to Garden, and a day-2 order arrives.
    ingest(&env, "acme", "products", d2, "p.csv", b"sku,name,category,price\nA,Lamp,garden,10.00\n");
    ingest(&env, "acme", "orders", d2, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-18T10:00:00Z,completed\nO3,C2,2026-11-19T09:00:00Z,completed\n");
    ingest(&env, "acme", "order_items", d2, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO3,1,A,1,10\n");
    let r2 = run_day(&env, d2, &["sqlite://wh.db"]);
    assert_eq!(r2["full"], false);
    assert_eq!(r2["order_dates"], serde_json::json!([d1, d2]), "{r2:#}");
    assert_eq!(r2["silver_runs"], serde_json::json!([d2]));
    let g = warehouse_gold(&format!("sqlite://{}/wh.db", env.dir.path().display()));
    assert_eq!(
        g["daily_sales"],
        vec![
            vec![d1.to_string(), "acme".into(), "Garden".into(), "USD".into(), "2".into(), "3".into(), "30.00".into(), "0.00".into(), "30.00".into()],
            vec![d2.to_string(), "acme".into(), "Garden".into(), "USD".into(), "1".into(), "1".into(), "10.00".into(), "0.00".into(), "10.00".into()],
        ]
    );
    assert_eq!(g, lake_gold(&env.lake));
    // Nothing new: a date silver never ran, with the warehouse up to date, is "nothing to do".
    let r = medallion(&env, &["gold", "--date", "2026-11-25", "--warehouse", "sqlite://wh.db"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
}

/// A publish that fails midway leaves the previous state fully visible, and a re-run repairs.
#[test]
fn publish_is_atomic_when_the_connection_drops() {
    let env = local();
    let Some(pg) = postgres("atomic") else { return };
    medallion(&env, &["generate", "--partners", "2", "--days", "2", "--rows", "30", "--start-date", "2026-11-18", "--out", &env.landing, "-q"]).ok();
    run_day(&env, "2026-11-18", &[&pg.url]);
    let before = warehouse_gold(&pg.url);
    medallion(&env, &["bronze", "--date", "2026-11-19", "-q"]).ok();
    medallion(&env, &["silver", "--date", "2026-11-19", "-q"]).ok();

    // Pause after the third table is loaded, cut the connection from the server side.
    // No retries: this is about what a dropped connection leaves behind, not about recovering.
    let child = command(&env, &["gold", "--date", "2026-11-19", "--warehouse", &pg.url, "--retries", "0"])
        .env("MEDALLION_FAULT", "gold.load#2:sleep=20000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut killed = false;
    for _ in 0..600 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Paused: idle in its transaction right after loading the third table (order_kpis),
        // not in a moment between two earlier statements.
        let paused = "application_name = 'medallion' AND state = 'idle in transaction' AND query LIKE 'COPY gold.order_kpis %' AND datname = current_database()";
        let rows = pg_query(&pg.url, &format!("SELECT COUNT(*) FROM pg_stat_activity WHERE {paused}"));
        if rows[0][0].as_deref() == Some("1") {
            // Another connection (ours) can still read: it sees the old state only.
            assert_eq!(warehouse_gold(&pg.url), before, "a reader during the publish sees the old state");
            let cut = pg_query(&pg.url, &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {paused}"));
            assert_eq!(cut, vec![vec![Some("true".to_string())]], "the paused publish's connection is cut");
            killed = true;
            break;
        }
    }
    assert!(killed, "the publish never reached the pause");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a dropped connection is 'unavailable': {stderr}");
    assert!(stderr.contains("127.0.0.1:5432"), "the error names the warehouse: {stderr}");
    assert_eq!(warehouse_gold(&pg.url), before, "nothing of the failed publish is visible");
    medallion(&env, &["gold", "--date", "2026-11-19", "-q", "--warehouse", &pg.url]).ok();
    assert_eq!(warehouse_gold(&pg.url), lake_gold(&env.lake), "the re-run publishes everything");
}

#[test]
fn publish_is_atomic_when_the_process_dies() {
    let env = local();
    medallion(&env, &["generate", "--partners", "2", "--days", "2", "--rows", "30", "--start-date", "2026-11-18", "--out", &env.landing, "-q"]).ok();
    let sqlite = format!("sqlite://{}/lake/warehouse.db", env.dir.path().display());
    run_day(&env, "2026-11-18", &[&sqlite]);
    let before = warehouse_gold(&sqlite);
    medallion(&env, &["bronze", "--date", "2026-11-19", "-q"]).ok();
    medallion(&env, &["silver", "--date", "2026-11-19", "-q"]).ok();
    let out = command(&env, &["gold", "--date", "2026-11-19"])
        .env("MEDALLION_FAULT", "gold.load#4:abort")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(warehouse_gold(&sqlite), before, "the killed publish left nothing behind");
    medallion(&env, &["gold", "--date", "2026-11-19", "-q"]).ok();
    assert_eq!(warehouse_gold(&sqlite), lake_gold(&env.lake));
}

#[test]
fn failed_reconciliation_publishes_nothing() {
    let env = local();
    medallion(&env, &["generate", "--partners", "1", "--days", "1", "--rows", "20", "--out", &env.landing, "-q"]).ok();
    medallion(&env, &["bronze", "--date", "2026-11-18", "-q"]).ok();
    medallion(&env, &["silver", "--date", "2026-11-18", "-q"]).ok();
    let out = command(&env, &["gold", "--date", "2026-11-18"])
        .env("MEDALLION_FAULT", "gold.check.tables_agree:error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("reconciliation failed, nothing was published") && stderr.contains("tables_agree"), "{stderr}");
    assert!(list_lake(&env, "gold").is_empty(), "no gold file was written");
    let g = warehouse_gold(&format!("sqlite://{}/warehouse.db", env.lake));
    assert!(g.values().all(|rows| rows.is_empty()), "no gold row was published");
}

/// A day whose exact net revenue is positive but rounds to 0.00 publishes: revenue shares come
/// from exact sums (acme's 0.0001 is the whole day's net, share 1), and the check that shares
/// sum to 1 must not read the rounded net as "no revenue" (found by the DuckDB peer).
#[test]
fn revenue_under_half_a_cent_has_a_share_of_one() {
    let env = local();
    ingest(&env, "acme", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-19T10:00:00Z,completed\n");
    ingest(&env, "acme", "order_items", D, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,X-1,1,0.0001\n");
    ingest(&env, "beta", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C9,2026-11-19T09:00:00Z,returned\n");
    ingest(&env, "beta", "order_items", D, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,Q,1,9.00\n");
    medallion(&env, &["run", "--date", D, "-q"]).ok();
    let g = warehouse_gold(&format!("sqlite://{}/warehouse.db", env.lake));
    let pr = &g["partner_revenue"];
    assert_eq!(pr.len(), 2, "{pr:?}");
    // Columns: order_date, partner_id, currency, orders, net_revenue, revenue_share.
    let row = |p: &str| pr.iter().find(|r| r[1] == p).unwrap_or_else(|| panic!("no {p} in {pr:?}")).clone();
    let (acme, beta) = (row("acme"), row("beta"));
    assert_eq!((acme[4].as_str(), acme[5].parse::<f64>().ok()), ("0.00", Some(1.0)), "{acme:?}");
    assert_eq!((beta[4].as_str(), beta[5].parse::<f64>().ok()), ("0.00", Some(0.0)), "{beta:?}");
}

/// A valid amount beyond what SQLite's double holds to the cent (the contract allows 14 integer
/// digits) is refused by the SQLite warehouse before anything is written, naming table, column
/// and row, instead of losing cents; PostgreSQL's NUMERIC(18,2) stores it to the cent.
#[test]
fn money_sqlite_cannot_hold_exactly_is_refused_and_postgresql_keeps_it() {
    let env = local();
    let Some(pg) = postgres("bigmoney") else { return };
    ingest(&env, "acme", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-19T10:00:00Z,completed\n");
    ingest(&env, "acme", "order_items", D, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,X-1,1,99999999999999.99\n");
    medallion(&env, &["bronze", "--date", D, "-q"]).ok();
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
    let sqlite = format!("sqlite://{}/warehouse.db", env.lake);
    let r = medallion(&env, &["gold", "--date", D, "--warehouse", &sqlite]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("gold.daily_sales.gross_revenue, row 0: 99999999999999.99 is beyond ±35184372088832.00")
            && r.stderr.contains("nothing was published"),
        "{}",
        r.stderr
    );
    assert!(warehouse_gold(&sqlite).values().all(|rows| rows.is_empty()), "nothing was published to SQLite");
    medallion(&env, &["gold", "--date", D, "--warehouse", &pg.url, "-q"]).ok();
    let g = warehouse_gold(&pg.url);
    assert!(g["daily_sales"].iter().any(|r| r.contains(&"99999999999999.99".to_string())), "{:?}", g["daily_sales"]);
}

/// The checks catch gold that disagrees with silver (here a tampered computed table).
#[test]
fn checks_detect_tampered_gold() {
    let env = local();
    medallion(&env, &["generate", "--partners", "2", "--days", "1", "--rows", "20", "--out", &env.landing, "-q"]).ok();
    medallion(&env, &["bronze", "--date", "2026-11-18", "-q"]).ok();
    medallion(&env, &["silver", "--date", "2026-11-18", "-q"]).ok();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let lake = lake::Location::open("lake", &env.lake, true).unwrap();
        let ctx = gold::session(&lake).await.unwrap();
        let mut outputs = Vec::new();
        for m in gold::models() {
            outputs.push(gold::run_model(&ctx, &m, &gold::Scope::ALL).await.unwrap());
        }
        let clean = gold::checks::run(&ctx, &outputs, &gold::Scope::ALL).await.unwrap();
        assert!(clean.iter().all(|c| c.passed()), "{clean:#?}");
        // One more item sold in the first daily_sales row.
        let ds = outputs.iter_mut().find(|o| o.table.name == "daily_sales").unwrap();
        let b = &ds.batches[0];
        let idx = b.schema().index_of("items_sold").unwrap();
        let items = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b.column(idx));
        let tampered: arrow::array::Int64Array = items.iter().enumerate().map(|(i, v)| v.map(|v| if i == 0 { v + 1 } else { v })).collect();
        let mut cols = b.columns().to_vec();
        cols[idx] = std::sync::Arc::new(tampered);
        ds.batches[0] = arrow::array::RecordBatch::try_new(b.schema(), cols).unwrap();
        let checks = gold::checks::run(&ctx, &outputs, &gold::Scope::ALL).await.unwrap();
        let failed: Vec<&str> = checks.iter().filter(|c| !c.passed()).map(|c| c.name).collect();
        assert_eq!(failed, vec!["tables_agree"], "{checks:#?}");
    });
}

#[test]
fn readonly_role_reads_gold_only() {
    let env = local();
    let Some(pg) = postgres("role") else { return };
    medallion(&env, &["generate", "--partners", "1", "--days", "1", "--rows", "10", "--out", &env.landing, "-q"]).ok();
    run_day(&env, "2026-11-18", &[&pg.url]);
    let role = format!("bi_{}", std::process::id());
    let r = command(&env, &["warehouse", "grant-readonly", "--role", &role, "--password-env", "BI_PW", "--warehouse", &pg.url])
        .env("BI_PW", "s3cret'pw")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (prefix, db) = pg.url.rsplit_once('/').unwrap();
    let host = prefix.rsplit_once('@').unwrap().1;
    let as_bi = format!("postgres://{role}:s3cret%27pw@{host}/{db}");
    let n = pg_query(&as_bi, "SELECT COUNT(*) FROM gold.order_kpis");
    assert_ne!(n[0][0].as_deref(), Some("0"));
    for forbidden in ["DELETE FROM gold.order_kpis", "CREATE TABLE gold.x (a int)", "SELECT * FROM medallion.gold_publishes"] {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt.block_on(async {
            let mut wh = gold::Warehouse::connect(&as_bi).await.unwrap();
            wh.execute(forbidden).await.expect_err(forbidden).to_string()
        });
        assert!(err.contains("permission denied"), "{forbidden}: {err}");
    }
    pg_exec(&pg.url, &[&format!("DROP OWNED BY {role}"), &format!("DROP ROLE {role}")]);
    // SQLite has no roles: the command says what to do instead.
    let r = medallion(&env, &["warehouse", "grant-readonly"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("read-only"), "{}", r.stderr);
}

/// Day 1 of the keyed-publish tests: two products, a customer, two campaigns, two orders (one
/// of a customer known only from it), their items and inventory.
fn keyed_day1(env: &Env, d1: &str) {
    ingest(env, "acme", "products", d1, "p.csv", b"sku,name,category,price\nA,Lamp,home,10.00\nB,Chair,office,20.00\n");
    ingest(env, "acme", "customers", d1, "c.csv", b"customer_id,first_name,last_name\nC1,Ana,Smith\n");
    ingest(env, "acme", "campaigns", d1, "k.csv", b"campaign_id,name,channel,start_date,budget\nK1,Spring,email,2026-11-01,100\nK2,Fall,social,2026-11-01,50\n");
    ingest(env, "acme", "orders", d1, "o.csv", b"order_id,customer_id,order_date,status,campaign_id\nO1,C1,2026-11-18T10:00:00Z,completed,K1\nO2,C9,2026-11-18T11:00:00Z,completed,K1\n");
    ingest(env, "acme", "order_items", d1, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,A,1,10\nO2,1,A,2,10\nO2,2,B,1,20\n");
    ingest(env, "acme", "inventory", d1, "v.csv", b"sku,warehouse,quantity_on_hand,reorder_level\nA,east,5,2\nB,east,1,2\n");
}

/// Day 2: the lamp moves to Garden (its day-1 Home group vanishes), the chair is renamed, O2
/// moves to customer C2 and campaign K2 (C9, known only from O2, vanishes), a late item joins
/// O1 and a new order arrives.
fn keyed_day2(env: &Env, d2: &str) {
    ingest(env, "acme", "products", d2, "p.csv", b"sku,name,category,price\nA,Lamp,garden,10.00\nB,Office Chair,office,20.00\n");
    ingest(env, "acme", "orders", d2, "o.csv", b"order_id,customer_id,order_date,status,campaign_id\nO2,C2,2026-11-18T11:00:00Z,completed,K2\nO3,C1,2026-11-19T09:00:00Z,completed,\n");
    ingest(env, "acme", "order_items", d2, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,2,B,1,20\nO3,1,B,3,20\n");
    ingest(env, "acme", "inventory", d2, "v.csv", b"sku,warehouse,quantity_on_hand,reorder_level\nA,east,4,2\n");
}

fn rows_with<'a>(g: &'a std::collections::BTreeMap<&'static str, Vec<Vec<String>>>, table: &str, value: &str) -> Vec<&'a Vec<String>> {
    g[table].iter().filter(|r| r.iter().any(|v| v == value)).collect()
}

/// Keyed publishes day after day (a recategorisation that empties a group, a rename, an order
/// moving to another customer and campaign, a late item, a products-only day, a re-run of an
/// earlier date, a silver re-run that rolls a date back) end exactly where a full
/// recomputation does, in SQLite and PostgreSQL, and the lake's gold files are byte-identical
/// to a full rebuild's.
#[test]
fn keyed_publishes_equal_a_full_rebuild() {
    let env = local();
    let Some(pg) = postgres("keyed") else { return };
    let sqlite = format!("sqlite://{}/wh.db", env.dir.path().display());
    let whs = [sqlite.as_str(), pg.url.as_str()];
    let (d1, d2, d3) = ("2026-11-18", "2026-11-19", "2026-11-20");
    let check = |date: &str, r: &serde_json::Value, keyed: bool| {
        assert_eq!(r["keyed"], keyed, "{date}: {r:#}");
        let expected = lake_gold(&env.lake);
        assert_eq!(warehouse_gold(&sqlite), expected, "SQLite after {date}");
        assert_eq!(warehouse_gold(&pg.url), expected, "PostgreSQL after {date}");
        expected
    };
    keyed_day1(&env, d1);
    let r = run_day(&env, d1, &whs);
    let g = check(d1, &r, false);
    assert_eq!(rows_with(&g, "daily_sales", "Home").len(), 1);
    assert_eq!(rows_with(&g, "customer_orders", "C9").len(), 1);

    keyed_day2(&env, d2);
    let r = run_day(&env, d2, &whs);
    let g = check(d2, &r, true);
    assert!(rows_with(&g, "daily_sales", "Home").is_empty(), "the vanished group is deleted");
    assert!(rows_with(&g, "customer_orders", "C9").is_empty(), "the vanished customer is deleted");
    assert_eq!(rows_with(&g, "customer_orders", "C2").len(), 1);
    let keys = |r: &serde_json::Value, t: &str| r["tables"].as_array().unwrap().iter().find(|x| x["table"] == t).unwrap()["keys"].as_u64().unwrap();
    assert!(keys(&r, "customer_orders") < 4 && keys(&r, "dim_products") == 2, "{r:#}");

    // A products-only day: the chair moves to Home. Its items' groups are replaced on d1 and
    // d2, not those dates whole.
    ingest(&env, "acme", "products", d3, "p.csv", b"sku,name,category,price\nB,Office Chair,home,20.00\n");
    let r = run_day(&env, d3, &whs);
    check(d3, &r, true);
    assert_eq!(r["order_dates"], serde_json::json!([]), "{r:#}");
    assert!(keys(&r, "daily_sales") >= 2 && keys(&r, "category_kpis") >= 2, "{r:#}");

    // Re-running an earlier date republishes its keys and changes nothing.
    for w in whs {
        let r = medallion(&env, &["gold", "--date", d1, "--json", "--warehouse", w]).ok().json();
        assert_eq!(r["keyed"], true, "{r:#}");
    }
    check(d1, &serde_json::json!({"keyed": true}), true);

    // A late feed for d3 and silver re-run for d3: silver undoes d3 first (a rollback the
    // warehouse never saw), so the publish falls back to whole dates and tables.
    ingest(&env, "acme", "orders", d3, "o.csv", b"order_id,customer_id,order_date,status\nO4,C3,2026-11-20T08:00:00Z,completed\n");
    ingest(&env, "acme", "order_items", d3, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO4,1,A,1,10\n");
    let r = run_day(&env, d3, &whs);
    check(d3, &r, false);

    // The lake's files are those of a full rebuild, byte for byte.
    let files = lake_gold_files(&env);
    medallion(&env, &["gold", "--date", d3, "--full", "-q", "--warehouse", &sqlite]).ok();
    assert_eq!(lake_gold_files(&env), files);
}

/// A keyed publish killed while it writes the lake, or while it loads the warehouse, leaves
/// both warehouses as before; a re-run repairs everything, lake files included.
#[test]
fn keyed_publish_killed_midway_is_repaired_by_a_rerun() {
    let env = local();
    let Some(pg) = postgres("keyedcrash") else { return };
    let sqlite = format!("sqlite://{}/wh.db", env.dir.path().display());
    let (d1, d2) = ("2026-11-18", "2026-11-19");
    keyed_day1(&env, d1);
    run_day(&env, d1, &[&sqlite, &pg.url]);
    let before = (warehouse_gold(&sqlite), warehouse_gold(&pg.url));
    keyed_day2(&env, d2);
    medallion(&env, &["bronze", "--date", d2, "-q"]).ok();
    medallion(&env, &["silver", "--date", d2, "-q"]).ok();
    for w in [&sqlite, &pg.url] {
        // Killed after some lake files were rewritten, then while loading customer_orders.
        for fault in ["gold.lake_write#3:abort", "gold.load#6:abort"] {
            let out = command(&env, &["gold", "--date", d2, "--warehouse", w]).env("MEDALLION_FAULT", fault).output().unwrap();
            assert!(!out.status.success(), "{fault}");
            assert_eq!((warehouse_gold(&sqlite), warehouse_gold(&pg.url)), before, "{fault} on {w} left nothing behind");
        }
    }
    for w in [&sqlite, &pg.url] {
        let r = medallion(&env, &["gold", "--date", d2, "--json", "--warehouse", w]).ok().json();
        assert_eq!(r["keyed"], true, "{r:#}");
    }
    let expected = lake_gold(&env.lake);
    assert_eq!(warehouse_gold(&sqlite), expected);
    assert_eq!(warehouse_gold(&pg.url), expected);
    let files = lake_gold_files(&env);
    medallion(&env, &["gold", "--date", d2, "--full", "-q", "--warehouse", &sqlite]).ok();
    assert_eq!(lake_gold_files(&env), files, "the repaired lake files are a full rebuild's");
}
