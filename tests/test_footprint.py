"""Footprint: a worker loads only what its configuration uses.

A real `vigil worker` subprocess on the server backend (clickhouse-connect to a chDB store
served over Vigil's HTTP endpoint, in this test process) with heuristics only consumes
events; at exit it writes the names in its ``sys.modules``. None of the heavy libraries
that only some configurations need (models, chDB, statistics, Parquet) may be among them.
RSS figures are in ``bench/footprint.py``, not here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_settings, write_settings_file
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint import EndpointHandle
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import WorkerProcess, stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration

#: Top-level packages a heuristics-only worker on the server backend has no use for.
HEAVY = (
    "chdb",
    "torch",
    "sentence_transformers",
    "transformers",
    "detoxify",
    "profanity_check",
    "sklearn",
    "scipy",
    "llama_cpp",
    "openai",
    "pyarrow",
    "datasketch",
    "onnxruntime",
)

#: The real CLI entry point, plus one exit hook that lists the loaded modules (at exit
#: the list holds everything start-up, consuming and shutdown imported).
_WRAPPER = (
    "import atexit, sys\n"
    "atexit.register(lambda: open(sys.argv[1], 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "from vigil.cli.main import main\n"
    "sys.exit(main(['worker']))\n"
)


def test_heuristics_only_worker_on_the_server_backend_loads_no_heavy_library(
    dev_broker: DevBroker,
    embedded_store: EmbeddedStore,
    served_store: EndpointHandle,
    tmp_path: Path,
) -> None:
    overrides = stream_overrides(dev_broker, tmp_path / "unused-data")
    overrides["store"] = {"backend": "server", "url": served_store.writer_url}
    settings = load_settings(overrides=overrides)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path)
    write_settings_file(settings, worker.config)
    modules = tmp_path / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_CONFIG": str(worker.config), "HF_HUB_OFFLINE": "1"})
    with worker.log_path.open("ab") as out:
        worker.process = subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, str(modules)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        ends = produce_lines(settings, generate_lines(TrafficSpec(n=300, seed=3)))["end_offsets"]
        assert wait_consumed(settings, ends, worker) == 300
        assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()
    finally:
        worker.stop()
    loaded = set(modules.read_text().split())
    # The list is real: the worker's own parts are in it.
    assert {"streams.worker", "monitor.store.server", "monitor.checks"} <= loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], heavy
    # And the rows went through the server backend into the served store.
    rows = embedded_store.query("SELECT count() AS n FROM vigil.events FINAL")
    assert int(rows[0]["n"]) == 300
