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

/// `status` reads only: on a warehouse path that does not exist it creates nothing and says
/// there are no runs; an empty SQLite file gets no ledger tables.
#[test]
fn status_never_writes() {
    let env = local();
    std::fs::create_dir_all(&env.lake).unwrap();
    let db = env.dir.path().join("fresh").join("wh.db");
    let url = format!("sqlite://{}", db.display());
    let text = medallion(&env, &["status", "--warehouse", &url]).ok();
    assert!(text.stdout.contains("no runs recorded yet"), "{}", text.stdout);
    let json = medallion(&env, &["status", "--json", "--warehouse", &url]).ok().json();
    assert_eq!(json, serde_json::json!({"runs": [], "feeds": [], "product_diffs": []}));
    assert!(!db.exists() && !db.parent().unwrap().exists(), "status created the warehouse");
    // An existing, empty warehouse file stays empty (no migrations).
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, b"").unwrap();
    medallion(&env, &["status", "--json", "--warehouse", &url]).ok();
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "status wrote to the warehouse");
    // The default warehouse (in the lake) is not created either.
    medallion(&env, &["status"]).ok();
    assert!(!std::path::Path::new(&env.lake).join("warehouse.db").exists());
}

/// A run killed mid-stage (abort, like kill -9) is shown as abandoned, never as running, and
/// the next run, which takes over its stale lock, records it as abandoned with the dead
/// process in its error; its running job too.
#[test]
fn killed_run_is_abandoned() {
    let env = local();
    let wh = format!("sqlite://{}/wh.db", env.dir.path().display());
    ingest(&env, "acme", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-19T10:00:00Z,completed\n");
    let killed = command(&env, &["run", "--date", D, "--warehouse", &wh, "-q"]).env("MEDALLION_FAULT", "stage.silver#1:abort").output().unwrap();
    assert!(!killed.status.success());
    let st = medallion(&env, &["status", "--json", "--warehouse", &wh]).ok().json();
    let first = st["runs"][0].clone();
    assert_eq!(first["status"], "abandoned", "a dead run is never shown as running: {st:#}");
    let first_id = first["run_id"].as_str().unwrap().to_string();
    medallion(&env, &["run", "--date", D, "--warehouse", &wh, "-q"]).ok();
    let rows = pg_query(&wh, &format!("SELECT status, error FROM medallion_runs WHERE run_id = '{first_id}'"));
    assert_eq!(rows[0][0].as_deref(), Some("abandoned"), "{rows:?}");
    let error = rows[0][1].clone().unwrap_or_default();
    assert!(error.contains("pid") && error.contains("died"), "{error}");
    let jobs = pg_query(&wh, &format!("SELECT stage, status FROM medallion_jobs WHERE run_id = '{first_id}' ORDER BY stage"));
    let jobs: Vec<(String, String)> = jobs.into_iter().map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap())).collect();
    assert_eq!(
        jobs,
        [("bronze".to_string(), "completed".to_string()), ("gold".into(), "skipped".into()), ("silver".into(), "abandoned".into())]
    );
    let st = medallion(&env, &["status", "--json", "--warehouse", &wh]).ok().json();
    let statuses: Vec<&str> = st["runs"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["completed", "abandoned"]);
    assert!(st["runs"][0]["pid"].is_u64() && st["runs"][0]["jobs"][0]["attempts"].is_u64(), "numbers are JSON numbers: {st:#}");
}

