"""HTTP client overhead: CPU the calling thread spends per request, by client (issue 7).

A sandbox store (vsc.sandbox.base) on 127.0.0.1 answers every GET with the same JSON list
of 50 small items; each client sends N GETs over one kept-alive connection and parses the
answer. Only the client thread's CPU is counted (`time.thread_time`): the store runs on
other threads of the same process, so its work does not show. Clients:

- `requests.Session`: what StoreSession used before (environment read once, as it did);
- `StoreSession.request`: vsc's session now (its own HTTP/1.1 exchange underneath,
  vsc.connectors.transport, with vsc's retry, redirect, limiter and counting rules around it);
- `transport Pool.send`: that exchange alone (request head written, answer read and framed),
  the floor;
- `urllib3 pool`: `HTTPConnectionPool.urlopen` alone, retries and redirects off (what
  StoreSession used before; urllib3 comes with requests);
- `http.client`: the standard library's connection (what StoreSession used next).

Run:  python bench/http_overhead.py [N]   (N GETs per client, default 3000; about 10 s).
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
import urllib3  # noqa: E402

from vsc import USER_AGENT  # noqa: E402
from vsc.connectors.http import StoreSession, basic_auth  # noqa: E402
from vsc.connectors.transport import Pool  # noqa: E402
from vsc.sandbox.base import SandboxRequest, SandboxResponse, SandboxStore  # noqa: E402

ITEMS = [{"id": i, "sku": f"SKU-{i:04d}", "quantity": i % 7, "updated_at": "2026-11-27T10:00:00Z"} for i in range(50)]
PATH = "/1.0/commerce/inventory"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json", "Authorization": basic_auth("ck_bench", "cs_bench")}


class ListStore(SandboxStore):
    """Answers every request with the 50 items (and counts them, as every sandbox store does)."""

    platform = "bench"

    def handle(self, req: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(200, {"inventory": ITEMS})


def clients(url: str) -> dict[str, Callable[[], object]]:
    host, port = url.removeprefix("http://").split(":")
    session = requests.Session()
    session.trust_env = False
    session.headers.update(HEADERS)
    store = StoreSession("bench", "bench", url, auth=("ck_bench", "cs_bench"))
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1)
    plain = http.client.HTTPConnection(host, int(port))
    own = Pool(url, maxsize=1, timeout=(10, 60), context=None)

    def stdlib() -> object:
        plain.request("GET", PATH, headers=HEADERS)
        return json.loads(plain.getresponse().read())

    return {
        "requests.Session": lambda: session.get(url + PATH, timeout=(10, 60)).json(),
        "StoreSession.request": lambda: store.request("GET", PATH).json(),
        "transport Pool.send": lambda: json.loads(own.send("GET", PATH, None, HEADERS)[3]),
        "urllib3 pool": lambda: json.loads(
            pool.urlopen("GET", PATH, headers=HEADERS, retries=False, redirect=False, preload_content=True).data
        ),
        "http.client": stdlib,
    }


def measure(calls: dict[str, Callable[[], object]], n: int, rounds: int = 5) -> dict[str, list[float]]:
    """Client-thread CPU per call in milliseconds, per client: one figure per round of n // rounds
    calls. The clients take turns round by round, so a busy moment on the machine falls on all."""
    for call in calls.values():
        for _ in range(20):  # warm up: connection open, caches filled
            call()
    per_round = max(1, n // rounds)
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.thread_time()
            for _ in range(per_round):
                call()
            out[name].append((time.thread_time() - start) / per_round * 1000)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    store = ListStore().start()
    try:
        results = measure(clients(store.url), n)
        # Every call reached the store once, each client over its one kept-alive connection.
        assert store.count() == 5 * (5 * (n // 5) + 20) and store.connections == 5, (store.count(), store.connections)
    finally:
        store.stop()
    base = statistics.median(results["StoreSession.request"])
    print(f"{n} GETs per client, 50-item JSON answer, client-thread CPU per request (ms), 5 rounds")
    print("| client | median | best | worst | vs StoreSession |")
    print("| --- | --- | --- | --- | --- |")
    for name, runs in results.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.3f} | {min(runs):.3f} | {max(runs):.3f} | {median / base:.2f}× |")


if __name__ == "__main__":
    main()
