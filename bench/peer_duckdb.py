#!/usr/bin/env python3
"""A DuckDB peer of medallion: the same data contract (/work/shared/CONTRACT.md, the
repository's `medallion contract`), written independently from it, to cross-check medallion's
gold and to time it against a general-purpose engine.

It runs like a nightly pipeline: one invocation per run date (or several dates in order),
each one transaction on a DuckDB database file kept on disk, carrying state between days:

- bronze: every `{landing}/{partner}/{dataset}/{date}/*.csv` in landing order (partner,
  dataset, file name). Files must be strict UTF-8 (a leading BOM dropped); the header is read
  with Python's `csv` module, the rows by Arrow's C++ CSV reader (RFC 4180, every field as
  text). An unterminated quote (`invalid_csv`), a header naming a column twice
  (`duplicate_column`) or lacking a required one (`missing_column`) quarantines the file;
  extra columns are ignored. Empty lines are skipped and not counted; rows with the wrong
  number of fields are `malformed_row`. Rows are staged in batches into TEMP tables.
- silver (SQL): the value rules (trim, whitespace collapse in strings, money/int/bool/date/
  timestamp/currency/enum grammars, NUL rejection), one reason per rejected row (the first
  failing column in contract order), in-run dedup (later file, then later row wins), upserts
  of current state by (partner, key) with a version (run date, file name, row number) so that
  an older version never overwrites a newer one (re-runs and backfills are safe), products
  change detection against the state before the run, SCD2 product history, first-seen and
  last-changed dates, inventory snapshots per (partner, run date) replaced whole by the
  day's latest file. `gold.product_changes` keeps a (run date, partner)'s first counts: a
  re-run of a date adds nothing new.
- gold (SQL): all nine tables recomputed from the current silver state after every run and
  replaced in the same transaction (gold is a pure function of silver, so a full recompute
  is the simplest correct publish; its cost grows with history). Money is DECIMAL(18,4) in
  silver, exact DECIMAL(38,8) sums, rounded half away from zero to 2 places; ratios are
  DOUBLE from exact sums.

What it does not do (not needed for gold): `total_mismatch` warnings and the orphan count of
the run report, schema-drift reports, the raw-copy/Parquet bronze lake.

Usage: bench/peer_duckdb.py --landing DIR --db FILE --date YYYY-MM-DD [--date ...] [--json]
       bench/peer_duckdb.py --db FILE --dump-gold DIR   (every gold table as sorted CSV)

Needs duckdb == DUCKDB_VERSION below (the project venv `$MEDALLION_VENV` has it:
`$MEDALLION_VENV/bin/pip install duckdb==2.0.1 pyarrow`).
"""
import argparse
import codecs
import csv
import io
import itertools
import json
import os
import re
import time

DUCKDB_VERSION = "2.0.1"

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

if duckdb.__version__ != DUCKDB_VERSION:
    raise SystemExit(f"peer_duckdb.py is pinned to duckdb {DUCKDB_VERSION}, found {duckdb.__version__}")

PARTNER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
BATCH_ROWS = 200_000

# The contract's datasets: (column, kind, required), in contract column order (the order of
# reason codes). Kinds are defined by `typed()` below.
DATASETS = {
    "products": (["sku"], [
        ("sku", "sku", True), ("name", "string", True), ("category", "title", True),
        ("brand", "string", False), ("price", "money_nonneg", True), ("currency", "currency", False),
        ("quantity", "int_nonneg", False), ("updated_at", "timestamp", False)]),
    "customers": (["customer_id"], [
        ("customer_id", "string", True), ("email", "email", False), ("first_name", "string", False),
        ("last_name", "string", False), ("country", "country", False), ("signup_date", "date", False)]),
    "orders": (["order_id"], [
        ("order_id", "string", True), ("customer_id", "string", True), ("order_date", "timestamp", True),
        ("status", "status", True), ("currency", "currency", False), ("campaign_id", "string", False),
        ("total_amount", "money", False)]),
    "order_items": (["order_id", "line_number"], [
        ("order_id", "string", True), ("line_number", "int_pos", True), ("sku", "upper", True),
        ("quantity", "int_pos", True), ("unit_price", "money_nonneg", True), ("discount", "fraction", False),
        ("returned", "bool", False)]),
    "inventory": (["sku", "warehouse"], [
        ("sku", "upper", True), ("warehouse", "string", True), ("quantity_on_hand", "int_nonneg", True),
        ("reorder_level", "int_nonneg", False)]),
    "campaigns": (["campaign_id"], [
        ("campaign_id", "string", True), ("name", "string", True), ("channel", "lower", False),
        ("start_date", "date", True), ("end_date", "date", False), ("budget", "money_nonneg", False)]),
}
PRODUCT_COMPARED = ["name", "category", "brand", "price", "currency", "quantity"]

