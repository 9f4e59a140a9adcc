//! `medallion watch`: a date runs when its partners are complete (datasets, `_SUCCESS` marker,
//! manifest with row counts), at the deadline without the missing ones (notified), again when
//! late files arrive (debounced), survives being killed, and archives only what landed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn yesterday() -> String {
    (chrono::Utc::now().date_naive() - chrono::Days::new(1)).format("%Y-%m-%d").to_string()
}

/// Generated feeds of `partners` for `date`, in a staging folder: (landing-relative path, bytes).
fn staged(env: &Env, partners: &str, date: &str) -> Vec<(String, Vec<u8>)> {
    let dir = env.dir.path().join("staging");
    medallion(env, &["generate", "--partners", partners, "--days", "1", "--rows", "20", "--start-date", date, "--out", dir.to_str().unwrap(), "-q"]).ok();
    let mut out = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(&dir).unwrap().to_str().unwrap().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn put_partner(env: &Env, files: &[(String, Vec<u8>)], partner: &str) {
    for (rel, bytes) in files.iter().filter(|(r, _)| r.starts_with(&format!("{partner}/"))) {
        put_landing(env, rel, bytes);
    }
}

fn config(env: &Env, text: &str) -> std::path::PathBuf {
    let p = env.dir.path().join("conf").join("medallion.toml");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn watch_once(env: &Env, conf: &std::path::Path) -> (serde_json::Value, String) {
    let out = command(env, &["watch", "--once", "--json"]).env("MEDALLION_CONFIG", conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}")), stderr)
}

fn triggers(v: &serde_json::Value) -> Vec<(String, String)> {
    v["runs"].as_array().unwrap().iter().map(|r| (r["trigger"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string())).collect()
}

both!(watch_runs_a_complete_date_then_late_files, complete_then_late);

fn complete_then_late(env: Env) {
    let d = yesterday();
    let files = staged(&env, "2", &d);
    let conf = config(
        &env,
        "[watch]\npoll_seconds = 1\ndebounce_seconds = 2\n[watch.partners.acme]\ndatasets = [\"products\", \"orders\", \"order_items\"]\n[watch.partners.globex]\nmarker = true\n",
    );
    put_partner(&env, &files, "acme");
    let (v, stderr) = watch_once(&env, &conf);
    assert_eq!(triggers(&v), [], "globex is not complete");
    assert!(stderr.contains(&format!("{d} waits for globex: no _SUCCESS marker yet")), "{stderr}");

    put_partner(&env, &files, "globex");
    put_landing(&env, &format!("_control/globex/{d}/_SUCCESS"), b"");
    let (v, _) = watch_once(&env, &conf);
    assert_eq!(triggers(&v), [("complete".to_string(), "completed".to_string())]);
    let (v, _) = watch_once(&env, &conf);
    assert_eq!(triggers(&v), [], "nothing new: nothing runs");
    let feeds = medallion(&env, &["feeds", "--date", &d, "--json"]).ok().json();
    assert!(!feeds.to_string().contains("_control"), "the control folder is not a partner: {feeds}");

    // A late file: run again once no new file came for the debounce time.
    std::thread::sleep(Duration::from_millis(1100));
    put_landing(&env, &format!("acme/orders/{d}/late.csv"), format!("order_id,customer_id,order_date,status\nLATE-1,C1,{d}T10:00:00Z,completed\n").as_bytes());
    let (v, _) = watch_once(&env, &conf);
    assert_eq!(triggers(&v), [], "debounced");
    std::thread::sleep(Duration::from_millis(2100));
    let (v, _) = watch_once(&env, &conf);
    assert_eq!(triggers(&v), [("late".to_string(), "completed".to_string())]);
    let record: serde_json::Value = serde_json::from_slice(&read_lake(&env, &format!("_medallion/watch/{d}.json")).unwrap()).unwrap();
    assert_eq!(record["trigger"], "late");
    let orders = medallion(&env, &["sql", "SELECT order_id FROM silver.orders WHERE order_id = 'LATE-1'", "--format", "csv"]).ok().stdout;
    assert!(orders.contains("LATE-1"), "{orders}");
    let st = medallion(&env, &["status", "--json"]).ok().json();
    let kinds: Vec<&str> = st["runs"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["watch", "watch"]);
}

/// A manifest's row counts are checked; a partner still missing at the deadline does not hold
/// the date (it runs, the partner is recorded and notified); the watcher killed mid-run loses
/// nothing; archiving moves only files that landed; SIGTERM stops a waiting watcher.
#[test]
fn watch_manifest_deadline_kill_and_archive() {
    let env = local();
    let d = yesterday();
    let files = staged(&env, "1", &d);
    put_partner(&env, &files, "acme");
    put_landing(&env, &format!("globex/products/{d}/p.csv"), b"sku,name,category,price\nG-1,Gizmo,Tools,9.99\nG-2,Gadget,Tools,19.99\n");
    put_landing(&env, &format!("_control/globex/{d}/manifest.json"), br#"{"files": [{"dataset": "products", "file": "p.csv", "rows": 3}]}"#);
    put_landing(&env, &format!("acme/orders/{d}/notes.txt"), b"not a feed");
    let hook = receiver(200);
    let base = "[watch]\npoll_seconds = 1\narchive = true\n[watch.partners.acme]\ndatasets = [\"orders\"]\n[watch.partners.globex]\nmanifest = true\n";
    let conf = config(&env, base);
    let (v, stderr) = watch_once(&env, &conf);
    assert_eq!(triggers(&v), []);
    assert!(stderr.contains("products/p.csv has 2 rows, the manifest says 3"), "{stderr}");

    // With a deadline that has passed and a partner that never sends anything, the date runs;
    // the watcher is killed in the middle of silver.
    let with_deadline = format!(
        "[[notify]]\nurl = \"http://127.0.0.1:{}/hook\"\n\n[watch]\npoll_seconds = 1\narchive = true\ndeadline = \"00:00\"\n\
         [watch.partners.acme]\ndatasets = [\"orders\"]\n[watch.partners.globex]\nmanifest = true\n[watch.partners.initech]\nmarker = true\n",
        hook.port
    );
    let conf = config(&env, &with_deadline);
    let killed = command(&env, &["watch", "--once"]).env("MEDALLION_CONFIG", &conf).env("MEDALLION_FAULT", "silver.dataset#1:abort").output().unwrap();
    assert!(!killed.status.success() && String::from_utf8_lossy(&killed.stderr).contains("fault injection"));
    assert!(list_lake(&env, "_medallion/watch").is_empty(), "the killed run recorded nothing");

    // Restarted as a long-running watcher: the trigger is still there.
    let child = command(&env, &["watch", "--json"]).env("MEDALLION_CONFIG", &conf).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while read_lake(&env, &format!("_medallion/watch/{d}.json")).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "SIGTERM stops the watcher cleanly: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the date ran once: {v:#}");
    assert_eq!((runs[0]["trigger"].as_str(), runs[0]["status"].as_str()), (Some("deadline"), Some("completed")));
    let mut missing: Vec<&str> = runs[0]["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    missing.sort();
    assert_eq!(missing, ["globex", "initech"]);
    let record: serde_json::Value = serde_json::from_slice(&read_lake(&env, &format!("_medallion/watch/{d}.json")).unwrap()).unwrap();
    assert_eq!(record["missing"], runs[0]["missing"]);
    let notified: Vec<String> = hook.bodies.lock().unwrap().iter().filter(|(_, b)| b["event"] == "missing").map(|(_, b)| b["details"]["partner"].as_str().unwrap().to_string()).collect();
    assert!(notified.contains(&"globex".to_string()) && notified.contains(&"initech".to_string()), "{notified:?}");
    let st = medallion(&env, &["status", "--json"]).ok().json();
    let statuses: Vec<(&str, &str)> = st["runs"].as_array().unwrap().iter().map(|r| (r["kind"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, [("watch", "completed"), ("watch", "abandoned")], "the killed run is abandoned, the date ran once after");

    // Archived: every file that landed moved to _archive/<date>/; what did not land stayed.
    let landing = std::path::Path::new(&env.landing);
    assert!(landing.join(format!("acme/orders/{d}/notes.txt")).exists(), "a file that did not land stays");
    let feeds = medallion(&env, &["feeds", "--date", &d, "--json"]).ok().json();
    for f in feeds["feeds"].as_array().unwrap() {
        let (p, ds, name) = (f["partner"].as_str().unwrap(), f["dataset"].as_str().unwrap(), f["file_name"].as_str().unwrap());
        assert!(landing.join(format!("_archive/{d}/{p}/{ds}/{name}")).exists(), "{p}/{ds}/{name} archived");
        assert!(!landing.join(format!("{p}/{ds}/{d}/{name}")).exists(), "{p}/{ds}/{name} moved");
    }
    assert_eq!(warehouse_gold(&format!("sqlite://{}/warehouse.db", env.lake)), lake_gold(&env.lake));
}
