"""Benchmark: the judge stage against a local llama.cpp server (not a test; prints figures).

    .venv/bin/python bench/judge.py [--events 8] [--levels 1,8,32] [--rubric support-assistant]

For each concurrency level, a fresh judge scorer behind a real `Stage` judges the same
``--events`` distinct generated events (fresh cache each level, so every event is a real
call) and writes to a chDB store; judgments/s is compared with concurrency 1 measured in
the same run. Then the events are redelivered to a *new* scorer bound to the same store
(a restart): the cache hit rate must be 100% and the server must see no request.

llama-cpp-python's server answers one request at a time (parallelism 1), so client
concurrency above ~2 cannot raise throughput there; it only shows the stage does not
lose or duplicate work under load. A server with parallel slots would scale.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import load_settings
from monitor.events import Event, parse_event
from monitor.logs import setup_logging
from monitor.pipeline.stages import Stage
from monitor.scorers.base import Job
from monitor.scorers.judge.llama_server import SERVER_PARALLELISM, start_local_server
from monitor.scorers.judge.scorer import JudgeScorer
from monitor.store.embedded import EmbeddedStore
from monitor.store.queries.judge import stored_verdicts
from vigil.traffic import TrafficSpec, generate_events


def make_events(n: int, seed: int) -> list[Event]:
    out = []
    for i, data in enumerate(generate_events(TrafficSpec(n=n, seed=seed, feedback_share=0))):
        # The generator reuses templates; a ticket number makes every request distinct, so
        # no level is flattered by in-run cache hits.
        data["request"]["messages"][-1]["content"] += f" (ticket {seed}-{i})"
        out.append(parse_event(orjson.dumps(data)))
    return out


async def run_level(settings: Any, store: EmbeddedStore, events: list[Event],
                    bind: bool) -> tuple[float, dict[str, Any]]:
    lookup = partial(stored_verdicts, store) if bind else None
    scorer = JudgeScorer(settings.judge, verdict_lookup=lookup)

    async def write(tables: dict[str, list[dict[str, Any]]]) -> None:
        def insert() -> None:
            for name, rows in tables.items():
                if rows:
                    store.insert(name, rows)

        await asyncio.to_thread(insert)

    stage = Stage(scorer, write, queue_size=len(events) + 1)
    await stage.start()
    started = time.perf_counter()
    for event in events:
        stage.offer(Job(event))
    await stage.drain()
    elapsed = time.perf_counter() - started
    await stage.stop()
    return elapsed, stage.stats()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=8, help="distinct events per level")
    p.add_argument("--levels", default="1,8,32", help="client concurrency levels")
    p.add_argument("--rubric", default="support-assistant")
    p.add_argument("--threads", type=int, default=1, help="llama.cpp server threads")
    p.add_argument("--max-text-chars", type=int, default=1200)
    args = p.parse_args()
    setup_logging("WARNING")  # failures show with their codes, as JSON on stderr
    levels = [int(x) for x in args.levels.split(",")]

    server = start_local_server(n_threads=args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-judge-"))
    store = EmbeddedStore(tmp / "data")
    store.migrate()
    try:
        print(f"judge stage benchmark: SmolLM2-135M-Instruct Q4_1, llama-cpp-python server, "
              f"{args.threads} thread(s), server parallelism {SERVER_PARALLELISM}; "
              f"{args.events} distinct events per level, rubric {args.rubric}")
        base_rate = None
        for level in levels:
            settings = load_settings(overrides={"store": {"data_dir": str(tmp / "data")}, "judge": {
                "base_url": server.base_url, "concurrency": level, "rubric": args.rubric,
                "structured_output": "json_object_schema", "timeout_s": 3600,
                "max_text_chars": args.max_text_chars, "pairwise": False}})
            events = make_events(args.events, seed=100 + level)
            before = server.request_count()
            elapsed, stats = await_level(settings, store, events)
            rate = stats["verdicts"] / elapsed if elapsed > 0 else 0.0
            base_rate = base_rate or rate
            ratio = rate / base_rate if base_rate else 0.0
            per_call = elapsed / max(1, stats["calls"])
            print(f"  concurrency {level:>2}: {stats['verdicts']} judgments in {elapsed:6.1f} s = "
                  f"{rate:.3f}/s ({ratio:.2f}x concurrency 1), {per_call:.1f} s/call, "
                  f"server requests {server.request_count() - before}, failures "
                  f"{stats['failures']}, tokens {stats['prompt_tokens']}+"
                  f"{stats['completion_tokens']}")
            last_events, last_settings, last_stats = events, settings, stats
        # Redelivery after a restart: new scorer, same store, same events. Only events that
        # got a verdict can be answered from the cache; failed ones are judged again.
        judged = last_stats["verdicts"]
        before = server.request_count()
        elapsed, stats = await_level(last_settings, store, last_events, bind=True)
        hits = stats["cache_hits"]
        print(f"  redelivery of {len(last_events)} events to a restarted scorer: cache hits "
              f"{hits}/{judged} previously judged = {100.0 * hits / max(1, judged):.0f}%; "
              f"{len(last_events) - judged} that had failed were judged again "
              f"(server requests {server.request_count() - before}), {elapsed:.2f} s")
    finally:
        store.close()
        server.stop()
    return 0


def await_level(settings: Any, store: EmbeddedStore, events: list[Event],
                bind: bool = True) -> tuple[float, dict[str, Any]]:
    return asyncio.run(run_level(settings, store, events, bind))


if __name__ == "__main__":
    sys.exit(main())
