//! Sharded runs (`--partners`): workers processing disjoint partner sets of one date at once
//! against one lake, then gold once, give what one unsharded run gives; overlapping partner
//! sets wait for each other and apply nothing twice; gold refuses a date whose shards have not
//! all completed silver.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};

use crate::common::*;

const DATE: &str = "2026-11-20";

/// The generated partners of `generate --partners 6`, in three disjoint shards.
const SHARDS: [&str; 3] = ["acme,umbrella", "globex,hooli", "initech,stark"];

/// Feeds for `DATE` (and the day before, so the date builds on existing silver state) in a
/// local landing folder shared by the lakes compared.
fn landing(env: &Env) -> String {
    let dir = env.dir.path().join("generated");
    let out = dir.display().to_string();
    medallion(env, &["generate", "--partners", "6", "--days", "2", "--rows", "40", "--start-date", "2026-11-19", "--out", &out, "-q"]).ok();
    out
}

fn spawn(env: &Env, args: &[&str], warehouse: &str) -> Child {
    command(env, args)
        .args(["--lock-timeout", "170", "--warehouse", warehouse])
        .env("MEDALLION_RETRY_BASE_MS", "200")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn medallion")
}

/// Waits for every child; each must exit 0. Returns their stderr.
fn all_ok(children: Vec<Child>) -> Vec<String> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{err}", String::from_utf8_lossy(&out.stdout));
            err
        })
        .collect()
}

/// Every silver table as sorted CSV lines, without the columns that name arrival order: feed
/// ids (`FD…`, claimed in landing order, which interleaves across shards) and ingestion times.
fn silver_tables(env: &Env) -> BTreeMap<String, Vec<String>> {
    let mut names: Vec<String> = schemas::Dataset::ALL.iter().map(|d| schemas::silver::current_table(*d).to_string()).collect();
    names.extend(
        [schemas::silver::PRODUCTS_HISTORY, schemas::silver::PRODUCT_CHANGES, schemas::silver::QUARANTINE, schemas::silver::FEED_RECONCILIATION, schemas::silver::ORPHAN_ITEMS]
            .map(String::from),
    );
    let mut out = BTreeMap::new();
    for t in names {
        let csv = medallion(env, &["sql", &format!("SELECT * FROM silver.{t}"), "--format", "csv"]).ok().stdout;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let keep: Vec<usize> = (0..header.len()).filter(|&i| !header[i].contains("feed_id") && !header[i].contains("ingested")).collect();
        let mut rows: Vec<String> = lines
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                keep.iter().map(|&i| cells.get(i).copied().unwrap_or("<missing>")).collect::<Vec<_>>().join(",")
            })
            .collect();
        rows.sort();
        assert!(!rows.is_empty() || t == schemas::silver::ORPHAN_ITEMS || t == schemas::silver::QUARANTINE, "silver.{t} is empty");
        out.insert(t, rows);
    }
    out
}

/// Every gold file of the lake with its bytes.
fn gold_files(env: &Env) -> BTreeMap<String, Vec<u8>> {
    let files: BTreeMap<String, Vec<u8>> = list_lake(env, "gold").into_iter().map(|p| (p.clone(), read_lake(env, &p).unwrap())).collect();
    assert!(!files.is_empty(), "gold wrote no file to {}", env.lake);
    files
}

/// Asserts that `sharded` and `whole` (an unsharded run) have the same silver content, the same
/// gold in their warehouses, and byte-identical gold files in their lakes.
fn assert_same(sharded: &Env, sharded_wh: &str, whole: &Env, whole_wh: &str) {
    let (a, b) = (silver_tables(sharded), silver_tables(whole));
    for (t, rows) in &b {
        assert_eq!(a.get(t).map(Vec::len), Some(rows.len()), "silver.{t}: row counts differ");
        assert_eq!(a.get(t), Some(rows), "silver.{t} differs");
    }
    let (ga, gb) = (warehouse_gold(sharded_wh), warehouse_gold(whole_wh));
    assert!(gb.values().any(|rows| !rows.is_empty()), "the unsharded run published no gold");
    assert_eq!(ga, gb, "gold in the warehouses differs");
    assert_eq!(gold_files(sharded).keys().collect::<Vec<_>>(), gold_files(whole).keys().collect::<Vec<_>>(), "gold files differ");
    for ((p, x), (_, y)) in gold_files(sharded).iter().zip(gold_files(whole).iter()) {
        assert!(x == y, "gold file {p} is not byte-identical");
    }
}

fn warehouse(env: &Env, name: &str) -> (Option<PgDb>, String) {
    // SQLite for the local variant (no service needed), PostgreSQL with S3.
    if env.lake.starts_with("s3://") {
        let pg = postgres(name).expect("PostgreSQL is configured with S3");
        let url = pg.url.clone();
        (Some(pg), url)
    } else {
        (None, format!("sqlite://{}", env.dir.path().join(format!("{name}.db")).display()))
    }
}

