"""A large first publish goes through Shopify bulk operations, end to end through the CLI.

The merchant is a Shopify sandbox store with the Standard plan's bucket; its bulk operations
run as requests arrive (vsc/sandbox/shopify_bulk.py). Request counts are asserted, never times.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests import test_mapping_scale
from vsc.connectors.shopify import ShopifyConnector
from vsc.connectors.shopify.bulk import BulkMixin
from vsc.engine.mapping import listing_handle
from vsc.sandbox.base import Fault

shops = test_mapping_scale.shops  # the fixture: merchant "mall", vendor "acme", both Shopify sandboxes
N = 4  # products per test catalog; the threshold is lowered to 3 so that they go in bulk


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch, isolated):
    (isolated / "vsc.yaml").write_text("bulk_publish_from: 3\n")
    monkeypatch.setattr(BulkMixin, "bulk_poll_seconds", 0.0)


def catalog(vendor, n: int = N) -> list[dict]:
    """`n` products of two sizes each, with stock and an image on every other one."""
    return [
        vendor.add_product(
            f"Tee {i}",
            options={"Size": ["S", "M"]},
            variants=[
                {"sku": f"T{i}-S", "price": "10.00", "options": {"Size": "S"}, "available": 3 + i},
                {"sku": f"T{i}-M", "price": "12.00", "options": {"Size": "M"}, "available": 1},
            ],
            images=[f"https://cdn.example/tee-{i}.jpg"] if i % 2 == 0 else [],
            tags=["bulk"],
        )
        for i in range(n)
    ]


def operations(store) -> Counter:
    return Counter(r.operation for r in store.requests if r.operation)


def bulk_runs(store, field: str) -> list[dict]:
    return [op for op in store.bulk_operations.values() if f"{field}(" in op["query"]]


def check_published(cli, merchant, vendor, made: list[dict]) -> None:
    """Every product is one listing under its deterministic handle, published, with its stock,
    and every variant is linked; a sync pass afterwards finds nothing to write."""
    links = {link["vendor_product_id"]: link for link in cli("map", "list", "--json").json()}
    assert set(links) == {p["id"] for p in made}
    assert len(merchant.products()) == len(made)
    for p in made:
        link = links[p["id"]]
        listing = merchant.product(link["merchant_product_id"])
        assert listing["handle"] == listing_handle("acme", type("P", (), {"id": p["id"], "title": p["title"]}))
        assert merchant.online_store_published(listing["id"])
        assert sorted(v["sku"] for v in link["variants"]) == sorted(v["sku"] for v in p["variants"])
        for v in link["variants"]:
            assert merchant.available(v["merchant_variant_id"]) == vendor.available(v["vendor_variant_id"])
    merchant.reset_requests()
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert merchant.count(write=True) == 0, [w.operation for w in merchant.writes]


def test_a_large_first_publish_is_two_bulk_runs_and_idempotent(cli, shops):
    merchant, vendor = shops
    made = catalog(vendor)
    merchant.reset_requests()
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    assert len(r.json()["linked"]) == N
    ops = operations(merchant)
    # Two bulk runs (productSet, then publishablePublish), each: a staged upload, the run,
    # one poll (the sandbox finishes a run by the next request). No per-product mutation.
    assert ops["stagedUploadsCreate"] == 2 and ops["bulkOperationRunMutation"] == 2
    assert ops["bulkOperation"] == 2
    assert ops["productSet"] == 0 and ops["publishablePublish"] == 0
    uploads = [r for r in merchant.requests if r.path == "/staged-uploads"]
    downloads = [r for r in merchant.requests if r.path.startswith("/bulk-results/")]
    assert len(uploads) == 2 and len(downloads) == 2
    # Signed URLs are not the store's API: the access token never goes to them.
    assert all(r.headers.get("X-Shopify-Access-Token") is None for r in uploads + downloads)
    assert all(r.headers.get("X-Shopify-Access-Token") == merchant.token for r in merchant.requests if r.operation)
    assert len(bulk_runs(merchant, "productSet")) == 1 and len(bulk_runs(merchant, "publishablePublish")) == 1
    check_published(cli, merchant, vendor, made)

    merchant.reset_requests()
    again = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert again.code == 0, again
    assert again.json()["selected"]["already_linked"] == N and again.json()["linked"] == []
    assert merchant.count(write=True) == 0 and len(merchant.products()) == N


def test_below_the_threshold_products_go_one_by_one(cli, shops):
    merchant, vendor = shops
    catalog(vendor, 2)
    merchant.reset_requests()
    assert cli("map", "add", "acme", "--all", "--yes").code == 0
    ops = operations(merchant)
    assert ops["productSet"] == 2 and ops["publishablePublish"] == 2
    assert ops["stagedUploadsCreate"] == 0 and merchant.bulk_operations == {}


def test_a_few_products_too_large_for_the_cost_bucket_go_in_bulk(cli, shops):
    """Two products of 200 variants would keep ~1,250 points one by one, more than the Standard
    bucket holds beyond one productSet's requested cost: bulk, below the product threshold."""
    merchant, vendor = shops
    sizes = [f"S{j}" for j in range(200)]
    for i in range(2):
        vendor.add_product(
            f"Big {i}",
            options={"Size": sizes},
            variants=[{"sku": f"B{i}-{s}", "options": {"Size": s}, "available": 1} for s in sizes],
        )
    merchant.reset_requests()
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    assert [x["variants"] for x in r.json()["linked"]] == [200, 200]
    ops = operations(merchant)
    assert ops["bulkOperationRunMutation"] == 2 and ops["productSet"] == 0