SQL_TYPES = {"string": "VARCHAR", "title": "VARCHAR", "sku": "VARCHAR", "upper": "VARCHAR", "lower": "VARCHAR",
             "email": "VARCHAR", "country": "VARCHAR", "currency": "VARCHAR", "status": "VARCHAR",
             "money": "DECIMAL(18,4)", "money_nonneg": "DECIMAL(18,4)", "fraction": "DECIMAL(18,4)",
             "int_pos": "BIGINT", "int_nonneg": "BIGINT", "bool": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP"}

# Unicode White_Space (what the contract's "trim" and "whitespace" mean); RE2's \s is ASCII only.
WS = r"[\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]"
WS_NOT_SPACE = r"[\t\n\x{0B}\f\r\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]"

MACROS = f"""
-- (DuckDB's trim(s, characters) is slow: only values with white space at an end are rewritten)
CREATE OR REPLACE TEMP MACRO trimv(s) AS nullif(CASE WHEN regexp_matches(s, '^{WS}|{WS}$') THEN regexp_replace(s, '^{WS}+|{WS}+$', '', 'g') ELSE s END, '');
CREATE OR REPLACE TEMP MACRO collapse1(t) AS CASE WHEN regexp_matches(t, '{WS_NOT_SPACE}|  ') THEN regexp_replace(t, '{WS}+', ' ', 'g') ELSE t END;
CREATE OR REPLACE TEMP MACRO collapse(s) AS collapse1(trimv(s));
-- money and decimals: sign, currency symbol, plain or 3-grouped digits, 1-4 decimals; 14
-- integer digits at most (DECIMAL(18,4) overflow makes the cast NULL)
CREATE OR REPLACE TEMP MACRO to_money(s) AS CASE WHEN regexp_full_match(s, '[+-]?[$€£]?([0-9]+|[0-9]{{1,3}}(,[0-9]{{3}})+)(\\.[0-9]{{1,4}})?')
    THEN try_cast(regexp_replace(s, '[$€£,]', '', 'g') AS DECIMAL(18,4)) END;
CREATE OR REPLACE TEMP MACRO to_int(s) AS CASE WHEN regexp_full_match(s, '[+-]?[0-9]+') THEN try_cast(s AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO to_bool(s) AS CASE WHEN lower(s) IN ('true','t','yes','y','1') THEN true
    WHEN lower(s) IN ('false','f','no','n','0') THEN false END;
-- timestamps as naive UTC: RFC 3339 (T/Z in any case, fraction optional, Z or offset
-- required), 'YYYY-MM-DD HH:MM:SS' (UTC), or a plain date (midnight UTC)
CREATE OR REPLACE TEMP MACRO ts_rfc(u) AS CASE
    WHEN regexp_full_match(u, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\\.[0-9]+)?(Z|[+-][0-9]{{2}}:[0-9]{{2}})')
     AND substr(u, 12, 2)::INT < 24 AND substr(u, 15, 2)::INT < 60 AND substr(u, 18, 2)::INT < 60
     AND (right(u, 1) = 'Z' OR (substr(right(u, 5), 1, 2)::INT < 24 AND right(u, 2)::INT < 60))
    THEN try_cast(substr(u, 1, 10) AS DATE)::TIMESTAMP
         + to_hours(substr(u, 12, 2)::BIGINT) + to_minutes(substr(u, 15, 2)::BIGINT) + to_seconds(substr(u, 18, 2)::BIGINT)
         + to_microseconds(coalesce(rpad(left(nullif(regexp_extract(u, '\\.([0-9]+)', 1), ''), 6), 6, '0')::BIGINT, 0))
         - CASE WHEN right(u, 1) = 'Z' THEN INTERVAL 0 SECOND
                ELSE (CASE WHEN substr(right(u, 6), 1, 1) = '-' THEN -1 ELSE 1 END)
                     * (to_hours(substr(right(u, 5), 1, 2)::BIGINT) + to_minutes(right(u, 2)::BIGINT)) END END;
CREATE OR REPLACE TEMP MACRO ts_space(s) AS CASE
    WHEN regexp_full_match(s, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}')
     AND substr(s, 12, 2)::INT < 24 AND substr(s, 15, 2)::INT < 60 AND substr(s, 18, 2)::INT < 60
    THEN try_cast(substr(s, 1, 10) AS DATE)::TIMESTAMP
         + to_hours(substr(s, 12, 2)::BIGINT) + to_minutes(substr(s, 15, 2)::BIGINT) + to_seconds(substr(s, 18, 2)::BIGINT) END;
CREATE OR REPLACE TEMP MACRO ts(s) AS CASE
    WHEN regexp_full_match(s, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') THEN try_cast(s AS DATE)::TIMESTAMP
    WHEN length(s) = 19 THEN ts_space(s)
    ELSE ts_rfc(upper(s)) END;
CREATE OR REPLACE TEMP MACRO title(s) AS array_to_string(list_transform(string_split(s, ' '),
    lambda w: upper(substring(w, 1, 1)) || lower(substring(w, 2))), ' ');
"""


def typed(kind, t, v):
    """For a column of `kind` whose trimmed text is `t` and parsed value `v` (see `parse`):
    (final value expression, invalid condition)."""
    if kind in ("string", "upper", "lower", "title"):
        return v, "false"
    if kind == "sku":
        return v, f"length({t}) > 64"
    if kind == "email":  # warn rule: an invalid e-mail is nulled, never rejects
        return f"CASE WHEN regexp_full_match({v}, '[^@\\s]+@[^@\\s]+\\.[^@\\s]+') THEN {v} END", "false"
    if kind == "country":  # warn rule
        return f"CASE WHEN regexp_full_match({v}, '[A-Z]{{2}}') THEN {v} END", "false"
    if kind == "currency":
        return f"coalesce({v}, 'USD')", f"{t} IS NOT NULL AND {v} IS NULL"
    if kind == "status":
        return v, f"{t} IS NOT NULL AND {v} IS NULL"
    if kind in ("money", "date", "timestamp"):
        return v, f"{t} IS NOT NULL AND {v} IS NULL"
    if kind == "money_nonneg" or kind == "int_nonneg":
        return v, f"{t} IS NOT NULL AND coalesce({v} < 0, true)"
    if kind == "int_pos":
        return v, f"{t} IS NOT NULL AND coalesce({v} < 1, true)"
    if kind == "fraction":  # default 0
        return f"coalesce({v}, 0)", f"{t} IS NOT NULL AND coalesce({v} NOT BETWEEN 0 AND 1, true)"
    if kind == "bool":  # default false
        return f"coalesce({v}, false)", f"{t} IS NOT NULL AND {v} IS NULL"
    raise ValueError(kind)


def parse(kind, t):
    """The parsed value of trimmed text `t` (NULL when absent or not of the kind's grammar)."""
    return {
        "string": t, "sku": f"upper({t})", "upper": f"upper({t})", "lower": f"lower({t})", "title": f"title({t})",
        "email": f"lower({t})", "country": f"upper({t})",
        "currency": f"CASE WHEN regexp_full_match({t}, '[A-Za-z]{{3}}') THEN upper({t}) END",
        "status": f"CASE lower({t}) WHEN 'canceled' THEN 'cancelled' WHEN 'cancelled' THEN 'cancelled' "
                  f"WHEN 'pending' THEN 'pending' WHEN 'completed' THEN 'completed' WHEN 'returned' THEN 'returned' END",
        "money": f"to_money({t})", "money_nonneg": f"to_money({t})", "fraction": f"to_money({t})",
        "int_pos": f"to_int({t})", "int_nonneg": f"to_int({t})", "bool": f"to_bool({t})",
        "date": f"ts({t})::DATE", "timestamp": f"ts({t})",
    }[kind]


SCHEMA = """
CREATE SCHEMA IF NOT EXISTS silver;
CREATE SCHEMA IF NOT EXISTS gold;
CREATE TABLE IF NOT EXISTS silver.runs (run_date DATE, started_at TIMESTAMP, seconds DOUBLE, files INT,
    quarantined_files INT, rows_read BIGINT, valid BIGINT, rejected BIGINT, duplicate BIGINT);
CREATE TABLE IF NOT EXISTS silver.quarantined_files (run_date DATE, partner_id VARCHAR, dataset VARCHAR,
    feed VARCHAR, reason VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS silver.quarantine (run_date DATE, partner_id VARCHAR, dataset VARCHAR, feed VARCHAR,
    row_number BIGINT, raw VARCHAR, reason VARCHAR);
CREATE TABLE IF NOT EXISTS silver.product_history (partner_id VARCHAR, sku VARCHAR, name VARCHAR, category VARCHAR,
    brand VARCHAR, price DECIMAL(18,4), currency VARCHAR, quantity BIGINT, valid_from DATE, valid_to DATE, is_current BOOLEAN);
CREATE TABLE IF NOT EXISTS silver.product_changes (run_date DATE, partner_id VARCHAR, inserted BIGINT,
    updated BIGINT, unchanged BIGINT, skipped BIGINT, duplicate BIGINT);
"""

VERSION_COLS = "v_date DATE, v_feed VARCHAR, v_row BIGINT"


def state_ddl(dataset):
    _, cols = DATASETS[dataset]
    defs = ", ".join(f"{c} {SQL_TYPES[k]}" for c, k, _ in cols)
    extra = ", first_seen_date DATE, last_changed_date DATE" if dataset == "products" else ""
    snap = "snapshot_date DATE, " if dataset == "inventory" else ""
    return f"CREATE TABLE IF NOT EXISTS silver.{dataset} ({snap}partner_id VARCHAR, {defs}{extra}, {VERSION_COLS})"


class Quarantined(Exception):
    """A whole file refused: reason code and detail."""

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def stage_file(con, path, partner, dataset, feed, feed_ord):
    """Parses one feed into stage_<dataset>; returns rows read. Raises Quarantined for a
    file-level defect (the caller then deletes whatever of the file was staged)."""
    _, cols = DATASETS[dataset]
    names = [c for c, _, _ in cols]
    with open(path, "rb") as f:
        data = f.read()
    # Strict UTF-8, checked in chunks (the decoded text is not kept: Arrow reads the bytes).
    decoder, chunk, head = codecs.getincrementaldecoder("utf-8")("strict"), 1 << 24, ""
    for at in range(0, max(len(data), 1), chunk):
        try:
            text = decoder.decode(data[at:at + chunk], final=at + chunk >= len(data))
        except UnicodeDecodeError as e:
            raise Quarantined("invalid_utf8", f"byte {at + e.start}: {e.reason}") from e
        if at == 0:
            head = text[:1 << 16]
    try:
        header = next((r for r in csv.reader(io.StringIO(head, newline="")) if r), None)
    except csv.Error as e:
        raise Quarantined("invalid_csv", f"header: {e}") from e
    if not header:
        raise Quarantined("missing_header", "the file has no header row")
    header = [h.strip().lower() for h in header]
    header[0] = header[0].lstrip("\ufeff").strip()
    seen = set()
    for h in header:
        if h in seen:
            raise Quarantined("duplicate_column", h)
        seen.add(h)
    for c, _, req in cols:
        if req and c not in seen:
            raise Quarantined("missing_column", c)
    # Data rows through Arrow's CSV reader (C++), every field as text. A row with the wrong
    # field count comes to the handler (number: the record's 1-based number, header = 1,
    # empty lines not counted); an unterminated quote swallows the rest of the file into one
    # such row, recognisable by its odd number of quote characters.
    width = len(header)
    generic = [f"c{i}" for i in range(width)]
    malformed = []

    def bad_row(row):
        malformed.append((row.number - 1, row.text))
        return "skip"

    reader = pacsv.open_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(use_threads=False, skip_rows=1, column_names=generic, block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=bad_row),
        convert_options=pacsv.ConvertOptions(column_types={g: pa.string() for g in generic}, strings_can_be_null=False,
                                             quoted_strings_can_be_null=False, include_columns=[
                                                 generic[header.index(c)] for c in names if c in seen]))
    valid = 0
    numbers = RowNumbers()
    sql = (f"INSERT INTO stage_{dataset} SELECT ? AS partner_id, ? AS feed, ? AS feed_ord, row_no, malformed, raw, "
           f"{', '.join(names)} FROM batch")

    def insert(table):
        con.register("batch", table)
        con.execute(sql, [partner, feed, feed_ord])
        con.unregister("batch")

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as e:
            raise Quarantined("invalid_csv", str(e)) from e
        n = batch.num_rows
        cols_out = {"row_no": numbers.take([m for m, _ in malformed], n), "malformed": pa.array([False] * n),
                    "raw": pa.nulls(n, pa.string())}
        for c in names:
            cols_out[c] = batch.column(generic[header.index(c)]) if c in seen else pa.nulls(n, pa.string())
        insert(pa.table(cols_out))
        valid += n
    if any(t.count('"') % 2 for _, t in malformed):
        raise Quarantined("invalid_csv", "unterminated quoted field")
    if malformed:
        m = len(malformed)
        insert(pa.table({"row_no": pa.array([r for r, _ in malformed], pa.int64()), "malformed": pa.array([True] * m),
                         "raw": pa.array([t for _, t in malformed], pa.string()),
                         **{c: pa.nulls(m, pa.string()) for c in names}}))
    return valid + len(malformed)


