"""The command line surface: help everywhere, and bad input refused with exit 2 and nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
import typer.main

from vsc.cli import app


def all_commands():
    root = typer.main.get_command(app)

    def walk(cmd, path):
        yield path
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])

    return list(walk(root, []))


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "vsc")
def test_every_command_has_help(cli, path):
    result = cli(*path, "--help")
    assert result.code == 0, result
    assert "Usage:" in result.out
    root = typer.main.get_command(app)
    cmd = root
    for name in path:
        cmd = cmd.commands[name]
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"


def test_a_process_builds_only_the_parser_of_its_command(cli, tmp_path):
    # A cron-started `vsc sync` builds the sync branch only; the branch must be the same command
    # as in the whole tree (options, help), and root options before the name must still parse.
    from vsc import cli as cli_module

    assert cli_module._command_name(["--db", "sync", "-v", "--config", "x.yaml", "stores", "check"]) == "stores"
    assert cli_module._command_name(["--verbose", "--debug"]) is None
    whole = typer.main.get_command(app)
    for name, cmd in whole.commands.items():
        branch = cli_module._command(name)
        assert list(branch.commands) == [name]
        assert [p.name for p in branch.params] == [p.name for p in whole.params]
        mine = branch.commands[name]
        assert mine.help == cmd.help
        assert [(p.name, p.opts) for p in mine.params] == [(p.name, p.opts) for p in cmd.params]
        assert sorted(getattr(mine, "commands", {})) == sorted(getattr(cmd, "commands", {}))
    result = cli("--db", tmp_path / "v.db", "-v", "--config", tmp_path / "v.yaml", "sync", "--help")
    assert result.code == 0 and "Usage: vsc sync" in result.out, result
    misspelt = cli("synk")
    assert misspelt.code == 2 and "No such command" in misspelt.err, misspelt


def test_contract_commands_exist():
    paths = {" ".join(p) for p in all_commands()}
    for needed in [
        "init",
        "connect shopify",
        "connect woocommerce",
        "connect squarespace",
        "stores",
        "stores check",
        "products",
        "map add",
        "map auto",
        "map list",
        "map remove",
        "sync",
        "demo",
        "sandbox",
    ]:
        assert needed in paths


def test_python_dash_m_runs():
    done = subprocess.run(
        [sys.executable, "-m", "vsc", "--version"], capture_output=True, text=True, env={**os.environ}, timeout=60
    )
    assert done.returncode == 0 and "vsc" in done.stdout


def test_no_database_exits_2_naming_vsc_init(cli):
    for args in (["stores"], ["sync"], ["map", "list"], ["products", "acme"]):
        result = cli(*args)
        assert result.code == 2, result
        assert "vsc init" in result.err


def test_init_creates_database_and_commented_settings(cli, isolated):
    result = cli("init")
    assert result.code == 0, result
    db = isolated / "vsc.db"
    settings = isolated / "vsc.yaml"
    assert db.exists() and settings.exists()
    assert oct(os.stat(db).st_mode & 0o777) == "0o600"
    assert oct(os.stat(settings).st_mode & 0o777) == "0o600"
    assert "auto_variants" in settings.read_text()
    assert cli("stores", "--json").json() == []


def test_malformed_settings_list_every_problem(cli, isolated):
    assert cli("init").code == 0
    (isolated / "vsc.yaml").write_text("auto_variants: yes please\nbogus: 1\nstock_buffer: lots\n")
    result = cli("sync")
    assert result.code == 2
    for text in ("auto_variants: must be true or false", "bogus: unknown key", "stock_buffer: must be a whole"):
        assert text in result.err


def test_plain_http_to_a_non_loopback_host_is_refused(cli):
    assert cli("init").code == 0
    result = cli(
        "connect", "shopify", "mall", "--role", "merchant", "--shop", "http://shop.example.com", "--token-env", "X"
    )
    assert result.code == 2 and "plain http://" in result.err
    assert cli("stores", "--json").json() == []


def test_bad_arguments_exit_2(cli):
    assert cli("init").code == 0
    assert cli("sync", "--only", "everything").code == 2
    assert cli("connect", "shopify", "mall", "--role", "boss", "--shop", "x").code == 2
    assert cli("map", "auto", "acme", "--by", "color").code == 2
    assert cli("no-such-command").code == 2


def test_a_cron_pass_imports_nothing_it_does_not_use(tmp_path):
    """A cron-started `vsc sync` pays for every import on every pass: neither sqlite-utils with
    click (~0.15 s of CPU; for migrations only) nor pydantic (typer 0.29 builds a pydantic
    adapter per parameter, ~0.14 s) is imported to parse the command and open the database,
    nor urllib3 or http.client with the email package (the stores are reached over vsc's own
    HTTP/1.1 exchange, vsc.connectors.transport; email.utils reads only obsolete HTTP dates),
    nor what only a proxy or certifi's own lookup needs (urllib.request; certifi,
    importlib.resources)."""
    db = tmp_path / "vsc.db"
    subprocess.run([sys.executable, "-m", "vsc", "--db", str(db), "init"], capture_output=True, check=True, timeout=60)
    code = (
        "import sys\n"
        "from vsc.cli import main\n"
        "try:\n"
        f"    main(['--db', {str(db)!r}, 'sync', '--json'])\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, file=sys.stderr)\n"
        "from vsc.connectors.shopify.client import document\n"
        "document('shop')\n"
        "unused = {'sqlite_utils', 'click', 'pydantic', 'urllib3', 'urllib.request', 'certifi',"
        " 'importlib.resources', 'http.client', 'email'}\n"
        "print(sorted(({m.split('.')[0] for m in sys.modules} | set(sys.modules)) & unused))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # (no merchant is connected: the pass stops there, after the parse and the database's opening)
    assert "no merchant store is connected" in done.stderr and "exit 2" in done.stderr, done.stderr
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_vsc_process_tunes_the_garbage_collector_and_callers_keep_theirs():
    """`vsc` as a process freezes what it imported and collects less often (cli.tune_gc); a
    program calling `main(argv)` (the tests, a script) keeps its own collector settings."""
    code = (
        "import gc, sys\n"
        "from vsc.cli import GC_THRESHOLDS, main\n"
        "default = gc.get_threshold()\n"
        "for argv in (['--version'], None):\n"
        "    sys.argv = ['vsc', '--version']\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    print(gc.get_threshold() == (default if argv else GC_THRESHOLDS), gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    verdicts = [line for line in done.stdout.splitlines() if not line.startswith("vsc ")]
    assert verdicts == ["True False", "True True"], done.stdout + done.stderr


def test_json_output_is_one_document_with_one_line_per_item(capsys):
    """`--json` documents parse back to what they hold; a pass's actions print one a line (the
    outer levels indented, each item compact: json's indenting encoder is the slow one)."""
    from vsc.cli import emit_json

    data = {
        "ok": True,
        "actions": [{"stream": "inventory", "detail": {"lines": [1, 2]}, "at": Decimal("1.50")}, {"kind": None}],
        "counts": {"catalog": 0},
        "errors": [],
        "mail": {},
    }
    emit_json(data)
    emit_json([])
    first, second = capsys.readouterr().out.split("\n}\n")
    assert json.loads(first + "\n}") == {**data, "actions": [{**data["actions"][0], "at": "1.50"}, {"kind": None}]}
    assert json.loads(second) == []
    lines = first.splitlines()
    assert '    {"stream": "inventory", "detail": {"lines": [1, 2]}, "at": "1.50"},' in lines
    assert '    {"kind": null}' in lines and '  "errors": [],' in lines
