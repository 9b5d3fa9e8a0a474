"""Settings: every problem reported at once, unknown keys refused, defaults documented."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from vsc import config
from vsc.errors import SettingsError

ROOT = Path(__file__).resolve().parents[1]


def test_example_file_is_valid_and_matches_the_defaults():
    text = (ROOT / "config.example.yaml").read_text()
    assert text == config.example_text()
    assert config.validate(yaml.safe_load(text)) == config.Settings(source="settings")


def test_every_key_is_documented_in_the_example():
    text = (ROOT / "config.example.yaml").read_text()
    for key in (*config.GLOBAL_KEYS, *config.VENDOR_KEYS, *config.SMTP_KEYS):
        assert f"{key}:" in text, key


def test_all_problems_are_reported_at_once(tmp_path):
    path = tmp_path / "vsc.yaml"
    path.write_text(
        "auto_variant: true\n"
        "order_push: maybe\n"
        "publish_status: live\n"
        "stock_buffer: -1\n"
        "price_rule: {percent: lots, rounding: up}\n"
        "smtp: {port: 99999, starttls: true, ssl: true, from: nobody}\n"
        "vendors:\n  acme: {emial: a@b.c, order_push: 1}\n"
    )
    with pytest.raises(SettingsError) as caught:
        config.load(path)
    problems = caught.value.problems
    expected = [
        "auto_variant: unknown key (did you mean 'auto_variants'?)",
        "order_push: must be true or false",
        "publish_status: must be one of active, draft, vendor",
        "stock_buffer: must be at least 0",
        "price_rule.percent: must be a number",
        "price_rule.rounding: must be one of cents, whole, ending",
        "smtp.host: is required",
        "smtp.port: must be a port number",
        "smtp: choose starttls or ssl, not both",
        "smtp.from: 'nobody' is not an e-mail address",
        "vendors.acme.emial: unknown key (did you mean 'email'?)",
        "vendors.acme.order_push: must be true or false",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert len(problems) == len(expected)
    assert str(path) in str(caught.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "vsc.yaml"
    path.write_text("auto_variants: true\nvendors: [unclosed\n")
    with pytest.raises(SettingsError, match="line"):
        config.load(path)


def test_missing_file_gives_defaults_unless_required(tmp_path):
    assert config.load(tmp_path / "none.yaml") == config.Settings()
    with pytest.raises(SettingsError, match="does not exist"):
        config.load(tmp_path / "none.yaml", required=True)


def test_vendor_overrides_apply_over_globals():
    s = config.validate(
        {
            "stock_buffer": 1,
            "price_rule": {"percent": 10},
            "vendors": {"acme": {"stock_buffer": 3, "vendor_name": "ACME"}},
        }
    )
    acme = s.vendor("acme")
    assert acme.stock_buffer == 3 and acme.vendor_name == "ACME" and acme.price_rule.percent == Decimal(10)
    other = s.vendor("other")
    assert other.stock_buffer == 1 and other.vendor_name is None


@pytest.mark.parametrize(
    ("rule", "price", "expected"),
    [
        ({}, "9.999", "10.00"),
        ({"percent": 15}, "20", "23.00"),
        ({"amount": "0.5"}, "1.25", "1.75"),
        ({"rounding": "whole"}, "10.01", "11.00"),
        ({"rounding": "ending", "ending": "0.95"}, "10.96", "11.95"),
        ({"rounding": "ending"}, "10.99", "10.99"),
        ({"amount": "-50"}, "10", "0.00"),
    ],
)
def test_price_rule(rule, price, expected):
    s = config.validate({"price_rule": rule})
    assert s.price_rule.apply(Decimal(price)) == Decimal(expected)
    assert s.price_rule.apply(None) is None