/// No credential ever reaches stdout or stderr: a `password=` query parameter, malformed URLs,
/// with and without --json, and the role password of `grant-readonly` even at debug level.
#[test]
fn secrets_never_leak() {
    let env = local();
    std::fs::create_dir_all(&env.lake).unwrap();
    let cases = [
        ("postgres://bob@127.0.0.1:9/db?password=Sekr1tQuery&connect_timeout=2", "Sekr1tQuery"),
        ("postgres://bob:Sekr1tPort@127.0.0.1:notaport/db", "Sekr1tPort"),
        ("postgres://bob:Sekr1tHost@/db?host=/nonexistent", "Sekr1tHost"),
        ("postgres://bob:Sekr1tUser@127.0.0.1:9/db", "Sekr1tUser"),
    ];
    for (url, secret) in cases {
        for cmd in [vec!["warehouse", "migrate"], vec!["status"], vec!["gold", "--date", D, "--retries", "0"]] {
            for json in [false, true] {
                let mut args: Vec<&str> = cmd.clone();
                args.extend(["--warehouse", url]);
                if json {
                    args.push("--json");
                }
                let r = medallion(&env, &args);
                assert_ne!(r.code, 0, "{args:?}");
                assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "{args:?} leaked {secret}:\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
                assert!(r.stderr.contains("***"), "{args:?}: the URL is shown redacted: {}", r.stderr);
            }
        }
    }
    let Some(pg) = postgres("secrets") else { return };
    for json in [false, true] {
        let mut c = command(&env, &["warehouse", "grant-readonly", "--role", "bi_reader", "--password-env", "BI_PW", "--warehouse", &pg.url]);
        c.env("BI_PW", "Sekr1tRole'x").env("MEDALLION_LOG", "debug");
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(!stdout.contains("Sekr1tRole") && !stderr.contains("Sekr1tRole"), "the role password leaked:\n{stdout}\n{stderr}");
    }
    let can_login = pg_query(&pg.url, "SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'bi_reader'");
    assert_eq!(can_login, vec![vec![Some("true".to_string())]]);
}

