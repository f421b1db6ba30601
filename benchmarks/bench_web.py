"""Benchmark: the web app and the API under many concurrent clients, at scale.

Builds a workspace from a simulated company (default 100,000 accounts × 24 months, two runs three months apart, as
a team running weekly would have; or reuse one with ``--workspace``), serves it with uvicorn in a separate
process, then sends each endpoint's requests from many concurrent clients (threads with keep-alive connections)
and prints, per endpoint and page, requests per second and the p50, p95 and p99 latency in milliseconds.

A path naming ``{account}`` asks for a different account each time (a few hundred drawn at random), as people
reading account pages do, so nothing is measured on one account kept warm. The first request of each endpoint warms
the run's tables into memory and is reported apart. The target: every API call p95 under 300 ms and every page
under a second; the last lines say which endpoints miss it.

    python benchmarks/bench_web.py [--accounts 100000] [--months 24] [--clients 32] [--requests 200]
    python benchmarks/bench_web.py --workspace path/to/workspace [--keep] [--only /api/accounts]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import itertools
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ENDPOINTS = [
    "/api/runs", "/api/runs/{run}", "/api/metrics", "/api/bridge", "/api/expansion",
    "/api/expansion?by=segment", "/api/segments?dimension=owner", "/api/cohorts",
    "/api/movements?type=expansion&limit=100", "/api/movements?account_id={account}",
    "/api/accounts?sort=churn_risk&limit=100", "/api/accounts?segment=smb&sort=mrr&offset=200&limit=100",
    "/api/accounts?q=a00012&limit=100", "/api/accounts?cohort={cohort}&limit=100", "/api/accounts/{account}",
    "/api/worklist", "/api/worklist?motion=retain&sort=value_at_stake&order=desc", "/api/diff", "/api/model",
    "/api/actions", "/api/plays/actions?limit=100", "/api/plays/actions?account_id={account}", "/api/levers",
    "/api/plays/uplift", "/api/plays/open", "/api/funnel", "/api/backtest",
    "/api/expansion/accounts?product=core&limit=100",
]
PAGES = ["/", "/worklist", "/worklist.csv", "/accounts", "/accounts/{account}", "/segments", "/runs", "/model",
         "/plays", "/partials/movements?type=expansion&month_from={month}&month_to={month}",
         "/partials/accounts?cohort={cohort}"]
API_GOAL_MS, PAGE_GOAL_MS = 300.0, 1000.0


def build(folder: Path, accounts: int, months: int) -> Path:
    """A simulated company in ``folder/data`` (kept when there), and a workspace of two runs of it: as of three
    months before the data end (it trains the model), then as of the end (scored by it)."""
    from upcurve.settings_file import UpcurveConfig
    from upcurve.simulate import simulate_company
    from upcurve.usecases import plays_run, run_in_workspace
    from upcurve.workspace import Store

    start, size = dt.date(2023, 1, 1), f"{accounts} accounts, {months} months, seed 5\n"
    marker = folder / "data" / "simulated.txt"
    if not marker.exists() or marker.read_text() != size:
        simulate_company(folder / "data", accounts=accounts, months=months, seed=5, start=start)
        marker.write_text(size)
    store = Store.open(folder / "workspace")
    config = UpcurveConfig.model_validate({"scoring": {"min_training_months": 2, "calibration_months": 2,
                                                       "min_positives": 5}})
    ends = start.year * 12 + start.month - 1 + months - 3  # the first month after the earlier run's data end
    earlier = dt.date(ends // 12, ends % 12 + 1, 1) - dt.timedelta(days=1)
    run_in_workspace(store, folder / "data", as_of=earlier, config=config)
    plays_run(store, config=config)  # the plays of each run, in order: actions for the worklist and the plays page
    run_in_workspace(store, folder / "data", config=config)
    plays_run(store, config=config)
    return folder / "workspace"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, path: str, headers: dict[str, str], conn: list[http.client.HTTPConnection]) -> float:
    start = time.perf_counter()
    if not conn:
        conn.append(http.client.HTTPConnection("127.0.0.1", port, timeout=120))
    try:
        conn[0].request("GET", path, headers=headers)
        response = conn[0].getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        conn.clear()
        raise
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return (time.perf_counter() - start) * 1000


def measure(port: int, path: str, values: dict[str, list[str]], headers: dict[str, str], clients: int,
            total: int) -> dict[str, float]:
    """Warm ``path`` with one request, then send ``total`` requests from ``clients`` concurrent clients."""
    draws = {key: itertools.cycle(found) for key, found in values.items()}
    lock = threading.Lock()

    def next_path() -> str:
        with lock:
            return path.format(**{key: next(draw) for key, draw in draws.items()})

    first = request(port, next_path(), headers, [])
    per_client = max(1, total // clients)

    def client(_: int) -> list[float]:
        conn: list[http.client.HTTPConnection] = []
        return [request(port, next_path(), headers, conn) for _ in range(per_client)]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = sorted(t for batch in pool.map(client, range(clients)) for t in batch)
    wall = time.perf_counter() - start
    q = statistics.quantiles(times, n=100)
    return {"first": first, "rps": len(times) / wall, "p50": q[49], "p95": q[94], "p99": q[98]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--workspace", type=Path, help="an existing workspace to serve (skips the build)")
    parser.add_argument("--keep", type=Path, help="build into this folder (data and workspace), kept for --workspace")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    parser.add_argument("--only", action="append", help="measure only the paths starting with this (repeatable)")
    args = parser.parse_args()

    from upcurve.workspace import Store
    from upcurve.workspace import access as acc

    if args.workspace is None:
        home = args.keep or Path(tempfile.mkdtemp(prefix="bench-web-"))
        start = time.perf_counter()
        workspace = build(home, args.accounts, args.months)
        print(f"built a workspace of {args.accounts:,} accounts × {args.months} months (two runs) in {home} in "
              f"{time.perf_counter() - start:.0f} s")
    else:
        workspace = args.workspace
    store = Store.open(workspace, create=False)
    token, _ = acc.create_token(store, "bench_web", ["read"])
    acc.set_user(store, "bench", "bench-password")
    latest = store.runs()[-1].run_id
    ids = store.query("SELECT account_id FROM accounts WHERE run_id = ?", [latest]).column(0).to_pylist()
    months = store.query("SELECT DISTINCT month FROM metrics WHERE run_id = ? ORDER BY month DESC LIMIT 12",
                         [latest]).column(0).to_pylist()
    cohorts = store.query("SELECT DISTINCT cohort FROM cohorts WHERE run_id = ?", [latest]).column(0).to_pylist()
    values = {"account": random.Random(5).sample(ids, min(500, len(ids))), "run": [latest],
              "month": sorted(months), "cohort": sorted(cohorts)}
    accounts, runs = len(ids), len(store.runs())

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "import uvicorn; from upcurve.web.app import create_app; "
         f"uvicorn.run(create_app({str(workspace)!r}, warm=True), host='127.0.0.1', port={port}, "
         "log_level='warning')"],
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    missed: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        session = _login(port)
        print(f"{accounts:,} accounts, {runs} run(s); {args.clients} concurrent clients, {args.requests} requests "
              f"per endpoint; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
        print(f"{'endpoint':64} {'first ms':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
        for kind, paths, headers, goal in (
                ("api", ENDPOINTS, {"Authorization": f"Bearer {token}"}, API_GOAL_MS),
                ("page", PAGES, {"Cookie": f"upcurve_session={session}"}, PAGE_GOAL_MS)):
            for path in paths:
                if args.only and not any(path.startswith(o) for o in args.only):
                    continue
                if path == "/api/diff" and runs < 2:
                    continue
                r = measure(port, path, values, headers, args.clients, args.requests)
                print(f"{kind + ' ' + path:64} {r['first']:9.1f} {r['rps']:8.1f} {r['p50']:8.1f} {r['p95']:8.1f} "
                      f"{r['p99']:8.1f}", flush=True)
                if r["p95"] > goal:
                    missed.append(f"{kind} {path}: p95 {r['p95']:.0f} ms (goal {goal:.0f} ms)")
        status = Path(f"/proc/{server.pid}/status")
        rss = re.search(r"VmRSS:\s+(\d+) kB", status.read_text()) if status.exists() else None
        print(f"load average {os.getloadavg()[0]:.1f} at the end"
              + (f"; the server holds {int(rss[1]) / 1e6:.1f} GB of memory" if rss else ""))
        print("every endpoint met its goal" if not missed else "missed the goal:\n  " + "\n  ".join(missed))
    finally:
        server.terminate()
        server.wait(10)


def _login(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/login")
    response = conn.getresponse()
    page = response.read().decode()
    cookie = re.search(r"upcurve_login_csrf=([^;]+)", response.getheader("set-cookie") or "")[1]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    body = f"username=bench&password=bench-password&csrf={csrf}&next=/"
    conn.request("POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                       "Cookie": f"upcurve_login_csrf={cookie}"})
    response = conn.getresponse()
    response.read()
    return re.search(r"upcurve_session=([^;]+)", response.getheader("set-cookie") or "")[1]


if __name__ == "__main__":
    main()