both!(three_concurrent_shards_equal_one_run, concurrent_shards);

/// Three `run --partners` of one date at once (after a first, unsharded date), then one
/// `gold`: silver, gold in the warehouse and the gold files equal those of one unsharded run;
/// the ledger shows each shard's partners.
fn concurrent_shards(env: Env) {
    let whole = if env.lake.starts_with("s3://") { s3("shard_whole").unwrap() } else { local() };
    let feeds = landing(&env);
    let (_pg_a, wh_a) = warehouse(&env, "shard_a");
    let (_pg_b, wh_b) = warehouse(&whole, "shard_b");
    for (e, wh) in [(&env, &wh_a), (&whole, &wh_b)] {
        medallion(e, &["run", "--date", "2026-11-19", "--landing", &feeds, "--warehouse", wh, "-q"]).ok();
    }
    medallion(&whole, &["run", "--date", DATE, "--landing", &feeds, "--warehouse", &wh_b, "-q"]).ok();

    let shards: Vec<Child> = SHARDS.iter().map(|p| spawn(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", p], &wh_a)).collect();
    let logs = all_ok(shards);
    assert!(logs.iter().all(|l| l.contains("run `medallion gold --date")), "a shard says gold runs after every shard: {logs:?}");
    medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh_a, "-q"]).ok();
    assert_same(&env, &wh_a, &whole, &wh_b);

    let st = medallion(&env, &["status", "--json", "--date", DATE, "--warehouse", &wh_a]).ok().json();
    let mut partners: Vec<String> = st["runs"].as_array().unwrap().iter().filter_map(|r| r["partners"].as_str().map(String::from)).collect();
    partners.sort();
    assert_eq!(partners, SHARDS.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{st}");
    assert!(st["runs"].as_array().unwrap().iter().all(|r| r["status"] == "completed"), "{st}");
    // Every feed of the date is reconciled in the ledger, whichever shard synced last.
    let feeds_st = st["feeds"].as_array().unwrap();
    let ledger_feeds = |st: &serde_json::Value| {
        let mut v: Vec<String> = st["feeds"].as_array().unwrap().iter().map(|f| {
            let mut f = f.clone();
            f.as_object_mut().unwrap().remove("feed_id");
            f.to_string()
        }).collect();
        v.sort();
        v
    };
    let whole_st = medallion(&whole, &["status", "--json", "--date", DATE, "--warehouse", &wh_b]).ok().json();
    assert!(feeds_st.iter().any(|f| f["status"] == "landed" && f["valid"].is_number()), "{st}");
    assert_eq!(ledger_feeds(&st), ledger_feeds(&whole_st), "the ledger's feeds and their reconciliation");
    assert_eq!(st["product_diffs"], whole_st["product_diffs"]);

    // Re-running a shard applies nothing new and changes nothing.
    medallion(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", SHARDS[1], "--warehouse", &wh_a, "-q"]).ok();
    medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh_a, "-q"]).ok();
    assert_same(&env, &wh_a, &whole, &wh_b);
}

/// Two workers given overlapping partners at once: the second waits for the shared partner's
/// lock, applies only the partner the first did not, and nothing is lost or doubled.
#[test]
fn overlapping_shards_wait_and_apply_nothing_twice() {
    let Some(env) = s3("shard_overlap") else { return };
    let whole = local();
    let feeds = landing(&env);
    let (_pg, wh_a) = warehouse(&env, "overlap_a");
    let (_, wh_b) = warehouse(&whole, "overlap_b");
    for d in ["2026-11-19", DATE] {
        medallion(&whole, &["run", "--date", d, "--landing", &feeds, "--warehouse", &wh_b, "-q"]).ok();
    }
    medallion(&env, &["run", "--date", "2026-11-19", "--landing", &feeds, "--warehouse", &wh_a, "-q"]).ok();
    let all = "acme,globex,hooli,initech,stark,umbrella";
    let workers = vec![
        spawn(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", "acme,globex,hooli,initech"], &wh_a),
        spawn(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", "hooli,initech,stark,umbrella"], &wh_a),
    ];
    let logs = all_ok(workers);
    assert!(logs.iter().any(|l| l.contains("waiting for the lock of partner")), "one worker waited for a shared partner: {logs:?}");
    medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh_a, "-q"]).ok();
    // The ledger's products diff has each partner once, as the unsharded run has it.
    let diffs = |wh: &str, e: &Env| {
        let st = medallion(e, &["status", "--json", "--date", DATE, "--warehouse", wh]).ok().json();
        st["product_diffs"].as_array().unwrap().iter().map(|d| d["partner_id"].as_str().unwrap().to_string()).collect::<Vec<_>>().join(",")
    };
    assert_eq!(diffs(&wh_a, &env), all);
    assert_eq!(diffs(&wh_b, &whole), all);
    assert_same(&env, &wh_a, &whole, &wh_b);
}

