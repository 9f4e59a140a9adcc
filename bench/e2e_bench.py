#!/usr/bin/env python3
"""End-to-end benchmark: medallion against its DuckDB peer (bench/peer_duckdb.py) on the same
generated feeds, every gold table compared to the cent.

For each size it generates feeds with `medallion generate` (once: kept in WORK/<size>/landing
and reused), then, date by date like a nightly pipeline:
  - the peer, one process per date on a DuckDB file kept on disk (WORK/<size>/peer.duckdb);
  - `medallion run --date D --json` with the embedded SQLite warehouse (WORK/<size>/lake-sqlite);
  - `medallion run --date D --json` publishing to PostgreSQL (a fresh database
    medallion_e2e_<size> at --database-url's server; lake WORK/<size>/lake-pg).
Every process runs under /usr/bin/time -v (benchlib.timed): wall time and peak RSS per
process; the stage times come from medallion's `--json` report and the peer's own report.
After the last date (and, with --every-date, after each date) every gold table of the three
is compared: every row by its grain, every column; money as exact decimals (to the cent),
ratios as doubles within 1e-9 relative. A disagreement is printed with its grain key and both
values, and makes the exit status 1.

Sizes (orders per partner per day x partners x days; products per partner):
  small   500 x 3 x 3,      catalogue 250 each      (every defect class; the --check size)
  medium  25 000 x 4 x 6,   catalogue 25 000 each   (~1.2 M order items)
  sf1     125 000 x 4 x 6,  catalogue 250 000 each  (~6 M order items, 1 M SKUs: TPC-H SF1 scale)

Usage: bench/e2e_bench.py [--sizes small,medium] [--bin PATH] [--work DIR] [--no-postgres]
       [--every-date] [--defect-rate 0.02] [--days N] [--json]
       bench/e2e_bench.py --check [--bin PATH] [--postgres]
           (CI: small size, SQLite warehouse only unless --postgres, gold compared after
            every date; exit 1 on any gold disagreement)

Needs: a medallion binary (--bin, default $CARGO_TARGET_DIR/release/medallion), the project
venv's Python with duckdb and pyarrow (--python, default $MEDALLION_VENV/bin/python), psql and
a PostgreSQL server (--database-url, default $MEDALLION_TEST_DATABASE_URL) unless
--no-postgres.
"""
import argparse
import csv
import datetime
import io
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import timed  # noqa: E402

TABLES = ["daily_sales", "category_kpis", "order_kpis", "partner_revenue", "product_changes",
          "dim_products", "customer_orders", "inventory_status", "campaign_performance"]
SIZES = {
    "small": dict(partners=3, days=3, rows=500, products=250),
    "medium": dict(partners=4, days=6, rows=25_000, products=25_000),
    "sf1": dict(partners=4, days=6, rows=125_000, products=250_000),
}
START = "2026-11-18"
SEED = 42


def grains():
    """Each gold table's grain, from the models' descriptions (gold/models/<table>.toml)."""
    out = {}
    for t in TABLES:
        with open(os.path.join(HERE, "..", "gold", "models", f"{t}.toml"), "rb") as f:
            out[t] = tomllib.load(f)["grain"]
    return out


# ---- reading gold from the three warehouses, as typed Python values -----------------------

