"""Unit tests of the HTTP layer (`responses` is for these only): URL rules, retries, redaction."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
import requests
import responses

from vsc.connectors.http import StoreSession, validate_store_url
from vsc.errors import RateLimited, RetriableError, UsageError
from vsc.secrets import Redactor


@pytest.mark.parametrize(
    "url",
    ["https://shop.example.com", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.9.9.9"],
)
def test_allowed_urls(url):
    assert validate_store_url(url) == url


@pytest.mark.parametrize("url", ["http://shop.example.com", "http://10.0.0.1", "ftp://x", "shop.example.com"])
def test_refused_urls(url):
    with pytest.raises(UsageError):
        validate_store_url(url)


def session(**kw):
    return StoreSession("acme", "test", "https://acme.example", sleep=lambda s: None, **kw)


@responses.activate
def test_reads_retry_5xx_and_429_then_succeed():
    responses.get("https://acme.example/x", status=503)
    responses.get("https://acme.example/x", status=429, headers={"Retry-After": "2"})
    responses.get("https://acme.example/x", json={"ok": True})
    s = session()
    assert s.request("GET", "/x").json() == {"ok": True}
    assert s.stats["requests"] == 3 and s.stats["throttled"] == 1


@responses.activate
def test_unsafe_write_is_not_repeated_after_5xx():
    responses.post("https://acme.example/orders", status=502)
    s = session()
    with pytest.raises(RetriableError):
        s.request("POST", "/orders", json={})
    assert len(responses.calls) == 1


@responses.activate
def test_write_with_idempotency_key_is_retried():
    responses.post("https://acme.example/orders", status=500)
    responses.post("https://acme.example/orders", status=201, json={"id": 1})
    s = session()
    assert s.request("POST", "/orders", json={}, headers={"Idempotency-Key": "k"}).status_code == 201
    assert len(responses.calls) == 2


@responses.activate
def test_429_is_retried_even_for_writes_and_gives_up_typed():
    for _ in range(10):
        responses.post("https://acme.example/orders", status=429)
    s = session(max_retries=2)
    with pytest.raises(RateLimited):
        s.request("POST", "/orders", json={})
    assert len(responses.calls) == 3


@responses.activate
def test_unsafe_write_cut_after_sending_is_not_repeated():
    responses.post("https://acme.example/orders", body=requests.ConnectionError("reset by peer"))
    s = session()
    with pytest.raises(RetriableError, match="may or may not"):
        s.request("POST", "/orders", json={})
    assert len(responses.calls) == 1


@responses.activate
def test_4xx_is_returned_to_the_connector():
    responses.get("https://acme.example/x", status=404, json={"code": "nope"})
    assert session().request("GET", "/x").status_code == 404


def test_redactor_blanks_registered_secrets(caplog):
    r = Redactor()
    r.register("shpat_supersecret")
    logger = logging.getLogger("vsc.test.redact")
    logger.addFilter(r)
    with caplog.at_level(logging.INFO, logger="vsc.test.redact"):
        logger.info("token is %s", "shpat_supersecret")
    assert "shpat_supersecret" not in caplog.text and "***" in caplog.text


@responses.activate
def test_redirects_stay_within_the_store_and_never_turn_a_write_into_a_read():
    from vsc.errors import ApiError

    responses.get("https://acme.example/a", status=301, headers={"Location": "/b?page=2"})
    responses.get("https://acme.example/b", json={"ok": True})
    s = StoreSession("acme", "test", "https://acme.example", headers={"X-Shopify-Access-Token": "shpat_x"})
    assert s.request("GET", "/a", params={"page": 1}).json() == {"ok": True}
    assert responses.calls[-1].request.url == "https://acme.example/b?page=2"

    # Elsewhere (another host, or plain http): the credential header would go along. Not followed.
    for target in ("https://evil.example/b", "http://acme.example/b", "https://acme.example:8443/b"):
        responses.get("https://acme.example/c", status=302, headers={"Location": target})
        with pytest.raises(ApiError, match="did not follow it: it leads to another address"):
            s.request("GET", "/c")
        assert not any(urlsplit(c.request.url).netloc != "acme.example" for c in responses.calls)
        assert not any(c.request.url.startswith("http://") for c in responses.calls)

    # A POST answered with 302 would come back as a GET; a 307 keeps the method and is followed.
    responses.post("https://acme.example/orders", status=302, headers={"Location": "/orders/"})
    with pytest.raises(ApiError, match="would turn this write into a read"):
        s.request("POST", "/orders", json={})
    responses.post("https://acme.example/v2/orders", status=307, headers={"Location": "/v2/orders/"})
    responses.post("https://acme.example/v2/orders/", status=201, json={"id": 1})
    assert s.request("POST", "/v2/orders", json={"a": 1}).json() == {"id": 1}
    assert responses.calls[-1].request.method == "POST" and responses.calls[-1].request.body == b'{"a": 1}'

    responses.get("https://acme.example/loop", status=302, headers={"Location": "/loop"})
    with pytest.raises(ApiError, match="more than 5 redirects"):
        s.request("GET", "/loop")