/// Gold refuses a date whose shards have not all completed silver and names the partners
/// missing; a whole-lake run waits for a live shard (its partner lock) instead of running
/// beside it.
#[test]
fn gold_waits_for_every_shard() {
    let env = local();
    let feeds = landing(&env);
    let (_, wh) = warehouse(&env, "gold_waits");
    medallion(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", SHARDS[0], "--warehouse", &wh, "-q"]).ok();
    medallion(&env, &["bronze", "--date", DATE, "--landing", &feeds, "--partners", SHARDS[1], "--warehouse", &wh, "-q"]).ok();
    let r = medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("has not run for partners globex, hooli"), "{}", r.stderr);
    assert!(!r.stderr.contains("initech"), "only partners with landed feeds are expected: {}", r.stderr);

    // A shard's partner lock held by a live process: a whole-lake run waits, then gives up
    // with exit 5 naming the shard.
    let lock = serde_json::json!({
        "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "pid": std::process::id(),
        "command": "medallion run --partners stark (test)",
        "started_at": chrono::Utc::now(),
        "heartbeat_at": chrono::Utc::now(),
        "token": "test",
    });
    let dir = std::path::Path::new(&env.lake).join("_medallion/lock");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("partner=stark.json"), serde_json::to_vec(&lock).unwrap()).unwrap();
    let r = medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh, "--lock-timeout", "2"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("sharded runs in progress (partners stark"), "{}", r.stderr);
    std::fs::remove_file(dir.join("partner=stark.json")).unwrap();

    // The silver commit lock held by a live process for longer than --lock-timeout: the shard
    // gives up with exit 5 (locked), like a run that cannot get the lake lock.
    std::fs::write(dir.join("commit.json"), serde_json::to_vec(&lock).unwrap()).unwrap();
    let r = medallion(&env, &["silver", "--date", DATE, "--partners", "hooli,globex", "--warehouse", &wh, "--lock-timeout", "2"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    std::fs::remove_file(dir.join("commit.json")).unwrap();

    medallion(&env, &["silver", "--date", DATE, "--partners", "hooli,globex", "--warehouse", &wh, "-q"]).ok();
    medallion(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", SHARDS[2], "--warehouse", &wh, "-q"]).ok();
    medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh, "-q"]).ok();
    assert_eq!(warehouse_gold(&wh), lake_gold(&env.lake));
}

/// A shard killed during its silver commit (after the first shard completed): the next shard
/// undoes its partial writes and puts back the first shard's record; re-running the killed
/// shard and then gold gives exactly one unsharded run's silver and gold.
#[test]
fn shard_killed_during_commit_is_undone_and_rerun() {
    let env = local();
    let whole = local();
    let feeds = landing(&env);
    let (_, wh_a) = warehouse(&env, "killed_a");
    let (_, wh_b) = warehouse(&whole, "killed_b");
    for d in ["2026-11-19", DATE] {
        medallion(&whole, &["run", "--date", d, "--landing", &feeds, "--warehouse", &wh_b, "-q"]).ok();
    }
    medallion(&env, &["run", "--date", "2026-11-19", "--landing", &feeds, "--warehouse", &wh_a, "-q"]).ok();
    let shard = |p: &str| medallion(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", p, "--warehouse", &wh_a, "-q"]);
    shard(SHARDS[0]).ok();
    let out = command(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", SHARDS[1], "--warehouse", &wh_a])
        .env("MEDALLION_FAULT", "silver.dataset#3:abort")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("fault injection"), "{}", String::from_utf8_lossy(&out.stderr));
    let record: serde_json::Value = serde_json::from_slice(&read_lake(&env, &format!("silver/_runs/{DATE}.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "running");
    assert_eq!(record["shard_prior"]["status"], "completed", "the interrupted shard's record carries the first shard's");

    let r = medallion(&env, &["run", "--date", DATE, "--landing", &feeds, "--partners", SHARDS[2], "--warehouse", &wh_a]).ok();
    assert!(r.stderr.contains("recovered from an interrupted run"), "{}", r.stderr);
    let record: serde_json::Value = serde_json::from_slice(&read_lake(&env, &format!("silver/_runs/{DATE}.json")).unwrap()).unwrap();
    let mut covered: Vec<&str> = record["feeds"].as_array().unwrap().iter().map(|f| f["partner"].as_str().unwrap()).collect();
    covered.sort();
    covered.dedup();
    assert_eq!(covered, ["acme", "initech", "stark", "umbrella"], "the killed shard's partners are not in the record");
    let g = medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh_a]);
    assert!(g.code == 1 && g.stderr.contains("has not run for partners globex, hooli"), "{}", g.stderr);

    shard(SHARDS[1]).ok();
    medallion(&env, &["gold", "--date", DATE, "--warehouse", &wh_a, "-q"]).ok();
    assert_same(&env, &wh_a, &whole, &wh_b);
}
