"""`vigil evalset export` end to end on a replayed, captured store: every failure ends up
in an item, PII never leaves, ids and splits are stable, duplicates fold, caps stratify,
Parquet round-trips, an empty window writes nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.checks import find_pii
from monitor.evalset.dedupe import shingles
from monitor.evalset.items import EvalItem, Observed, content_hash, item_id, split_of
from monitor.evalset.parquet import read_parquet, write_parquet
from monitor.evalset.scrub import PLACEHOLDERS
from monitor.evalset.versions import load, versions
from monitor.store.embedded import EmbeddedStore
from monitor.store.queries.evalset_items import stored_items
from tests.test_evalset_capture import (
    EXACT,
    NEAR,
    NEAR_VARIANT,
    Replayed,
    build_replayed,
    captured,
    fire_capture,
)
from vigil.cli.main import main

SYSTEM = "You are Acme's support assistant. Be brief and accurate."


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    r = build_replayed(tmp_path_factory.mktemp("export"))
    store = EmbeddedStore(r.data_dir)
    try:
        fire_capture(r.settings, store, r.events)
    finally:
        store.close()
    yield r


@pytest.fixture(scope="module")
def failures(replayed: Replayed) -> dict[str, set[str]]:
    store = EmbeddedStore(replayed.data_dir)
    try:
        return captured(store)
    finally:
        store.close()


def export(
    replayed: Replayed, capsys: pytest.CaptureFixture[str], name: str, *extra: str
) -> tuple[int, dict[str, Any]]:
    base = [
        "evalset",
        "export",
        "--config",
        str(replayed.config),
        "--data-dir",
        str(replayed.data_dir),
    ]
    code = main([*base, "--name", name, "--json", *extra])
    out = capsys.readouterr().out
    return code, (orjson.loads(out) if code == 0 else {})


def texts(item: EvalItem) -> list[str]:
    """Every exported text of an item."""
    out = [str(m["content"]) for m in item.messages] + [item.prompt, item.feedback_comment]
    out += [item.observed.content] if item.observed else []
    return out + list(item.judge_rationale.values()) + list(item.metadata.values())


def scrubbed_texts(item: EvalItem) -> list[str]:
    """The texts the scrubber counts for (the prompt repeats the last message)."""
    out = [str(m["content"]) for m in item.messages] + [item.feedback_comment]
    out += [item.observed.content] if item.observed else []
    return out + list(item.judge_rationale.values())


def test_export_keeps_every_failure_scrubs_pii_and_writes_the_table(
    replayed: Replayed, failures: dict[str, set[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, manifest = export(replayed, capsys, "support")
    assert code == 0
    es = load(replayed.settings.evalset_dir, "support@v1")
    items = es.items
    assert manifest["version"] == "v1" and manifest["items"] == len(items) > 0
    assert manifest["content_hash"] == content_hash(items) == es.manifest["content_hash"]
    # Every captured event is in exactly one item, under every reason it was caught for.
    sources = [e for item in items for e in item.source_event_ids]
    assert len(sources) == len(set(sources))
    assert set(sources) == set().union(*failures.values())
    for reason, ids in failures.items():
        holders = [item for item in items if reason in item.reasons]
        assert ids <= {e for item in holders for e in item.source_event_ids}, reason
        assert manifest["counts"]["reason"][reason] == len(holders)
    assert manifest["source"]["failures"] == sum(len(ids) for ids in failures.values())
    assert manifest["source"]["events"] == len(set(sources))
    stamps = sorted(e["ts"] for e in replayed.events if e["event_id"] in set(sources))
    assert manifest["source"]["first_event"] == stamps[0].replace("Z", ".000Z")
    assert sum(manifest["counts"]["split"].values()) == len(items)
    assert manifest["scorers"]["rubric_versions"] == {"support-assistant": ["1"]}
    assert manifest["scorers"]["scorer_versions"] == {"judge": ["j1"], "toxicity": ["t1"]}
    test_share = replayed.settings.evalset.export.test_share
    for item in items:
        assert item.id == item_id(item.messages) and item.split == split_of(item.id, test_share)
        assert item.reference == "" and item.topic and item.first_seen
        assert item.prompt == item.messages[-1]["content"]
    # No PII detector fires on anything exported; each placeholder is counted.
    assert all(find_pii(text) == [] for item in items for text in texts(item))
    written = {
        kind: sum(text.count(mark) for item in items for text in scrubbed_texts(item))
        for kind, mark in PLACEHOLDERS.items()
    }
    assert {k: v for k, v in written.items() if v} == manifest["pii"]["replaced"]
    assert {"email", "phone", "card"} <= set(manifest["pii"]["replaced"])
    assert {"email", "phone", "card"} <= set(manifest["pii"]["replaced_in_candidates"])
    rationale = [i for i in items if "<EMAIL>" in i.judge_rationale.get("helpfulness", "")]
    assert rationale and any("<PHONE>" in i.feedback_comment for i in items)
    store = EmbeddedStore(replayed.data_dir)
    try:
        table = stored_items(store, "support", "v1")
    finally:
        store.close()
    assert [r["item_id"] for r in table] == sorted(i.id for i in items)


def test_planted_duplicates_are_folded_and_listed(
    replayed: Replayed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, manifest = export(replayed, capsys, "dupes")
    assert code == 0
    items = {i.id: i for i in load(replayed.settings.evalset_dir, "dupes").items}
    planted = replayed.planted

    def ident(prompt: str) -> str:
        return item_id([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}])

    exact = items[ident(EXACT)]
    assert set(planted["exact"]) <= set(exact.source_event_ids)
    dropped = manifest["dedupe"]["dropped"]
    entry = next(d for d in dropped if d["kind"] == "exact" and d["into"] == exact.id)
    assert set(planted["exact"][1:]) <= set(entry["event_ids"]) and entry["similarity"] == 1.0
    near = items[ident(NEAR)]
    assert ident(NEAR_VARIANT) not in items
    assert set(planted["near_variant"]) <= set(near.source_event_ids)
    fold = next(d for d in dropped if d["kind"] == "near" and d["id"] == ident(NEAR_VARIANT))
    true_jaccard = len(shingles(NEAR, 3) & shingles(NEAR_VARIANT, 3)) / len(
        shingles(NEAR, 3) | shingles(NEAR_VARIANT, 3)
    )
    assert fold["into"] == near.id and fold["similarity"] >= 0.7
    assert abs(fold["similarity"] - true_jaccard) < 0.15
    assert any(
        planted["control"][0] in i.source_event_ids and len(i.source_event_ids) == 1
        for i in items.values()
    )
    assert manifest["dedupe"]["near"] == sum(1 for d in dropped if d["kind"] == "near")
    assert manifest["dedupe"]["exact"] == sum(
        len(d["event_ids"]) for d in dropped if d["kind"] == "exact"
    )


def test_reexport_keeps_ids_and_splits_and_diffs_against_the_parent(
    replayed: Replayed, capsys: pytest.CaptureFixture[str]
) -> None:
    stamps = sorted(e["ts"] for e in replayed.events)
    middle = stamps[len(stamps) // 2]
    assert export(replayed, capsys, "stable", "--until", middle)[0] == 0
    assert export(replayed, capsys, "stable")[0] == 0
    code, third = export(replayed, capsys, "stable")
    assert code == 0
    root = replayed.settings.evalset_dir
    v1, v2, v3 = (load(root, f"stable@v{n}") for n in (1, 2, 3))
    first, second = {i.id: i for i in v1.items}, {i.id: i for i in v2.items}
    assert 0 < len(first) < len(second)
    for identifier in first.keys() & second.keys():
        assert first[identifier].split == second[identifier].split
    assert v2.manifest["parent"]["version"] == "v1"
    assert v2.manifest["parent"]["added"] == sorted(second.keys() - first.keys())
    assert v2.manifest["parent"]["removed"] == sorted(first.keys() - second.keys())
    # The same window twice: the same items, byte for byte.
    assert third["content_hash"] == v2.manifest["content_hash"]
    assert [msgspec.json.encode(i) for i in v3.items] == [msgspec.json.encode(i) for i in v2.items]
    assert third["parent"] == {
        "version": "v2",
        "content_hash": v2.manifest["content_hash"],
        "added": [],
        "removed": [],
    }
    assert versions(root, "stable") == ["v1", "v2", "v3"]


def test_caps_stratify_by_reason_and_are_deterministic(
    replayed: Replayed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, full = export(replayed, capsys, "capped")
    assert code == 0
    primary = full["counts"]["primary_reason"]
    assert len(primary) >= 5
    code, per = export(replayed, capsys, "capped", "--per-reason", "2")
    assert code == 0
    assert per["counts"]["primary_reason"] == {r: min(2, n) for r, n in primary.items()}
    assert per["selection"]["left_out"] == full["items"] - per["items"]
    # One item per failure mode fits: round-robin gives each reason its one.
    code, one_each = export(replayed, capsys, "capped", "--max", str(len(primary)))
    assert code == 0 and one_each["counts"]["primary_reason"] == dict.fromkeys(primary, 1)
    code, again = export(replayed, capsys, "capped", "--max", str(len(primary)))
    assert code == 0 and again["content_hash"] == one_each["content_hash"]
    code, only = export(replayed, capsys, "capped", "--reasons", "toxic,pii_leak")
    assert code == 0 and set(only["counts"]["reason"]) <= {"toxic", "pii_leak"}
    assert only["filters"]["reasons"] == ["pii_leak", "toxic"]


def test_parquet_export_reads_back_as_the_same_items(
    replayed: Replayed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "sets"
    assert export(replayed, capsys, "pq", "--out", str(out))[0] == 0
    code, manifest = export(replayed, capsys, "pq", "--out", str(out), "--format", "parquet")
    assert code == 0 and manifest["format"] == "parquet"
    assert (out / "pq" / "v2" / "items.parquet").exists()
    as_jsonl, as_parquet = load(out, "pq@v1"), load(out, "pq@v2")
    assert as_parquet.items == as_jsonl.items and manifest["content_hash"] == content_hash(
        as_parquet.items
    )
    odd = EvalItem(
        id="x", split="dev", messages=[{"role": "user", "content": "hi"}], prompt="hi",
        observed=None, tests=["assert f(1) == 2"], metadata={"k": "v"},
        scores={"judge.helpfulness": 1.5},
    )  # fmt: skip
    plain = EvalItem(id="y", split="test", messages=[], prompt="", observed=Observed(content=""))
    write_parquet(tmp_path / "odd.parquet", [odd, plain])
    assert read_parquet(tmp_path / "odd.parquet") == [odd, plain]


def test_an_empty_window_writes_nothing_and_exits_1(
    replayed: Replayed, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "evalset",
        "export",
        "--config",
        str(replayed.config),
        "--data-dir",
        str(replayed.data_dir),
    ]
    assert main([*base, "--name", "none", "--since", "2031-01-01T00:00:00Z"]) == 1
    err = capsys.readouterr().err
    assert "no captured failures from 2031-01-01" in err and "no version written" in err
    assert versions(replayed.settings.evalset_dir, "none") == []
    assert main([*base, "--name", "bad/name"]) == 2
    assert "eval-set name" in capsys.readouterr().err


def test_terminal_summary_says_what_was_written(
    replayed: Replayed, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "evalset",
        "export",
        "--config",
        str(replayed.config),
        "--data-dir",
        str(replayed.data_dir),
    ]
    assert main([*base, "--name", "summary"]) == 0
    out = capsys.readouterr().out
    manifest = load(replayed.settings.evalset_dir, "summary").manifest
    assert f"exported summary@v1: {manifest['items']} items" in out
    assert f"negative_feedback {manifest['counts']['reason']['negative_feedback']}" in out
    assert f"{manifest['dedupe']['exact']} exact, {manifest['dedupe']['near']} near" in out
    assert "PII replaced" in out and "email" in out


def test_bulk_minhash_signatures_are_datasketchs() -> None:
    from datasketch import MinHash

    from monitor.evalset.minhash import signatures

    prompts = [NEAR, NEAR_VARIANT, EXACT, "", "short one", "w " * 40]
    sets = [shingles(p, 3) for p in prompts] + [{f"s{i}".encode() for i in range(70_000)}]
    sigs = signatures(sets, 64)
    for row, shingle_set in zip(sigs, sets, strict=True):
        reference = MinHash(num_perm=64, seed=1)
        reference.update_batch(list(shingle_set))
        assert (row == reference.hashvalues).all()


_FRAGMENTS = [
    "jo@example.com", "a.b+c@mail.example.org", "+1 415-555-0134", "(020) 7946 0958",
    "4111 1111 1111 1111", "4242-4242-4242-4242", "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000", "123-45-6789", "order A12345", "call", " ", ", ", "@", "-",
    "12", "2026-11-22", "v1.2.3", "x", "\u00e9t\u00e9", "1234567890123",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12), st.sampled_from(["", " "]))
def test_pii_spans_find_what_the_check_finds_and_scrubbing_leaves_none(
    parts: list[str], separator: str
) -> None:
    from monitor.checks.pii import pii_spans
    from monitor.evalset.scrub import scrub

    text = separator.join(parts)
    spans = pii_spans(text)
    assert all(start < end for start, end, _ in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # sorted, disjoint
    kinds = sorted({kind for _, _, kind in spans})
    if separator:  # nothing overlaps: exactly the check's kinds
        assert kinds == find_pii(text)
    else:  # an email may swallow a number run: the kinds it hides are inside a span
        assert set(kinds) <= set(find_pii(text)) and bool(kinds) == bool(find_pii(text))
    assert find_pii(scrub(text)) == []