def test_a_catalog_over_one_file_goes_in_several_runs(cli, shops, monkeypatch):
    """Shopify takes files of variables up to 20 MiB; here the limit is shrunk to two lines."""
    from vsc.connectors.shopify import bulk

    merchant, vendor = shops
    made = catalog(vendor)
    monkeypatch.setattr(bulk, "MAX_FILE_BYTES", 2400)
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    runs = bulk_runs(merchant, "productSet")
    assert sum(len(op["lines"]) for op in runs) == N and len(runs) >= 2
    assert all(sum(BulkMixin.bulk_line_bytes(ln) for ln in op["lines"]) <= 2400 for op in runs)
    assert len(bulk_runs(merchant, "publishablePublish")) == len(runs)
    check_published(cli, merchant, vendor, made)


def test_failed_lines_fall_back_to_one_product_at_a_time(cli, shops):
    merchant, vendor = shops
    made = catalog(vendor)
    merchant.bulk_failing_lines = {1, 3}  # Shopify's internal error on two lines of the first run
    merchant.reset_requests()
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    ops = operations(merchant)
    # Lines 1 and 3 of the productSet run failed: those products are redone by productSet +
    # publishablePublish. The publish run had two lines (for products 0 and 2) and its line 1
    # failed too: that listing is published by one publishablePublish.
    assert ops["bulkOperationRunMutation"] == 2
    assert ops["productSet"] == 2 and ops["publishablePublish"] == 3
    merchant.bulk_failing_lines = set()
    check_published(cli, merchant, vendor, made)


def test_a_refused_upload_publishes_product_by_product(cli, shops):
    merchant, vendor = shops
    made = catalog(vendor)
    merchant.inject(Fault("status", status=403, times=1, match=lambda r: r.path == "/staged-uploads"))
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    ops = operations(merchant)
    assert ops["stagedUploadsCreate"] == 1 and ops["bulkOperationRunMutation"] == 0
    assert ops["productSet"] == N and merchant.bulk_operations == {}
    check_published(cli, merchant, vendor, made)


