"""Benchmark: a long run at a steady rate with the default scorers; memory and lag per minute.

A real tansu broker and a real `vigil worker` subprocess on the embedded store, with the
scorers the default settings enable. A producer thread sends generated traffic at
``--rate`` events/s for ``--minutes``; once a minute the run prints the worker's RSS, the
consumer lag (produced minus committed) and the events/s committed in that minute.
At the end: RSS growth from just after the warm-up (the first fifth of the run, at least
one minute) to the end, each a mean of 3 one-minute samples, and whether the lag grew
over the second half (its slope).
Targets (issue 13): RSS growth under 10% after warm-up, lag not growing.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from monitor.config import Settings, load_settings, write_settings_file
from monitor.errors import VigilError
from monitor.store import open_store
from streams.admin import OffsetReader, ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from vigil.traffic import TrafficSpec, generate_lines


def _settings(broker: DevBroker, data_dir: Path) -> Settings:
    return load_settings(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "session_timeout_s": 6.0},
            "store": {"data_dir": str(data_dir)},
            "log_level": "WARNING",
        }
    )


class _Producer(threading.Thread):
    """Sends one second's worth of events per second (event time follows the clock)."""

    def __init__(self, settings: Settings, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate, self.seconds = settings, rate, seconds
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        second = 0
        while not self.stop.is_set() and time.monotonic() - started < self.seconds:
            spec = TrafficSpec(
                n=self.rate,
                seed=second,
                id_prefix=f"s{second}",
                interval_s=1.0 / self.rate,
                start=datetime.now(UTC),
            )
            self.sent += produce_lines(self.settings, list(generate_lines(spec)))["sent"]
            second += 1
            ahead = started + second - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


#: What the engine says it holds, read through the worker's store endpoint each minute:
#: its memory tracker and the caches that grow with the data (RSS minus this is Python,
#: the models and the C allocator).
_ENGINE_SQL = (
    "SELECT metric, value FROM system.metrics WHERE metric IN ('MemoryTracking',"
    " 'MarkCacheBytes', 'UncompressedCacheBytes', 'PrimaryIndexCacheBytes',"
    " 'QueryConditionCacheBytes')"
)


def _engine_mb(settings: Settings) -> dict[str, float]:
    """The engine's memory figures in MB (empty when the endpoint does not answer)."""
    try:
        store = open_store(settings)
        try:
            rows = store.query(_ENGINE_SQL)
        finally:
            store.close()
    except VigilError:
        return {}
    return {str(r["metric"]): float(r["value"]) / 1e6 for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=2_000, help="events per second")
    args = parser.parse_args()
    # A SIGTERM ends the run like Ctrl-C: the finally below stops the worker and broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="vigil-soak-") as tmp, DevBroker() as broker:
        settings = _settings(broker, Path(tmp) / "data")
        ensure_topics(settings)
        config = write_settings_file(settings, Path(tmp) / "worker.yaml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_CONFIG"] = str(config)
        log = Path(tmp) / "worker.log"
        with log.open("ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "vigil.cli", "worker"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        watched = psutil.Process(worker.pid)
        producer = _Producer(settings, args.rate, args.minutes * 60)
        producer.start()
        rows: list[tuple[float, float, int, float]] = []
        engine: list[dict[str, float]] = []
        print(
            f"{'minute':>6} {'rss_mb':>8} {'lag':>8} {'events/s':>9} {'engine_mb':>9}",
            flush=True,
        )
        last_committed, last_t = 0, time.monotonic()
        try:
            with OffsetReader(settings) as offsets:
                for minute in range(1, int(args.minutes) + 1):
                    time.sleep(max(0.0, last_t + 60 - time.monotonic()))
                    if worker.poll() is not None:
                        raise SystemExit(f"worker exited:\n{log.read_text()[-2000:]}")
                    committed = sum(
                        o for (t, _), o in offsets.read().items()
                        if t == settings.kafka.events_topic
                    )  # fmt: skip
                    now = time.monotonic()
                    rate = (committed - last_committed) / (now - last_t)
                    rss = watched.memory_info().rss / 1e6
                    lag = producer.sent - committed
                    rows.append((minute, rss, lag, rate))
                    engine.append(_engine_mb(settings))
                    tracked = engine[-1].get("MemoryTracking", float("nan"))
                    print(
                        f"{minute:>6} {rss:>8.1f} {lag:>8} {rate:>9.0f} {tracked:>9.1f}",
                        flush=True,
                    )
                    last_committed, last_t = committed, now
        finally:
            producer.stop.set()
            producer.join()
            worker.send_signal(signal.SIGTERM)
            status = worker.wait(180)
    if len(rows) < 2:
        print("run too short for a verdict (at least 2 minutes)")
        return
    warm = max(1, len(rows) // 5)
    # Means of 3-minute windows, not single samples: one minute's RSS swings by +-5% with
    # batch buffers and the allocator, which made the first reading depend on its minute.
    span = min(3, max(1, (len(rows) - warm) // 2))
    base_rss = sum(r[1] for r in rows[warm : warm + span]) / span
    end_rss = sum(r[1] for r in rows[-span:]) / span
    if engine[warm] and engine[-1]:
        grew = {k: engine[-1][k] - engine[warm].get(k, 0.0) for k in engine[-1]}
        print("engine memory change after warm-up (MB): " + ", ".join(
            f"{k} {v:+.1f}" for k, v in sorted(grew.items())
        ))  # fmt: skip
    half = rows[len(rows) // 2 :]
    slope = (half[-1][2] - half[0][2]) / max(1, len(half) - 1)
    print(
        f"rss growth after warm-up: {100 * (end_rss - base_rss) / base_rss:.1f}%"
        f" ({span}-minute means {base_rss:.0f} -> {end_rss:.0f} MB, minutes {warm + 1}-"
        f"{warm + span} vs the last {span}); lag slope over the second half:"
        f" {slope:+.0f} events/minute; mean events/s {sum(r[3] for r in rows) / len(rows):.0f}"
        f" (offered {args.rate}); worker exit status {status}"
    )


if __name__ == "__main__":
    main()
