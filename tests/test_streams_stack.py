"""`vigil up` and `vigil demo` as a user runs them: real subprocesses, nothing pre-started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.children import free_port
from monitor.config import load_settings
from monitor.store import open_store
from streams.produce import produce_lines
from tests.fixtures.broker import NO_MODEL_SCORERS
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration


def _env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_CONFIG": str(config), "HF_HUB_OFFLINE": "1"})
    return env


def _config(tmp_path: Path, ops_port: int | None = None) -> Path:
    """Settings for a stack under test: no model scorers, and its own ops port (the default
    one may be serving another worker on this machine)."""
    import yaml

    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump({
        **NO_MODEL_SCORERS, "kafka": {"session_timeout_s": 6.0},
        "ops": {"port": ops_port or free_port()},
    }))  # fmt: skip
    return config


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT
    # ignored; the child must react to Ctrl-C as it would on a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_demo_runs_on_a_fresh_machine(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Something else (a worker, a soak) already serves the configured ops port: the
    # demo's worker must not depend on it being free.
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "vigil.cli", "--data-dir", str(data), "demo", "--events",
             "4000"],
            env=_env(_config(tmp_path, ops_port=taken.getsockname()[1])),
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        taken.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stored and committed 4100/4100 messages" in result.stdout  # 4000 events + 100 feedback
    assert "  events         4000" in result.stdout
    assert "alerts (" in result.stdout
    # The regression injected into the second half reaches users' feedback: it is alerted
    # on, as it happens (an ALERT line before the final report), in the right segment.
    live, _, final = result.stdout.partition("stored (rows, FINAL):")
    assert "ALERT [FIRING critical] helpfulness_drop [model_version=ckpt-2026-11-20]" in live
    assert "helpfulness_drop [model_version=ckpt-2026-11-20]" in final
    assert "Traceback" not in result.stderr
    # It closes the loop: the failures it caught are the first version of an eval set,
    # beside its data directory, with the command to review them.
    from monitor.evalset.versions import load

    exported = load(tmp_path / "evalsets", "demo-failures")
    assert exported.version == "v1" and exported.items
    assert f"exported demo-failures@v1: {len(exported.items)} items" in final
    assert "vigil evalset review demo-failures" in final
    by_reason = exported.manifest["counts"]["reason"]
    assert {"pii_leak", "negative_feedback", "alert_example"} <= set(by_reason), by_reason


def test_up_serves_the_store_to_other_processes_while_running(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "--data-dir", str(data), "up"],
        env=_env(_config(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        assert up.stdout is not None
        banner = up.stdout.readline()
        assert banner.startswith("vigil is up: Kafka at "), banner
        servers = banner.split("Kafka at ")[1].split()[0].rstrip(";")
        settings = load_settings(
            overrides={"kafka": {"bootstrap_servers": servers}, "store": {"data_dir": str(data)}}
        )
        produce_lines(settings, generate_lines(TrafficSpec(n=500, seed=9)))
        deadline = time.monotonic() + 180
        count = 0
        while time.monotonic() < deadline and count < 500:
            time.sleep(0.5)
            try:
                store = open_store(settings)  # the daemon owns the directory: reads go over HTTP
            except Exception:
                continue  # still starting: the lock is held, the endpoint not yet published
            try:
                count = int(store.query("SELECT count() AS n FROM vigil.events FINAL")[0]["n"])
            finally:
                store.close()
        assert count == 500
        up.send_signal(signal.SIGINT)
        assert up.wait(120) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
