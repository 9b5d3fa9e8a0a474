"""`vsc demo` and `vsc sandbox` as a user runs them: real processes, real exit codes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time


def test_demo_tells_the_whole_story_and_exits_0(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vsc", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "120", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    for step in (
        "1. Connect the stores",
        "2. Publish",
        "3. The vendors edit",
        "4. vsc sync",
        "5. A customer buys",
        "6. The vendors ship",
        "7. vsc sync again",
    ):
        assert step in text
    assert "published 'Black Stoneware Mug'" in text and "published 'Black Risograph Print'" in text
    assert "0 write request(s)" in text
    assert not list(tmp_path.glob("**/vsc.db"))


def test_sandbox_runs_until_sigterm_and_serves_real_stores(tmp_path, cli, monkeypatch):
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsc", "sandbox", "--products", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Example:" in line:
                break
        text = "".join(lines)
        match = re.search(r"MALL_TOKEN=(\S+) vsc connect shopify mall --role merchant --shop (\S+)", text)
        assert match, text
        monkeypatch.setenv("MALL_TOKEN", match.group(1))
        assert cli("init").code == 0
        r = cli(
            "connect", "shopify", "mall", "--role", "merchant", "--shop", match.group(2), "--token-env", "MALL_TOKEN"
        )
        assert r.code == 0, r
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Sandbox stores stopped." in out
