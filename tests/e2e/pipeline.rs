//! Orchestration: `run`, the ledger and `status`, the lake lock, retries, backfill, schedule
//! mode, and the fault tests (kill -9 mid-stage, S3 outage, PostgreSQL unreachable).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn gen(env: &Env, partners: &str, days: &str, start: &str) {
    medallion(env, &["generate", "--partners", partners, "--days", days, "--rows", "30", "--start-date", start, "--out", &env.landing, "-q"]).ok();
}

fn status(env: &Env, warehouse: &str, date: Option<&str>) -> serde_json::Value {
    let mut args = vec!["status", "--json", "--warehouse", warehouse];
    if let Some(d) = date {
        args.extend(["--date", d]);
    }
    medallion(env, &args).ok().json()
}

/// Silver's current tables as sorted CSV (for comparing two lakes).
fn silver_dump(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    for t in ["products", "customers", "orders", "order_items", "inventory", "campaigns", "products_history", "quarantine"] {
        let csv = medallion(env, &["sql", &format!("SELECT * FROM silver.{t}"), "--format", "csv"]).ok().stdout;
        let mut lines: Vec<String> = csv
            .lines()
            .map(|l| {
                // _ingested_at and run-time columns differ between two runs by nature.
                l.split(',').filter(|c| !c.contains('T') || !c.ends_with('Z')).collect::<Vec<_>>().join(",")
            })
            .collect();
        lines.sort();
        out.push(format!("{t}: {}", lines.join("\n")));
    }
    out
}

both!(run_records_everything_in_the_ledger, run_and_status);

fn run_and_status(env: Env) {
    let Some(pg) = postgres("run") else { return };
    gen(&env, "2", "2", "2026-11-18");
    for d in ["2026-11-18", "2026-11-19"] {
        let r = medallion(&env, &["run", "--date", d, "--json", "--warehouse", &pg.url]).ok().json();
        assert_eq!(r["status"], "completed", "{r:#}");
        assert_eq!(r["stages"].as_array().unwrap().len(), 3);
    }
    let nothing = medallion(&env, &["run", "--date", "2026-11-25", "--warehouse", &pg.url]);
    assert_eq!(nothing.code, 4, "nothing to do has its own exit code: {}", nothing.stderr);

    let st = status(&env, &pg.url, Some("2026-11-19"));
    let run = &st["runs"][0];
    assert_eq!((run["status"].as_str(), run["kind"].as_str()), (Some("completed"), Some("run")));
    let jobs: Vec<(&str, &str)> = run["jobs"].as_array().unwrap().iter().map(|j| (j["stage"].as_str().unwrap(), j["status"].as_str().unwrap())).collect();
    assert_eq!(jobs, vec![("bronze", "completed"), ("silver", "completed"), ("gold", "completed")]);
    let feeds = st["feeds"].as_array().unwrap();
    assert!(feeds.len() >= 10, "{st:#}");
    for f in feeds.iter().filter(|f| f["status"] == "landed") {
        let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k} is a JSON number: {f}"));
        assert_eq!(n("rows_read"), n("valid") + n("rejected") + n("duplicate"), "{f}");
        assert!(f["feed_id"].as_str().unwrap().starts_with("FD"));
    }
    assert!(feeds.iter().any(|f| f["status"] == "quarantined" && f["reason"].is_string()), "the generator's bad files are listed with their reason");
    assert_eq!(st["product_diffs"].as_array().unwrap().len(), 2);
    let skipped = status(&env, &pg.url, Some("2026-11-25"));
    assert_eq!(skipped["runs"][0]["status"], "skipped");
    assert_eq!(warehouse_gold(&pg.url), lake_gold(&env.lake));
    // The text view too.
    let text = medallion(&env, &["status", "--warehouse", &pg.url]).ok().stdout;
    assert!(text.contains("balanced") && text.contains("products 2026-11-19"), "{text}");
}

both!(backfill_ends_in_the_state_of_a_clean_sequential_run, backfill_equals_sequential);

/// The default embedded warehouse of an env: inside a local lake, ./warehouse.db (the test's
/// folder) next to an S3 lake.
fn default_wh(env: &Env) -> String {
    if env.lake.starts_with("s3://") {
        format!("sqlite://{}/warehouse.db", env.dir.path().display())
    } else {
        format!("sqlite://{}/warehouse.db", env.lake)
    }
}

