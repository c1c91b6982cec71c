"""Capture and export of N synthetic failures (`bench/evalset.py --part capture`).

A fresh embedded store (chDB) is seeded in bulk with N failing events (not timed):
prompts 80% distinct, 10% exact repeats in other case and spacing, 10% one-word edits of
another prompt (near duplicates); a tenth of the answers leak PII; half carry negative
feedback, a fifth a toxic score, a quarter a low judge score, a third are truncated.
Then `capture_span` runs every capture rule over the whole span at once and
`export_evalset` makes a version, both timed.

Same-run baseline: near-duplicate search over the same exported prompts with
datasketch's own objects (a `MinHash` per prompt, inserted into and queried against a
`MinHashLSH`), against the export's bulk signatures; the ratio is printed.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.config import load_settings
from monitor.evalset.capture import capture_span
from monitor.evalset.dedupe import shingles
from monitor.evalset.export import export_evalset
from monitor.evalset.minhash import band_keys, signatures
from monitor.evalset.versions import load
from monitor.store.embedded import EmbeddedStore

_WORDS = [f"w{i}" for i in range(20_000)]
_START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
_BULK = 50_000


def _prompts(n: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    for _ in range(n):
        r = rng.random()
        if out and r < 0.1:
            out.append(rng.choice(out).upper() + "  ")
        elif out and r < 0.2:
            words = rng.choice(out).split()
            words[rng.randrange(len(words))] = rng.choice(_WORDS)
            out.append(" ".join(words))
        else:
            out.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(12, 30))))
    return out


def seed_failures(store: EmbeddedStore, n: int, seed: int = 1) -> tuple[datetime, datetime]:
    """Insert n failing events with their checks, feedback, scores and judgments."""
    rng = random.Random(seed)
    tables: dict[str, list[dict[str, Any]]] = {
        "events": [], "checks": [], "feedback": [], "scores": [], "judgments": [],
    }  # fmt: skip
    for i, prompt in enumerate(_prompts(n, rng)):
        ts = (_START + timedelta(seconds=i)).isoformat()
        key = {"event_id": f"b-{i:09d}", "ts": ts, "route": f"support/r{i % 7}", "model": "m",
               "model_version": f"v{i % 2}"}  # fmt: skip
        pii = i % 10 == 0
        leak = "mail jo.smith@example.com or call +1 415-555-0134"
        answer = leak if pii else f"re: {prompt[:40]}"
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
        tables["events"].append({
            **key, "prompt": prompt, "request": orjson.dumps({"messages": messages}).decode(),
            "response": answer, "finish_reason": "length" if i % 3 == 0 else "stop",
            "ingested_at": ts,
        })  # fmt: skip
        tables["checks"].append({
            **key, "checks_version": "h2", "truncated": int(i % 3 == 0),
            "pii_kinds": ["email", "phone"] if pii else [], "json_ok": 1,
        })  # fmt: skip
        if i % 2 == 0:
            tables["feedback"].append({
                "event_id": key["event_id"], "ts": ts, "rating": -1,
                "comment": "bad, mail me at a@b.co", "source": "inline", "received_at": ts,
            })  # fmt: skip
        if i % 5 == 0:
            tables["scores"].append({
                **key, "scorer": "toxicity", "scorer_version": "t1", "name": "toxicity",
                "value": 0.9, "label": "", "created_at": ts,
            })  # fmt: skip
        if i % 4 == 1:
            tables["judgments"].append({
                **key, "judge_version": "j1", "rubric": "support-assistant", "rubric_version": "1",
                "scores": {"helpfulness": 1.0}, "reasons": {"helpfulness": "off topic"},
                "created_at": ts,
            })  # fmt: skip
    for table, rows in tables.items():
        for start in range(0, len(rows), _BULK):
            store.insert(table, rows[start : start + _BULK])
    return _START, _START + timedelta(seconds=n)


def datasketch_near_dupes(prompts: list[str], threshold: float, perm: int, words: int) -> int:
    """Near-duplicate pairs found with datasketch's objects, one prompt at a time."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=perm)
    found = 0
    for i, prompt in enumerate(prompts):
        mh = MinHash(num_perm=perm, seed=1)
        mh.update_batch(list(shingles(prompt, words)))
        if lsh.query(mh):
            found += 1
        lsh.insert(str(i), mh)
    return found


def run(n: int, workdir: Path) -> list[str]:
    """Seed, capture, export; then the same-run dedupe baseline. Returns printed lines."""
    settings = load_settings(
        overrides={"store": {"data_dir": str(workdir / "data")}, "log_level": "WARNING"}
    )
    store = EmbeddedStore(workdir / "data")
    try:
        store.migrate()
        seeded = time.perf_counter()
        lo, hi = seed_failures(store, n)
        seeded = time.perf_counter() - seeded
        t0 = time.perf_counter()
        counts = capture_span(settings, store, lo, hi)
        t1 = time.perf_counter()
        manifest = export_evalset(settings, store, "bench")
        t2 = time.perf_counter()
    finally:
        store.close()
    rows = sum(counts.values())
    export = settings.evalset.export
    # The baseline runs over the prompts as exported plus the near duplicates the export
    # folded in, i.e. the set the near-duplicate stage searched.
    prompts = [item.prompt for item in load(settings.evalset_dir, "bench").items]
    t3 = time.perf_counter()
    sets = [shingles(p, export.shingle_words) for p in prompts]
    band_keys(signatures(sets, export.minhash_permutations), export.near_duplicate_jaccard,
              export.minhash_permutations)  # fmt: skip
    ours = time.perf_counter() - t3
    t4 = time.perf_counter()
    datasketch_near_dupes(
        prompts, export.near_duplicate_jaccard, export.minhash_permutations, export.shingle_words
    )
    theirs = time.perf_counter() - t4
    d = manifest["dedupe"]
    return [
        f"seeded {n:,} failing events in {seeded:.1f} s (not timed below)",
        f"capture   {rows:,} failure rows from {n:,} events in {t1 - t0:.2f} s"
        f" = {rows / (t1 - t0):,.0f} rows/s",
        f"export    {manifest['items']:,} items ({d['exact']:,} exact and {d['near']:,} near"
        f" duplicates folded) in {t2 - t1:.2f} s = {rows / (t2 - t1):,.0f} failures/s,"
        f" {manifest['items'] / (t2 - t1):,.0f} items/s",
        f"total     capture + export of {rows:,} failures in {t2 - t0:.2f} s",
        f"near-duplicate signatures + LSH bands for {len(prompts):,} prompts: {ours:.2f} s;"
        f" datasketch objects (MinHash + MinHashLSH per prompt): {theirs:.2f} s;"
        f" ratio {theirs / ours:.1f}x",
    ]
