//! Operations hardening (issue 10): `sql` is read-only, `ingest` takes regular files only,
//! `status` never writes, a killed run is marked abandoned, credentials never leak, and
//! `--json` always prints one JSON object.

use crate::common::*;

const D: &str = "2026-11-19";

fn orders_in_silver(env: &Env) {
    ingest(env, "acme", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-19T10:00:00Z,completed\n");
    medallion(env, &["bronze", "--date", D, "-q"]).ok();
    medallion(env, &["silver", "--date", D, "-q"]).ok();
}

/// `medallion sql` only reads: DDL, DML, COPY and other statements exit 2 and change nothing.
#[test]
fn sql_is_read_only() {
    let env = local();
    orders_in_silver(&env);
    let outside = env.dir.path().join("outside.csv");
    let secret = env.dir.path().join("secret.txt");
    std::fs::write(&secret, "root:x:0:0\n").unwrap();
    let refused = [
        "INSERT INTO silver.orders SELECT * FROM silver.orders".to_string(),
        format!("COPY (SELECT 1 AS x) TO '{}'", outside.display()),
        format!("COPY silver.orders TO '{}' STORED AS CSV", outside.display()),
        format!("CREATE EXTERNAL TABLE leak (line VARCHAR) STORED AS CSV LOCATION '{}'", secret.display()),
        "CREATE TABLE t AS SELECT 1 AS x".to_string(),
        "CREATE VIEW v AS SELECT 1 AS x".to_string(),
        "DROP TABLE silver.orders".to_string(),
        "DELETE FROM silver.orders".to_string(),
        "UPDATE silver.orders SET status = 'pending'".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "BEGIN TRANSACTION".to_string(),
    ];
    for q in &refused {
        let r = medallion(&env, &["sql", q]);
        assert_eq!(r.code, 2, "{q}: must be refused\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("only reads"), "{q}: {}", r.stderr);
    }
    assert!(!outside.exists(), "COPY wrote outside the lake");
    let csv = medallion(&env, &["sql", "SELECT order_id, status FROM silver.orders", "--format", "csv"]).ok().stdout;
    assert_eq!(csv, "order_id,status\nO1,completed\n", "silver unchanged, queries still work");
    let explain = medallion(&env, &["sql", "EXPLAIN SELECT COUNT(*) FROM silver.orders"]);
    assert_eq!(explain.code, 0, "{}", explain.stderr);
}