fn backfill_equals_sequential(seq: Env) {
    gen(&seq, "2", "3", "2026-11-18");
    for d in ["2026-11-18", "2026-11-19", "2026-11-20"] {
        medallion(&seq, &["run", "--date", d, "-q"]).ok();
    }
    // A second lake from the same feeds: a day run twice out of order, then backfilled.
    let other = if seq.lake.starts_with("s3://") { s3("backfill-other").unwrap() } else { local() };
    gen(&other, "2", "3", "2026-11-18");
    for d in ["2026-11-18", "2026-11-19", "2026-11-20", "2026-11-19"] {
        medallion(&other, &["run", "--date", d, "-q"]).ok();
    }
    let r = medallion(&other, &["backfill", "--from", "2026-11-19", "--to", "2026-11-19", "--json"]).ok().json();
    let dates: Vec<&str> = r["dates"].as_array().unwrap().iter().map(|d| d["date"].as_str().unwrap()).collect();
    assert_eq!(dates, vec!["2026-11-19", "2026-11-20"], "the later date silver had run is run again too");
    assert_eq!(silver_dump(&other), silver_dump(&seq));
    assert_eq!(warehouse_gold(&default_wh(&other)), warehouse_gold(&default_wh(&seq)));
    assert_eq!(warehouse_gold(&default_wh(&other)), lake_gold(&other.lake));
    let st = status(&other, &default_wh(&other), Some("2026-11-20"));
    assert_eq!(st["runs"][0]["kind"], "backfill");
}

both!(backfill_from_raw_needs_no_landing_zone_and_equals_the_original_runs, backfill_from_raw);

/// Deletes every object under `prefix` of a location (a landing zone or a lake).
fn delete_prefix(spec: &str, prefix: &str) -> usize {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let loc = lake::Location::open("location", spec, true).unwrap();
        let p = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix));
        let metas: Vec<_> = loc.store.list(p.as_ref()).try_collect().await.unwrap();
        for m in &metas {
            loc.store.delete(&m.location).await.unwrap();
        }
        metas.len()
    })
}

fn backfill_from_raw(env: Env) {
    let dates = ["2026-11-18", "2026-11-19", "2026-11-20"];
    gen(&env, "2", "3", dates[0]);
    for d in dates {
        medallion(&env, &["run", "--date", d, "-q"]).ok();
    }
    let (silver, gold) = (silver_dump(&env), warehouse_gold(&default_wh(&env)));
    let bronze = list_lake(&env, "bronze");
    assert!(bronze.iter().filter(|p| p.ends_with(".parquet")).count() >= 20, "{bronze:?}");
    // The landing zone is gone, and so is every bronze Parquet file: only raw/ remains.
    assert!(delete_prefix(&env.landing, "") > 0);
    if !env.landing.starts_with("s3://") {
        std::fs::remove_dir_all(&env.landing).unwrap();
    }
    let parquet: Vec<&String> = bronze.iter().filter(|p| p.ends_with(".parquet")).collect();
    {
        use object_store::ObjectStoreExt;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let loc = lake::Location::open("lake", &env.lake, true).unwrap();
            for p in &parquet {
                loc.store.delete(&object_store::path::Path::from(p.as_str())).await.unwrap();
            }
        });
    }
    let r = medallion(&env, &["backfill", "--from", dates[0], "--to", dates[2], "--from-raw", "--json"]).ok().json();
    let statuses: Vec<&str> = r["dates"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["completed"; 3], "{r:#}");
    assert_eq!(list_lake(&env, "bronze"), bronze, "every bronze file is back under its feed id");
    assert_eq!(silver_dump(&env), silver);
    assert_eq!(warehouse_gold(&default_wh(&env)), gold);
    assert_eq!(lake_gold(&env.lake), gold);

    // A raw copy that no longer matches its record stops the backfill before silver is
    // touched, naming it.
    let raw = list_lake(&env, "raw").into_iter().find(|p| p.ends_with(".csv")).unwrap();
    let mut bytes = read_lake(&env, &raw).unwrap();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'7' { b'8' } else { b'7' };
    {
        use object_store::ObjectStoreExt;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let loc = lake::Location::open("lake", &env.lake, true).unwrap();
            loc.store.put(&object_store::path::Path::from(raw.as_str()), bytes.into()).await.unwrap();
        });
    }
    let r = medallion(&env, &["backfill", "--from", dates[0], "--to", dates[2], "--from-raw"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&raw) && r.stderr.contains("damaged"), "{}", r.stderr);
    assert_eq!(silver_dump(&env), silver, "silver was not restored for a backfill that could not run");

    // Without the feed registry, raw copies nobody records are refused, not silently skipped.
    assert!(delete_prefix(&env.lake, "bronze/_registry") > 0);
    let r = medallion(&env, &["backfill", "--from", dates[0], "--to", dates[2], "--from-raw"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("the feed registry does not record"), "{}", r.stderr);
    assert_eq!(silver_dump(&env), silver);
}

