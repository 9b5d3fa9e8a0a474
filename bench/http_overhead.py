"""HTTP client overhead: CPU the calling thread spends per request, by client (issue 7).

A sandbox store (vsc.sandbox.base) on 127.0.0.1 answers every GET with the same JSON list
of 50 small items; each client sends N GETs over one kept-alive connection and parses the
answer. Only the client thread's CPU is counted (`time.thread_time`): the store runs on
other threads of the same process, so its work does not show. Clients:

- `requests.Session`: what StoreSession used before (environment read once, as it did);
- `StoreSession.request`: vsc's session now (urllib3 underneath, with vsc's retry,
  redirect, limiter and counting rules around it);
- `urllib3 pool`: `HTTPConnectionPool.urlopen` alone, retries and redirects off;
- `http.client`: the standard library's connection, the floor.

Run:  python bench/http_overhead.py [N]   (N defaults to 2000; a few seconds).
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

    def stdlib() -> object:
        plain.request("GET", PATH, headers=HEADERS)
        return json.loads(plain.getresponse().read())

    return {
        "requests.Session": lambda: session.get(url + PATH, timeout=(10, 60)).json(),
        "StoreSession.request": lambda: store.request("GET", PATH).json(),
        "urllib3 pool": lambda: json.loads(
            pool.urlopen("GET", PATH, headers=HEADERS, retries=False, redirect=False, preload_content=True).data
        ),
        "http.client": stdlib,
    }


def measure(call: Callable[[], object], n: int) -> float:
    """Client-thread CPU per call, in milliseconds (best of three rounds of n // 3)."""
    for _ in range(20):  # warm up: connection open, caches filled
        call()
    rounds = []
    for _ in range(3):
        start = time.thread_time()
        for _ in range(max(1, n // 3)):
            call()
        rounds.append((time.thread_time() - start) / max(1, n // 3) * 1000)
    return min(rounds), statistics.median(rounds)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    store = ListStore().start()
    try:
        results = {name: measure(call, n) for name, call in clients(store.url).items()}
    finally:
        store.stop()
    base = results["StoreSession.request"][0]
    print(f"{n} GETs per client, 50-item JSON answer, client-thread CPU per request")
    print("| client | best ms/request | median ms/request | vs StoreSession |")
    print("| --- | --- | --- | --- |")
    for name, (best, median) in results.items():
        print(f"| {name} | {best:.3f} | {median:.3f} | {best / base:.2f}× |")


if __name__ == "__main__":
    main()
