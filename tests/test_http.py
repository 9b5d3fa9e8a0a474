"""Unit tests of the HTTP layer (`responses` is for these only): URL rules, retries, redaction."""

from __future__ import annotations

import logging

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
