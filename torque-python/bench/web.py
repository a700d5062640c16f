"""
twisted.web hello world under Twisted's epollreactor and under Torque's
reactor (same Python code), with a minimal uvloop HTTP responder as the
anchor: wrk on CPU 1 (one thread), the server pinned to CPU 0, at 1, 64 and
1,000 connections. Per row: requests per second and the server's CPU time per
request (user + system, from /proc/PID/stat); rounds run round-robin, the
median is shown.

    scripts/python-env.sh uvloop
    target/python/bin/python torque-python/bench/web.py [--seconds 3] [--rounds 3]

Needs wrk (scripts/install-system-packages.sh bench).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ["twisted-epoll", "twisted-torque", "uvloop"]
CONNECTIONS = [1, 64, 1000]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(kind):
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "web_server.py"), kind], stdout=subprocess.PIPE, text=True
    )
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise RuntimeError(f"{kind} did not start: {line!r}")
    return server, int(line.split()[1])


def run_wrk(port, connections, seconds):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return requests, errors.group(0) if errors else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not installed: scripts/install-system-packages.sh bench")
    samples = {(k, c): [] for k in SERVERS for c in CONNECTIONS}
    for _ in range(args.rounds):
        for kind in SERVERS:
            for connections in CONNECTIONS:
                server, port = start(kind)
                try:
                    # Warm up (imports, first connections), then measure.
                    run_wrk(port, connections, 1)
                    cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
                    requests, errors = run_wrk(port, connections, args.seconds)
                    cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
                finally:
                    server.kill()
                    server.wait()
                if errors:
                    print(f"{kind} c={connections}: {errors}", file=sys.stderr)
                samples[(kind, connections)].append((requests / wall, cpu / requests * 1e6))
                print(f"{kind} c={connections}: {requests / wall:.0f} req/s, {cpu / requests * 1e6:.1f} µs CPU/req", file=sys.stderr)
    print("| server | " + " | ".join(f"{c} conn: req/s, CPU/req" for c in CONNECTIONS) + " |")
    print("|---|" + "---:|" * len(CONNECTIONS))
    medians = {}
    for kind in SERVERS:
        cells = []
        for c in CONNECTIONS:
            rate = statistics.median(s[0] for s in samples[(kind, c)])
            cpu = statistics.median(s[1] for s in samples[(kind, c)])
            medians[(kind, c)] = cpu
            cells.append(f"{rate:.0f}, {cpu:.1f} µs")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print()
    print("Efficiency (epollreactor's CPU per request ÷ this one's):")
    for kind in SERVERS[1:]:
        ratios = ", ".join(f"{medians[('twisted-epoll', c)] / medians[(kind, c)]:.2f}×" for c in CONNECTIONS)
        print(f"- {kind}: {ratios} at {', '.join(map(str, CONNECTIONS))} connections")


if __name__ == "__main__":
    main()
