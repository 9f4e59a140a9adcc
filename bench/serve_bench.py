#!/usr/bin/env python3
"""Service benchmark: `medallion serve` under load from `wrk` (Debian package; installed with
apt-get when missing and running as root). Builds a catalogue of PARTNERS x PRODUCTS SKUs
(1M by default) with `medallion generate` + `medallion run` (local lake, SQLite warehouse),
starts the server, then for DURATION seconds at CONNECTIONS concurrent connections:

  1. /v1/products?limit=100, each request a random page of the listing (the first page or a
     cursor taken from walking the first PAGES pages), so deep keyset pages are measured too;
  2. /v1/analytics/daily-sales (default page of up to 1000 rows).

Reports requests/s, p50 and p99 latency and the server's RSS (current and peak, from
/proc/PID/status). Use a release binary for real figures (--bin); a debug binary proves the
harness and gives figures to label as debug.

Usage: bench/serve_bench.py [--partners 10] [--products 100000] [--orders 200]
                            [--duration 30] [--connections 32] [--bin PATH] [--work DIR] [--json]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

D1 = "2026-11-19"


def ensure_wrk():
    if shutil.which("wrk"):
        return "wrk"
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        return "wrk"
    raise SystemExit("wrk is required: apt-get install wrk")


def start_server(binary, env, key):
    env = dict(env, MEDALLION_API_KEYS=f"reader:{key}")
    log = tempfile.NamedTemporaryFile(prefix="medallion-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with open(log.name) as f:
            m = re.search(r"listening on (?:http://)?([0-9.]+:[0-9]+)", f.read())
        if m:
            return proc, m.group(1), log.name
        if proc.poll() is not None:
            raise SystemExit(open(log.name).read()[-4000:] + "\nmedallion serve exited")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("medallion serve did not start")


def get(addr, path, key):
    req = urllib.request.Request(f"http://{addr}{path}", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)


def rss_mb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = round(int(line.split()[1]) / 1024)
    return out.get("VmRSS"), out.get("VmHWM")


def wrk(tool, addr, paths, key, duration, connections, work):
    lua = os.path.join(work, "paths.lua")
    with open(lua, "w") as f:
        f.write("local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n")
        f.write(f'local auth = "Bearer {key}"\n')
        f.write("request = function()\n  return wrk.format('GET', paths[math.random(#paths)], {['Authorization'] = auth})\nend\n")
    threads = max(1, min(connections, os.cpu_count() or 1))
    out = subprocess.run([tool, "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "60s", "--latency",
                          "-s", lua, f"http://{addr}"], capture_output=True, text=True, check=True).stdout

    def ms(label):
        m = re.search(rf"^\s*{label}\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return round(v / 1000 if unit == "us" else v * 1000 if unit == "s" else v, 2)

    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"requests_per_s": round(rps, 1), "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partners", type=int, default=10)
    ap.add_argument("--products", type=int, default=100_000, help="SKUs per partner")
    ap.add_argument("--orders", type=int, default=200, help="orders per partner (daily-sales rows)")
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pages", type=int, default=50, help="listing pages walked for cursors")
    ap.add_argument("--bin", default=None)
    ap.add_argument("--work", default=None, help="keep the lake here (reused when it exists)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binary = args.bin or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medallion")
    tool = ensure_wrk()
    work = args.work or tempfile.mkdtemp(prefix="medallion-serve-bench-")
    landing, lake = os.path.join(work, "landing"), os.path.join(work, "lake")
    env = dict(os.environ, MEDALLION_LAKE=lake, MEDALLION_LANDING=landing, MEDALLION_WAREHOUSE=f"sqlite://{lake}/warehouse.db")
    env.pop("MEDALLION_LOG", None)
    build_s = None
    if not os.path.isdir(os.path.join(lake, "silver", "products")):
        t0 = time.monotonic()
        subprocess.run([binary, "generate", "--out", landing, "--partners", str(args.partners), "--days", "1", "--start-date", D1,
                        "--rows", str(args.orders), "--products", str(args.products), "--defect-rate", "0", "-q"], check=True, env=env)
        subprocess.run([binary, "run", "--date", D1, "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        build_s = round(time.monotonic() - t0, 1)
    key = os.urandom(16).hex()
    proc, addr, log = start_server(binary, env, key)
    try:
        paths, cursor = ["/v1/products?limit=100"], None
        t0 = time.monotonic()
        for _ in range(args.pages):
            page = get(addr, "/v1/products?limit=100" + (f"&cursor={cursor}" if cursor else ""), key)
            cursor = page["next_cursor"]
            if not cursor:
                break
            paths.append(f"/v1/products?limit=100&cursor={cursor}")
        walk_s = time.monotonic() - t0
        skus = args.partners * args.products
        result = {"binary": binary, "skus": skus, "lake_build_s": build_s, "connections": args.connections, "duration_s": args.duration,
                  "cores": os.cpu_count(), "sequential_page_ms": round(1000 * walk_s / len(paths), 1)}
        result["products"] = wrk(tool, addr, paths, key, args.duration, args.connections, work)
        result["products"]["rss_mb"], result["products"]["peak_rss_mb"] = rss_mb(proc.pid)
        result["daily_sales"] = wrk(tool, addr, ["/v1/analytics/daily-sales"], key, args.duration, args.connections, work)
        result["daily_sales"]["rss_mb"], result["daily_sales"]["peak_rss_mb"] = rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['skus']} SKUs, {args.connections} connections, {args.duration} s each ({binary})")
        print(f"{'endpoint':34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}{'RSS MB':>8}{'peak MB':>9}")
        for name, r in (("/v1/products (100-row pages)", result["products"]), ("/v1/analytics/daily-sales", result["daily_sales"])):
            print(f"{name:34}{r['requests_per_s']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['non_2xx']:>9}{r['rss_mb']:>8}{r['peak_rss_mb']:>9}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    os.unlink(log)


if __name__ == "__main__":
    main()
