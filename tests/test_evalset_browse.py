"""`vigil evalset list | show | diff` over versions written by the versions module (one
JSON Lines, one Parquet), through the real CLI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import orjson
import pytest

from monitor.evalset.items import EvalItem, Observed, content_hash, item_id, split_of, write_items
from monitor.evalset.parquet import write_parquet
from monitor.evalset.versions import ITEMS_JSONL, ITEMS_PARQUET, write_manifest, write_version
from vigil.cli.main import main


def _item(prompt: str, reasons: list[str], events: list[str]) -> EvalItem:
    messages = [{"role": "user", "content": prompt}]
    identifier = item_id(messages)
    return EvalItem(
        id=identifier,
        split=split_of(identifier, 0.8),
        messages=messages,
        prompt=prompt,
        observed=Observed(content=f"answer to {prompt}", model="m", model_version="v1"),
        reasons=reasons,
        topic="support/refunds",
        source_event_ids=events,
        first_seen="2026-11-22T08:00:00.000Z",
    )


def _write(root: Path, name: str, version: str, items: list[EvalItem], fmt: str) -> None:
    manifest = {
        "name": name,
        "version": version,
        "items": len(items),
        "format": fmt,
        "created_at": f"2026-11-23T0{version[1]}:00:00.000Z",
        "vigil_version": "0.1.0",
        "content_hash": content_hash(items),
        "counts": {
            "reason": dict(Counter(r for i in items for r in i.reasons)),
            "split": dict(Counter(i.split for i in items)),
            "topic": {"support/refunds": len(items)},
        },
        "source": {"first_event": "2026-11-22T08:00:00.000Z", "failures": 9, "events": 7},
        "dedupe": {"exact": 2, "near": 1},
        "pii": {"replaced": {"email": 3}},
        "parent": None,
    }

    def fill(tmp: Path) -> None:
        if fmt == "parquet":
            write_parquet(tmp / ITEMS_PARQUET, items)
        else:
            write_items(tmp / ITEMS_JSONL, items)
        write_manifest(tmp, manifest)

    write_version(root, name, version, fill)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    a = _item("Where is my refund for order A1?", ["negative_feedback"], ["e1"])
    b = _item("Why was I charged twice?", ["judge_low"], ["e2"])
    c = _item("Show me [bold]this[/bold] literally", ["toxic"], ["e3"])
    d = _item("Can I return a used blender?", ["pii_leak"], ["e4"])
    grown = msgspec.structs.replace(
        a, reasons=["judge_low", "negative_feedback"], source_event_ids=["e1", "e5"]
    )
    sets = tmp_path / "sets"
    _write(sets, "demo", "v1", [a, b, c], "jsonl")
    _write(sets, "demo", "v2", [grown, c, d], "parquet")
    _write(sets, "other", "v1", [d], "jsonl")
    return sets


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["evalset", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_set_with_versions_items_and_times(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "list", "--dir", str(root), "--json")
    assert code == 0
    sets = orjson.loads(out)
    assert [s["name"] for s in sets] == ["demo", "other"]
    assert [(v["version"], v["items"], v["format"]) for v in sets[0]["versions"]] == [
        ("v1", 3, "jsonl"),
        ("v2", 3, "parquet"),
    ]
    assert sets[0]["versions"][1]["created_at"] == "2026-11-23T02:00:00.000Z"
    code, out, _ = _run(capsys, "list", "--dir", str(root))
    assert code == 0
    demo = next(line for line in out.splitlines() if "demo" in line)
    assert "2" in demo and "v2" in demo and "2026-11-23T02:00:00.000Z" in demo
    code, out, _ = _run(capsys, "list", "--dir", str(root / "nothing"))
    assert code == 0 and "no eval sets" in out


def test_show_prints_the_manifest_summary_and_a_few_items(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", "demo", "--dir", str(root), "--items", "2", "--json")
    assert code == 0
    shown = orjson.loads(out)
    assert shown["manifest"]["version"] == "v2" and shown["manifest"]["format"] == "parquet"
    assert [i["id"] for i in shown["items"]] == [
        item_id([{"role": "user", "content": p}])
        for p in ("Where is my refund for order A1?", "Show me [bold]this[/bold] literally")
    ]
    code, out, _ = _run(capsys, "show", "demo@v1", "--dir", str(root), "--items", "3")
    assert code == 0
    assert "demo@v1: 3 items" in out and "negative_feedback 1" in out and "email 3" in out
    assert "[bold]" in out  # user text is never read as markup
    assert "first 3 of 3 items" in out
    code, _, err = _run(capsys, "show", "demo@v9", "--dir", str(root))
    assert code == 2 and "demo has no version v9" in err


def test_diff_lists_added_removed_and_changed_items(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "diff", "demo@v1", "demo@v2", "--dir", str(root), "--json")
    assert code == 0
    d = orjson.loads(out)
    prompts = (
        "Where is my refund for order A1?",
        "Why was I charged twice?",
        "Can I return a used blender?",
    )
    ids = {p: item_id([{"role": "user", "content": p}]) for p in prompts}
    assert [i["id"] for i in d["added"]] == [ids["Can I return a used blender?"]]
    assert [i["id"] for i in d["removed"]] == [ids["Why was I charged twice?"]]
    assert d["changed"] == [
        {"id": ids["Where is my refund for order A1?"], "fields": ["reasons", "source_event_ids"]}
    ]
    assert d["unchanged"] == 1
    assert d["counts"]["a"] == {"judge_low": 1, "negative_feedback": 1, "toxic": 1}
    assert d["counts"]["b"] == {"judge_low": 1, "negative_feedback": 1, "pii_leak": 1, "toxic": 1}
    assert d["counts"]["added"] == {"pii_leak": 1} and d["counts"]["removed"] == {"judge_low": 1}
    code, out, _ = _run(capsys, "diff", "demo@v1", "demo@v2", "--dir", str(root))
    assert code == 0
    assert "demo@v1 -> demo@v2: +1 added, -1 removed, ~1 changed, 1 unchanged" in out
    assert f"+ {ids['Can I return a used blender?']}" in out
    assert f"- {ids['Why was I charged twice?']}" in out
    assert f"~ {ids['Where is my refund for order A1?']}  reasons, source_event_ids" in out
