#!/usr/bin/env python3
"""Scaling benchmark: where time and memory go per stage as partners, days and catalogue grow.

For each size, generates feeds with `medallion generate`, then runs every date in order as
three processes, `medallion bronze`, `silver` and `gold` (SQLite warehouse; --postgres for
PostgreSQL), each under /usr/bin/time, and reports per stage the wall time and peak RSS of the
first day and of the last day (history grows between them: days axis), with the rows the day
brought in. The sizes grow partners, orders per day and catalogue together (the default three
sizes are below); `docs/scaling.md` reads its figures from this script.

    size   partners  orders/partner/day  SKUs/partner  days
    S      3         2,000               20,000        6
    M      6         10,000              100,000       6
    L      12        25,000              250,000       6

Usage: bench/stages_bench.py [--sizes S,M,L] [--days 6] [--bin PATH] [--work DIR] [--postgres] [--json]
       (--bin defaults to $CARGO_TARGET_DIR/release/medallion; use a release build)
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import timed  # noqa: E402

SIZES = {
    "XS": (3, 200, 2_000),
    "S": (3, 2_000, 20_000),
    "M": (6, 10_000, 100_000),
    "L": (12, 25_000, 250_000),
}
START = "2026-11-18"


def psql(url, *args):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, *args], check=True, capture_output=True)


def one_size(name, args, binary):
    partners, orders, products = SIZES[name]
    work = os.path.join(args.work, name)
    landing, lake = os.path.join(work, "landing"), os.path.join(work, "lake")
    shutil.rmtree(lake, ignore_errors=True)
    env = dict(os.environ, MEDALLION_LAKE=lake, MEDALLION_LANDING=landing, MEDALLION_RETRIES="0")
    env.pop("MEDALLION_WAREHOUSE", None)
    if args.postgres:
        base, _ = args.database_url.rsplit("/", 1)
        db = f"medallion_stages_bench_{name.lower()}"
        psql(f"{base}/postgres", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"CREATE DATABASE {db}")
        env["MEDALLION_WAREHOUSE"] = f"{base}/{db}"
    if not os.path.isdir(landing):
        timed([binary, "generate", "--partners", str(partners), "--days", str(args.days), "--rows", str(orders),
               "--products", str(products), "--start-date", START, "--out", landing, "-q"], env)
    feed_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(landing) for f in fs)
    start = datetime.date.fromisoformat(START)
    days = []
    for i in range(args.days):
        date = (start + datetime.timedelta(days=i)).isoformat()
        day = {"day": i + 1, "date": date}
        for stage in ("bronze", "silver", "gold"):
            wall, rss, out = timed([binary, stage, "--date", date, "--json", "-q"], env)
            summary = json.loads(out)
            day[stage] = {"seconds": round(wall, 2), "peak_rss_mb": round(rss)}
            if stage == "bronze":
                day["rows_in"] = sum(f["feed"]["rows"] for f in summary.get("feeds", []) if f.get("action") == "landed")
                day["bytes_in"] = sum(f["feed"]["bytes"] for f in summary.get("feeds", []) if f.get("action") == "landed")
            if stage == "gold":
                day["gold_rows"] = sum(t["rows"] for t in summary.get("tables", []))
        days.append(day)
        if not args.json:
            print(f"  {name} day {day['day']} {date}: {day['rows_in']:>9,} rows in; "
                  + "; ".join(f"{s} {day[s]['seconds']:6.2f} s {day[s]['peak_rss_mb']:5} MB" for s in ("bronze", "silver", "gold")),
                  file=sys.stderr, flush=True)
    return {"size": name, "partners": partners, "orders_per_partner_day": orders, "skus_per_partner": products,
            "days": args.days, "feed_mb": round(feed_bytes / 1e6, 1),
            "rows_total": sum(d["rows_in"] for d in days), "per_day": days}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="S,M,L")
    ap.add_argument("--days", type=int, default=6)
    ap.add_argument("--bin")
    ap.add_argument("--work")
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--database-url", default=os.environ.get("MEDALLION_TEST_DATABASE_URL",
                                                             "postgres://postgres@127.0.0.1:5432/medallion_test"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binary = args.bin or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medallion")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no medallion binary at {binary}: build it (cargo build --release -p medallion) or pass --bin")
    args.work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="medallion-stages-bench-"))
    results = [one_size(s, args, binary) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps({"binary": binary, "warehouse": "postgresql" if args.postgres else "sqlite", "sizes": results}, indent=2))
        return
    print(f"binary {binary}, warehouse {'PostgreSQL' if args.postgres else 'SQLite'}; each stage a separate process")
    print(f"{'size':4} {'partners':>8} {'SKUs':>9} {'feeds':>9} {'rows/day':>10} | "
          f"{'stage':6} {'day 1 s':>8} {'day N s':>8} {'day N rows/s':>12} {'peak RSS MB (max)':>17}")
    for r in results:
        first, last = r["per_day"][0], r["per_day"][-1]
        for stage in ("bronze", "silver", "gold"):
            peak = max(d[stage]["peak_rss_mb"] for d in r["per_day"])
            rate = last["rows_in"] / last[stage]["seconds"] if last[stage]["seconds"] else 0
            print(f"{r['size']:4} {r['partners']:>8} {r['partners'] * r['skus_per_partner']:>9,} {r['feed_mb']:>7} MB "
                  f"{last['rows_in']:>10,} | {stage:6} {first[stage]['seconds']:>8.2f} {last[stage]['seconds']:>8.2f} "
                  f"{rate:>12,.0f} {peak:>17}")


if __name__ == "__main__":
    main()
