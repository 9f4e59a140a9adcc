#!/usr/bin/env python3
"""Bronze benchmark: generates about SIZE MB of partner feeds, lands them with a release
`medallion bronze`, and converts the same CSV files to Parquet with DuckDB in the same run as
the peer figure. Reports MB/s, rows/s and peak RSS (ru_maxrss of each child process).

Usage: bench/bronze_bench.py [--size-mb 1000] [--bin target/release/medallion] [--work DIR]
Prints a table and, with --json, one JSON object. Needs `duckdb` importable by the Python
running the DuckDB part (scripts/services.sh installs it into the project venv).
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

DATE = "2026-11-20"
# Bytes of feed per generated order row (all six datasets), measured on this generator.
BYTES_PER_ROW = 210






DUCKDB_SCRIPT = r"""
import duckdb, glob, os, sys, json
landing, out, date = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
files = sorted(glob.glob(os.path.join(landing, "*", "*", date, "*.csv")))
ok = failed = rows = 0
for i, f in enumerate(files):
    target = os.path.join(out, f"{i:05}.parquet")
    try:
        con.execute(
            "COPY (SELECT * FROM read_csv(?, all_varchar=true, header=true, strict_mode=true)) TO '" + target + "' (FORMAT parquet, COMPRESSION snappy)",
            [f],
        )
        rows += con.execute("SELECT count(*) FROM read_parquet(?)", [target]).fetchone()[0]
        ok += 1
    except Exception:
        failed += 1
print(json.dumps({"files": ok, "failed": failed, "rows": rows}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=1000)
    ap.add_argument("--partners", type=int, default=8)
    ap.add_argument("--bin", default=None)
    venv = os.environ.get("MEDALLION_VENV") or os.path.expanduser("~/.cache/medallion/venv")
    ap.add_argument("--python", default=os.path.join(venv, "bin", "python"), help="a Python with duckdb (default: the project venv)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed after)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binary = args.bin or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medallion")
    python = args.python if os.path.exists(args.python) else sys.executable
    work = args.work or tempfile.mkdtemp(prefix="medallion-bench-")
    landing = os.path.join(work, "landing")
    lake = os.path.join(work, "lake")
    duck_out = os.path.join(work, "duckdb")
    for d in (lake, duck_out):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(duck_out, exist_ok=True)

    rows_per_partner = max(100, int(args.size_mb * 1e6 / BYTES_PER_ROW / args.partners))
    if not os.path.isdir(landing):
        gen_s, _, _ = timed([binary, "generate", "--out", landing, "--partners", str(args.partners), "--days", "1",
                             "--start-date", DATE, "--rows", str(rows_per_partner), "--defect-rate", "0.01", "-q"])
    else:
        gen_s = 0.0
    size = 0
    nfiles = 0
    for root, _, files in os.walk(landing):
        for f in files:
            size += os.path.getsize(os.path.join(root, f))
            nfiles += 1

    env = dict(os.environ, MEDALLION_LAKE=lake, MEDALLION_LANDING=landing)
    b_s, b_rss, b_out = timed([binary, "bronze", "--date", DATE, "--json", "-q"], env=env)
    report = json.loads(b_out)
    rows = report["rows_landed"]
    landed_bytes = report["bytes_landed"]

    d_s, d_rss, d_out = timed([python, "-c", DUCKDB_SCRIPT, landing, duck_out, DATE])
    duck = json.loads(d_out.strip().splitlines()[-1])

    result = {
        "input": {"files": nfiles, "mb": round(size / 1e6, 1), "partners": args.partners, "rows_per_partner_day": rows_per_partner},
        "generate_seconds": round(gen_s, 1),
        "medallion_bronze": {
            "seconds": round(b_s, 2), "mb_per_s": round(size / 1e6 / b_s, 1), "rows_per_s": round(rows / b_s),
            "rows": rows, "landed": report["landed"], "quarantined": report["quarantined"], "peak_rss_mb": round(b_rss, 1),
            "landed_mb": round(landed_bytes / 1e6, 1),
        },
        "duckdb_csv_to_parquet": {
            "seconds": round(d_s, 2), "mb_per_s": round(size / 1e6 / d_s, 1), "rows_per_s": round(duck["rows"] / d_s),
            "rows": duck["rows"], "files": duck["files"], "failed_files": duck["failed"], "peak_rss_mb": round(d_rss, 1),
        },
        "machine": {"cores": os.cpu_count()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        m, d = result["medallion_bronze"], result["duckdb_csv_to_parquet"]
        print(f"input: {nfiles} files, {result['input']['mb']} MB, {rows} rows landed (date {DATE})")
        print(f"{'':24}{'seconds':>10}{'MB/s':>10}{'rows/s':>12}{'peak RSS MB':>14}")
        print(f"{'medallion bronze':24}{m['seconds']:>10}{m['mb_per_s']:>10}{m['rows_per_s']:>12}{m['peak_rss_mb']:>14}")
        print(f"{'duckdb csv->parquet':24}{d['seconds']:>10}{d['mb_per_s']:>10}{d['rows_per_s']:>12}{d['peak_rss_mb']:>14}")
        print("medallion also writes the raw copy, hashes every byte and checks every field's UTF-8;"
              " duckdb only converts.")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