def peer_gold(python, db):
    """The peer's gold tables: {table: (columns, kinds, rows)} read through its own Python."""
    code = (
        "import duckdb, json, sys\n"
        "c = duckdb.connect(sys.argv[1], read_only=True)\n"
        "out = {}\n"
        f"for t in {TABLES!r}:\n"
        "    r = c.execute(f'SELECT * FROM gold.{t}')\n"
        "    cols = [d[0] for d in r.description]\n"
        "    kinds = [str(d[1]) for d in r.description]\n"
        "    out[t] = [cols, kinds, [[None if v is None else str(v) for v in row] for row in r.fetchall()]]\n"
        "json.dump(out, sys.stdout)\n")
    proc = subprocess.run([python, "-c", code, db], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"reading the peer's gold from {db}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def sqlite_gold(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out = {}
    for t in TABLES:
        try:
            cur = con.execute(f"SELECT * FROM {t}")
        except sqlite3.OperationalError:
            cur = con.execute(f'SELECT * FROM "gold.{t}"')
        out[t] = [[d[0] for d in cur.description], None, [list(r) for r in cur.fetchall()]]
    con.close()
    return out


def postgres_gold(url):
    """Gold from PostgreSQL, through COPY's text format (NULL is \\N; tab, newline and backslash escaped)."""
    out = {}
    for t in TABLES:
        cols = psql(url, "-At", "-c", f"SELECT column_name FROM information_schema.columns WHERE table_schema = 'gold' "
                                      f"AND table_name = '{t}' ORDER BY ordinal_position").split()
        text = psql(url, "-c", f"\\copy (SELECT * FROM gold.{t}) TO STDOUT")
        rows = [[None if f == "\\N" else _unescape(f) for f in line.split("\t")] for line in text.split("\n") if line]
        out[t] = [cols, None, rows]
    return out


def _unescape(f):
    if "\\" not in f:
        return f
    esc = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
    res, i = [], 0
    while i < len(f):
        if f[i] == "\\" and i + 1 < len(f):
            res.append(esc.get(f[i + 1], f[i + 1]))
            i += 2
        else:
            res.append(f[i])
            i += 1
    return "".join(res)


def norm(kind, v):
    """A gold value in a comparable form, driven by the peer's column type."""
    if v is None:
        return None
    if kind.startswith("DECIMAL"):
        return Decimal(str(v)).quantize(Decimal("0.01"))
    if kind == "DOUBLE":
        return float(v)
    if kind in ("BIGINT", "INTEGER", "HUGEINT"):
        return int(v)
    if kind == "BOOLEAN":
        if isinstance(v, str):
            return v.strip().lower() in ("true", "t", "1")
        return bool(v)
    if kind == "DATE":
        if isinstance(v, (int, float)):  # days since the epoch
            return (datetime.date(1970, 1, 1) + datetime.timedelta(days=int(v))).isoformat()
        return str(v)[:10]
    return str(v)


def same(kind, a, b):
    if a is None or b is None:
        return a is None and b is None
    if kind == "DOUBLE":
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def compare(name_a, gold_a, name_b, gold_b, kinds, grain, limit=5):
    """Differences between two warehouses' gold, as printable lines (empty: they agree)."""
    problems = []
    for t in TABLES:
        cols_a, _, rows_a = gold_a[t]
        cols_b, _, rows_b = gold_b[t]
        kind = dict(zip(gold_a[t][0], kinds[t]))
        if set(cols_a) != set(cols_b):
            problems.append(f"{t}: columns differ: {name_a} {cols_a} vs {name_b} {cols_b}")
            continue
        order = cols_a
        ib = [cols_b.index(c) for c in order]
        key_idx = [order.index(c) for c in grain[t]]

        def index(rows, reorder):
            d = {}
            for r in rows:
                r = [r[i] for i in reorder] if reorder else r
                vals = tuple(norm(kind[c], v) for c, v in zip(order, r))
                k = tuple(vals[i] for i in key_idx)
                if k in d:
                    problems.append(f"{t}: grain {dict(zip(grain[t], k))} twice in one warehouse")
                d[k] = vals
            return d

        da, db = index(rows_a, None), index(rows_b, ib)
        diffs = []
        for k in sorted(set(da) | set(db), key=lambda k: tuple("" if x is None else str(x) for x in k)):
            a, b = da.get(k), db.get(k)
            key = ", ".join(f"{c}={x}" for c, x in zip(grain[t], k))
            if a is None or b is None:
                diffs.append(f"{t} [{key}]: only in {name_a if b is None else name_b}: {a or b}")
                continue
            cols = [c for c, x, y in zip(order, a, b) if not same(kind[c], x, y)]
            if cols:
                diffs.append(f"{t} [{key}]: " + "; ".join(
                    f"{c}: {name_a}={a[order.index(c)]} {name_b}={b[order.index(c)]}" for c in cols))
        if diffs:
            problems.append(f"{t}: {len(diffs)} of {max(len(da), len(db))} rows differ between {name_a} and {name_b}")
            problems += ["  " + d for d in diffs[:limit]]
    return problems


# ---- running ------------------------------------------------------------------------------

def psql(url, *args):
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, *args], check=True,
                          capture_output=True, text=True).stdout


def medallion_stages(out, ledger):
    """medallion run's report (`--json` on stdout) and its stage seconds: each stage job's
    started_at..finished_at from the run ledger (`ledger(run_id)` gives (stage, started,
    finished) rows), plus gold's compute and publish seconds from the report."""
    rep = json.loads(out)
    stages = {}
    for stage, started, finished in ledger(rep["run_id"]):
        t0, t1 = (datetime.datetime.fromisoformat(x.replace("Z", "+00:00")) for x in (started, finished))
        stages[stage] = (t1 - t0).total_seconds()
    for s in rep.get("stages", []):
        if s.get("stage") == "gold" and isinstance(s.get("summary"), dict):
            g = s["summary"]
            for k in ("compute_seconds", "publish_seconds"):
                if k in g:
                    stages["gold_" + k[:-8]] = float(g[k])
    return rep, stages