class RowNumbers:
    """Data-row numbers (1-based, empty lines not counted) of the valid rows, batch by batch:
    the numbers that are not those of malformed rows, in order."""

    def __init__(self):
        self.num, self.bi = 0, 0

    def take(self, bad, n):
        """The next n valid rows' numbers; `bad`: malformed rows' numbers so far (ascending)."""
        parts = []
        while n > 0:
            nb = bad[self.bi] if self.bi < len(bad) else None
            if nb is None or nb > self.num + n:
                parts.append(range(self.num + 1, self.num + n + 1))
                self.num += n
                n = 0
            else:
                parts.append(range(self.num + 1, nb))
                n -= nb - self.num - 1
                self.num = nb
                self.bi += 1
        return pa.array(parts[0] if len(parts) == 1 else list(itertools.chain(*parts)), pa.int64())


def clean_sql(dataset):
    """SELECT over stage_<dataset>: typed values and one reason (NULL when valid)."""
    _, cols = DATASETS[dataset]
    trims, parses, outs = [], [], []
    reasons = ["WHEN malformed THEN 'malformed_row'"]
    for c, kind, req in cols:
        string_kind = kind in ("string", "title", "sku", "upper", "lower", "email")
        trims.append(f"{'collapse' if string_kind else 'trimv'}({c}) AS t_{c}, contains({c}, chr(0)) AS nul_{c}")
        parses.append(f"{parse(kind, 't_' + c)} AS v_{c}")
        val, invalid = typed(kind, f"t_{c}", f"v_{c}")
        outs.append(f"CASE WHEN NOT malformed THEN {val} END AS o_{c}")
        reasons.append(f"WHEN nul_{c} THEN 'invalid_{c}'")
        if req:
            reasons.append(f"WHEN t_{c} IS NULL THEN 'missing_{c}'")
        if invalid != "false":
            reasons.append(f"WHEN {invalid} THEN 'invalid_{c}'")
        if dataset == "campaigns" and c == "end_date":
            reasons.append("WHEN v_end_date < v_start_date THEN 'invalid_range'")
    raw_json = "json_object(" + ", ".join(f"'{c}', {c}" for c, _, _ in cols) + ")::VARCHAR"
    return (f"SELECT partner_id, feed, feed_ord, row_no, "
            f"CASE WHEN malformed THEN raw WHEN reason IS NOT NULL THEN {raw_json} END AS raw, reason, {', '.join(f'o_{c} AS {c}' for c, _, _ in cols)} "
            f"FROM (SELECT *, CASE {' '.join(reasons)} END AS reason, {', '.join(outs)} "
            f"FROM (SELECT *, {', '.join(parses)} "
            f"FROM (SELECT *, {', '.join(trims)} FROM stage_{dataset})))")


