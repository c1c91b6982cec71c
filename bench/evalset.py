"""Benchmark of the eval-set library, one part at a time (``--part``).

``leakage``: the leakage check (`vigil evalset check`) of a 1,000-item eval set against
a 1,000,000-line training file, both generated deterministically into a temp dir:
prompts of 20-150 words, training lines of 40-250 words in the four common shapes
(messages, prompt/completion, instruction/input/output, text), words drawn from a
Zipf-weighted vocabulary of 20,000 made-up words with sentences, capitals and commas,
plus support-bot phrases shared by both sides (common phrases that are no leak). 200
items have a run of 13-40 of their words copied into a random training line (a fifth of
them upper-cased or re-wrapped over lines, which normalisation must see through).

The real check runs as a subprocess (``python -m vigil evalset check ... --json``), so
its wall time and peak RSS are its own. Printed: training lines/s, recall of the planted
overlaps (the planted item reported with its line), false hits (any other item/line
pair), peak RSS; and the same-run baseline, a naive scan (for each training line, for
each item, an n-gram set intersection) over the first 10,000 lines, as a ratio.
Targets on 2 cores: >= 50,000 lines/s, recall >= 0.99, no false hits.

    .venv/bin/python bench/evalset.py --part leakage [--lines 1000000] [--items 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from monitor.evalset.items import EvalItem, item_id, split_of, write_items
from monitor.evalset.ngrams import ngrams, words
from monitor.evalset.training import JsonlSource
from monitor.evalset.versions import write_manifest, write_version

_SYLLABLES = ["ka", "lo", "mi", "ter", "an", "sil", "por", "ve", "qu", "est", "ion", "ra", "de"]
_SYLLABLES += ["ul", "om", "ip", "sen", "tar", "gu", "bel", "na", "fo"]
# At most 7 words: with Zipf-weighted words around them, longer shared phrases would
# now and then extend by chance into a genuine 13-word overlap on a million lines.
_PHRASES = [
    "thanks in advance for your help",
    "could you please tell me how to",
    "I would like to know whether",
    "my order has not arrived yet",
    "what is the best way to",
    "as soon as possible please",
]


class Text:
    """Deterministic made-up prose: Zipf-weighted words, sentences, common phrases."""

    def __init__(self, seed: int, vocabulary: int = 20_000) -> None:
        rng = random.Random(12345)  # one vocabulary for every Text
        vocab: set[str] = set()
        while len(vocab) < vocabulary:
            vocab.add("".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))))
        self.vocab = sorted(vocab)
        weights = [1.0 / (r + 1) for r in range(vocabulary)]
        total = 0.0
        self.cum = []
        for w in weights:
            total += w
            self.cum.append(total)
        self.rng = random.Random(seed)

    def sentence(self) -> list[str]:
        """One sentence of 6-24 raw tokens (punctuation attached)."""
        rng = self.rng
        length = rng.randint(6, 24)
        head: list[str] = []
        if rng.random() < 0.15:  # a common phrase starts the sentence
            head = rng.choice(_PHRASES).split()
            length = max(length, len(head) + 4)
        out = head + rng.choices(self.vocab, cum_weights=self.cum, k=length - len(head))
        out[0] = out[0].capitalize()
        if length > 8 and rng.random() < 0.4:
            out[4] += ","
        out[-1] += rng.choice(".?!")
        return out

    def tokens(self, n: int) -> list[str]:
        """``n`` raw tokens of prose."""
        out: list[str] = []
        while len(out) < n:
            out += self.sentence()
        return out[:n]


def make_items(n: int, seed: int) -> list[list[str]]:
    text = Text(seed)
    return [text.tokens(text.rng.randint(20, 150)) for _ in range(n)]


def write_evalset(root: Path, prompts: list[list[str]]) -> str:
    items = []
    for tokens in prompts:
        prompt = " ".join(tokens)
        messages = [{"role": "user", "content": prompt}]
        ident = item_id(messages)
        items.append(
            EvalItem(id=ident, split=split_of(ident, 0.8), messages=messages, prompt=prompt)
        )

    def fill(folder: Path) -> None:
        write_items(folder / "items.jsonl", items)
        write_manifest(folder, {"name": "bench", "version": "v1", "items": len(items)})

    write_version(root, "bench", "v1", fill)
    return "bench@v1"


def _shape(sentences: list[str], k: int, cut: int) -> dict[str, Any]:
    """One training line in shape ``k % 4``, split into two fields at sentence ``cut``
    (fields are compared apart, so a plant must not straddle it)."""
    head, tail = " ".join(sentences[:cut]), " ".join(sentences[cut:])
    shape = k % 4
    if shape == 0:
        return {"messages": [{"role": "system", "content": "You are helpful."},
                             {"role": "user", "content": head},
                             {"role": "assistant", "content": tail}]}  # fmt: skip
    if shape == 1:
        return {"prompt": head, "completion": tail}
    if shape == 2:
        return {"instruction": head, "input": "", "output": tail}
    return {"text": head + " " + tail}


def write_training(
    path: Path, lines: int, prompts: list[list[str]], plants: int, seed: int
) -> dict[int, tuple[int, int]]:
    """The training file; returns line number -> (planted item index, words planted).

    Lines are 40-250 words (about 15 a sentence) drawn from a pool of 50,000 sentences
    of their own (generating every sentence afresh would take longer than the check).
    """
    rng = random.Random(seed)
    text = Text(seed + 1)
    pool = [" ".join(text.sentence()) for _ in range(50_000)]
    chosen = rng.sample(range(len(prompts)), min(plants, len(prompts)))
    at = rng.sample(range(1, lines + 1), len(chosen))
    plan = dict(zip(at, chosen, strict=True))
    planted: dict[int, tuple[int, int]] = {}
    with path.open("wb") as out:
        for number in range(1, lines + 1):
            sentences = rng.choices(pool, k=max(3, rng.randint(40, 250) // 15))
            cut = len(sentences) // 3
            if number in plan:
                item = prompts[plan[number]]
                k = rng.randint(13, min(40, len(item)))
                start = rng.randint(0, len(item) - k)
                copy = item[start : start + k]
                if rng.random() < 0.2:  # normalisation must see through these
                    copy = [t.upper() if j % 2 else t + "\n" for j, t in enumerate(copy)]
                where = rng.randint(0, len(sentences))
                sentences.insert(where, " ".join(copy))
                if where < cut:
                    cut += 1
                planted[number] = (plan[number], k)
            out.write(orjson.dumps(_shape(sentences, number, cut)))
            out.write(b"\n")
    return planted


def naive_scan(prompts: list[list[str]], path: Path, limit: int, n: int) -> tuple[float, int]:
    """The pairwise baseline: every line against every item by n-gram set intersection."""
    item_grams = [set(ngrams(words(" ".join(p)), n)) for p in prompts]
    started = time.perf_counter()
    hits = done = 0
    for _number, texts in JsonlSource(path).texts(lambda _n, _r: None):
        line = {g for t in texts for g in ngrams(words(t), n)}
        hits += sum(1 for grams in item_grams if not grams.isdisjoint(line))
        done += 1
        if done >= limit:
            break
    return done / (time.perf_counter() - started), hits


def run_measured(command: list[str], env: dict[str, str]) -> tuple[bytes, float, float, int]:
    """Run ``command``: its stdout, wall s, CPU s (its processes) and peak RSS (summed
    over its process tree, sampled every 50 ms)."""
    import psutil

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        proc, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass  # a process ended between listing and reading
            time.sleep(0.05)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        if child.returncode != 0:
            err.seek(0)
            sys.exit(f"check failed ({child.returncode}): {err.read().decode()[-2000:]}")
        out.seek(0)
        return out.read(), wall, cpu, peak


def part_leakage(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-evalset-") as tmp:
        root = Path(tmp) / "evalsets"
        started = time.perf_counter()
        prompts = make_items(args.items, seed=7)
        ref = write_evalset(root, prompts)
        train = Path(tmp) / "train.jsonl"
        planted = write_training(train, args.lines, prompts, args.plants, seed=11)
        size = train.stat().st_size
        print(f"generated {args.items} items, {args.lines:,} training lines "
              f"({size / 2**20:,.0f} MiB), {len(planted)} planted overlaps "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip

        env = {**os.environ, "VIGIL_EVALSET__DIR": str(root), "VIGIL_LOG_LEVEL": "WARNING"}
        if args.workers is not None:
            env["VIGIL_EVALSET__LEAKAGE__WORKERS"] = str(args.workers)
        command = [sys.executable, "-m", "vigil", "evalset", "check", ref,
                   "--against", str(train), "--json", "--max-leak-rate", "1"]  # fmt: skip
        out, wall, cpu, peak = run_measured(command, env)
        report = orjson.loads(out)

        ids = [item_id([{"role": "user", "content": " ".join(p)}]) for p in prompts]
        found = {(ids.index(leak["item_id"]), m["line"]) for leak in report["leaks"]
                 for m in leak["matches"]}  # fmt: skip
        expected = {(item, line) for line, (item, _k) in planted.items()}
        recall = len(found & expected) / len(expected) if expected else 1.0
        false_hits = len(found - expected)
        index_rate = report["lines"] / report["seconds"]
        workers = report["sources"][0]["workers"]
        print(f"index check ({workers} process{'es' if workers > 1 else ''}): "
              f"{report['lines']:,} lines in {report['seconds']:.1f} s = "
              f"{index_rate:,.0f} lines/s; whole command {wall:.1f} s wall, "
              f"{cpu:.1f} CPU-s = {args.lines / cpu:,.0f} lines per CPU-second")  # fmt: skip
        print(f"recall {recall:.4f} ({len(found & expected)}/{len(expected)} planted overlaps), "
              f"false hits {false_hits}, contaminated items {report['contaminated']}, "
              f"peak RSS {peak / 2**20:,.0f} MiB (all its processes)")  # fmt: skip

        limit = min(args.naive_lines, args.lines)
        naive_rate, _hits = naive_scan(prompts, train, limit, report["ngram"])
        ratio = index_rate / naive_rate
        print(f"naive scan (line x item set intersection): {limit:,} lines at "
              f"{naive_rate:,.0f} lines/s; index / naive = {ratio:,.0f}x")  # fmt: skip
        print(f"per core: index {args.lines / cpu:,.0f} lines per CPU-second / naive = "
              f"{args.lines / cpu / naive_rate:,.0f}x")  # fmt: skip
        ok = index_rate >= 50_000 and recall >= 0.99 and false_hits == 0
        print(f"targets (>= 50,000 lines/s, recall >= 0.99, no false hits): "
              f"{'met' if ok else 'NOT met'}")  # fmt: skip


def part_capture(args: argparse.Namespace) -> None:
    """Capture and export of ``--failures`` synthetic failing events (see
    `bench/evalset_capture.py`)."""
    from evalset_capture import run  # bench/ is on the path when a bench runs

    with tempfile.TemporaryDirectory(prefix="vigil-bench-capture-") as tmp:
        for line in run(args.failures, Path(tmp)):
            print(line, flush=True)


PARTS = {"leakage": part_leakage, "capture": part_capture}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--lines", type=int, default=1_000_000, help="training lines (leakage)")
    parser.add_argument("--items", type=int, default=1000, help="eval items (leakage)")
    parser.add_argument("--plants", type=int, default=200, help="planted overlaps (leakage)")
    parser.add_argument("--naive-lines", type=int, default=10_000, help="lines of the naive scan")
    parser.add_argument("--workers", type=int, help="leakage.workers (default: the setting)")
    parser.add_argument("--failures", type=int, default=100_000, help="failing events (capture)")
    args = parser.parse_args()
    for name, part in PARTS.items():
        if args.part in (name, "all"):
            part(args)


if __name__ == "__main__":
    main()
