#!/usr/bin/env python3
"""Gold benchmark: the gold compute time over a silver lake, and the PostgreSQL load rate of
medallion (COPY binary and COPY text) against `psql \\copy` of exactly the same rows, the
ceiling, in the same run.

Each load is the same work: one transaction that deletes every gold row and loads every gold
table (a full rebuild, `medallion gold --full`). medallion's load time is its warehouse
transaction (reported by `--json` as warehouse_seconds: delete, COPY, verify row counts,
commit); psql's is the wall time of `psql -c BEGIN -c DELETE.. -c \\copy.. -c COMMIT` reading
the rows from text files exported from the warehouse beforehand.

Usage: bench/gold_bench.py --lake DIR [--database-url postgres://...] [--repeat 3] [--json]
       (e.g. the lake of `bench/silver_bench.py --work DIR`, i.e. DIR/lake)

Daily mode, the cost of a day's gold as history grows: generates `medallion generate
--partners 3 --days 60 --rows 2000` (by default) into WORK, runs `medallion run --date D` for
every date in order (SQLite warehouse by default, --database-url for PostgreSQL), and prints
per date the wall time of the run, gold's time (compute + publish, from its report), the rows
gold published and whether the publish was keyed (incremental).

Usage: bench/gold_bench.py --daily WORK [--days 60] [--rows 2000] [--partners 3] [--bin PATH]
       [--postgres] [--json]

With --measure 6,60 only those days are timed, for every --bin given (e.g. main's binary and
this branch's): bronze and silver run once for the other days (silver is the same for every
binary), the lake is copied before each measured day, and each binary publishes the day
before (untimed catch-up: its warehouse then carries every earlier run, as in daily
operation) and runs the measured day whole.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import timed as run  # noqa: E402

TABLES = ["daily_sales", "category_kpis", "order_kpis", "partner_revenue", "product_changes",
          "dim_products", "customer_orders", "inventory_status", "campaign_performance"]




def psql(url, *args):
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, *args], check=True,
                          capture_output=True, text=True).stdout


def checkpoints(args, binaries):
    import datetime
    import shutil
    work = os.path.abspath(args.daily)
    os.makedirs(work, exist_ok=True)
    landing, lake = os.path.join(work, "landing"), os.path.join(work, "lake")
    measure = sorted(int(x) for x in args.measure.split(","))
    start = datetime.date.fromisoformat(args.start_date)
    day = lambda n: (start + datetime.timedelta(days=n - 1)).isoformat()
    env = dict(os.environ, MEDALLION_LAKE=lake, MEDALLION_LANDING=landing)
    if not os.path.isdir(landing):
        run([binaries[0], "generate", "--partners", str(args.partners), "--days", str(max(measure)), "--rows", str(args.rows),
             "--start-date", args.start_date, "--out", landing, "-q"], env)
    for n in range(1, max(measure)):
        if os.path.isdir(os.path.join(work, f"checkpoint-{n + 1}")) or all(os.path.isdir(os.path.join(work, f"checkpoint-{m}")) for m in measure if m > n):
            continue
        run([binaries[0], "run", "--date", day(n), "--stages", "bronze,silver", "-q"], env)
        if n + 1 in measure:
            shutil.copytree(lake, os.path.join(work, f"checkpoint-{n + 1}"))
        print(f"silver {day(n)} done", file=sys.stderr, flush=True)
    results = []
    for b in binaries:
        for m in measure:
            mlake = os.path.join(work, f"{os.path.basename(b)}-day{m}")
            shutil.rmtree(mlake, ignore_errors=True)
            shutil.copytree(os.path.join(work, f"checkpoint-{m}"), mlake)
            menv = dict(os.environ, MEDALLION_LAKE=mlake, MEDALLION_LANDING=landing)
            run([b, "gold", "--date", day(m - 1), "-q"], menv)
            wall, rss, out = run([b, "run", "--date", day(m), "--json", "-q"], menv)
            gold = next(s for s in json.loads(out)["stages"] if s["stage"] == "gold")["summary"]
            r = {"binary": b, "day": m, "date": day(m), "run_seconds": round(wall, 2),
                 "gold_seconds": round(gold["compute_seconds"] + gold["publish_seconds"], 2),
                 "gold_compute_seconds": round(gold["compute_seconds"], 2),
                 "gold_publish_seconds": round(gold["publish_seconds"], 2),
                 "gold_rows": sum(t["rows"] for t in gold["tables"]), "keyed": gold.get("keyed", False),
                 "order_dates": len(gold["order_dates"]), "peak_rss_mb": round(rss)}
            results.append(r)
            print(json.dumps(r), flush=True)
    return results


def daily(args, binary):
    import datetime
    work = os.path.abspath(args.daily)
    os.makedirs(work, exist_ok=True)
    landing, lake = os.path.join(work, "landing"), os.path.join(work, "lake")
    env = dict(os.environ, MEDALLION_LAKE=lake, MEDALLION_LANDING=landing)
    if args.postgres:
        base, _ = args.database_url.rsplit("/", 1)
        db = "medallion_gold_daily_bench"
        psql(f"{base}/postgres", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"CREATE DATABASE {db}")
        env["MEDALLION_WAREHOUSE"] = f"{base}/{db}"
    if not os.path.isdir(landing):
        run([binary, "generate", "--partners", str(args.partners), "--days", str(args.days), "--rows", str(args.rows),
             "--start-date", args.start_date, "--out", landing, "-q"], env)
    start = datetime.date.fromisoformat(args.start_date)
    days = []
    for i in range(args.days):
        date = (start + datetime.timedelta(days=i)).isoformat()
        wall, rss, out = run([binary, "run", "--date", date, "--json", "-q"], env)
        gold = next(s for s in json.loads(out)["stages"] if s["stage"] == "gold")["summary"]
        rows = sum(t["rows"] for t in gold["tables"])
        day = {"day": i + 1, "date": date, "run_seconds": round(wall, 2),
               "gold_seconds": round(gold["compute_seconds"] + gold["publish_seconds"], 2),
               "gold_compute_seconds": round(gold["compute_seconds"], 2),
               "gold_publish_seconds": round(gold["publish_seconds"], 2),
               "gold_rows": rows, "keyed": gold.get("keyed", False), "peak_rss_mb": round(rss)}
        days.append(day)
        if not args.json:
            print(f"day {day['day']:>3} {date}: run {day['run_seconds']:6.2f} s, gold {day['gold_seconds']:5.2f} s "
                  f"(compute {day['gold_compute_seconds']:.2f}, publish {day['gold_publish_seconds']:.2f}), "
                  f"{rows:>7} rows, keyed={day['keyed']}", flush=True)
    if args.json:
        print(json.dumps({"work": work, "binary": binary, "days": days}, indent=2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake")
    ap.add_argument("--daily", metavar="WORK", help="daily mode: generate a history into WORK and run every date")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--partners", type=int, default=3)
    ap.add_argument("--start-date", default="2026-11-18")
    ap.add_argument("--postgres", action="store_true", help="daily mode: publish to PostgreSQL (--database-url)")
    ap.add_argument("--measure", help="daily mode: only time these days (e.g. 6,60), for every --bin")
    ap.add_argument("--database-url", default=os.environ.get("MEDALLION_TEST_DATABASE_URL",
                                                             "postgres://postgres@127.0.0.1:5432/medallion_test"))
    ap.add_argument("--date", default=None, help="run date passed to gold (default: the lake's last silver run)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bin", action="append", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binaries = args.bin or [os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medallion")]
    binary = binaries[0]
    if args.daily and args.measure:
        return checkpoints(args, binaries)
    if args.daily:
        return daily(args, binary)
    if not args.lake:
        ap.error("--lake or --daily is required")
    runs = sorted(f[:-5] for f in os.listdir(os.path.join(args.lake, "silver", "_runs")) if f.endswith(".json"))
    date = args.date or runs[-1]
    base, _ = args.database_url.rsplit("/", 1)
    db = "medallion_gold_bench"
    url = f"{base}/{db}"
    psql(f"{base}/postgres", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"CREATE DATABASE {db}")
    env = dict(os.environ, MEDALLION_LAKE=args.lake)

    results = {"binary": [], "text": [], "psql": []}
    compute, peak = [], 0.0

    def vacuum():
        # Every load starts from the same table state: no dead tuples left by the previous one.
        psql(url, *[x for t in TABLES for x in ("-c", f"VACUUM ANALYZE gold.{t}")])

    def medallion(fmt):
        nonlocal peak
        vacuum()
        _, rss, out = run([binary, "gold", "--date", date, "--full", "--json", "--copy-format", fmt,
                           "--warehouse", url], env)
        rep = json.loads(out)
        results[fmt].append(rep["warehouse_seconds"])
        compute.append(rep["compute_seconds"])
        peak = max(peak, rss)
        return rep

    run([binary, "warehouse", "migrate", "--warehouse", url], env)
    report = medallion("binary")  # first publish: creates the tables, fills them
    rows = sum(t["rows"] for t in report["tables"])
    per_table = {t["table"]: t["rows"] for t in report["tables"]}
    results["binary"].clear()
    with tempfile.TemporaryDirectory(prefix="gold-bench-") as tmp:
        for t in TABLES:
            psql(url, "-c", f"\\copy gold.{t} TO '{tmp}/{t}.txt'")
        # Interleaved, each from a vacuumed table holding the same rows: delete them all and
        # load them again in one transaction.
        for i in range(args.repeat):
            medallion("binary")
            medallion("text")
            vacuum()
            cmds = ["-c", "BEGIN"]
            cmds += [x for t in TABLES for x in ("-c", f"DELETE FROM gold.{t}")]
            cmds += [x for t in TABLES for x in ("-c", f"\\copy gold.{t} FROM '{tmp}/{t}.txt'")]
            cmds += ["-c", "COMMIT"]
            start = time.monotonic()
            psql(url, *cmds)
            results["psql"].append(time.monotonic() - start)
    psql(f"{base}/postgres", "-c", f"DROP DATABASE IF EXISTS {db}")

    best = {k: min(v) for k, v in results.items()}
    out = {
        "lake": args.lake, "date": date, "rows": rows, "tables": per_table, "repeat": args.repeat,
        "gold_compute_seconds_best": round(min(compute), 2),
        "gold_peak_rss_mb": round(peak),
        "load_seconds_best": {k: round(v, 2) for k, v in best.items()},
        "rows_per_s": {k: round(rows / v) for k, v in best.items()},
        "binary_vs_psql": round(best["psql"] / best["binary"], 3),
        "text_vs_psql": round(best["psql"] / best["text"], 3),
        "cores": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"gold over {args.lake} (run date {date}): {rows} rows in 9 tables {per_table}")
        print(f"gold compute (DataFusion, best of {args.repeat}): {out['gold_compute_seconds_best']} s; peak RSS {out['gold_peak_rss_mb']} MB")
        print(f"{'load':16}{'seconds':>10}{'rows/s':>12}{'vs psql':>10}")
        for k in ("psql", "binary", "text"):
            print(f"{k:16}{best[k]:>10.2f}{rows / best[k]:>12.0f}{best['psql'] / best[k]:>10.2f}")


if __name__ == "__main__":
    main()