/// With --json every command prints exactly one JSON object on stdout, when it succeeds and
/// when it fails (usage errors from the command line included); --help stays text.
#[test]
fn every_command_prints_one_json_object() {
    let env = local();
    let wh = format!("sqlite://{}/wh.db", env.dir.path().display());
    let input = file(&env, "o.csv", b"order_id,customer_id,order_date,status\nO1,C1,2026-11-19T10:00:00Z,completed\n");
    let input = input.to_str().unwrap();
    let demo = env.dir.path().join("demo");
    let demo = demo.to_str().unwrap();
    let landing_gen = env.dir.path().join("gen");
    let landing_gen = landing_gen.to_str().unwrap();
    let one = |args: &[&str], ok: bool| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--json", "--warehouse", &wh]);
        let r = medallion(&env, &all);
        assert_eq!(r.code == 0 || (ok && r.code == 4), ok, "{all:?}: exit {}\nstdout:\n{}\nstderr:\n{}", r.code, r.stdout, r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{all:?}: stdout is not one JSON value ({e}):\n{}\nstderr:\n{}", r.stdout, r.stderr));
        assert!(v.is_object(), "{all:?}: not an object: {v:#}");
        if !ok {
            assert_eq!(v["exit_code"].as_i64(), Some(r.code as i64), "{all:?}: {v:#}");
            assert!(v["error"].is_string() && v["exit_class"].is_string() && v["transient"].is_boolean(), "{all:?}: {v:#}");
        }
        v
    };
    // Succeeding.
    one(&["ingest", "--partner", "acme", "--dataset", "orders", "--date", D, input], true);
    one(&["generate", "--partners", "1", "--days", "1", "--rows", "5", "--start-date", D, "--out", landing_gen, "-q"], true);
    one(&["bronze", "--date", D], true);
    one(&["silver", "--date", D], true);
    one(&["gold", "--date", D], true);
    one(&["run", "--date", D], true);
    one(&["backfill", "--from", D, "--to", D], true);
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    ingest(&env, "acme", "orders", &yesterday, "y.csv", b"order_id,customer_id,order_date,status\nO2,C1,2026-11-19T10:00:00Z,completed\n");
    let s = one(&["schedule", "--once", "--catch-up-days", "1"], true);
    assert!(s["dates"].is_array(), "{s:#}");
    let st = one(&["status"], true);
    assert!(st["runs"][0]["jobs"][0]["attempts"].is_u64(), "{st:#}");
    assert!(st["feeds"][0]["rows_read"].is_u64() || st["feeds"][0]["rows_read"].is_null(), "{st:#}");
    one(&["warehouse", "migrate"], true);
    one(&["maintain"], true);
    let rows = one(&["sql", "SELECT order_id FROM silver.orders ORDER BY order_id"], true);
    assert_eq!(rows["rows"][0]["order_id"], "O1", "{rows:#}");
    assert!(one(&["contract"], true)["markdown"].is_string());
    assert!(one(&["feeds"], true)["feeds"].is_array());
    one(&["demo", "--dir", demo, "--partners", "1", "--days", "1", "--rows", "5"], true);
    // Failing: command-line errors, then errors of each command.
    one(&["bronze", "--date", "2026-13-45"], false);
    one(&["no-such-command"], false);
    one(&["run", "--date", D, "--no-such-flag"], false);
    one(&["status", "--limit", "many"], false);
    one(&["ingest", "--partner", "Bad Partner!", "--dataset", "orders", "--date", D, input], false);
    one(&["generate", "--partners", "0", "--out", landing_gen], false);
    one(&["run", "--date", D, "--stages", "platinum"], false);
    one(&["backfill", "--from", D, "--to", "2026-11-01"], false);
    one(&["schedule", "--cron", "not a cron", "--once"], false);
    one(&["warehouse", "grant-readonly", "--role", "bi"], false);
    one(&["maintain", "--retention-hours", "0"], false);
    one(&["sql", "SELECT * FROM nowhere"], false);
    one(&["sql", "INSERT INTO silver.orders SELECT * FROM silver.orders"], false);
    one(&["feeds", "--date", "yesterday"], false);
    one(&["contract", "--bogus"], false);
    one(&["demo", "--partners", "x"], false);
    one(&["status", "--warehouse", "mysql://x"], false);
    // --help is still text.
    let help = medallion(&env, &["status", "--help", "--json"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Usage"), "{}", help.stdout);
}

/// `ingest` takes regular files only: a symlink (to /etc/passwd), a directory and a FIFO are
/// refused with exit 2 and a message naming the file and what it is; nothing lands.
#[test]
fn ingest_takes_regular_files_only() {
    let env = local();
    let dir = env.dir.path().join("odd");
    std::fs::create_dir_all(dir.join("orders.csv")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link.csv")).unwrap();
    let fifo = dir.join("pipe.csv");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (name, what) in [("link.csv", "symbolic link"), ("orders.csv", "directory"), ("pipe.csv", "FIFO"), ("missing.csv", "no such file")] {
        let p = dir.join(name);
        let r = medallion(&env, &["ingest", "--partner", "acme", "--dataset", "orders", "--date", D, p.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(name) && r.stderr.contains(what), "{name}: {}", r.stderr);
    }
    assert!(is_local_empty_or_missing(std::path::Path::new(&env.landing).join("acme").as_path()), "nothing landed");
}

/// Webhooks from `[[notify]]`: a run's success (opted in), its quarantined files and feeds
/// whose rejects pass the threshold, in JSON and Slack form; a refused delivery is retried; a
/// target that is down never fails or blocks the run; a failure is notified; the webhook's
/// secret path never appears in any output. Logs as JSON lines carry run, stage and feed
/// fields.
#[test]
fn notifications_and_json_logs() {
    let env = local();
    medallion(&env, &["generate", "--partners", "1", "--days", "1", "--rows", "30", "--start-date", D, "--out", &env.landing, "-q"]).ok();
    let (json_hook, slack_hook) = (receiver(500), receiver(200));
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed once dropped
    let config = env.dir.path().join("conf").join("medallion.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[[notify]]\nurl = \"http://127.0.0.1:{}/hooks/s3cret-json-token\"\non = [\"failure\", \"success\", \"quarantine\", \"rejects\"]\nreject_threshold = 0.0\n\n\
             [[notify]]\nurl_env = \"SLACK_HOOK\"\nformat = \"slack\"\n\n\
             [[notify]]\nurl = \"http://127.0.0.1:{down}/hooks/s3cret-down-token\"\n",
            json_hook.port
        ),
    )
    .unwrap();
    let slack_url = format!("http://127.0.0.1:{}/services/T0/B0/s3cret-slack-token", slack_hook.port);
    let run = |args: &[&str]| {
        let out = command(&env, args).env("MEDALLION_CONFIG", &config).env("SLACK_HOOK", &slack_url).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run(&["run", "--date", D, "--log-format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "a target that is down does not hold the run");
    let lines: Vec<serde_json::Value> = stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let feed_line = lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.contains(" landed "))).expect("a landed feed line");
    let spans = feed_line["spans"].as_array().unwrap();
    assert!(spans[0]["run_id"].is_string() && spans[0]["date"] == D, "{feed_line}");
    assert_eq!(spans[1]["stage"], "bronze");
    assert!(spans[2]["feed_id"].as_str().unwrap().starts_with("FD") && spans[2]["partner"] == "acme" && spans[2]["dataset"].is_string());
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("gold   completed")) && l["spans"][1]["stage"] == "gold"));

    let json_bodies = json_hook.bodies.lock().unwrap().clone();
    let events: Vec<&str> = json_bodies.iter().filter_map(|(_, b)| b["event"].as_str()).collect();
    assert!(events.contains(&"success") && events.contains(&"quarantine") && events.contains(&"rejects"), "{json_bodies:#?}");
    assert_eq!(events.len(), json_bodies.len(), "every body is a JSON message");
    assert_eq!(events.iter().filter(|e| **e == "success").count(), 1);
    assert!(json_bodies.iter().all(|(p, b)| p == "/hooks/s3cret-json-token" && b["date"] == D && b["run_id"].is_string()));
    // The first delivery was refused with 500 and retried: every message still arrived once.
    let quarantined = json_bodies.iter().filter(|(_, b)| b["event"] == "quarantine").count();
    let expected = medallion(&env, &["feeds", "--date", D, "--json"]).ok().json()["feeds"].as_array().unwrap().iter().filter(|f| f["status"] == "quarantined").count();
    assert_eq!(quarantined, expected, "{json_bodies:#?}");
    let slack = slack_hook.bodies.lock().unwrap().clone();
    assert!(!slack.is_empty() && slack.iter().all(|(_, b)| b["text"].as_str().is_some_and(|t| t.starts_with(":warning: medallion:"))), "{slack:#?}");
    assert!(!slack.iter().any(|(_, b)| b["text"].as_str().unwrap().contains("completed")), "success is opt-in");

    // A run that fails (the warehouse is unreachable) is notified, to both targets.
    let (code, stdout2, stderr2) = run(&["run", "--date", D, "--warehouse", "postgres://bi:pw@127.0.0.1:1/x", "--retries", "0"]);
    assert_eq!(code, Some(3), "{stderr2}");
    assert!(json_hook.bodies.lock().unwrap().iter().any(|(_, b)| b["event"] == "failure" && b["title"].as_str().unwrap().contains("cannot reach the warehouse")));
    assert!(slack_hook.bodies.lock().unwrap().iter().any(|(_, b)| b["text"].as_str().unwrap().starts_with(":red_circle: medallion: run of")));
    for out in [&stdout, &stderr, &stdout2, &stderr2] {
        assert!(!out.contains("s3cret"), "a webhook's secret path leaked: {out}");
    }
    assert!(stderr2.contains("http://127.0.0.1/…") || stderr.contains("http://127.0.0.1/…"), "the target that is down is named by host only");
    // A bad config is a usage error.
    std::fs::write(&config, "[[notify]]\nurl = \"ftp://x\"\n").unwrap();
    assert_eq!(run(&["status"]).0, Some(2));
}