both!(the_lake_lock_excludes_a_second_run, lake_lock);

fn put_lock(env: &Env, host: &str, pid: u32, heartbeat: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use object_store::ObjectStoreExt;
        let loc = lake::Location::open("lake", &env.lake, true).unwrap();
        let body = serde_json::json!({ "host": host, "pid": pid, "command": "medallion run --date 2026-11-18", "started_at": heartbeat, "heartbeat_at": heartbeat });
        loc.store.put(&object_store::path::Path::from("_medallion/lock.json"), body.to_string().into_bytes().into()).await.unwrap();
    });
}

fn lake_lock(env: Env) {
    gen(&env, "1", "1", "2026-11-18");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let now = chrono::Utc::now().to_rfc3339();
    // A live holder (this test process): the run waits, then gives up with exit code 5.
    put_lock(&env, &host, std::process::id(), &now);
    let started = Instant::now();
    let r = medallion(&env, &["bronze", "--date", "2026-11-18", "--lock-timeout", "2"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(r.stderr.contains("locked by medallion run --date 2026-11-18") && r.stderr.contains(&format!("pid {}", std::process::id())), "{}", r.stderr);
    assert!(list_lake(&env, "bronze").is_empty(), "nothing was written");
    // A holder on another machine whose heartbeat stopped long ago: stale, taken over.
    put_lock(&env, "other-machine", 4242, "2026-01-01T00:00:00Z");
    let r = medallion(&env, &["bronze", "--date", "2026-11-18", "--lock-timeout", "0"]).ok();
    assert!(r.stderr.contains("taking over a stale lake lock") && r.stderr.contains("other-machine"), "{}", r.stderr);
    assert!(read_lake(&env, "_medallion/lock.json").is_none(), "released after the run");
    // A dead process on this host: stale at once.
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    put_lock(&env, &host, pid, &now);
    let r = medallion(&env, &["silver", "--date", "2026-11-18", "--lock-timeout", "0"]).ok();
    assert!(r.stderr.contains(&format!("process {pid} on this host is gone")), "{}", r.stderr);
}

#[test]
fn concurrent_runs_never_write_at_once() {
    let env = local();
    gen(&env, "2", "1", "2026-11-18");
    // Two runs of the same date at once: one waits for the other; both succeed and the lake
    // is exactly as after one run.
    let spawn = || {
        command(&env, &["run", "--date", "2026-11-18", "--json", "--lock-timeout", "120"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{}\n{}", String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    let waited = String::from_utf8_lossy(&a.stderr).contains("waiting for the lake lock") || String::from_utf8_lossy(&b.stderr).contains("waiting for the lake lock");
    assert!(waited, "one run waited for the other");
    let feeds = medallion(&env, &["feeds", "--json"]).ok().json();
    let landed = feeds["feeds"].as_array().unwrap().len();
    let single = local();
    gen(&single, "2", "1", "2026-11-18");
    medallion(&single, &["run", "--date", "2026-11-18", "-q"]).ok();
    assert_eq!(landed, medallion(&single, &["feeds", "--json"]).ok().json()["feeds"].as_array().unwrap().len());
    assert_eq!(silver_dump(&env), silver_dump(&single));
}

/// Concurrent runs against one fresh PostgreSQL warehouse: a run waiting for the lake lock
/// holds nothing the holder needs (it connects and migrates only once it has the lock), so
/// every run succeeds in turn. Before that fix, waiters held the migration lock and the
/// holder's publish stalled until they gave up with exit 5.
#[test]
fn concurrent_runs_on_postgresql_all_succeed_in_turn() {
    let env = local();
    gen(&env, "2", "1", "2026-11-18");
    let Some(pg) = postgres("concurrent") else { return };
    let children: Vec<_> = (0..4)
        .map(|_| {
            command(&env, &["run", "--date", "2026-11-18", "--json", "--lock-timeout", "170", "--warehouse", &pg.url])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let runs = pg_query(&pg.url, "SELECT status FROM medallion.runs WHERE kind = 'run'");
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r[0].as_deref() == Some("completed")), "{runs:?}");
    assert_eq!(warehouse_gold(&pg.url), lake_gold(&env.lake));
}

/// kill -9 during silver, then re-run: the lake equals a clean run's.
#[test]
fn killed_during_silver_then_rerun() {
    let env = local();
    gen(&env, "2", "2", "2026-11-18");
    medallion(&env, &["run", "--date", "2026-11-18", "-q"]).ok();
    let out = command(&env, &["run", "--date", "2026-11-19"])
        .env("MEDALLION_FAULT", "silver.dataset#3:abort")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fault injection"));
    // The lock of the killed run is stale (its process is gone): the re-run takes it over,
    // undoes the half-written silver run and runs the date again.
    let r = medallion(&env, &["run", "--date", "2026-11-19"]).ok();
    assert!(r.stderr.contains("stale lake lock"), "{}", r.stderr);
    let clean = local();
    gen(&clean, "2", "2", "2026-11-18");
    medallion(&clean, &["run", "--date", "2026-11-18", "-q"]).ok();
    medallion(&clean, &["run", "--date", "2026-11-19", "-q"]).ok();
    assert_eq!(silver_dump(&env), silver_dump(&clean));
    assert_eq!(warehouse_gold(&default_wh(&env)), warehouse_gold(&default_wh(&clean)));
}

/// kill -9 during the PostgreSQL load of gold, then re-run: nothing partial, nothing lost.
#[test]
fn killed_during_gold_load_then_rerun() {
    let env = local();
    let Some(pg) = postgres("killgold") else { return };
    gen(&env, "2", "2", "2026-11-18");
    medallion(&env, &["run", "--date", "2026-11-18", "-q", "--warehouse", &pg.url]).ok();
    let before = warehouse_gold(&pg.url);
    let out = command(&env, &["run", "--date", "2026-11-19", "--warehouse", &pg.url])
        .env("MEDALLION_FAULT", "gold.load#5:abort")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(warehouse_gold(&pg.url), before, "the killed load is invisible");
    medallion(&env, &["run", "--date", "2026-11-19", "-q", "--warehouse", &pg.url]).ok();
    assert_eq!(warehouse_gold(&pg.url), lake_gold(&env.lake));
}

/// A TCP proxy in front of the S3 server that can be switched off (connections refused) and
/// on again: a real outage of a real S3 endpoint.
struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Open client connections: an outage drops them too (a pooled keep-alive connection
    /// would otherwise outlive the cut).
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn new(target: &str) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, target, conns) = (up.clone(), target.to_string(), open.clone());
        std::thread::spawn(move || loop {
            if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("rebind proxy port");
            listener.set_nonblocking(true).unwrap();
            while flag.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = std::net::TcpStream::connect(&target).unwrap();
                        conns.lock().unwrap().push(client.try_clone().unwrap());
                        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        let (mut c, mut s) = (client, server);
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut c, &mut s);
                            let _ = s.shutdown(std::net::Shutdown::Write);
                        });
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut s2, &mut c2);
                            let _ = c2.shutdown(std::net::Shutdown::Write);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Proxy { port, up, open }
    }

    fn set(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for c in self.open.lock().unwrap().drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

#[test]
fn s3_outage_is_retried_and_recovers() {
    let Some(env) = s3("outage") else { return };
    gen(&env, "1", "1", "2026-11-18");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let target = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let proxy = Proxy::new(&target);
    let via_proxy = |retries: &str| {
        command(&env, &["run", "--date", "2026-11-18", "--retries", retries])
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", proxy.port))
            .env("MEDALLION_RETRY_BASE_MS", "400")
            .env("MEDALLION_S3_MAX_RETRIES", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Down for good: a clear error naming the endpoint, exit code 3, after the retries.
    let out = via_proxy("1").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{}", proxy.port)) && stderr.contains("retrying"), "{stderr}");
    // Down, then back: the run retries and completes.
    let child = via_proxy("8");
    std::thread::sleep(Duration::from_millis(1500));
    proxy.set(true);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert_eq!(warehouse_gold(&default_wh(&env)), lake_gold(&env.lake));
}

#[test]
fn postgres_unreachable_is_a_clear_error_and_writes_nothing() {
    let env = local();
    gen(&env, "1", "1", "2026-11-18");
    let r = medallion(&env, &["run", "--date", "2026-11-18", "--retries", "0", "--warehouse", "postgres://postgres@127.0.0.1:1/nowhere"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach the warehouse postgres://postgres@127.0.0.1:1/nowhere"), "{}", r.stderr);
    assert!(list_lake(&env, "gold").is_empty() && list_lake(&env, "silver").is_empty());
    // With retries it says so, and still fails cleanly.
    let r = command(&env, &["gold", "--date", "2026-11-18", "--warehouse", "postgres://u:secret@127.0.0.1:1/db"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3));
    assert!(!stderr.contains("secret"), "passwords never appear: {stderr}");
}

#[test]
fn schedule_catches_up_and_stops_on_sigterm() {
    let env = local();
    let today = chrono::Utc::now().date_naive();
    let start = (today - chrono::Days::new(2)).format("%Y-%m-%d").to_string();
    gen(&env, "1", "2", &start);
    let Some(pg) = postgres("schedule") else { return };
    let wh = pg.url.clone();
    let child = command(&env, &["schedule", "--cron", "0 1 * * *", "--catch-up-days", "2", "--warehouse", &wh])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut done = false;
    while Instant::now() < deadline && !done {
        std::thread::sleep(Duration::from_millis(500));
        let st = medallion(&env, &["status", "--json", "--warehouse", &wh]);
        if st.code == 0 {
            let runs = st.json()["runs"].as_array().cloned().unwrap_or_default();
            done = runs.iter().filter(|r| r["status"] == "completed" && r["kind"] == "schedule").count() == 2;
        }
    }
    assert!(done, "the scheduler caught up the two missed days");
    let sent = Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sent.elapsed() < Duration::from_secs(10), "SIGTERM stops the waiting scheduler promptly");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("next run at") && stderr.contains("signal received"), "{stderr}");
    assert_eq!(warehouse_gold(&wh), lake_gold(&env.lake));
}

/// A scheduled date dies mid-run, then a later date is run by hand: the next tick goes back
/// to the dead date (the ledger's last done date is past it) and replays from there as a
/// backfill, ending equal to a clean sequential run.
#[test]
fn schedule_goes_back_to_a_failed_date_a_manual_run_passed() {
    let today = chrono::Utc::now().date_naive();
    let day = |n: u64| (today - chrono::Days::new(n)).format("%Y-%m-%d").to_string();
    let (env, clean) = (local(), local());
    for e in [&env, &clean] {
        gen(e, "2", "3", &day(3));
    }
    for n in [3, 2, 1] {
        medallion(&clean, &["run", "--date", &day(n), "-q"]).ok();
    }
    let died = command(&env, &["schedule", "--once", "--catch-up-days", "3"]).env("MEDALLION_FAULT", "stage.silver#1:abort").output().unwrap();
    assert!(!died.status.success());
    medallion(&env, &["run", "--date", &day(2), "-q"]).ok();
    let r = medallion(&env, &["schedule", "--once", "--catch-up-days", "3", "--json"]).ok();
    assert!(r.stderr.contains(&format!("replaying {} to {}", day(3), day(1))), "{}", r.stderr);
    let tried: Vec<(String, String)> = r.json()["dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap().to_string(), d["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(tried, [3, 2, 1].map(|n| (day(n), "completed".to_string())));
    assert_eq!(silver_dump(&env), silver_dump(&clean));
    assert_eq!(warehouse_gold(&default_wh(&env)), warehouse_gold(&default_wh(&clean)));
    // Done: the next tick has nothing to do.
    let again = medallion(&env, &["schedule", "--once", "--catch-up-days", "3", "--json"]).ok().json();
    assert_eq!(again["dates"].as_array().unwrap().len(), 0, "{again:#}");
}

/// The ledger's rows of a local lake's SQLite warehouse, without what differs between two runs
/// by nature (run ids, times, host, pid, durations).
fn ledger_rows(env: &Env) -> Vec<String> {
    let url = default_wh(env);
    let mut out = Vec::new();
    let runs = pg_query(&url, "SELECT CAST(run_date AS TEXT), kind, status, COALESCE(error, '') FROM medallion_runs ORDER BY started_at");
    out.extend(runs.into_iter().map(|r| format!("run {r:?}")));
    let jobs = pg_query(
        &url,
        "SELECT CAST(r.run_date AS TEXT), j.stage, j.status, CAST(j.attempts AS TEXT), CAST(j.rows AS TEXT), j.summary, COALESCE(j.error, '') \
         FROM medallion_jobs j JOIN medallion_runs r ON r.run_id = j.run_id ORDER BY r.started_at, j.stage",
    );
    for j in jobs {
        // Gold's summary carries timings and the warehouse's own path; compare everything else.
        let summary = j[5].as_deref().map(|s| {
            let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| !k.ends_with("_seconds") && k != "warehouse");
            }
            v.to_string()
        });
        out.push(format!("job {:?} {summary:?}", &j[..5]));
    }
    for t in ["feeds", "product_diffs"] {
        let rows = pg_query(&url, &format!("SELECT * FROM medallion_{t} ORDER BY 1, 2, 3"));
        out.extend(rows.into_iter().map(|r| format!("{t} {r:?}")));
    }
    out
}

#[test]
fn stage_commands_and_run_stages_leave_identical_ledger_records() {
    let (a, b) = (local(), local());
    for env in [&a, &b] {
        gen(env, "2", "2", "2026-11-18");
    }
    for d in ["2026-11-18", "2026-11-19"] {
        for stage in ["bronze", "silver", "gold"] {
            medallion(&a, &[stage, "--date", d, "-q"]).ok();
            medallion(&b, &["run", "--date", d, "--stages", stage, "-q"]).ok();
        }
    }
    let (la, lb) = (ledger_rows(&a), ledger_rows(&b));
    assert!(la.iter().any(|r| r.starts_with("feeds")) && la.iter().any(|r| r.starts_with("product_diffs")), "{la:#?}");
    assert_eq!(la.iter().filter(|r| r.starts_with("run ")).count(), 6, "{la:#?}");
    assert_eq!(la, lb);
    assert_eq!(warehouse_gold(&default_wh(&a)), warehouse_gold(&default_wh(&b)));
}

/// S3 goes away in the middle of a stage — after bronze has written a feed's objects, just
/// before a silver Delta commit, while gold writes its Parquet — and comes back: `run` retries
/// that stage (the error is transient by type) and the lake and warehouse end equal to a clean
/// run's. The fault point pauses the process at the exact place (`pause=<gate>`) while the
/// test cuts the proxy in front of the real S3 server.
#[test]
fn s3_outage_in_the_middle_of_a_stage_is_retried_and_equals_a_clean_run() {
    let Some(clean) = s3("midstage-clean") else { return };
    gen(&clean, "2", "1", "2026-11-18");
    medallion(&clean, &["run", "--date", "2026-11-18", "-q"]).ok();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let proxy = Proxy::new(endpoint.trim_start_matches("http://").trim_end_matches('/'));
    for (point, stage) in [("bronze.feed_landed#2", "bronze"), ("gold.lake_write#2", "gold"), ("delta.commit#3", "silver")] {
        let env = s3("midstage").unwrap();
        gen(&env, "2", "1", "2026-11-18");
        proxy.set(true);
        let gate = env.dir.path().join("gate");
        let reached = env.dir.path().join("gate.reached");
        let child = command(&env, &["run", "--date", "2026-11-18", "--retries", "8"])
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", proxy.port))
            .env("MEDALLION_RETRY_BASE_MS", "300")
            .env("MEDALLION_S3_MAX_RETRIES", "0")
            .env("MEDALLION_FAULT", format!("{point}:pause={}", gate.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(180);
        while !reached.exists() {
            assert!(Instant::now() < deadline, "{point} was never reached");
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy.set(false);
        std::fs::write(&gate, b"go").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        proxy.set(true);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{point}: {stderr}");
        assert!(stderr.contains(&format!("2026-11-18 {stage}: ")) && stderr.contains("retrying"), "{point}: the {stage} stage was retried:\n{stderr}");
        assert_eq!(silver_dump(&env), silver_dump(&clean), "{point}");
        assert_eq!(lake_gold(&env.lake), lake_gold(&clean.lake), "{point}");
        assert_eq!(warehouse_gold(&default_wh(&env)), warehouse_gold(&default_wh(&clean)), "{point}");
    }
}

/// Re-running any date — an earlier one after later dates ran, not only the latest — leaves
/// gold byte-identical, `product_changes` included (CONTRACT §2, §3): its feeds were applied by
/// its first run, so the re-run applies nothing new and diffs as only `unchanged`.
#[test]
fn rerunning_an_earlier_date_leaves_gold_byte_identical() {
    let env = local();
    gen(&env, "2", "3", "2026-11-18");
    for d in ["2026-11-18", "2026-11-19", "2026-11-20"] {
        medallion(&env, &["run", "--date", d, "-q"]).ok();
    }
    let wh = default_wh(&env);
    let (gold, lake) = (warehouse_gold(&wh), lake_gold(&env.lake));
    assert!(gold["product_changes"].len() >= 6, "{:?}", gold["product_changes"]);
    let silver = silver_dump(&env);
    for d in ["2026-11-19", "2026-11-18", "2026-11-20"] {
        let r = medallion(&env, &["silver", "--date", d, "--json"]).ok().json();
        if d != "2026-11-20" {
            for diff in r["product_changes"].as_array().unwrap() {
                assert_eq!((diff["inserted"].as_u64(), diff["updated"].as_u64()), (Some(0), Some(0)), "{d}: the re-run diffs as only unchanged: {r:#}");
            }
        }
        medallion(&env, &["gold", "--date", d, "-q"]).ok();
        assert_eq!(warehouse_gold(&wh), gold, "after re-running {d}");
        assert_eq!(lake_gold(&env.lake), lake, "after re-running {d}");
        assert_eq!(silver_dump(&env), silver, "after re-running {d}");
    }
}

/// Crash anywhere: `run` is killed (SIGABRT, like `kill -9`) at seeded random points of bronze,
/// silver and gold, each time followed by a plain re-run; the lake and the warehouse then equal
/// a clean run's. `MEDALLION_CRASH_KILLS` (default 20) and `MEDALLION_CRASH_SEED` make a longer
/// soak or another sequence.
#[test]
fn random_kills_anywhere_then_rerun_equal_a_clean_run() {
    let kills: usize = std::env::var("MEDALLION_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut seed: u64 = std::env::var("MEDALLION_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20_261_130);
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (d1, d2) = ("2026-11-18", "2026-11-19");
    let clean = local();
    gen(&clean, "2", "2", d1);
    for d in [d1, d2] {
        medallion(&clean, &["run", "--date", d, "-q"]).ok();
    }
    let env = local();
    gen(&env, "2", "2", d1);
    medallion(&env, &["run", "--date", d1, "-q"]).ok();
    // Fault points a re-run of the latest date passes, and about how many times (bronze has
    // landed its files already, so only its stage boundary is reached; an n past the end means
    // the run is not killed, and the loop draws again).
    let points: [(&str, u64); 7] = [
        ("stage.bronze", 1),
        ("stage.silver", 1),
        ("silver.dataset", 6),
        ("delta.commit", 8),
        ("stage.gold", 1),
        ("gold.lake_write", 4),
        ("gold.load", 9),
    ];
    let mut killed = Vec::new();
    let mut attempts = 0;
    while killed.len() < kills && attempts < kills * 3 {
        attempts += 1;
        let (point, count) = points[next(points.len() as u64) as usize];
        let n = next(count) + u64::from(point.starts_with("stage."));
        let fault = format!("{point}#{n}:abort");
        let out = command(&env, &["run", "--date", d2, "-q"]).env("MEDALLION_FAULT", &fault).output().unwrap();
        if out.status.success() {
            continue;
        }
        killed.push(fault.clone());
        let r = medallion(&env, &["run", "--date", d2, "-q"]);
        assert_eq!(r.code, 0, "the re-run after {fault} repairs: {}", r.stderr);
    }
    eprintln!("crash-anywhere: {} kills in {attempts} runs, each repaired by a re-run: {killed:?}", killed.len());
    assert_eq!(killed.len(), kills, "{kills} kills across bronze, silver and gold");
    assert_eq!(silver_dump(&env), silver_dump(&clean));
    assert_eq!(lake_gold(&env.lake), lake_gold(&clean.lake));
    assert_eq!(warehouse_gold(&default_wh(&env)), warehouse_gold(&default_wh(&clean)));
}