def sqlite_ledger(path):
    def jobs(run_id):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = con.execute("SELECT stage, started_at, finished_at FROM medallion_jobs WHERE run_id = ? "
                           "AND finished_at IS NOT NULL", (run_id,)).fetchall()
        con.close()
        return rows
    return jobs


def postgres_ledger(url):
    def jobs(run_id):
        out = psql(url, "-At", "-F", "\t", "-c",
                   "SELECT stage, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                   "to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                   f"FROM medallion.jobs WHERE run_id = '{run_id}' AND finished_at IS NOT NULL")
        return [tuple(line.split("\t")) for line in out.splitlines() if line]
    return jobs


def bench_size(args, size, params, grain):
    work = os.path.join(args.work, size)
    os.makedirs(work, exist_ok=True)
    landing = os.path.join(work, "landing")
    dates = [(datetime.date.fromisoformat(START) + datetime.timedelta(days=i)).isoformat() for i in range(params["days"])]
    stamp = os.path.join(work, "generated.json")
    gen = dict(params, seed=SEED, start=START)
    if not (os.path.exists(stamp) and json.load(open(stamp)) == gen):
        shutil.rmtree(landing, ignore_errors=True)
        secs, _, _ = timed([args.bin, "generate", "--partners", str(params["partners"]), "--days", str(params["days"]),
                            "--rows", str(params["rows"]), "--products", str(params["products"]), "--seed", str(SEED),
                            "--defect-rate", str(params["defect_rate"]),
                            "--start-date", START, "--out", landing, "-q"])
        json.dump(gen, open(stamp, "w"))
        log(args, f"[{size}] generated {landing} in {secs:.1f} s")
    feed_bytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(landing) for f in fs if f.endswith(".csv"))
    items = 0
    for dp, _, fs in os.walk(landing):
        if os.sep + "order_items" + os.sep in dp + os.sep:
            for f in fs:
                with open(os.path.join(dp, f), "rb") as fh:
                    items += max(0, sum(1 for _ in fh) - 1)

    systems = {"peer": {}, "medallion_sqlite": {}}
    if args.postgres:
        systems["medallion_postgres"] = {}
    peer_db = os.path.join(work, "peer.duckdb")
    for p in (peer_db, peer_db + ".wal"):
        if os.path.exists(p):
            os.remove(p)
    lakes = {"medallion_sqlite": os.path.join(work, "lake-sqlite"), "medallion_postgres": os.path.join(work, "lake-pg")}
    envs = {}
    for s, lake in lakes.items():
        if s not in systems:
            continue
        shutil.rmtree(lake, ignore_errors=True)
        envs[s] = {k: v for k, v in os.environ.items() if k != "MEDALLION_WAREHOUSE"}
        envs[s].update(MEDALLION_LAKE=lake, MEDALLION_LANDING=landing)
    pg_url = None
    if args.postgres:
        base, _ = args.database_url.rsplit("/", 1)
        db = f"medallion_e2e_{size}"
        psql(f"{base}/postgres", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"CREATE DATABASE {db}")
        pg_url = f"{base}/{db}"
        envs["medallion_postgres"]["MEDALLION_WAREHOUSE"] = pg_url

    ledgers = {"medallion_sqlite": sqlite_ledger(os.path.join(lakes["medallion_sqlite"], "warehouse.db")),
               "medallion_postgres": postgres_ledger(pg_url) if pg_url else None}
    problems = []
    for s in systems:
        systems[s] = {"wall_seconds": 0.0, "peak_rss_mb": 0.0, "stages": {}, "dates": []}
    kinds = None
    for d in dates:
        runs = {
            "peer": [args.python, os.path.join(HERE, "peer_duckdb.py"), "--landing", landing, "--db", peer_db, "--date", d, "--json"],
            "medallion_sqlite": [args.bin, "run", "--date", d, "--json", "-q"],
            "medallion_postgres": [args.bin, "run", "--date", d, "--json", "-q"],
        }
        for s in systems:
            wall, rss, out = timed(runs[s], envs.get(s))
            if s == "peer":
                rep = json.loads(out.strip().splitlines()[-1])
                stages = {k[:-8]: rep[k] for k in ("bronze_seconds", "silver_seconds", "gold_seconds")}
            else:
                rep, stages = medallion_stages(out, ledgers[s])
                if rep.get("status") != "completed":
                    problems.append(f"{s} {d}: run status {rep.get('status')}: {rep.get('error')}")
            r = systems[s]
            r["wall_seconds"] += wall
            r["peak_rss_mb"] = max(r["peak_rss_mb"], rss)
            for k, v in stages.items():
                r["stages"][k] = r["stages"].get(k, 0.0) + float(v)
            r["dates"].append({"date": d, "wall_seconds": round(wall, 2), "peak_rss_mb": round(rss),
                               "stages": {k: round(float(v), 2) for k, v in stages.items()}})
            log(args, f"[{size}] {d} {s:<18} {wall:7.2f} s  {rss:7.0f} MB  "
                      + " ".join(f"{k} {float(v):.2f}" for k, v in stages.items()))
        if args.every_date or d == dates[-1]:
            peer = peer_gold(args.python, peer_db)
            kinds = {t: peer[t][1] for t in TABLES}
            found = compare("peer", peer, "medallion_sqlite", sqlite_gold(os.path.join(lakes["medallion_sqlite"], "warehouse.db")),
                            kinds, grain)
            if pg_url:
                found += compare("peer", peer, "medallion_postgres", postgres_gold(pg_url), kinds, grain)
            for p in found:
                log(args, f"[{size}] after {d}: {p}", always=True)
            problems += [f"after {d}: {p}" for p in found]
            if not found:
                log(args, f"[{size}] after {d}: gold agrees ({', '.join(f'{t} {len(peer[t][2])}' for t in TABLES)} rows)")
    peer_wall = systems["peer"]["wall_seconds"]
    result = {"size": size, **params, "dates": len(dates), "order_items_in_feeds": items, "feed_mb": round(feed_bytes / 2**20, 1),
              "binary": args.bin, "gold_agrees": not problems, "problems": problems[:50]}
    for s, r in systems.items():
        result[s] = {"wall_seconds": round(r["wall_seconds"], 2), "peak_rss_mb": round(r["peak_rss_mb"]),
                     "stages": {k: round(v, 2) for k, v in r["stages"].items()}, "dates": r["dates"]}
        if s != "peer":
            result[s]["vs_peer"] = round(r["wall_seconds"] / peer_wall, 3) if peer_wall else None
    return result


