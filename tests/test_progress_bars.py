"""`vigil replay` and `vigil produce` on a terminal draw a progress bar on stderr (records
of the file, time left, events stored or acknowledged, scorer queues); piped or with
--json they print nothing but their result."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pexpect

from streams.broker import DevBroker
from vigil.traffic import TrafficSpec, generate_lines

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _events(path: Path, n: int) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in generate_lines(TrafficSpec(n=n, seed=8))))
    return path


def _on_a_terminal(*args: str) -> str:
    """What ``vigil ARGS`` writes to a terminal (a pty), escape codes removed; exit 0."""
    child = pexpect.spawn(
        sys.executable, ["-m", "vigil.cli", *args],
        env={**os.environ, "VIGIL_LOG_LEVEL": "WARNING"}, encoding="utf-8",
        dimensions=(40, 200), timeout=600,
        use_poll=True,  # select() refuses descriptors past 1023, which a long run reaches
    )  # fmt: skip
    out = _ANSI.sub("", child.read())
    child.close()
    assert child.exitstatus == 0, out[-2000:]
    return out


def test_a_terminal_gets_a_progress_bar(tmp_path: Path) -> None:
    events = _events(tmp_path / "events.jsonl", 3000)
    out = _on_a_terminal("--data-dir", str(tmp_path / "data"), "replay", str(events),
                         "--heuristics-only")  # fmt: skip
    assert "replay" in out and "3000/3000" in out and "stored 3,000" in out
    assert "events stored    3000" in out  # the summary follows the bar


def test_piped_or_json_output_has_no_bar(tmp_path: Path) -> None:
    events = _events(tmp_path / "events.jsonl", 300)
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--data-dir", str(tmp_path / "data"), "replay",
         str(events), "--heuristics-only", "--json"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "VIGIL_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["stored"] == 300
    assert "━" not in done.stderr and "replay" not in done.stderr


def test_produce_on_a_terminal_shows_lines_sent(dev_broker: DevBroker, tmp_path: Path) -> None:
    events = _events(tmp_path / "events.jsonl", 2000)
    out = _on_a_terminal("--bootstrap-servers", dev_broker.bootstrap_servers, "produce",
                         str(events))  # fmt: skip
    assert "produce" in out and "2000/2000" in out and "acknowledged" in out
