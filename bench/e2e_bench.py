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
  hostile hand-written feeds (write_hostile): the contract's edge cases over 3 dates and a
          re-run of the second (value grammars, dedup, late orders, status changes, a category
          change, inventory replacement, every file-level defect)
  small   500 x 3 x 3,      catalogue 250 each      (every defect class; the --check size)
  medium  25 000 x 4 x 6,   catalogue 25 000 each   (~1.5 M order items: 2.5 lines per order)
  sf1     100 000 x 4 x 6,  catalogue 250 000 each  (~6 M order items, 1 M SKUs: TPC-H SF1 scale)

Usage: bench/e2e_bench.py [--sizes small,medium] [--bin PATH] [--work DIR] [--no-postgres]
       [--every-date] [--defect-rate 0.02] [--days N] [--json]
       bench/e2e_bench.py --check [--bin PATH] [--postgres]
           (CI: the hostile set and 2 days of the small size, SQLite warehouse only unless
            --postgres, gold compared after every date; exit 1 on any gold disagreement)

Needs: a medallion binary (--bin, default $CARGO_TARGET_DIR/release/medallion), the project
venv's Python with duckdb and pyarrow (--python, default $MEDALLION_VENV/bin/python), psql and
a PostgreSQL server (--database-url, default $MEDALLION_TEST_DATABASE_URL) unless
--no-postgres.
"""
import argparse
import datetime
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
    "sf1": dict(partners=4, days=6, rows=100_000, products=250_000),
    # hand-written (write_hostile): the contract's edge cases, 3 dates and a re-run
    "hostile": dict(partners=2, days=3, rows=0, products=0),
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

class Lazy:
    """Gold of one warehouse, loaded one table at a time (only the last one kept), so that
    comparing large gold does not hold every table in memory at once."""

    def __init__(self, load):
        self.load, self.table, self.value = load, None, None

    def __getitem__(self, t):
        if t != self.table:
            self.table, self.value = None, None
            self.value, self.table = self.load(t), t
        return self.value


def peer_gold(python, db):
    """The peer's gold tables, each as (columns, DuckDB types, rows of text), read through the
    peer's Python (the one with duckdb)."""
    code = (
        "import duckdb, json, sys\n"
        "c = duckdb.connect(sys.argv[1], read_only=True)\n"
        "c.execute('SET enable_progress_bar = false')\n"
        "r = c.execute(f'SELECT * FROM gold.{sys.argv[2]}')\n"
        "json.dump([[d[0] for d in r.description], [str(d[1]) for d in r.description],\n"
        "           [[None if v is None else str(v) for v in row] for row in r.fetchall()]], sys.stdout)\n")

    def load(t):
        proc = subprocess.run([python, "-c", code, db, t], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"reading the peer's gold.{t} from {db}: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout)
    return Lazy(load)


def sqlite_gold(path):
    def load(t):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        cur = con.execute(f"SELECT * FROM {t}")
        out = [[d[0] for d in cur.description], None, [list(r) for r in cur.fetchall()]]
        con.close()
        return out
    return Lazy(load)


def postgres_gold(url):
    """Gold from PostgreSQL, through COPY's text format (NULL is \\N; tab, newline and backslash escaped)."""
    def load(t):
        cols = psql(url, "-At", "-c", f"SELECT column_name FROM information_schema.columns WHERE table_schema = 'gold' "
                                      f"AND table_name = '{t}' ORDER BY ordinal_position").split()
        text = psql(url, "-c", f"\\copy (SELECT * FROM gold.{t}) TO STDOUT")
        rows = [[None if f == "\\N" else _unescape(f) for f in line.split("\t")] for line in text.split("\n") if line]
        return [cols, None, rows]
    return Lazy(load)


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


def compare(name_a, gold_a, name_b, gold_b, grain, limit=5, sizes=None):
    """Differences between two warehouses' gold, as printable lines (empty: they agree)."""
    problems = []
    for t in TABLES:
        cols_a, kinds, rows_a = gold_a[t]
        cols_b, _, rows_b = gold_b[t]
        kind = dict(zip(cols_a, kinds))
        if sizes is not None:
            sizes[t] = len(rows_a)
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


# ---- a hand-written hostile landing zone: the contract's edge cases, over three dates ------

HOSTILE_DATES = ["2026-11-18", "2026-11-19", "2026-11-20"]
HOSTILE_RERUN = "2026-11-19"  # re-run after the last date: gold must not change


def write_hostile(landing, known_bugs=False):
    """Feeds exercising the value rules, dedup, upserts, late orders, status changes, category
    changes, inventory replacement and every file-level defect (see CONTRACT.md). With
    known_bugs, partner `zbug` adds the minimal reproductions of the medallion bugs this
    benchmark found (bench/README.md, Findings); they make the comparison fail until fixed."""
    def put(partner, dataset, date, name, data):
        d = os.path.join(landing, partner, dataset, date)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode("utf-8"))

    d1, d2, d3 = HOSTILE_DATES
    long_sku = "L" * 65
    put("acme", "products", d1, "p1.csv", "\ufeff SKU ,Name,category,brand,PRICE,currency,quantity,updated_at,note\r\n" + "\r\n".join([
        'a-1,"  Lamp \t  Big ",home   & garden,Brand,"$1,234.50",eur,5,2026-11-18T10:00:00Z,x',
        "A-2,Mug,TOYS,,+£12.3456,GBP,0,2026-11-18 10:00:00,",
        "a-3,X,books,,12.34567,,1,,", "a-4,X,books,,\"1,23\",,1,,", "a-5,X,books,,.5,,1,,", "a-6,X,books,,5.,,1,,",
        "a-7,X,books,,123456789012345,,1,,", "a-8,Big,books,,12345678901234.5678,,1,,",
        "a-9,X,books,,1,,3.0,,", "a-10,N\x00ul,books,,1,,1,,", "a-11,X,books,,1,US,1,,", "a-12,Zero,books,,-0.00,,1,,",
        "a-13,X,books,,1,,1,2026-11-15T10:00:00,", "a-14,X,books,,1,,1,2026-11-15 10:00:00Z,",
        "a-15,Frac,books,,1,,1,2026-11-15t10:00:00.123456789z,", "   ", "",
        f"{long_sku},X,books,,1,,1,,", "a-17,é grand,élan   vital,,2,,1,,", "a-18,Q,o'neil mc-donald,,3,,1,,",
        "a-19,X,books,,$-5,,1,,", "a-20,X,books,,-$5,,1,,", "a-21,X,books,,1,,1,,,",
        "a-22,Tab\tName,  ,,1,,1,,", "a-23,Space,\u00a0pet\u3000care\u00a0,,1,,1,,",
        "A-1,Lamp Big,Home & Garden,Brand,1234.5,EUR,7,,"]) + "\r\n")
    put("acme", "products", d1, "p2.csv", "sku,name,category,price,currency\nA-2,Mug,toys,12.99,gbp\n")
    put("acme", "customers", d1, "c.csv", "\n".join([
        "customer_id,email,first_name,last_name,country,signup_date",
        'C1, Ana.Smith@Example.COM ,ana,"  van   der  berg ", us ,2026-11-01T23:30:00-05:00',
        "C2,bad@x,,,USA,", "C3,x @y.com,Bo,,u1,2026-11-01", "C4,c4@example.com,Cy,,DE,2026-02-30",
        "   ,c5@example.com,,,,"]) + "\n")
    put("acme", "customers", d1, "dup.csv", "customer_id,email,EMAIL\nC7,a@b.co,a@b.co\n")
    put("acme", "orders", d1, "o.csv", "\n".join([
        "order_id,customer_id,order_date,status,currency,campaign_id,total_amount",
        "O1,C1,2026-11-18T23:30:00-02:00,COMPLETED, eur ,CMP-1,1.00",
        "O2,C9,2026-11-18 23:59:59,Pending,,,", "O3,C1,2026-11-17T10:00:00Z,returned,,CMP-1,",
        "O4,C2,2026-11-18,completed,,CMP-2,", "O5,C2,2026-11-18T10:00:00+00:00,CANCELED,,CMP-1,",
        "O6,C3,2026-11-18T10:00:60Z,completed,,,", "O7,C3,2026-11-18T10:00:00.5+14:00,completed,usd,,",
        "O8,C1,2026-11-18,completed,,CMP-404,", "O9,C1,2026-11-18,shipped,,,", "O10,C1,2026-11-18,completed,,,1.2.3",
        "O11,C1,2026-11-18T25:00:00Z,completed,,,", "O12,C4,2026-11-18T10:00:00+02:00,Completed,GBP,CMP-3,"]) + "\n")
    put("acme", "orders", d1, "z_missing.csv", "order_id,customer_id,order_date,currency\nO50,C1,2026-11-18,USD\n")
    put("acme", "order_items", d1, "i.csv", "\n".join([
        "order_id,line_number,sku,quantity,unit_price,discount,returned",
        "O1,1,a-1,2,$10.005,0.25,yes", 'O1,2,A-2,1,"$1,000.0001",,', "O1,3,unknown,1,3,1,no", "O1,4,a-1,1,1,1.5,",
        "O2,1,a-1,1,5,,", "O3,1,a-2,3,2.5,0.1,false", "O7,1,a-1,1,0.0051,,", "O8,02,a-8,+2,12345678901234.5678,0.0001,",
        "O99,1,a-1,1,1,,", "O1,1,a-1,2,$10.005,0.25,Y", "O12,1,a-3,3.0,1,,", "O12,2,a-17,1,1,,maybe",
        "O12,3,a-17,4,19.99,0.05,0", "O12,4,a-23,1,0.01,0.5,t", "O5,1,a-1,1,100,,"]) + "\n")
    put("acme", "inventory", d1, "i1.csv", "sku,warehouse,quantity_on_hand\na-1,east,3\na-2,west,1\n")
    put("acme", "inventory", d1, "i2.csv", "sku,warehouse,quantity_on_hand,reorder_level\na-1,east,5,5\na-1,east,6,\nA-2,west,0,\n"
                                           "a-404,east,1,2\na-17,east,-1,\n")
    put("acme", "campaigns", d1, "c.csv", "\n".join([
        "campaign_id,name,channel,start_date,end_date,budget", 'CMP-1,Sale,EMAIL,2026-11-10,2026-11-30,"$1,000"',
        "CMP-2,Free,social,2026-11-10,,0", "CMP-3,Bad,x,2026-11-10,2026-11-01,5", "CMP-4,NoBudget,,2026-11-10T23:00:00-05:00,2026-11-11,"]) + "\n")
    put("acme", "campaigns", d1, "broken.csv", 'campaign_id,name,start_date\nCMP-900,"Unterminated,2026-11-01\n')
    put("beta", "products", d1, "p.csv", "sku,name,category,price\nB-1,Pen,office supplies,1.50\n")
    put("beta", "orders", d1, "o.csv", "order_id,customer_id,order_date,status\nO1,C1,2026-11-18T12:00:00Z,completed\n")
    put("beta", "order_items", d1, "i.csv", "order_id,line_number,sku,quantity,unit_price,returned\nO1,1,b-1,3,1.5,1\n")
    # day 2: status changes, a late item for an order without items, an orphan resolved, a
    # category change (republishes older dates), re-sends that parse equal
    put("acme", "products", d2, "p.csv", "\n".join([
        "sku,name,category,brand,price,currency,quantity",
        "a-1,Lamp Big,sports,Brand,1234.5000,EUR,7", "a-2,Mug,toys,,12.99,GBP,0",
        "a-8,Big,books,,12345678901234.56780,USD,1", "a-12,Zero,books,,0,,1", "a-30,New,toys,,1,,"]) + "\n")
    put("acme", "orders", d2, "o.csv", "\n".join([
        "order_id,customer_id,order_date,status,currency,campaign_id,total_amount",
        "O2,C9,2026-11-18 23:59:59,completed,,,", "O3,C1,2026-11-17T10:00:00Z,completed,,CMP-1,",
        "O99,C8,2026-11-16T08:00:00Z,returned,EUR,CMP-4,", "O12,C4,2026-11-18T10:00:00+02:00,pending,GBP,CMP-3,"]) + "\n")
    put("acme", "order_items", d2, "i.csv", "order_id,line_number,sku,quantity,unit_price,discount,returned\n"
                                            "O4,1,a-30,2,3.333,0.3333,\nO3,2,a-1,1,1,,\n")
    put("acme", "customers", d2, "c.csv", "customer_id,email,first_name,last_name,country,signup_date\nC9,,,Solo,,\nC1,,Ana,,,\n")
    put("beta", "products", d2, "p.csv", b"sku,name,category,price\nB-2,Caf\xe9,grocery,3.50\n")
    # day 3: an empty products feed (a product_changes row of zeros), one of only rejected rows
    put("acme", "products", d3, "p.csv", "sku,name,category,price\n")
    put("beta", "products", d3, "p.csv", "sku,name,category,price\nB-3,,x,1\nB-4,Y,x,-1\n")
    put("acme", "inventory", d3, "i.csv", "sku,warehouse,quantity_on_hand,reorder_level\na-30,west,0,0\n")
    put("acme", "orders", d3, "o.csv", "order_id,customer_id,order_date,status\nO7,C3,2026-11-18T10:00:00.5+14:00,returned\n")
    if known_bugs:
        # SQLite warehouse: NUMERIC affinity stores money as REAL, 99999999999999.99 → .98
        put("zbug", "orders", d2, "o.csv", "order_id,customer_id,order_date,status\nZ1,C1,2026-11-19T10:00:00Z,completed\n")
        put("zbug", "order_items", d2, "i.csv", "order_id,line_number,sku,quantity,unit_price\nZ1,1,X-1,1,99999999999999.99\n")
        # gold check revenue_share_sums_to_one tests the rounded net: exact 0.0001 > 0, share 1.0,
        # the check fails and nothing is published
        put("zbug", "orders", d3, "o.csv", "order_id,customer_id,order_date,status\nZ2,C1,2026-11-15T10:00:00Z,completed\n")
        put("zbug", "order_items", d3, "i.csv", "order_id,line_number,sku,quantity,unit_price\nZ2,1,X-1,1,0.0001\n")


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
    if size == "hostile":
        shutil.rmtree(landing, ignore_errors=True)
        write_hostile(landing, args.known_bugs)
        dates = HOSTILE_DATES + [HOSTILE_RERUN]
    else:
        dates = [(datetime.date.fromisoformat(START) + datetime.timedelta(days=i)).isoformat() for i in range(params["days"])]
        stamp = os.path.join(work, "generated.json")
        gen = dict(params, seed=SEED, start=START)
        if not (os.path.exists(stamp) and json.load(open(stamp)) == gen):
            shutil.rmtree(landing, ignore_errors=True)
            secs, _, _ = timed([args.bin, "generate", "--partners", str(params["partners"]), "--days", str(params["days"]),
                                "--rows", str(params["rows"]), "--products", str(params["products"]), "--seed", str(SEED),
                                "--defect-rate", str(params["defect_rate"]), "--start-date", START, "--out", landing, "-q"])
            json.dump(gen, open(stamp, "w"))
            log(args, f"[{size}] generated {landing} in {secs:.1f} s")
    feed_bytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(landing) for f in fs if f.endswith(".csv"))
    items = 0
    for dp, _, fs in os.walk(landing):
        if os.sep + "order_items" + os.sep in dp + os.sep:
            for f in fs:
                with open(os.path.join(dp, f), "rb") as fh:
                    items += max(0, sum(1 for _ in fh) - 1)

    systems = {s: {} for s in args.systems if s != "medallion_postgres" or args.postgres}
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
    if "medallion_postgres" in systems:
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
    for d in dates:
        runs = {
            "peer": [args.python, os.path.join(HERE, "peer_duckdb.py"), "--landing", landing, "--db", peer_db, "--date", d, "--json"],
            "medallion_sqlite": [args.bin, "run", "--date", d, "--json", "-q"],
            "medallion_postgres": [args.bin, "run", "--date", d, "--json", "-q"],
        }
        for s in systems:
            try:
                wall, rss, out = timed(runs[s], envs.get(s))
            except SystemExit as e:  # a failed run: a finding, and the other dates still run
                if s == "peer":
                    raise
                problems.append(f"{s} {d}: {e}")
                log(args, f"[{size}] {d} {s}: FAILED ({e})")
                continue
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
        if "peer" in systems and len(systems) > 1 and (args.every_date or d == dates[-1] or size == "hostile"):
            peer = peer_gold(args.python, peer_db)
            sizes = {}
            found = []
            if "medallion_sqlite" in systems:
                found += compare("peer", peer, "medallion_sqlite", sqlite_gold(os.path.join(lakes["medallion_sqlite"], "warehouse.db")),
                                 grain, sizes=sizes)
            if "medallion_postgres" in systems:
                found += compare("peer", peer, "medallion_postgres", postgres_gold(pg_url), grain, sizes=sizes)
            for p in found:
                log(args, f"[{size}] after {d}: {p}", always=True)
            problems += [f"after {d}: {p}" for p in found]
            if not found:
                log(args, f"[{size}] after {d}: gold agrees ({', '.join(f'{t} {n}' for t, n in sizes.items())} rows)")
    peer_wall = systems["peer"]["wall_seconds"] if "peer" in systems else None
    result = {"size": size, **params, "dates": len(dates), "order_items_in_feeds": items, "feed_mb": round(feed_bytes / 2**20, 1),
              "binary": args.bin, "gold_compared": "peer" in systems and len(systems) > 1, "gold_agrees": not problems, "problems": problems[:50]}
    for s, r in systems.items():
        result[s] = {"wall_seconds": round(r["wall_seconds"], 2), "peak_rss_mb": round(r["peak_rss_mb"]),
                     "stages": {k: round(v, 2) for k, v in r["stages"].items()}, "dates": r["dates"]}
        if s != "peer" and peer_wall:
            result[s]["vs_peer"] = round(r["wall_seconds"] / peer_wall, 3) if peer_wall else None
    return result


def log(args, msg, always=False):
    """Progress: on stdout, or on stderr with --json (stdout then has only the JSON)."""
    print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", help=f"comma-separated, of {', '.join(SIZES)} (default: small,medium; with --check: hostile,small)")
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
    ap.add_argument("--systems", default="peer,medallion_sqlite,medallion_postgres",
                    help="which to run (gold is compared when the peer and another run)")
    ap.add_argument("--known-bugs", action="store_true", help="hostile size: add the reproductions of known medallion bugs")
    ap.add_argument("--every-date", action="store_true", help="compare gold after every date, not only the last")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.check:
        args.sizes, args.every_date = args.sizes or "hostile,small", True
        args.days = args.days or 2
    if args.postgres is None:
        args.postgres = not args.check
    args.systems = args.systems.split(",")
    for s in args.systems:
        if s not in ("peer", "medallion_sqlite", "medallion_postgres"):
            ap.error(f"unknown system {s!r}")
    sizes = (args.sizes or "small,medium").split(",")
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
                  + ("not compared" if not r["gold_compared"] else "agrees" if r["gold_agrees"]
                     else f"DISAGREES ({len(r['problems'])} problems)"))
    if any(not r["gold_agrees"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
