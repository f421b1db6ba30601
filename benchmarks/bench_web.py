"""Benchmark: the web app and the API under many concurrent clients, at scale.

Builds a workspace from a simulated company (default 100,000 accounts × 24 months; or reuse one with
``--workspace``), serves it with uvicorn in a separate process, then sends each endpoint's requests from many
concurrent clients (threads with keep-alive connections) and prints, per endpoint, requests per second and the
p50, p95 and p99 latency in milliseconds. The first request of each endpoint warms the run's tables into memory and
is reported apart. The target: every API call p95 under 300 ms and every page under a second.

    python benchmarks/bench_web.py [--accounts 100000] [--months 24] [--clients 32] [--requests 200]
    python benchmarks/bench_web.py --workspace path/to/workspace
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ENDPOINTS = [
    "/api/metrics", "/api/bridge", "/api/expansion?by=segment", "/api/segments?dimension=owner", "/api/cohorts",
    "/api/movements?type=expansion&limit=100", "/api/accounts?sort=churn_risk&limit=100",
    "/api/accounts?segment=smb&sort=mrr&offset=200&limit=100", "/api/accounts/{account}", "/api/worklist",
    "/api/worklist?motion=retain&sort=value_at_stake&order=desc", "/api/runs",
]
PAGES = ["/", "/worklist", "/accounts/{account}", "/segments", "/model"]


def build(folder: Path, accounts: int, months: int) -> Path:
    from upcurve.settings_file import UpcurveConfig
    from upcurve.simulate import simulate_company
    from upcurve.usecases import run_in_workspace
    from upcurve.workspace import Store

    simulate_company(folder / "data", accounts=accounts, months=months, seed=5)
    store = Store.open(folder / "workspace")
    config = UpcurveConfig.model_validate({"scoring": {"min_training_months": 2, "calibration_months": 2,
                                                       "min_positives": 5}})
    run_in_workspace(store, folder / "data", config=config)
    return folder / "workspace"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, path: str, headers: dict[str, str], conn: list[http.client.HTTPConnection]) -> float:
    start = time.perf_counter()
    if not conn:
        conn.append(http.client.HTTPConnection("127.0.0.1", port, timeout=60))
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


def measure(port: int, path: str, headers: dict[str, str], clients: int, total: int) -> dict[str, float]:
    first = request(port, path, headers, [])
    per_client = max(1, total // clients)

    def client(_: int) -> list[float]:
        conn: list[http.client.HTTPConnection] = []
        return [request(port, path, headers, conn) for _ in range(per_client)]

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
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    args = parser.parse_args()

    from upcurve.workspace import Store
    from upcurve.workspace import access as acc

    home = Path(tempfile.mkdtemp(prefix="bench-web-"))
    if args.workspace is None:
        start = time.perf_counter()
        workspace = build(home, args.accounts, args.months)
        print(f"built a workspace of {args.accounts:,} accounts × {args.months} months in "
              f"{time.perf_counter() - start:.0f} s")
    else:
        workspace = args.workspace
    store = Store.open(workspace, create=False)
    token, _ = acc.create_token(store, "bench_web", ["read"])
    acc.set_user(store, "bench", "bench-password")
    account = store.query("SELECT account_id FROM accounts ORDER BY mrr DESC LIMIT 1").column(0).to_pylist()[0]

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "import uvicorn; from upcurve.web.app import create_app; "
         f"uvicorn.run(create_app({str(workspace)!r}), host='127.0.0.1', port={port}, log_level='warning')"],
        env={**os.environ, "OMP_NUM_THREADS": "1"})
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
        print(f"{args.clients} concurrent clients, {args.requests} requests per endpoint")
        print(f"{'endpoint':58} {'first ms':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
        for kind, paths, headers in (("api", ENDPOINTS, {"Authorization": f"Bearer {token}"}),
                                     ("page", PAGES, {"Cookie": f"upcurve_session={session}"})):
            for path in paths:
                path = path.format(account=account)
                r = measure(port, path, headers, args.clients, args.requests)
                print(f"{kind + ' ' + path:58} {r['first']:9.1f} {r['rps']:8.1f} {r['p50']:8.1f} {r['p95']:8.1f} "
                      f"{r['p99']:8.1f}")
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
