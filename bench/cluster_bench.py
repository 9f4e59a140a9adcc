#!/usr/bin/env python3
"""Gold on a Ballista cluster against the local engine, on the same silver lake.

Runs `medallion gold --full` (SQLite warehouse) twice on copies of one silver lake: with the
local engine, and with `--engine df://…` on a scheduler and N executors started from the same
binary on 127.0.0.1. Reports per engine the wall time, gold's compute / lake / warehouse
seconds (its --json report) and peak RSS of every process (client, scheduler, executors), then
checks that both runs wrote byte-identical gold Parquet files to the lake.

One machine shows the cluster's overhead, not its speed-up: scheduler, executors and client
share the same cores (say so when quoting these figures).

Usage: bench/cluster_bench.py --lake DIR [--bin PATH] [--executors 2] [--work DIR] [--json]
       (DIR: a lake with silver, e.g. the lake of `bench/silver_bench.py --work W`, i.e. W/lake;
        --bin defaults to $CARGO_TARGET_DIR/release/medallion)
"""
import argparse
import filecmp
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import timed  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on {port} within {seconds} s")


def start(cmd, log):
    """A long-running process under /usr/bin/time -v (its peak RSS is read when it stops)."""
    return subprocess.Popen(["/usr/bin/time", "-v", "-o", log + ".time"] + cmd,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc, log):
    """Stops a process started by `start`; returns its peak RSS in MB (NaN if unknown)."""
    # Signal medallion, not /usr/bin/time (which would die without writing its report).
    try:
        children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
    except OSError:
        children = []
    for c in children:
        try:
            os.kill(int(c), signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.2)
    for line in open(log + ".time", errors="replace"):
        if "Maximum resident set size" in line:
            return int(line.split(":")[1]) / 1024.0
    return float("nan")


def gold_files(lake):
    root = os.path.join(lake, "gold")
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".parquet"):
                p = os.path.join(d, f)
                out[os.path.relpath(p, root)] = p
    return out


def last_run_date(lake):
    runs = os.path.join(lake, "silver", "_runs")
    dates = sorted(f[:-5] for f in os.listdir(runs) if f.endswith(".json")) if os.path.isdir(runs) else []
    if not dates:
        raise SystemExit(f"{lake} has no silver run (silver/_runs/*.json)")
    return dates[-1]


def gold_run(binary, lake, engine):
    env = dict(os.environ, MEDALLION_LAKE=lake, MEDALLION_RETRIES="0")
    for var in ("MEDALLION_ENGINE", "MEDALLION_WAREHOUSE", "DATABASE_URL"):
        env.pop(var, None)  # the embedded default: <lake>/warehouse.db
    cmd = [binary, "gold", "--date", last_run_date(lake), "--full", "--json"]
    if engine:
        cmd += ["--engine", engine]
    secs, rss, out = timed(cmd, env)
    report = json.loads(out)
    reports = report if isinstance(report, list) else [report]
    sums = {k: sum(r.get(k, 0.0) for r in reports) for k in ("compute_seconds", "lake_seconds", "warehouse_seconds")}
    rows = sum(t.get("rows", 0) for r in reports for t in r.get("tables", []))
    return dict(wall_seconds=round(secs, 2), client_rss_mb=round(rss), gold_rows=rows,
                **{k: round(v, 2) for k, v in sums.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medallion"))
    ap.add_argument("--executors", type=int, default=2)
    ap.add_argument("--work")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    work = args.work or tempfile.mkdtemp(prefix="cluster_bench_")
    os.makedirs(work, exist_ok=True)

    lakes = {}
    for name in ("local", "cluster"):
        lakes[name] = os.path.join(work, f"lake-{name}")
        shutil.rmtree(lakes[name], ignore_errors=True)
        shutil.copytree(args.lake, lakes[name], ignore=shutil.ignore_patterns("gold", "warehouse.db*"))

    result = {"lake": args.lake, "executors": args.executors}
    result["local"] = gold_run(binary, lakes["local"], None)

    port = free_port()
    procs = []
    sched_log = os.path.join(work, "scheduler.log")
    sched = start([binary, "cluster", "scheduler", "--listen", f"127.0.0.1:{port}"], sched_log)
    procs.append(("scheduler", sched, sched_log))
    try:
        wait_port(port, sched, "the scheduler")
        for i in range(args.executors):
            flight, grpc = free_port(), free_port()
            log = os.path.join(work, f"executor{i}.log")
            ex = start([binary, "cluster", "executor", "--scheduler", f"df://127.0.0.1:{port}",
                        "--listen", f"127.0.0.1:{flight}", "--grpc-port", str(grpc), "--heartbeat", "2",
                        "--work-dir", os.path.join(work, f"executor{i}")], log)
            procs.append((f"executor{i}", ex, log))
            wait_port(flight, ex, f"executor {i}")
        time.sleep(3)  # the executors register with the scheduler
        result["cluster"] = gold_run(binary, lakes["cluster"], f"df://127.0.0.1:{port}")
    finally:
        for name, proc, log in reversed(procs):
            rss = stop(proc, log)
            result.setdefault("cluster", {})[f"{name}_rss_mb"] = None if rss != rss else round(rss)

    a, b = gold_files(lakes["local"]), gold_files(lakes["cluster"])
    differ = sorted(set(a) ^ set(b)) + sorted(k for k in set(a) & set(b) if not filecmp.cmp(a[k], b[k], shallow=False))
    result["gold_files"] = len(a)
    result["identical"] = not differ
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"lake {args.lake}: {result['local']['gold_rows']:,} gold rows, {len(a)} gold files")
        print(f"{'engine':<10}{'wall s':>9}{'compute s':>11}{'lake s':>8}{'warehouse s':>13}  peak RSS MB")
        for name in ("local", "cluster"):
            r = result[name]
            rss = ", ".join(f"{k[:-7]} {v}" for k, v in r.items() if k.endswith("_rss_mb"))
            print(f"{name:<10}{r['wall_seconds']:>9}{r['compute_seconds']:>11}{r['lake_seconds']:>8}{r['warehouse_seconds']:>13}  {rss}")
        print("gold lake files byte-identical" if not differ else f"GOLD DIFFERS: {differ[:5]}")
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
