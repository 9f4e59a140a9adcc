#!/usr/bin/env python3
"""Silver benchmark: two days of feeds at scale through bronze and silver with a release
binary. Day 1 builds the products table (PARTNERS x PRODUCTS SKUs, 1M by default); day 2 is the
measured steady-state day: about 1M order items plus ~23% of the catalog re-sent (changed,
unchanged and new SKUs) upserted against the 1M-SKU table. Reports rows/s and peak RSS
(/usr/bin/time) of each silver run.

Usage: bench/silver_bench.py [--partners 4] [--orders 100000] [--products 250000] [--work DIR] [--json]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import timed  # noqa: E402

D1, D2 = "2026-11-19", "2026-11-20"




def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partners", type=int, default=4)
    ap.add_argument("--orders", type=int, default=100_000, help="orders per partner per day (about 2.5 items each)")
    ap.add_argument("--products", type=int, default=250_000, help="SKUs per partner")
    ap.add_argument("--bin", default=None)
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binary = args.bin or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medallion")
    work = args.work or tempfile.mkdtemp(prefix="medallion-silver-bench-")
    landing, lake = os.path.join(work, "landing"), os.path.join(work, "lake")
    shutil.rmtree(lake, ignore_errors=True)
    env = dict(os.environ, MEDALLION_LAKE=lake, MEDALLION_LANDING=landing)
    if not os.path.isdir(landing):
        subprocess.run([binary, "generate", "--out", landing, "--partners", str(args.partners), "--days", "2",
                        "--start-date", D1, "--rows", str(args.orders), "--products", str(args.products),
                        "--defect-rate", "0.01", "-q"], check=True, env=env)
    days = {}
    for d in (D1, D2):
        b_s, b_rss, _ = timed([binary, "bronze", "--date", d, "-q", "--json"], env)
        s_s, s_rss, out = timed([binary, "silver", "--date", d, "--json"], env)
        rep = json.loads(out)
        rows = sum(f["rows_read"] for f in rep["feeds"])
        items = sum(f["rows_read"] for f in rep["feeds"] if f["dataset"] == "order_items")
        products = sum(f["rows_read"] for f in rep["feeds"] if f["dataset"] == "products")
        diff = {k: sum(p[k] for p in rep["product_changes"]) for k in ("inserted", "updated", "unchanged", "skipped", "duplicate")}
        days[d] = {
            "bronze_seconds": round(b_s, 1), "bronze_peak_rss_mb": round(b_rss),
            "silver_seconds": round(s_s, 1), "silver_peak_rss_mb": round(s_rss),
            "rows_read": rows, "order_items": items, "products_rows": products,
            "silver_rows_per_s": round(rows / s_s), "products_diff": diff,
        }
    result = {"partners": args.partners, "skus": args.partners * args.products, "days": days, "cores": os.cpu_count()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.partners} partners, {result['skus']} SKUs in the catalog")
        print(f"{'day':12}{'rows':>10}{'items':>10}{'products':>10}{'silver s':>10}{'rows/s':>10}{'peak RSS MB':>13}{'bronze s':>10}")
        for d, r in days.items():
            print(f"{d:12}{r['rows_read']:>10}{r['order_items']:>10}{r['products_rows']:>10}{r['silver_seconds']:>10}"
                  f"{r['silver_rows_per_s']:>10}{r['silver_peak_rss_mb']:>13}{r['bronze_seconds']:>10}")
            print(f"{'':12}products diff: {r['products_diff']}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