def run_date(con, landing, date):
    """Bronze + silver + gold for one run date, in one transaction. Returns a report dict."""
    t0 = time.monotonic()
    stages = {}
    con.execute("BEGIN")
    for ds, (_, cols) in DATASETS.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE stage_{ds} (partner_id VARCHAR, feed VARCHAR, feed_ord INT, row_no BIGINT, "
                    f"malformed BOOLEAN, raw VARCHAR, {', '.join(c + ' VARCHAR' for c, _, _ in cols)})")
    files, quarantined = 0, 0
    per_feed = {}
    with_products = set()   # partners with a products feed that was not quarantined
    inventory_files = {}    # partner -> feed names (landing order) not quarantined
    partners = sorted(p for p in os.listdir(landing) if os.path.isdir(os.path.join(landing, p))) if os.path.isdir(landing) else []
    for partner in partners:
        for ds in sorted(os.listdir(os.path.join(landing, partner))):
            d = os.path.join(landing, partner, ds, date)
            if ds not in DATASETS or not os.path.isdir(d):
                continue
            if not PARTNER_RE.match(partner):
                # refused: a partner id becomes a path component and a key
                for name in sorted(n for n in os.listdir(d) if n.endswith(".csv")):
                    files += 1
                    quarantined += 1
                    con.execute("DELETE FROM silver.quarantined_files WHERE run_date = ? AND partner_id = ? AND dataset = ? AND feed = ?",
                                [date, partner, ds, name])
                    con.execute("INSERT INTO silver.quarantined_files VALUES (?, ?, ?, ?, 'invalid_partner', ?)",
                                [date, partner, ds, name, "partner id is not ^[a-z0-9][a-z0-9_-]{0,63}$"])
                continue
            for ordinal, name in enumerate(sorted(n for n in os.listdir(d) if n.endswith(".csv"))):
                files += 1
                try:
                    n = stage_file(con, os.path.join(d, name), partner, ds, name, ordinal)
                    per_feed[(partner, ds, name)] = n
                    if ds == "products":
                        with_products.add(partner)
                    if ds == "inventory":
                        inventory_files.setdefault(partner, []).append(name)
                except Quarantined as q:
                    quarantined += 1
                    con.execute(f"DELETE FROM stage_{ds} WHERE partner_id = ? AND feed = ?", [partner, name])
                    con.execute("DELETE FROM silver.quarantined_files WHERE run_date = ? AND partner_id = ? AND dataset = ? AND feed = ?",
                                [date, partner, ds, name])
                    con.execute("INSERT INTO silver.quarantined_files VALUES (?, ?, ?, ?, ?, ?)", [date, partner, ds, name, q.reason, q.detail])
    stages["bronze_seconds"] = time.monotonic() - t0

    t1 = time.monotonic()
    counts = {"valid": 0, "rejected": 0, "duplicate": 0}
    for ds, (keys, cols) in DATASETS.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE stage_c_{ds} AS {clean_sql(ds)}")
        con.execute("DELETE FROM silver.quarantine WHERE run_date = ? AND dataset = ?", [date, ds])
        con.execute(f"INSERT INTO silver.quarantine SELECT ?::DATE, partner_id, '{ds}', feed, row_no, raw, reason "
                    f"FROM stage_c_{ds} WHERE reason IS NOT NULL", [date])
        names = [c for c, _, _ in cols]
        if ds == "inventory":
            # The day's latest (non-quarantined) file per partner replaces the snapshot whole;
            # within it, the later row of a (sku, warehouse) wins.
            con.execute(f"""CREATE OR REPLACE TEMP TABLE stage_d_{ds} AS SELECT * FROM (
                SELECT *, max(feed_ord) OVER (PARTITION BY partner_id) AS last_feed,
                       row_number() OVER (PARTITION BY partner_id, feed_ord, sku, warehouse ORDER BY row_no DESC) AS rn
                FROM stage_c_{ds} WHERE reason IS NULL) WHERE feed_ord = last_feed AND rn = 1""")
            parts = list(inventory_files)
            if parts:
                con.execute(f"DELETE FROM silver.inventory WHERE snapshot_date = ? AND partner_id IN ({', '.join('?' * len(parts))})",
                            [date] + parts)
            con.execute(f"INSERT INTO silver.inventory SELECT ?::DATE, partner_id, {', '.join(names)}, ?::DATE, feed, row_no "
                        f"FROM stage_d_{ds}", [date, date])
        else:
            key = ", ".join(keys)
            con.execute(f"""CREATE OR REPLACE TEMP TABLE stage_d_{ds} AS SELECT * EXCLUDE (rn) FROM (
                SELECT *, row_number() OVER (PARTITION BY partner_id, {key} ORDER BY feed_ord DESC, row_no DESC) AS rn
                FROM stage_c_{ds} WHERE reason IS NULL) WHERE rn = 1""")
            if ds == "products":
                apply_products(con, date, names, with_products)
            upsert(con, ds, keys, names, date)
        c = con.execute(f"""SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL)
                            FROM stage_c_{ds}""").fetchone()
        d = con.execute(f"SELECT count(*) FROM stage_d_{ds}").fetchone()[0]
        counts["valid"] += d
        counts["rejected"] += c[1]
        counts["duplicate"] += c[0] - d
    stages["silver_seconds"] = time.monotonic() - t1

    t2 = time.monotonic()
    publish_gold(con)
    stages["gold_seconds"] = time.monotonic() - t2
    for ds in DATASETS:
        for t in (ds, "c_" + ds, "d_" + ds):
            con.execute(f"DROP TABLE IF EXISTS stage_{t}")
    seconds = time.monotonic() - t0
    con.execute("INSERT INTO silver.runs VALUES (?, now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?)",
                [date, seconds, files, quarantined, sum(per_feed.values()), counts["valid"], counts["rejected"], counts["duplicate"]])
    con.execute("COMMIT")
    return {"date": date, "seconds": round(seconds, 3), **{k: round(v, 3) for k, v in stages.items()},
            "files": files, "quarantined_files": quarantined, "rows_read": sum(per_feed.values()), **counts}


