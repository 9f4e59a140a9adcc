"""Shared by the benchmark scripts: run a command under /usr/bin/time and read its peak RSS."""
import subprocess
import sys
import time


def timed(cmd, env=None):
    """Runs `cmd` under /usr/bin/time -v; returns (seconds, peak RSS in MB, stdout). Fails loudly."""
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    rss_kb = 0
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss_kb = int(line.split(":")[1])
    return elapsed, rss_kb / 1024.0, proc.stdout
