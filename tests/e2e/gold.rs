//! Gold models against hand-computed expectations on a crafted data set (CONTRACT.md §3).

use crate::common::*;

const D: &str = "2026-11-19";

/// Every gold table as JSON rows (decimals as exact strings), sorted by their grain.
fn gold_tables(env: &Env) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
    use arrow::datatypes::DataType;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let lake = schemas::Location::open("lake", &env.lake, true).unwrap();
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