def apply_products(con, date, names, with_products):
    """Change detection against the state before this run, SCD2 history, product_changes."""
    same = " AND ".join(f"n.{c} IS NOT DISTINCT FROM o.{c}" for c in PRODUCT_COMPARED)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE stage_p_diff AS
        SELECT n.partner_id, n.sku, CASE WHEN o.sku IS NULL THEN 'inserted' WHEN {same} THEN 'unchanged' ELSE 'updated' END AS change,
               o.first_seen_date, o.last_changed_date, o.v_date, o.v_feed, o.v_row
        FROM stage_d_products n LEFT JOIN silver.products o USING (partner_id, sku)""")
    # an older version (a re-run of an earlier date) changes nothing
    newer = "(p.v_date IS NULL OR ?::DATE > p.v_date OR (?::DATE = p.v_date AND (n.feed > p.v_feed OR (n.feed = p.v_feed AND n.row_no >= p.v_row))))"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE stage_p_apply AS
        SELECT n.*, p.change, coalesce(p.first_seen_date, ?::DATE) AS first_seen_date,
               CASE WHEN p.change = 'unchanged' THEN p.last_changed_date ELSE ?::DATE END AS last_changed_date
        FROM stage_d_products n JOIN stage_p_diff p USING (partner_id, sku) WHERE {newer}""", [date, date, date, date])
    con.execute("""UPDATE silver.product_history h SET valid_to = ?::DATE, is_current = false FROM stage_p_apply a
        WHERE h.partner_id = a.partner_id AND h.sku = a.sku AND h.is_current AND a.change <> 'unchanged'""", [date])
    con.execute(f"""INSERT INTO silver.product_history SELECT partner_id, sku, {', '.join(PRODUCT_COMPARED)}, ?::DATE, NULL, true
        FROM stage_p_apply WHERE change <> 'unchanged'""", [date])
    parts = sorted(with_products)
    if not parts:
        return
    con.execute(f"""INSERT INTO silver.product_changes
        SELECT ?::DATE, p.partner_id,
            (SELECT count(*) FROM stage_p_diff d WHERE d.partner_id = p.partner_id AND change = 'inserted'),
            (SELECT count(*) FROM stage_p_diff d WHERE d.partner_id = p.partner_id AND change = 'updated'),
            (SELECT count(*) FROM stage_p_diff d WHERE d.partner_id = p.partner_id AND change = 'unchanged'),
            (SELECT count(*) FROM stage_c_products c WHERE c.partner_id = p.partner_id AND reason IS NOT NULL),
            (SELECT count(*) FROM stage_c_products c WHERE c.partner_id = p.partner_id AND reason IS NULL)
              - (SELECT count(*) FROM stage_d_products d WHERE d.partner_id = p.partner_id)
        FROM (SELECT unnest(?::VARCHAR[]) AS partner_id) p
        WHERE NOT EXISTS (SELECT 1 FROM silver.product_changes x WHERE x.run_date = ?::DATE AND x.partner_id = p.partner_id)""",
                [date, parts, date])


