"""Found by tests/test_faults.py: a merchant stock edit in the very second vsc last read the item
back must not be taken for vsc's own echo.

Shopify stamps `updatedAt` in whole seconds. vsc remembers the `updatedAt` it read an item back
with and skips the item while its `updatedAt` is no later (vsc.engine.inventory._echo). An edit
in that same second (by hand, or Shopify restocking a cancelled order) keeps the same stamp, so
no pass would read the item again: the merchant would keep advertising stock the vendor does not
have. vsc therefore remembers a stamp only when it is earlier than the second the store answered
in (its `Date` header); otherwise it reads the item again on the next pass.
"""

from __future__ import annotations

import time

from tests.marketplace import open_market


def test_a_hand_edit_in_the_second_vsc_last_read_the_item_is_not_taken_for_an_echo(cli, monkeypatch):
    m = open_market("shopify", cli, monkeypatch)
    try:
        pid = m.vendor.add_shirt()
        assert cli("map", "add", "acme", pid).code == 0
        now = float(int(time.time()))
        m.merchant.clock = lambda: now  # the passes and the edit below share one whole second
        for _ in range(3):
            assert cli("sync").code == 0
        variant = m.merchant_variant(cli, "SH-S")
        assert m.merchant.available(variant) == 5
        m.merchant.set_available(variant, None, 99)  # a hand edit, in that same second
        assert cli("sync").code == 0
        m.merchant.clock = time.time  # time moves on; nothing touches the item again
        for _ in range(2):
            assert cli("sync").code == 0
        assert m.merchant.available(variant) == 5  # the vendor's stock rules
    finally:
        m.stop()
