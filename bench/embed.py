"""Benchmark: the embedding stage inside the real pipeline vs raw encode, per backend.

Same texts, same model, same batch size, same run. The pipeline figure covers everything
the stage costs in production: parse, heuristics, sampling, the bounded queue, the model
in a worker thread, and the chDB writes of vectors, scores and decisions (plus the
pipeline's own event/check rows). Target: pipeline >= 0.9x raw texts/s.

Both backends of ``embedding.backend`` run on the same texts, alternately: ``torch``
(sentence-transformers, float32) and ``onnx`` (the int8 ONNX export, built into a scratch
cache first). Printed: each one's raw and pipeline texts/s (wall clock) and raw texts per
CPU-second (less sensitive to other processes on the cores), the onnx/torch ratios, and
the cosine of each onnx vector to its torch vector (mean, 1st percentile, min). Keep the
onnx backend as an option only at >= 2x torch with mean cosine >= 0.99.

Texts: the AlpacaEval instructions (and outputs) in ../shared/data/traffic when present;
otherwise generated support-bot traffic (monitor/traffic.py), and the output says so.

    .venv/bin/python bench/embed.py [--repeats 2] [--responses] [--limit N] [--batch 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import orjson

from monitor.assembly import build_pipeline
from monitor.config import load_settings
from monitor.pipeline import RawMessage
from monitor.scorers.embeddings import SentenceEmbedder, bundled_model_path
from monitor.scorers.embeddings_onnx import OnnxEmbedder
from monitor.scorers.torch_threads import configure_torch_threads
from monitor.store import open_store
from vigil.traffic import TrafficSpec, generate_events

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "traffic"


def load_events(limit: int) -> tuple[list[bytes], str]:
    """Wire messages of events, and where they came from."""
    files = sorted(DATA.glob("*.jsonl")) if DATA.is_dir() else []
    start = datetime(2026, 11, 22, 8, tzinfo=UTC)
    if not files:
        events = list(generate_events(TrafficSpec(n=limit, seed=1)))
        return [orjson.dumps(e) for e in events], f"generated traffic (no {DATA})"
    lines: list[bytes] = []
    for path in files:
        for i, line in enumerate(path.read_bytes().splitlines()):
            rec = orjson.loads(line)
            lines.append(
                orjson.dumps(
                    {
                        "event_id": f"{path.stem}-{i}",
                        "ts": (start + timedelta(seconds=2 * len(lines))).isoformat(),
                        "model": path.stem,
                        "request": {"messages": [{"role": "user", "content": rec["instruction"]}]},
                        "response": {"content": rec["output"], "finish_reason": "stop"},
                    }
                )
            )
    return lines[:limit], f"{DATA} ({', '.join(p.name for p in files)})"


def texts_of(lines: list[bytes], responses: bool) -> list[str]:
    out = []
    for line in lines:
        event = orjson.loads(line)
        out.append(event["request"]["messages"][-1]["content"])
    if responses:
        out.extend(orjson.loads(line)["response"]["content"] for line in lines)
    return out


def run_raw(embedder: SentenceEmbedder | OnnxEmbedder, texts: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one encode of ``texts`` (forward passes of the batch size)."""
    wall, cpu = time.perf_counter(), time.process_time()
    embedder.encode(texts)
    return time.perf_counter() - wall, time.process_time() - cpu