def test_bulk_mutations_already_running_are_waited_for(cli, shops):
    """Shopify runs five bulk mutations per store at once (2026-01 on): with five running,
    vsc's run is refused with LIMIT_REACHED, waits for them to finish, and runs then."""
    merchant, vendor = shops
    made = catalog(vendor)
    other = ShopifyConnector.open("mall", merchant.url, merchant.token)
    merchant.bulk_lines_per_request = 1  # each request to the store runs one line of each
    running = [
        other.bulk_start("bulk_product_set", [{"input": {"title": f"Other {i}"}} for i in range(12)]) for _ in range(5)
    ]
    merchant.reset_requests()
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    assert {merchant.bulk_operations[op.id]["status"] for op in running} == {"COMPLETED"}
    ops = operations(merchant)
    assert ops["bulkOperationRunMutation"] == 3 and ops["bulkOperations"] >= 1  # one refused, found, then two ran
    assert ops["productSet"] == 0
    merchant.bulk_lines_per_request = None
    for p in list(merchant.products()):
        if p["title"].startswith("Other"):
            merchant.delete_product(p["id"])
    check_published(cli, merchant, vendor, made)


def test_a_lost_answer_to_the_run_finds_the_run_instead_of_starting_another(cli, shops):
    merchant, vendor = shops
    made = catalog(vendor)
    merchant.inject(
        Fault("cut_after", times=1, match=lambda r: merchant.operation_name(r) == "bulkOperationRunMutation")
    )
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    assert len(bulk_runs(merchant, "productSet")) == 1
    assert operations(merchant)["productSet"] == 0
    check_published(cli, merchant, vendor, made)


def test_a_lost_run_that_never_started_is_not_mistaken_for_another(cli, shops):
    """The run is cut before the store applied it; another bulk productSet of the same document
    ran a moment ago. vsc sees the other run's handles are not its own and publishes one by one."""
    merchant, vendor = shops
    made = catalog(vendor)
    other = ShopifyConnector.open("mall", merchant.url, merchant.token)
    done = other.bulk_wait(other.bulk_start("bulk_product_set", [{"input": {"title": "Other", "handle": "other"}}]))
    assert done.status == "COMPLETED"
    merchant.inject(
        Fault("cut_before", times=1, match=lambda r: merchant.operation_name(r) == "bulkOperationRunMutation")
    )
    merchant.reset_requests()
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    assert len(bulk_runs(merchant, "productSet")) == 1  # only the other one
    assert operations(merchant)["productSet"] == N
    merchant.delete_product(next(p["id"] for p in merchant.products() if p["handle"] == "other"))
    check_published(cli, merchant, vendor, made)


@pytest.mark.parametrize("killed_at", ["bulkOperationRunMutation", "bulkOperation"])
def test_killed_after_the_run_started_the_rerun_picks_up_its_results(cli, shops, killed_at):
    """SIGKILL `vsc map add` right after the store started the bulk productSet (before vsc heard
    of it) or right after the first poll; the rerun links everything from that one run."""
    merchant, vendor = shops
    made = catalog(vendor)
    box: dict[str, subprocess.Popen] = {}

    def kill(req):
        os.kill(box["p"].pid, signal.SIGKILL)

    merchant.inject(Fault("hook", times=1, hook=kill, match=lambda r: merchant.operation_name(r) == killed_at))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    box["p"] = subprocess.Popen(
        [sys.executable, "-m", "vsc", "map", "add", "acme", "--all", "--yes"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert box["p"].wait(timeout=120) == -signal.SIGKILL
    assert cli("map", "list", "--json").json() == []
    assert len(bulk_runs(merchant, "productSet")) == 1

    merchant.reset_requests()
    r = cli("map", "add", "acme", "--all", "--yes", "--json")
    assert r.code == 0, r
    assert len(r.json()["linked"]) == N
    ops = operations(merchant)
    assert ops["productSet"] == 0  # nothing redone product by product
    assert len(bulk_runs(merchant, "productSet")) == 1  # and no second bulk productSet
    assert len(bulk_runs(merchant, "publishablePublish")) == 1
    check_published(cli, merchant, vendor, made)