def log(args, msg, always=False):
    if always or not args.json:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="small,medium", help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--check", action="store_true", help="CI mode: small size, gold compared after every date, exit 1 on a disagreement")
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medallion"))
    ap.add_argument("--python", default=os.path.join(os.environ.get("MEDALLION_VENV", os.path.expanduser("~/.cache/medallion/venv")), "bin", "python"))
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "medallion-e2e-bench"))
    ap.add_argument("--postgres", dest="postgres", action="store_true", default=None,
                    help="also run medallion with a PostgreSQL warehouse (the default, except with --check)")
    ap.add_argument("--no-postgres", dest="postgres", action="store_false")
    ap.add_argument("--defect-rate", type=float, default=0.02, help="medallion generate --defect-rate (default 0.02, its own default)")
    ap.add_argument("--days", type=int, help="override the size's number of days")
    ap.add_argument("--database-url", default=os.environ.get("MEDALLION_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/medallion_test"))
    ap.add_argument("--every-date", action="store_true", help="compare gold after every date, not only the last")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.check:
        args.sizes, args.every_date = "small", True
    if args.postgres is None:
        args.postgres = not args.check
    sizes = args.sizes.split(",")
    for s in sizes:
        if s not in SIZES:
            ap.error(f"unknown size {s!r} (known: {', '.join(SIZES)})")
    if not os.path.exists(args.bin):
        ap.error(f"no medallion binary at {args.bin} (--bin)")
    args.bin = os.path.abspath(args.bin)
    args.work = os.path.abspath(args.work)
    grain = grains()
    results = [bench_size(args, s, dict(SIZES[s], **({"days": args.days} if args.days else {}), defect_rate=args.defect_rate), grain)
               for s in sizes]
    if args.json:
        print(json.dumps({"binary": args.bin, "cores": os.cpu_count(), "sizes": results}, indent=2))
    else:
        print()
        print(f"{'size':8}{'system':20}{'wall s':>9}{'vs peer':>9}{'peak MB':>9}  stages (s, summed over dates)")
        for r in results:
            for s in ("peer", "medallion_sqlite", "medallion_postgres"):
                if s in r:
                    x = r[s]
                    print(f"{r['size']:8}{s:20}{x['wall_seconds']:>9.2f}{x.get('vs_peer') or 1.0:>9.2f}{x['peak_rss_mb']:>9}  "
                          + ", ".join(f"{k} {v:.2f}" for k, v in x["stages"].items()))
            print(f"{r['size']:8}{r['order_items_in_feeds']} order items, {r['feed_mb']} MB of feeds; gold "
                  + ("agrees" if r["gold_agrees"] else f"DISAGREES ({len(r['problems'])} problems)"))
    if any(not r["gold_agrees"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