def upsert(con, ds, keys, names, date):
    """Current state by (partner, key): a row replaces the stored one unless the stored
    version (run date, file, row) is newer."""
    on = " AND ".join(f"s.{k} = n.{k}" for k in ["partner_id"] + keys)
    newer_stored = "(s.v_date > ?::DATE OR (s.v_date = ?::DATE AND (s.v_feed > n.feed OR (s.v_feed = n.feed AND s.v_row > n.row_no))))"
    src = "stage_p_apply" if ds == "products" else f"stage_d_{ds}"
    extra = ", first_seen_date, last_changed_date" if ds == "products" else ""
    con.execute(f"DELETE FROM silver.{ds} s USING {src} n WHERE {on} AND NOT {newer_stored}", [date, date])
    con.execute(f"""INSERT INTO silver.{ds} SELECT n.partner_id, {', '.join('n.' + c for c in names)}{extra}, ?::DATE, n.feed, n.row_no
        FROM {src} n WHERE NOT EXISTS (SELECT 1 FROM silver.{ds} s WHERE {on})""", [date])


def money2(x):
    return f"round({x}, 2)::DECIMAL(18,2)"


GOLD = {
    # Items of fulfilled orders, with their line amount (exact), category and returned flag.
    "_items": """
        SELECT o.partner_id, o.order_id, o.customer_id, o.order_date::DATE AS order_date, o.currency, o.campaign_id,
               i.quantity, i.quantity * i.unit_price * (1 - i.discount) AS line_amount,
               (i.returned OR o.status = 'returned') AS is_returned, coalesce(p.category, 'Unknown') AS category
        FROM silver.orders o JOIN silver.order_items i USING (partner_id, order_id)
        LEFT JOIN silver.products p ON p.partner_id = i.partner_id AND p.sku = i.sku
        WHERE o.status IN ('completed', 'returned')""",
    # Fulfilled orders (with or without items), with their exact net and returned-item flag.
    "_orders": """
        SELECT o.partner_id, o.order_id, o.customer_id, o.order_date::DATE AS order_date, o.currency, o.campaign_id,
               coalesce(sum(CASE WHEN NOT i.is_returned THEN i.line_amount END), 0) AS net,
               coalesce(sum(i.quantity), 0) AS items_sold, coalesce(bool_or(i.is_returned), false) AS any_returned
        FROM silver.orders o LEFT JOIN tmp_items i USING (partner_id, order_id)
        WHERE o.status IN ('completed', 'returned')
        GROUP BY ALL""",
    "daily_sales": f"""
        SELECT order_date, partner_id, category, currency, count(DISTINCT order_id) AS orders, sum(quantity) AS items_sold,
               {money2('sum(line_amount)')} AS gross_revenue,
               {money2('coalesce(sum(line_amount) FILTER (WHERE is_returned), 0)')} AS returned_revenue,
               {money2('sum(line_amount) - coalesce(sum(line_amount) FILTER (WHERE is_returned), 0)')} AS net_revenue
        FROM tmp_items GROUP BY ALL""",
    # avg_order_value = gross / orders, exact: integer division of 1e-8 units, half away from zero.
    "category_kpis": f"""
        SELECT order_date, category, currency, {money2('net')} AS daily_revenue,
               ((sign(g) * ((abs(g) * 2 + n * 1000000) // (n * 2000000)))::DECIMAL(18,0) * 0.01::DECIMAL(3,2))::DECIMAL(18,2) AS avg_order_value,
               returned_qty::DOUBLE / items_sold::DOUBLE AS avg_return_rate
        FROM (SELECT order_date, category, currency,
                     sum(line_amount) - coalesce(sum(line_amount) FILTER (WHERE is_returned), 0) AS net,
                     (sum(line_amount) * 100000000)::HUGEINT AS g,
                     count(DISTINCT (partner_id, order_id))::HUGEINT AS n,
                     coalesce(sum(quantity) FILTER (WHERE is_returned), 0) AS returned_qty, sum(quantity) AS items_sold
              FROM tmp_items GROUP BY ALL)""",
    "order_kpis": f"""
        SELECT order_date, currency, count(*) AS total_orders, {money2('sum(net)')} AS total_revenue,
               sum(items_sold) AS total_items_sold,
               (count(*) FILTER (WHERE any_returned))::DOUBLE / count(*)::DOUBLE AS return_rate,
               count(DISTINCT (partner_id, customer_id)) AS unique_customers
        FROM tmp_orders GROUP BY ALL""",
    "partner_revenue": f"""
        SELECT order_date, partner_id, currency, orders, {money2('net')} AS net_revenue,
               CASE WHEN total = 0 THEN 0 ELSE net::DOUBLE / total::DOUBLE END AS revenue_share
        FROM (SELECT order_date, partner_id, currency, count(*) AS orders, sum(net) AS net,
                     sum(sum(net)) OVER (PARTITION BY order_date, currency) AS total
              FROM tmp_orders GROUP BY order_date, partner_id, currency)""",
    "product_changes": "SELECT * FROM silver.product_changes",
    "dim_products": f"""
        SELECT partner_id, sku, name, category, brand, {money2('price')} AS price, currency, quantity, first_seen_date, last_changed_date
        FROM silver.products""",
    "customer_orders": f"""
        SELECT k.partner_id, k.customer_id,
               nullif(concat_ws(' ', c.first_name, c.last_name), '') AS full_name, c.email, c.country,
               coalesce(o.orders, 0) AS orders, o.first_order_date, o.last_order_date,
               {money2('coalesce(o.net, 0)')} AS lifetime_net_revenue
        FROM (SELECT partner_id, customer_id FROM silver.customers UNION SELECT partner_id, customer_id FROM silver.orders) k
        LEFT JOIN silver.customers c USING (partner_id, customer_id)
        LEFT JOIN (SELECT partner_id, customer_id, count(*) AS orders, min(order_date) AS first_order_date,
                          max(order_date) AS last_order_date, sum(net) AS net
                   FROM tmp_orders GROUP BY ALL) o USING (partner_id, customer_id)""",
    "inventory_status": """
        SELECT v.snapshot_date, v.partner_id, v.sku, v.warehouse, p.name AS product_name, p.category,
               v.quantity_on_hand, v.reorder_level, v.quantity_on_hand <= v.reorder_level AS needs_reorder
        FROM (SELECT snapshot_date, partner_id, sku, warehouse, quantity_on_hand, coalesce(reorder_level, 0) AS reorder_level
              FROM silver.inventory) v
        LEFT JOIN silver.products p USING (partner_id, sku)""",
    "campaign_performance": f"""
        SELECT c.partner_id, c.campaign_id, c.name, c.channel, c.start_date, c.end_date, {money2('c.budget')} AS budget,
               coalesce(o.orders, 0) AS orders, {money2('coalesce(o.net, 0)')} AS net_revenue,
               CASE WHEN c.budget IS NULL OR c.budget = 0 THEN NULL ELSE coalesce(o.net, 0)::DOUBLE / c.budget::DOUBLE END AS roas
        FROM silver.campaigns c
        LEFT JOIN (SELECT partner_id, campaign_id, count(*) AS orders, sum(net) AS net FROM tmp_orders
                   WHERE campaign_id IS NOT NULL GROUP BY ALL) o USING (partner_id, campaign_id)""",
}
GOLD_TABLES = [t for t in GOLD if not t.startswith("_")]


