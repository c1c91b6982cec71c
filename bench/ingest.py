"""Benchmark: end-to-end ingest broker -> worker -> store vs raw consume, replay, memory.

All in one run, on the same machine and the same topic:

1. raw:    aiokafka reads the topic as fast as it can (no processing) - the baseline the
           issue names - right before and right after the live run, and the ratio uses
           the mean of the two; confluent-kafka (librdkafka, the worker's client) is
           printed too;
2. live:   a real `vigil worker` subprocess (heuristics on, model scorers off) consumes
           the same events (confluent-kafka, `streams.consumer`); rate = events / (time
           until the group committed them all), measured after a warm-up so the group
           join is excluded;
3. replay: `vigil replay` over the same events as a JSONL file, in-process;
4. memory: the worker's RSS sampled while traffic keeps flowing for ``--minutes``.

Targets: live >= 20,000 events/s and >= 0.25x raw; replay >= 50,000 events/s; RSS growth
< 10% over the run (5 minutes for the full check). ``--profile`` runs the worker under
cProfile and prints where its time went. Traffic is generated (monitor/traffic.py).

    .venv/bin/python bench/ingest.py [--events 50000] [--minutes 0.5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from monitor.config import KafkaSettings, Settings, load_settings, write_settings_file
from monitor.replay import replay_file
from streams.admin import OffsetReader, ensure_topics
from streams.broker import DevBroker
from streams.client_config import FETCH_OPTIONS, consumer_config
from streams.produce import produce_lines
from vigil.traffic import TrafficSpec, generate_lines

OFF = {k: {"enabled": False} for k in ("judge", "toxicity", "embedding")}


def _settings(broker: DevBroker, data_dir: Path, batch_max: int) -> Settings:
    return load_settings(
        overrides={
            "kafka": {
                "bootstrap_servers": broker.bootstrap_servers,
                "session_timeout_s": 6.0,
                "batch_max": batch_max,
                "batch_within_s": 0.2,
            },
            "store": {"data_dir": str(data_dir)},
            "log_level": "WARNING",
            **OFF,
        }
    )


#: Event-time spacing of the generated traffic. Timers (rollups, drift, alerts) fire per
#: event-time period, so their share of the cost depends on traffic density: 5 ms is a
#: service doing 200 requests/s, where a once-a-minute alert run is a rounding error. The
#: detection benchmark uses 2 s spacing instead, where timers dominate on purpose.
INTERVAL_S = 0.005


def _lines(n: int, prefix: str, seed: int = 7) -> list[bytes]:
    spec = TrafficSpec(n=n, seed=seed, id_prefix=prefix, interval_s=INTERVAL_S)
    return list(generate_lines(spec))


async def _raw_consume(settings: Settings, expected: int) -> float:
    """aiokafka reading ``expected`` records from the start of the events topic; records/s."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # The same fetch sizes and batch size as the worker's consumer, so the baseline is
    # the best this client does with the worker's own settings.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=settings.kafka.batch_max,
        **FETCH_OPTIONS,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(settings.kafka.events_topic) or {0}
        tps = [TopicPartition(settings.kafka.events_topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: int = 0
        started = time.perf_counter()
        while seen < expected:
            batches = await consumer.getmany(
                timeout_ms=1000, max_records=settings.kafka.batch_max
            )
            seen += int(sum(len(records) for records in batches.values()))
        return float(seen / (time.perf_counter() - started))
    finally:
        await consumer.stop()


def _raw_consume_librdkafka(settings: Settings, expected: int) -> float:
    """The same read with confluent-kafka (the client the worker uses), for reference."""
    from confluent_kafka import Consumer

    config = consumer_config(settings.kafka, **{"group.id": f"bench-raw-{time.time_ns()}"})
    config.pop("logger")
    consumer = Consumer(config)
    consumer.subscribe([settings.kafka.events_topic])
    try:
        seen, started = 0, 0.0
        while seen < expected:
            got = len(consumer.consume(settings.kafka.batch_max, 1.0))
            if got and not seen:
                started = time.perf_counter()  # the clock starts once the group is joined
            seen += got
        return float(seen / (time.perf_counter() - started))
    finally:
        consumer.close()


def _committed(settings: Settings, offsets: OffsetReader) -> int:
    return sum(o for (t, _), o in offsets.read().items() if t == settings.kafka.events_topic)


def _wait_committed(
    settings: Settings,
    offsets: OffsetReader,
    target: int,
    worker: subprocess.Popen[bytes],
    log: Path,
) -> float:
    """When the worker's committed offset reached ``target``, polled every 50 ms (one
    admin client for the whole run, so the observer takes little CPU from the worker)."""
    while True:
        if worker.poll() is not None:
            raise SystemExit(f"worker exited ({worker.returncode}):\n{log.read_text()[-2000:]}")
        if _committed(settings, offsets) >= target:
            return time.perf_counter()
        time.sleep(0.05)


def _start_worker(
    settings: Settings, workdir: Path, profile: Path | None
) -> subprocess.Popen[bytes]:
    config = write_settings_file(settings, workdir / "worker.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_CONFIG"] = str(config)
    prefix = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    with (workdir / "worker.log").open("ab") as out:
        return subprocess.Popen(
            [*prefix, "-m", "vigil.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _wait_idle(process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Until ``process`` uses under 5% of a CPU over a second (or ``timeout_s`` passed)."""
    watched = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and watched.cpu_percent(interval=1.0) >= 5.0:
        pass


def _rss_mb(process: subprocess.Popen[bytes]) -> float:
    return float(psutil.Process(process.pid).memory_info().rss) / 1e6


def _memory_run(
    settings: Settings,
    offsets: OffsetReader,
    worker: subprocess.Popen[bytes],
    log: Path,
    minutes: float,
    already: int,
) -> dict[str, Any]:
    """Keep traffic flowing for ``minutes``; RSS after the first fifth vs at the end."""
    deadline = time.monotonic() + minutes * 60
    samples: list[float] = []
    total, chunk = already, 0
    while time.monotonic() < deadline or len(samples) < 3:
        lines = _lines(10_000, prefix=f"mem{chunk}", seed=100 + chunk)
        total += produce_lines(settings, lines)["sent"]
        _wait_committed(settings, offsets, total, worker, log)
        samples.append(_rss_mb(worker))
        chunk += 1
    base = samples[max(0, len(samples) // 5 - 1)]
    return {
        "events": total - already,
        "rss_start_mb": round(base, 1),
        "rss_end_mb": round(samples[-1], 1),
        "rss_max_mb": round(max(samples), 1),
        "growth_pct": round(100 * (samples[-1] - base) / base, 1),
    }


def _profile_text(path: Path) -> str:
    if not path.exists():
        return "(no profile written)"
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(20)
    # Where the event loop's time goes, by layer: the consumer, the driver, the pipeline
    # (its store writes run in a thread, so they show as the loop waiting).
    layers = (
        r"streams/consumer.py|driver.py"
        r"|pipeline.py.*(process|prepare|commit|write)|select.epoll"
    )
    stats.sort_stats("cumulative").print_stats(layers)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=KafkaSettings.model_fields["batch_max"].default,
        help="kafka.batch_max (default: the setting's default)",
    )
    parser.add_argument(
        "--minutes", type=float, default=0.5, help="memory run length (5 = full check)"
    )
    parser.add_argument("--profile", action="store_true", help="run the worker under cProfile")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(
        f"traffic: {args.events:,} generated events, "
        f"one every {INTERVAL_S * 1000:g} ms of event time"
    )

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp, DevBroker() as broker:
        root = Path(tmp)
        settings = _settings(broker, root / "live", args.batch)
        ensure_topics(settings)
        # The warm-up is one whole batch, so every measured batch is a full one. A finite
        # topic's last, partial batch waits out kafka.batch_within_s before `consume`
        # returns it (no more events are coming); that idle wait is not throughput, and
        # with a 2,000-event warm-up it added ~0.2 s to a ~1.7 s measured drain.
        warm = _lines(args.batch, prefix="warm")
        main_lines = _lines(args.events, prefix="bench")

        # The topic is filled first, so the figure is the worker's drain rate, not the
        # producer's (kafka-python sends far slower than the worker consumes). The clock
        # starts at the first commit past the warm-up batch: group join is not ingest.
        sent = produce_lines(settings, warm)["sent"]
        produced = produce_lines(settings, main_lines)
        total = sent + produced["sent"]
        # The baseline is read right before and right after the worker's run, and the
        # ratio uses their mean: this machine's speed drifts by tens of percent within
        # minutes, and a baseline read minutes away from the run it divides is a coin toss.
        raw_before = asyncio.run(_raw_consume(settings, total))
        worker = _start_worker(settings, root, root / "worker.prof" if args.profile else None)
        log = root / "worker.log"
        offsets = OffsetReader(settings)
        try:
            started = _wait_committed(settings, offsets, sent, worker, log)
            first = _committed(settings, offsets)
            done = _wait_committed(settings, offsets, total, worker, log)
            live_rate = (total - first) / (done - started)
            # The worker idles (nothing new to read) while the baselines and replay run,
            # once its store's background merges are done: they would slow the baseline.
            _wait_idle(worker)
            raw_after = asyncio.run(_raw_consume(settings, total))
            path = root / "events.jsonl"
            path.write_bytes(b"".join(line + b"\n" for line in main_lines))
            replay = asyncio.run(
                replay_file(_settings(broker, root / "replay", args.batch), path)
            ).as_dict()
            memory = _memory_run(settings, offsets, worker, log, args.minutes, total)
        finally:
            offsets.close()
            worker.send_signal(signal.SIGTERM)
            worker.wait(120)
        profile = _profile_text(root / "worker.prof") if args.profile else ""
        # With the worker gone: its idle consumer's long polls slow librdkafka's reads on
        # this broker (measured 85k vs 400k+ events/s), though not aiokafka's.
        raw_librdkafka = _raw_consume_librdkafka(settings, total)

    raw_rate = (raw_before + raw_after) / 2
    ratio = live_rate / raw_rate
    print(f"producer (kafka-python)    {produced['messages_per_s']:>10,.0f} events/s")
    print(
        f"raw consume (aiokafka)     {raw_rate:>10,.0f} events/s   baseline (mean of"
        f" {raw_before:,.0f} before and {raw_after:,.0f} after the worker's run)"
    )
    print(f"raw consume (librdkafka)   {raw_librdkafka:>10,.0f} events/s   for reference")
    print(f"end-to-end worker          {live_rate:>10,.0f} events/s   {ratio:.2f}x raw")
    print(
        f"                           (confluent-kafka; {live_rate / raw_librdkafka:.2f}x"
        " librdkafka's raw)"
    )
    print("                           (target >= 20,000/s and >= 0.25x raw)")
    replay_rate = replay["events_per_s"]
    print(f"replay                     {replay_rate:>10,.0f} events/s   (target >= 50,000/s)")
    per_event = {k: replay[k] / max(1, replay["read"]) * 1e6 for k in ("prepare_s", "write_s")}
    print(
        f"                           (per event: prepare {per_event['prepare_s']:.1f} us on the"
        f" main thread, store writes {per_event['write_s']:.1f} us in a thread)"
    )
    print(
        f"worker RSS over {args.minutes:g} min      {memory['rss_start_mb']} -> "
        f"{memory['rss_end_mb']} MB (max {memory['rss_max_mb']}), growth {memory['growth_pct']}%"
    )
    print(f"                           over {memory['events']:,} events (target < 10%)")
    if profile:
        print("\nworker profile (whole run incl. memory run; top 20 by own time, then by layer):")
        print(profile)


if __name__ == "__main__":
    main()
