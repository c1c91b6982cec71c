"""Benchmark: faults while producing. Events produced vs stored exactly once, per fault.

One real tansu broker, one chDB store served by Vigil's HTTP endpoint (this process owns
it), and a real `vigil worker` subprocess writing to it through the server backend, with
the toxicity scorer on (rate 1, so every stored event should end with one score). Each
round produces a slice of traffic while one fault hits mid-slice:

- ``kill``:   SIGKILL the worker, start a new one (redelivery from the last commit);
- ``outage``: stop the store endpoint for ``--outage-s`` seconds, then serve it again
              on the same port (the worker must pause, retry and resume, not exit).

After each round the run waits until the group committed everything produced so far,
then until every event is scored with nothing pending (at most 5 minutes), and prints:
the fault, events produced / stored (FINAL, distinct ids) / rows before merges, scores
missing (stored events without a toxicity score) and decisions left pending at that
point, and the seconds from the end of the fault to "all stored" and to "all scored"
(recovery). A clean round (no fault) first gives the same-run baseline.

    .venv/bin/python bench/chaos.py [--rounds 2] [--events 3000] [--outage-s 20]
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
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import Settings, load_settings, write_settings_file
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint import EndpointHandle, serve_store
from streams.admin import OffsetReader, ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from vigil.traffic import TrafficSpec, generate_lines


def _settings(broker: DevBroker, url: str) -> Settings:
    return load_settings(
        overrides={
            "kafka": {
                "bootstrap_servers": broker.bootstrap_servers,
                "session_timeout_s": 6.0,
                "batch_max": 500,
                "batch_within_s": 0.2,
            },
            "store": {"backend": "server", "url": url, "retry_max_delay_s": 2.0},
            "judge": {"enabled": False},
            "embedding": {"enabled": False},
            "toxicity": {"enabled": True},
            "sampling": {"rates": {"toxicity": 1.0}, "budget_per_minute": {"toxicity": 1e9}},
            "log_level": "WARNING",
        }
    )


class _Worker:
    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.config = write_settings_file(settings, workdir / "worker.yaml")
        self.log = workdir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_CONFIG"] = str(self.config)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vigil.cli", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"worker exited ({self.process.returncode}):\n{tail}")


def _wait_committed(settings: Settings, target: int, worker: _Worker, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    with OffsetReader(settings) as offsets:
        while time.monotonic() < deadline:
            worker.check_alive()
            done = sum(
                o for (t, _), o in offsets.read().items() if t == settings.kafka.events_topic
            )
            if done >= target:
                return time.perf_counter()
            time.sleep(0.2)
    raise SystemExit(f"not all {target} events committed within {timeout_s} s")


def _counts(store: EmbeddedStore) -> dict[str, int]:
    [row] = store.query(
        "SELECT (SELECT uniqExact(event_id) FROM vigil.events FINAL) AS stored,"
        " (SELECT count() FROM vigil.events) AS raw_rows,"
        " (SELECT count() FROM vigil.events FINAL WHERE event_id NOT IN"
        "   (SELECT event_id FROM vigil.scores WHERE scorer = 'toxicity')) AS missing,"
        " (SELECT countIf(decision = 'pending') FROM vigil.decisions FINAL"
        "   WHERE scorer = 'toxicity') AS pending"
    )
    return {k: int(v) for k, v in row.items()}


def _wait_scored(
    store: EmbeddedStore, produced: int, worker: _Worker, timeout_s: float
) -> tuple[dict[str, int], float]:
    """Until every produced event is stored and scored with nothing pending (or the
    timeout: the counts then show what is missing); the counts and when."""
    deadline = time.monotonic() + timeout_s
    while True:
        worker.check_alive()
        counts = _counts(store)
        done = counts["stored"] >= produced and not counts["missing"] and not counts["pending"]
        if done or time.monotonic() > deadline:
            return counts, time.perf_counter()
        time.sleep(0.5)


def _produce_during(settings: Settings, lines: list[bytes], fault: Any) -> float:
    """Produce ``lines`` in a thread while ``fault()`` runs; returns when the fault ended."""
    sender = threading.Thread(target=produce_lines, args=(settings, lines), daemon=True)
    sender.start()
    ended = fault()
    sender.join()
    return float(ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each fault")
    parser.add_argument("--events", type=int, default=3_000, help="events per round")
    parser.add_argument("--outage-s", type=float, default=20.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vigil-chaos-") as tmp, DevBroker() as broker:
        store = EmbeddedStore(Path(tmp) / "data")
        store.migrate()
        endpoint: EndpointHandle = serve_store(store)
        port, key = endpoint.port, endpoint.writer_key
        settings = _settings(broker, endpoint.writer_url)
        ensure_topics(settings)
        worker = _Worker(settings, Path(tmp))
        worker.start()
        faults = ["none"] + ["kill", "outage"] * args.rounds
        produced = 0
        print(
            f"{'round':>5} {'fault':<7} {'produced':>8} {'stored':>7} {'rows':>7}"
            f" {'missing':>7} {'pending':>7} {'stored_s':>10} {'scored_s':>9}"
        )
        try:
            for i, name in enumerate(faults):
                spec = TrafficSpec(n=args.events, seed=50 + i, id_prefix=f"r{i}", feedback_share=0)
                lines = list(generate_lines(spec))

                def fault(name: str = name) -> float:
                    nonlocal endpoint
                    time.sleep(1.0)  # mid-slice: the worker is busy with this round
                    if name == "kill":
                        worker.kill()
                        worker.start()
                    elif name == "outage":
                        endpoint.close()
                        time.sleep(args.outage_s)
                        endpoint = serve_store(store, port=port, writer_key=key)
                    return time.perf_counter()

                ended = _produce_during(settings, lines, fault)
                produced += len(lines)
                done = _wait_committed(settings, produced, worker, timeout_s=600)
                counts, scored = _wait_scored(store, produced, worker, timeout_s=300)
                print(
                    f"{i:>5} {name:<7} {produced:>8} {counts['stored']:>7}"
                    f" {counts['raw_rows']:>7} {counts['missing']:>7} {counts['pending']:>7}"
                    f" {done - ended:>10.1f} {scored - ended:>9.1f}",
                    flush=True,
                )
        finally:
            status = worker.stop()
            endpoint.close()
        counts = _counts(store)
        store.close()
    exact = counts["stored"] == produced
    print(
        f"total: produced {produced}, stored exactly once {counts['stored']}"
        f" ({'exact' if exact else 'MISMATCH'}), scores missing {counts['missing']},"
        f" pending {counts['pending']}, worker exit status {status}"
    )


if __name__ == "__main__":
    main()
