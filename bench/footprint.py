"""Benchmark: a worker's memory and start-up time per configuration, same run.

Each configuration gets a fresh tansu broker and a real `vigil worker` subprocess; the
judge is off in all of them (its bundled llama model is a footprint of its own). The run
prints, per configuration:

- ``start_s``: process start to the worker's "worker started" log line (models loaded,
  store migrated, consumer group joined);
- ``rss_start``: the worker's RSS at that point (after a 1 s settle);
- ``rss_after``: its RSS once ``--events`` generated events are committed and every model
  scorer's decision is final (the scorers run at rate 1 here, so every event reaches every
  enabled model), and ``rss_peak``, the highest RSS sampled (every 0.2 s) on the way;
- ``x_base``: ``rss_after`` over the heuristics-only server-backend worker's, this run.

Store: ``server`` is the server backend (clickhouse-connect) talking to a chDB store that
this process serves over Vigil's ClickHouse-compatible endpoint (the worker then needs no
chDB); ``embedded`` is chDB inside the worker. Target (issue 15): heuristics only on the
server backend under 200 MB RSS. The onnx configuration loads an export built by
this process beforehand (a worker that must build it imports torch for that). Other
processes on the same cores slow start-up down; RSS is what counts here.

    .venv/bin/python bench/footprint.py [--events 1000] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from monitor.children import free_port
from monitor.config import load_settings, write_settings_file
from monitor.scorers.embeddings import bundled_model_path
from monitor.scorers.embeddings_onnx import ensure_export
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint import serve_store
from streams.admin import OffsetReader, ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from vigil.traffic import TrafficSpec, generate_lines

_OFF = {"enabled": False}


@dataclass(frozen=True)
class Config:
    name: str
    store: str  # "server" or "embedded"
    toxicity: bool = False
    embedding: str = ""  # "", "torch" or "onnx"

    def overrides(self) -> dict[str, Any]:
        rates = {
            "toxicity": 1.0 if self.toxicity else 0.0,
            "embedding": 1.0 if self.embedding else 0.0,
            "judge": 0.0,
        }
        return {
            "judge": _OFF,
            "toxicity": {"enabled": self.toxicity},
            "embedding": ({"enabled": True, "backend": self.embedding} if self.embedding
                          else _OFF),
            "sampling": {"rates": rates,
                         "budget_per_minute": {"toxicity": 1e9, "embedding": 1e9}},
        }  # fmt: skip

    @property
    def scorers(self) -> list[str]:
        return (["toxicity"] if self.toxicity else []) + (["embedding"] if self.embedding else [])


CONFIGS = [
    Config("heuristics", "server"),
    Config("heuristics", "embedded"),
    Config("+toxicity", "server", toxicity=True),
    Config("+embed torch", "server", embedding="torch"),
    Config("+embed onnx", "server", embedding="onnx"),
    Config("+tox+embed", "server", toxicity=True, embedding="torch"),
]


class _Sampler:
    """The worker's RSS, sampled whenever the bench waits; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0.0

    def rss_mb(self) -> float:
        rss = float(self.process.memory_info().rss) / 1e6
        self.peak = max(self.peak, rss)
        return rss

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.rss_mb()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _wait_log(log: Path, needle: bytes, worker: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log.read_bytes():
            return
        if worker.poll() is not None:
            raise SystemExit(f"worker exited ({worker.returncode}):\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise SystemExit(f"no {needle!r} within {timeout_s} s:\n{log.read_text()[-2000:]}")


def _pending(store: EmbeddedStore | None, scorers: list[str]) -> int:
    """Model-scorer decisions not yet final (0 without a store to ask: embedded backend)."""
    if store is None or not scorers:
        return 0
    names = ", ".join(f"'{s}'" for s in scorers)
    [row] = store.query(
        "SELECT countIf(decision = 'pending') AS n FROM vigil.decisions FINAL"
        f" WHERE scorer IN ({names})"
    )
    return int(row["n"])


def run_config(config: Config, events: int, workdir: Path) -> dict[str, float]:
    workdir.mkdir()
    store = endpoint = None
    with DevBroker(log_dir=workdir / "broker") as broker:
        overrides = config.overrides()
        overrides.update({
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "session_timeout_s": 6.0,
                      "batch_max": 500, "batch_within_s": 0.2},
            "log_level": "INFO",  # "worker started" is an INFO line
            "ops": {"port": free_port()},  # others may run a worker on the default port
        })  # fmt: skip
        if config.store == "server":
            store = EmbeddedStore(workdir / "served")
            store.migrate()
            endpoint = serve_store(store)
            overrides["store"] = {"backend": "server", "url": endpoint.writer_url}
        else:
            overrides["store"] = {"data_dir": str(workdir / "data")}
        if config.embedding == "onnx":
            # Exported here first: the worker then loads a cached export, as every worker
            # but the first on a host does (the first one exports, with torch, once).
            cache = workdir.parent / "onnx-cache"
            ensure_export(bundled_model_path(), cache)
            overrides["embedding"]["onnx_cache_dir"] = str(cache)
        settings = load_settings(overrides=overrides)
        ensure_topics(settings)
        config_file = write_settings_file(settings, workdir / "worker.yaml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_CONFIG"] = str(config_file)
        log = workdir / "worker.log"
        try:
            with log.open("ab") as out:
                started = time.perf_counter()
                worker = subprocess.Popen(
                    [sys.executable, "-m", "vigil.cli", "worker"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )  # fmt: skip
            try:
                _wait_log(log, b"worker started", worker, timeout_s=300)
                start_s = time.perf_counter() - started
                sampler = _Sampler(worker.pid)
                sampler.sleep(1.0)
                rss_start = sampler.rss_mb()
                lines = list(generate_lines(TrafficSpec(n=events, seed=7, feedback_share=0)))
                ends = produce_lines(settings, lines)["end_offsets"]
                deadline = time.monotonic() + 600
                with OffsetReader(settings) as offsets:
                    while offsets.consumed(ends) < events or _pending(store, config.scorers):
                        if worker.poll() is not None or time.monotonic() > deadline:
                            raise SystemExit(f"worker stalled:\n{log.read_text()[-2000:]}")
                        sampler.sleep(0.5)
                sampler.sleep(2.0)  # let the last writes and batches settle
                rss_after = sampler.rss_mb()
            finally:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(120)
        finally:
            if endpoint is not None:
                endpoint.close()
            if store is not None:
                store.close()
    return {"start_s": start_s, "rss_start": rss_start, "rss_after": rss_after,
            "rss_peak": sampler.peak}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--only", nargs="*", help="configuration names (e.g. heuristics)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configs = [c for c in CONFIGS if not args.only or c.name in args.only]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"cpus {os.cpu_count()}, events {args.events}", flush=True)  # fmt: skip
    print(f"{'config':<14} {'store':<9} {'start_s':>7} {'rss_start':>9} {'rss_after':>9}"
          f" {'rss_peak':>8} {'x_base':>6}", flush=True)  # fmt: skip
    base = None
    with tempfile.TemporaryDirectory(prefix="vigil-footprint-") as tmp:
        for i, config in enumerate(configs):
            r = run_config(config, args.events, Path(tmp) / str(i))
            if base is None and config.name == "heuristics" and config.store == "server":
                base = r["rss_after"]
            ratio = f"{r['rss_after'] / base:6.2f}" if base else f"{'-':>6}"
            print(f"{config.name:<14} {config.store:<9} {r['start_s']:>7.1f}"
                  f" {r['rss_start']:>9.1f} {r['rss_after']:>9.1f} {r['rss_peak']:>8.1f}"
                  f" {ratio}", flush=True)  # fmt: skip
    print(
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; RSS in MB"
        " (1e6 bytes); target: heuristics on the server store < 200 MB"
    )


if __name__ == "__main__":
    main()