def publish_gold(con):
    for t, sql in GOLD.items():
        target = f"TEMP TABLE tmp{t}" if t.startswith("_") else f"TABLE gold.{t}"
        try:
            con.execute(f"CREATE OR REPLACE {target} AS {sql}")
        except duckdb.Error as e:
            raise RuntimeError(f"gold.{t}: {e}") from e
    con.execute("DROP TABLE tmp_items")
    con.execute("DROP TABLE tmp_orders")


def open_db(path, threads=None):
    con = duckdb.connect(path)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(MACROS)
    con.execute(SCHEMA)
    for ds in DATASETS:
        con.execute(state_ddl(ds))
    return con


def dump_gold(con, out):
    """Every gold table as CSV sorted by all columns (for comparison)."""
    os.makedirs(out, exist_ok=True)
    for t in GOLD_TABLES:
        con.execute(f"COPY (SELECT * FROM gold.{t} ORDER BY ALL) TO '{os.path.join(out, t + '.csv')}' (HEADER)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--landing", help="landing zone folder ({landing}/{partner}/{dataset}/{date}/*.csv)")
    ap.add_argument("--db", required=True, help="DuckDB database file (created if absent; state carried between runs)")
    ap.add_argument("--date", action="append", default=[], help="run date YYYY-MM-DD; repeat for several, run in the order given")
    ap.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's, the core count)")
    ap.add_argument("--dump-gold", metavar="DIR", help="write every gold table as sorted CSV into DIR")
    ap.add_argument("--json", action="store_true", help="print one JSON report per date")
    args = ap.parse_args()
    for d in args.date:
        if not DATE_RE.match(d):
            ap.error(f"--date {d!r} is not YYYY-MM-DD")
    if args.date and not args.landing:
        ap.error("--landing is required with --date")
    con = open_db(args.db, args.threads)
    for d in args.date:
        rep = run_date(con, args.landing, d)
        if args.json:
            print(json.dumps(rep), flush=True)
        else:
            print(f"{d}: {rep['seconds']:.2f} s (bronze {rep['bronze_seconds']:.2f}, silver {rep['silver_seconds']:.2f}, "
                  f"gold {rep['gold_seconds']:.2f}); {rep['files']} files ({rep['quarantined_files']} quarantined), "
                  f"{rep['rows_read']} rows: {rep['valid']} valid, {rep['rejected']} rejected, {rep['duplicate']} duplicate",
                  flush=True)
    if args.dump_gold:
        dump_gold(con, args.dump_gold)
    con.close()


if __name__ == "__main__":
    main()
