"""The tracking planner, case by case: pure functions, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vsc.config import Settings
from vsc.connectors.base import Fulfillment, LineItem, TrackingInfo
from vsc.engine import tracking
from vsc.state import FulfillmentLink, OrderLink

T1 = datetime(2026, 5, 1, 10, tzinfo=UTC)
T2 = datetime(2026, 5, 2, 10, tzinfo=UTC)
UPS = (TrackingInfo("1Z1", "UPS", "https://ups.example/1Z1"),)
UPS2 = (TrackingInfo("1Z2", "UPS", "https://ups.example/1Z2"),)


def olink(state: str = "pushed", *, line_ids: bool = True) -> OrderLink:
    lines = [
        {
            "merchant_line_id": "mL1",
            "merchant_variant_id": "mV1",
            "vendor_product_id": "P",
            "vendor_variant_id": "vV1",
            "sku": "TEE-M",
            "quantity": 3,
        },
        {
            "merchant_line_id": "mL2",
            "merchant_variant_id": "mV2",
            "vendor_product_id": "P",
            "vendor_variant_id": "vV2",
            "sku": "TEE-L",
            "quantity": 1,
        },
    ]
    if line_ids:
        lines[0]["vendor_line_id"] = "vL1"
        lines[1]["vendor_line_id"] = "vL2"
    return OrderLink(
        id=7,
        vendor="acme",
        merchant_order_id="gid://shopify/Order/1",
        merchant_order_name="#1001",
        vendor_order_id="900",
        vendor_order_name="#900",
        key="push:gid://shopify/Order/1:acme",
        marker="m",
        state=state,
        lines=lines,
        fingerprint={},
    )


def ship(fid: str, lines=(), tracking=UPS, status="success", at=T1) -> Fulfillment:
    return Fulfillment(id=fid, order_id="900", status=status, tracking=tracking, lines=tuple(lines), created_at=at)


def flink(fid: str, lines, *, state="done", mid="gid://shopify/Fulfillment/9", tracking=UPS, whole=False, n=1):
    fp = {"tracking": [[t.number, t.company, t.url] for t in tracking], "lines": lines, "whole": whole}
    return FulfillmentLink(
        id=n,
        order_link_id=7,
        vendor="acme",
        vendor_fulfillment_id=fid,
        merchant_fulfillment_id=mid,
        state=state,
        fingerprint=fp,
    )


def kinds(actions):
    return [(a.kind, a.write) for a in actions]


CASES = [
    # (name, link state, vendor fulfillments, fulfillment links, expected [(kind, write)], expected lines per fulfil)
    (
        "new full shipment by line ids",
        "pushed",
        [ship("F1", [("vL1", 3), ("vL2", 1)])],
        [],
        [("fulfil", True)],
        [[["mL1", 3], ["mL2", 1]]],
    ),
    (
        "partial, then the rest",
        "pushed",
        [ship("F1", [("vL1", 2)]), ship("F2", [("vL1", 1), ("vL2", 1)], UPS2, at=T2)],
        [],
        [("fulfil", True), ("fulfil", True)],
        [[["mL1", 2]], [["mL1", 1], ["mL2", 1]]],
    ),
    (
        "the rest after a copied partial",
        "pushed",
        [ship("F1", [("vL1", 2)]), ship("F2", [("vL1", 1), ("vL2", 1)], UPS2, at=T2)],
        [flink("F1", [["mL1", 2]])],
        [("fulfil", True)],
        [[["mL1", 1], ["mL2", 1]]],
    ),
    (
        "no lines: every line still unfulfilled",
        "pushed",
        [ship("T1")],
        [],
        [("fulfil", True)],
        [[["mL1", 3], ["mL2", 1]]],
    ),
    (
        "no lines after a partial: the remainder",
        "pushed",
        [ship("F1", [("vL1", 2)]), ship("T2", (), UPS2, at=T2)],
        [flink("F1", [["mL1", 2]])],
        [("fulfil", True)],
        [[["mL1", 1], ["mL2", 1]]],
    ),
    ("quantity capped at what is left", "pushed", [ship("F1", [("vL1", 5)])], [], [("fulfil", True)], [[["mL1", 3]]]),
    (
        "copied, tracking unchanged: nothing",
        "pushed",
        [ship("F1", [("vL1", 3), ("vL2", 1)])],
        [flink("F1", [["mL1", 3], ["mL2", 1]])],
        [],
        [],
    ),
    (
        "copied, tracking edited",
        "pushed",
        [ship("F1", [("vL1", 3)], UPS2)],
        [flink("F1", [["mL1", 3]])],
        [("update_tracking", True)],
        [],
    ),
    (
        "a second number only is noted",
        "pushed",
        [ship("F1", [("vL1", 3)], UPS + UPS2)],
        [flink("F1", [["mL1", 3]])],
        [("tracking_noted", False)],
        [],
    ),
    (
        "pending: resolve before creating",
        "pushed",
        [ship("F1", [("vL1", 3)])],
        [flink("F1", [["mL1", 3]], state="pending", mid=None)],
        [("fulfil", True)],
        [[["mL1", 3]]],
    ),
    ("shipped after the merchant cancelled", "cancelled", [ship("F1", [("vL1", 3)])], [], [("conflict", False)], []),
    ("shipped while a cancel is requested", "cancel_requested", [ship("F1")], [], [("conflict", False)], []),
    ("copied before the cancel: nothing", "cancelled", [ship("F1", [("vL1", 3)])], [flink("F1", [["mL1", 3]])], [], []),
    ("conflict reported once", "cancelled", [ship("F1")], [flink("F1", [], state="conflict", mid=None)], [], []),
    (
        "vendor cancelled a copied shipment",
        "pushed",
        [ship("F1", [("vL1", 3)], status="cancelled")],
        [flink("F1", [["mL1", 3]])],
        [("vendor_cancelled", False)],
        [],
    ),
    ("cancelled before it was copied: nothing", "pushed", [ship("F1", [("vL1", 3)], status="cancelled")], [], [], []),
    (
        "terminal links plan nothing",
        "pushed",
        [ship("F1"), ship("F2", at=T2)],
        [flink("F1", [], state="skipped", mid=None), flink("F2", [], state="unfulfillable", mid=None, n=2)],
        [],
        [],
    ),
    ("lines not vsc's are not copied", "pushed", [ship("F1", [("vX", 1)])], [], [("not_copied", False)], []),
    (
        "extra tracking on a fully shipped order",
        "pushed",
        [ship("F1"), ship("T2", (), UPS2, at=T2)],
        [flink("F1", [["mL1", 3], ["mL2", 1]], whole=True)],
        [("not_copied", False)],
        [],
    ),
    (
        "a replaced tracking item updates the merchant fulfillment",
        "pushed",
        [ship("T2", (), UPS2, at=T2)],
        [flink("T1", [["mL1", 3], ["mL2", 1]], whole=True)],
        [("update_tracking", True)],
        [],
    ),
]


@pytest.mark.parametrize("state,shipments,links,expected,lines", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(state, shipments, links, expected, lines):
    actions = tracking.plan(olink(state), shipments, links, Settings(), merchant="mall")
    assert kinds(actions) == expected
    assert [a.detail["lines"] for a in actions if a.kind == "fulfil"] == lines
    assert all(a.store == "mall" and a.vendor == "acme" and a.link_id == 7 for a in actions)


def test_fulfil_action_carries_its_key_tracking_and_setting():
    (a,) = tracking.plan(olink(), [ship("F1", [("vL1", 1)])], [], Settings(tracking_notify_customer=True))
    assert a.key == "fulfil:gid://shopify/Order/1:acme:F1" and a.target == "gid://shopify/Order/1"
    assert a.detail["tracking"] == {"number": "1Z1", "company": "UPS", "url": "https://ups.example/1Z1"}
    assert a.detail["notify_customer"] is True and a.detail["recover"] is False
    assert tracking.plan(olink(), [ship("F1")], [], Settings())[0].detail["notify_customer"] is False


def test_tracking_update_and_pending_recovery_details():
    (upd,) = tracking.plan(olink(), [ship("F1", [("vL1", 3)], UPS2)], [flink("F1", [["mL1", 3]])], Settings())
    assert upd.target == "gid://shopify/Fulfillment/9" and upd.detail["tracking"]["number"] == "1Z2"
    assert upd.detail["fingerprint"]["tracking"] == [["1Z2", "UPS", "https://ups.example/1Z2"]]
    (rec,) = tracking.plan(
        olink("cancelled"),
        [ship("F1", [("vL1", 3)])],
        [flink("F1", [["mL1", 3]], state="pending", mid=None)],
        Settings(),
    )
    # Already sent (maybe) before the cancel: resolved, but never created now.
    assert rec.detail["recover"] is True and rec.detail["create"] is False


def test_replacement_rekeys_the_link():
    (a,) = tracking.plan(
        olink(), [ship("T2", (), UPS2, at=T2)], [flink("T1", [["mL1", 3], ["mL2", 1]], whole=True)], Settings()
    )
    assert a.detail["replaces"] == "T1" and a.detail["vendor_fulfillment_id"] == "T2" and a.detail["send"] is True


@pytest.mark.parametrize(
    "vendor_lines,expected",
    [
        (None, [["mL1", 2]]),  # the fulfillment names the variant
        ({}, [["mL1", 2]]),
    ],
)
def test_lines_map_by_variant_when_the_link_has_no_line_ids(vendor_lines, expected):
    (a,) = tracking.plan(olink(line_ids=False), [ship("F1", [("vV1", 2)])], [], Settings(), vendor_lines=vendor_lines)
    assert a.detail["lines"] == expected


def test_lines_map_through_the_vendor_order_by_variant_then_sku():
    link = olink(line_ids=False)
    shipment = ship("F1", [("vL1", 1), ("vL2", 1)])
    assert tracking.needs_vendor_lines(link, [shipment])
    vendor_lines = {
        "vL1": LineItem(id="vL1", variant_id="vV1", sku="X"),
        "vL2": LineItem(id="vL2", variant_id="gone", sku="TEE-L"),
    }
    (a,) = tracking.plan(link, [shipment], [], Settings(), vendor_lines=vendor_lines)
    assert a.detail["lines"] == [["mL1", 1], ["mL2", 1]]
    (b,) = tracking.plan(link, [shipment], [], Settings())
    assert b.kind == "not_copied" and b.detail["unmapped"] == [["vL1", 1], ["vL2", 1]]


def test_shipments_are_planned_oldest_first_and_ties_keep_the_store_order():
    first, second = ship("b", [("vL1", 3)], at=T1), ship("a", [("vL1", 3)], UPS2, at=T1)
    actions = tracking.plan(olink(), [first, second], [], Settings())
    assert kinds(actions) == [("fulfil", True), ("not_copied", False)]
    assert actions[0].detail["vendor_fulfillment_id"] == "b"


def M(fid, lines, number=None, status="success"):  # noqa: N802 - a merchant fulfillment
    return Fulfillment(
        id=fid, order_id="o", status=status, tracking=(TrackingInfo(number),) if number else (), lines=tuple(lines)
    )


MATCHES = [
    ("exact lines and number", [M("a", [("mL1", 3)], "1Z1")], [["mL1", 3]], "1Z1", set(), "a"),
    ("claimed by another link", [M("a", [("mL1", 3)], "1Z1")], [["mL1", 3]], "1Z1", {"a"}, None),
    ("other number", [M("a", [("mL1", 3)], "1Z9")], [["mL1", 3]], "1Z1", set(), None),
    ("other lines", [M("a", [("mL9", 3)], "1Z1")], [["mL1", 3]], "1Z1", set(), None),
    ("capped create: fewer items", [M("a", [("mL1", 1)], "1Z1")], [["mL1", 3]], "1Z1", set(), "a"),
    ("exact wins", [M("a", [("mL1", 1)], "1Z1"), M("b", [("mL1", 3)], "1Z1")], [["mL1", 3]], "1Z1", set(), "b"),
    (
        "no tracking planned: one without",
        [M("a", [("mL1", 3)], "1Z1"), M("b", [("mL1", 3)])],
        [["mL1", 3]],
        None,
        set(),
        "b",
    ),
    ("cancelled ones never", [M("a", [("mL1", 3)], "1Z1", "cancelled")], [["mL1", 3]], "1Z1", set(), None),
]


@pytest.mark.parametrize("found,lines,number,claimed,expected", [m[1:] for m in MATCHES], ids=[m[0] for m in MATCHES])
def test_find_match(found, lines, number, claimed, expected):
    match = tracking.find_match(found, lines, {"number": number} if number else None, claimed)
    assert (match.id if match else None) == expected