async def run_pipeline(
    lines: list[bytes], responses: bool, batch: int, backend: str, cache: Path
) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            overrides={
                "store": {"data_dir": str(Path(tmp) / "data")},
                "toxicity": {"enabled": False},
                "judge": {"enabled": False},
                "embedding": {
                    "embed_responses": responses,
                    "batch_size": batch,
                    "queue_size": len(lines) + 1,
                    "backend": backend,
                    "onnx_cache_dir": str(cache),
                },
                "sampling": {
                    "rates": {"embedding": 1.0, "toxicity": 0.0, "judge": 0.0},
                    "budget_per_minute": {"embedding": 1e9},
                },
            }
        )
        store = open_store(settings)
        pipeline = build_pipeline(settings, store, replay=True)
        try:
            await pipeline.start()
            stage = pipeline.stages["embedding"]
            messages = [RawMessage(v, "bench", str(i)) for i, v in enumerate(lines)]
            started = time.perf_counter()
            step = settings.kafka.batch_max
            for i in range(0, len(messages), step):
                await pipeline.process(messages[i : i + step])
            await pipeline.drain()
            elapsed = time.perf_counter() - started
            stats = stage.stats()
            return elapsed, int(stats["texts"]), float(stats["model_s"])
        finally:
            await pipeline.stop()
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--limit", type=int, default=1610)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--responses", action="store_true", help="also embed responses")
    args = parser.parse_args()

    lines, source = load_events(args.limit)
    texts = texts_of(lines, args.responses)
    threads = configure_torch_threads(0)
    with tempfile.TemporaryDirectory(prefix="vigil-embed-onnx-") as cache:
        embedders: dict[str, SentenceEmbedder | OnnxEmbedder] = {
            "torch": SentenceEmbedder(batch_size=args.batch),
            "onnx": OnnxEmbedder(bundled_model_path(), "all-MiniLM-L6-v2", args.batch,
                                 threads, Path(cache)),
        }  # fmt: skip
        run_all(args, lines, texts, embedders, Path(cache), source, threads)


def run_all(
    args: argparse.Namespace,
    lines: list[bytes],
    texts: list[str],
    embedders: dict[str, SentenceEmbedder | OnnxEmbedder],
    cache: Path,
    source: str,
    threads: int,
) -> None:
    vectors = {name: e.encode(texts) for name, e in embedders.items()}  # also the warm-up
    cosine = np.sum(vectors["onnx"] * vectors["torch"], axis=1)
    print(f"data: {source}")
    # Other processes on the same cores skew both figures alike; the ratio is what counts.
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    kinds = "prompts+responses" if args.responses else "prompts"
    print(
        f"events {len(lines)}, texts {len(texts)} ({kinds}), "
        f"batch {args.batch}, threads {threads}, cpus {os.cpu_count()}"
    )
    print(
        f"agreement onnx vs torch: cosine mean {cosine.mean():.4f}, "
        f"p1 {np.percentile(cosine, 1):.4f}, min {cosine.min():.4f} (target mean >= 0.99)"
    )

    rates: dict[str, dict[str, list[float]]] = {
        n: {"raw": [], "cpu": [], "stage": []} for n in embedders
    }
    for r in range(args.repeats):
        for name, embedder in embedders.items():
            wall, cpu = run_raw(embedder, texts)
            rates[name]["raw"].append(len(texts) / wall)
            rates[name]["cpu"].append(len(texts) / cpu)
            pipe_s, scored, model_s = asyncio.run(
                run_pipeline(lines, args.responses, args.batch, name, cache)
            )
            if scored != len(texts):
                print(f"  warning: stage embedded {scored} texts, expected {len(texts)}")
            rates[name]["stage"].append(scored / pipe_s)
            print(
                f"run {r + 1} {name:<5}: raw encode {rates[name]['raw'][-1]:7.1f} texts/s "
                f"({rates[name]['cpu'][-1]:6.1f} per CPU-s) | pipeline+stage "
                f"{rates[name]['stage'][-1]:7.1f} texts/s (model {model_s:.1f} s of "
                f"{pipe_s:.1f} s) | ratio {rates[name]['stage'][-1] / rates[name]['raw'][-1]:.2f}x"
            )
    med = {n: {k: statistics.median(v) for k, v in m.items()} for n, m in rates.items()}
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, m in med.items():
        print(
            f"median {name:<5}: raw encode {m['raw']:.1f} texts/s ({m['cpu']:.1f} per CPU-s), "
            f"pipeline embedding stage {m['stage']:.1f} texts/s, "
            f"ratio {m['stage'] / m['raw']:.2f}x (target >= 0.90x)"
        )
    t, o = med["torch"], med["onnx"]
    print(
        f"onnx/torch: raw {o['raw'] / t['raw']:.2f}x, per CPU-s {o['cpu'] / t['cpu']:.2f}x, "
        f"pipeline stage {o['stage'] / t['stage']:.2f}x (keep onnx at >= 2x); "
        f"cosine mean {cosine.mean():.4f}, min {cosine.min():.4f}"
    )


if __name__ == "__main__":
    main()
