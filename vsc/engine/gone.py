"""Links whose merchant side was deleted by hand: found once, marked, reported, never retried forever.

A merchant may delete a published listing, or one of its variants, in the Shopify
admin. Every write vsc then sends for that link fails, and would fail again on every
pass. After a stream ran, `review` looks at the merchant writes of one vendor that
failed, reads the products they were about from the merchant (one call), and marks
what is really gone: the product link (with all its variants) or single variant
links become `merchant_deleted`. From then on no stream plans anything for them
(they are not `active`), `vsc map list`, `vsc status` and `vsc why` show them, and
the failed action says what to do. vsc does not publish the listing again by itself:
the merchant may have deleted it on purpose.
"""

from __future__ import annotations

import logging
from typing import Any

from vsc.engine.actions import Action
from vsc.errors import VscError

log = logging.getLogger("vsc.engine.gone")

MERCHANT_DELETED = "merchant_deleted"


def what_to_do(vendor: str, vendor_product_id: str, *, whole: bool) -> str:
    """The sentence that follows a merchant-side deletion wherever it is reported."""
    if whole:
        return (
            f"To publish it again run `vsc map remove {vendor} {vendor_product_id}` then "
            f"`vsc map add {vendor} {vendor_product_id}`; `vsc map remove` alone forgets the link"
        )
    return (
        "The product's other variants keep syncing. To sell the variant again, add it back on the merchant "
        f"listing and link the product anew (`vsc map remove {vendor} {vendor_product_id}`, then "
        f"`vsc map add {vendor} {vendor_product_id} --to MERCHANT_PRODUCT_ID`)"
    )


def _link_ids(action: Action, product_of: dict[int, int]) -> tuple[int | None, list[int]]:
    """(product link id, variant link ids) an action writes for; `product_of` maps variant
    link ids to their product link ids."""
    d = action.detail
    vids = [int(i) for i in d.get("variant_link_ids") or []]
    if d.get("variant_link_id") is not None:
        vids.append(int(d["variant_link_id"]))
    vids += [int(u["variant_link_id"]) for u in d.get("updates") or [] if u.get("variant_link_id") is not None]
    link_id = action.link_id
    if link_id is None and vids:
        link_id = product_of.get(vids[0])
    return link_id, vids


def review(ctx: Any, vendor: str, actions: list[Action], pass_id: int | None) -> None:
    """Mark the links of `vendor` whose merchant listing or variant no longer exists.

    Only failed merchant writes are looked into, so a pass where everything went
    through costs nothing; otherwise one merchant read covers every product involved.
    """
    merchant_name = ctx.merchant_row().name
    failed = [a for a in actions if a.status == "failed" and a.write and a.store == merchant_name]
    if not failed:
        return
    state = ctx.state
    product_of = {v.id: v.product_link_id for v in state.variant_links(vendor=vendor)}
    touched: dict[int, list[Action]] = {}
    for action in failed:
        link_id, _ = _link_ids(action, product_of)
        if link_id is not None:
            touched.setdefault(link_id, []).append(action)
    links = {link.id: link for link in state.product_links(vendor) if link.id in touched}
    links = {i: link for i, link in links.items() if link.state != MERCHANT_DELETED}
    if not links:
        return
    try:
        present = ctx.merchant().get_products(sorted({link.merchant_product_id for link in links.values()}))
    except VscError as exc:  # the merchant cannot be read now: the next failure asks again
        log.debug("could not check the merchant products of %s: %s", vendor, exc)
        return
    for link_id, link in links.items():
        product = present.get(link.merchant_product_id)
        vlinks = state.variant_links(product_link_id=link_id)
        if product is None:
            gone_variants = vlinks
            title = link.fingerprint.get("title") or link.vendor_product_id
            note = f"the merchant listing of {title!r} ({link.merchant_product_id}) was deleted on the merchant store"
        else:
            there = {v.id for v in product.variants}
            gone_variants = [v for v in vlinks if v.merchant_variant_id not in there and v.state == "active"]
            if not gone_variants:
                continue
            names = ", ".join(v.sku or v.merchant_variant_id for v in gone_variants)
            note = f"variant(s) {names} of {product.title!r} were deleted on the merchant store"
        whole = product is None
        todo = what_to_do(vendor, link.vendor_product_id, whole=whole)
        advice = f"{note}; vsc stops syncing {'it' if whole else 'them'}. {todo}."
        gone_ids = {v.id for v in gone_variants}
        affected = [a for a in touched[link_id] if whole or gone_ids & set(_link_ids(a, product_of)[1])]
        with state.atomic():
            for v in gone_variants:
                state.update_variant_link(v.id, state=MERCHANT_DELETED)
            state.update_product_link(link_id, note=note, **({"state": MERCHANT_DELETED} if whole else {}))
            # Recorded under each failed action's key: the journal shows why it is not retried,
            # and `vsc status` stops counting it as waiting for a retry.
            for action in affected:
                entry = state.journal_begin(
                    pass_id=pass_id,
                    store=merchant_name,
                    vendor=vendor,
                    stream=action.stream,
                    kind=MERCHANT_DELETED,
                    key=action.key,
                    target=action.target,
                    detail={
                        "summary": advice,
                        "vendor_product_id": link.vendor_product_id,
                        "merchant_product_id": link.merchant_product_id,
                        "skus": [v.sku for v in gone_variants],
                    },
                )
                state.journal_finish(entry, status="reported")
                action.error = f"{action.error} ({advice})"
        log.info("%s: %s", vendor, advice)
