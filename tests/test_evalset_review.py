"""The human review queue: its state machine on a real store, label import and export, and
`vigil evalset review` driven through a real pseudo-terminal with pexpect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pexpect
import pytest

from monitor.evalset.items import EvalItem, Observed, item_id, split_of, write_items
from monitor.evalset.labels import Label, LabelBook
from monitor.evalset.review import (
    FALLBACK_DIMENSIONS,
    RESERVED_KEYS,
    ReviewQueue,
    dimension_keys,
    item_dimensions,
    rubric_dimensions,
)
from monitor.evalset.versions import write_manifest, write_version
from monitor.scorers.judge.rubric import load_rubric
from monitor.store.embedded import EmbeddedStore

WAIT = 60  # seconds a pexpect wait may take at most (the first start imports a lot)


def _items(n: int) -> list[EvalItem]:
    out = []
    for i in range(n):
        messages = [{"role": "user", "content": f"Question {i}: where is my parcel?"}]
        ident = item_id(messages)
        out.append(
            EvalItem(
                id=ident, split=split_of(ident, 0.8), messages=messages,
                prompt=messages[0]["content"],
                observed=Observed(content=f"Observed answer {i}", model="m", model_version="v2"),
                reasons=["judge_low", "negative_feedback"],
                scores={"judge.helpfulness": float(1 + i % 5), "judge.correctness": 3.0},
                judge_rationale={"helpfulness": f"rationale {i}"},
            )
        )  # fmt: skip
    return out


# -- the state machine ---------------------------------------------------------------------


def test_queue_resumes_at_the_first_unjudged_item(embedded_store: EmbeddedStore) -> None:
    items = _items(4)
    book = LabelBook(embedded_store, "s", "v1")
    queue = ReviewQueue(items, {}, "ann", book, "v1")
    assert queue.current == items[0] and queue.progress() == (0, 4)
    queue.verdict("pass")
    queue.note("only a note")  # on item 1: annotates, does not judge
    queue.skip()
    assert queue.current == items[2]
    queue.score("helpfulness", 2)
    assert queue.current == items[2]  # a score stays on the item
    queue.next()
    assert queue.current == items[3] and queue.progress() == (2, 4)

    stored = {i: lb for (i, _), lb in LabelBook(embedded_store, "s", "v1").current("ann").items()}
    assert stored[items[0].id].verdict == "pass" and stored[items[1].id].note == "only a note"
    assert stored[items[2].id].scores == {"helpfulness": 2.0}
    again = ReviewQueue(items, stored, "ann", book, "v1")
    assert again.current == items[1] and again.progress() == (2, 4)
    assert ReviewQueue(items, stored, "bob", book, "v1").current == items[0]


def test_undo_reverts_the_last_change_then_the_newest_stored_label(
    embedded_store: EmbeddedStore,
) -> None:
    items = _items(3)
    book = LabelBook(embedded_store, "s", "v1")
    queue = ReviewQueue(items, {}, "ann", book, "v1")
    queue.verdict("pass")
    queue.score("correctness", 4)
    queue.verdict("fail")
    assert queue.current == items[2]
    assert queue.undo() == items[1]  # the verdict goes, the score stays
    assert queue.label_of(items[1]) == Label(
        items[1].id, "ann", scores={"correctness": 4.0}, version="v1",
        labelled_at=queue.label_of(items[1]).labelled_at,
    )  # fmt: skip
    assert queue.undo() == items[1]  # the first change of an item: the label goes
    assert queue.label_of(items[1]).empty
    current = book.current("ann")
    assert set(current) == {(items[0].id, "ann")}

    # A new session has nothing of its own to undo: the newest stored label goes.
    later = ReviewQueue(items, {i: lb for (i, _), lb in current.items()}, "ann", book, "v1")
    assert later.current == items[1]
    assert later.undo() == items[0] and later.current == items[0]
    assert book.current("ann") == {}
    assert later.undo() is None


def test_dimensions_and_their_keys() -> None:
    keys = dimension_keys(["helpfulness", "correctness", "coherence", "safety"])
    assert keys == {"h": "helpfulness", "c": "correctness", "o": "coherence", "a": "safety"}
    assert not set(keys) & RESERVED_KEYS
    assert dimension_keys(["safety", "safety"]) == {"a": "safety"}
    item = _items(1)[0]
    assert item_dimensions(item, ["x"]) == ["helpfulness", "correctness"]
    item.scores = {"toxicity.toxicity": 0.9}
    assert item_dimensions(item, ["x"]) == ["x"]
    assert rubric_dimensions("general") == load_rubric("general").names
    assert rubric_dimensions("no-such-rubric") == list(FALLBACK_DIMENSIONS)


# -- through the CLI -----------------------------------------------------------------------


def _evalset(root: Path, items: list[EvalItem]) -> None:
    def write(folder: Path) -> None:
        write_items(folder / "items.jsonl", items)
        write_manifest(folder, {"count": len(items)})

    write_version(root, "support", "v1", write)


def _env(tmp_path: Path, term: str = "xterm") -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TERM": term,
        "VIGIL_EVALSET__DIR": str(tmp_path / "evalsets"),
    }


def _vigil(tmp_path: Path, *args: str, data: str = "data") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vigil", "--data-dir", str(tmp_path / data), "evalset"]
    return subprocess.run(
        [*command, *args], env=_env(tmp_path), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip


def _spawn(tmp_path: Path, term: str) -> pexpect.spawn:
    args = ["-m", "vigil", "--data-dir", str(tmp_path / "data"), "evalset", "review", "support"]
    child = pexpect.spawn(
        sys.executable, [*args, "--reviewer", "ann"], env=_env(tmp_path, term), encoding="utf-8",
        timeout=WAIT, dimensions=(40, 160),
        use_poll=True,  # select() refuses descriptors past 1023, which a long run reaches
    )  # fmt: skip
    return child


def _act(child: pexpect.spawn, keys: str, *expect: str) -> None:
    """Wait for the action prompt, send ``keys``, wait for each of ``expect`` in turn."""
    child.expect("action>")
    child.send(keys)
    for text in expect:
        child.expect_exact(text)


def _exported(tmp_path: Path, name: str, data: str = "data") -> list[dict[str, Any]]:
    out = tmp_path / name
    result = _vigil(tmp_path, "review", "support", "--export", str(out), data=data)
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


@pytest.mark.parametrize("term", ["xterm", "dumb"])
def test_review_in_a_pseudo_terminal_stores_at_once_and_resumes(tmp_path: Path, term: str) -> None:
    items = _items(5)
    _evalset(tmp_path / "evalsets", items)
    child = _spawn(tmp_path, term)
    for shown in (  # in the order the item is shown
        "0/5 labelled",
        "capture reasons: judge_low, negative_feedback",
        "[user] Question 0: where is my parcel?",
        "observed response (m v2)",
        "Observed answer 0",
        "judge: helpfulness 1  correctness 3",
        "helpfulness: rationale 0",
        "h=helpfulness  c=correctness",
    ):
        child.expect_exact(shown)
    _act(child, "p", "saved: pass", "1/5 labelled")
    _act(child, "2", "which dimension")
    child.send("h")
    child.expect_exact("saved: helpfulness = 2")
    _act(child, "1", "which dimension")
    child.send("c")
    child.expect_exact("saved: correctness = 1")
    _act(child, "f", "saved: fail", "2/5 labelled")
    _act(child, "n", "note>")
    child.send("too vague\r")
    child.expect_exact("saved: note")
    _act(child, "p", "saved: pass", "3/5 labelled")
    _act(child, "r", "Esc-Enter or Ctrl-D to finish")
    child.send("Line one.\rLine two.")
    child.send("\x1b\r")  # Esc-Enter: done
    child.expect_exact("saved: reference")
    _act(child, "f", "saved: fail", "4/5 labelled · item 5 of 5")
    _act(child, "u", f"undone: back to {items[3].id}", "3/5 labelled · item 4 of 5")
    child.expect_exact("reference: 2 lines")  # the reference stays, the verdict went
    _act(child, "s", "skipped", "item 5 of 5")
    _act(child, "q", "3/5 labelled by ann; 1 skipped come back next time")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    labels = {row["item_id"]: row for row in _exported(tmp_path, "after.jsonl")}
    assert set(labels) == {it.id for it in items[:4]}
    assert [labels[it.id]["verdict"] for it in items[:4]] == ["pass", "fail", "pass", ""]
    assert labels[items[1].id]["scores"] == {"helpfulness": 2.0, "correctness": 1.0}
    assert labels[items[2].id]["note"] == "too vague"
    assert labels[items[3].id]["reference"] == "Line one.\nLine two."
    assert {row["reviewer"] for row in labels.values()} == {"ann"}

    # Again: it resumes at the skipped item (the first one ann has not judged).
    child = _spawn(tmp_path, term)
    child.expect_exact("3/5 labelled · item 4 of 5 · " + items[3].id)
    _act(child, "q", "3/5 labelled by ann")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    store = EmbeddedStore(tmp_path / "data")
    try:
        rows = store.query(
            "SELECT item_id, reviewer, version, verdict, scores, deleted, labelled_at "
            "FROM vigil.review_labels FINAL WHERE evalset = 'support' ORDER BY labelled_at"
        )
    finally:
        store.close()
    # Latest row per item: the undo wrote item 3 back without its verdict, last of all.
    assert [r["item_id"] for r in rows] == [it.id for it in items[:4]]
    assert [(r["verdict"], r["deleted"]) for r in rows] == [
        ("pass", 0), ("fail", 0), ("pass", 0), ("", 0),
    ]  # fmt: skip
    assert {(r["reviewer"], r["version"]) for r in rows} == {("ann", "v1")}
    assert rows[1]["scores"] == {"helpfulness": 2, "correctness": 1}


def test_review_needs_a_terminal(tmp_path: Path) -> None:
    _evalset(tmp_path / "evalsets", _items(2))
    result = _vigil(tmp_path, "review", "support")
    assert result.returncode == 2
    assert "vigil: error: review needs a terminal" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_reports_bad_lines_and_exports_round_trip(tmp_path: Path) -> None:
    items = _items(3)
    _evalset(tmp_path / "evalsets", items)
    lines = [
        orjson.dumps({"item_id": items[0].id, "reviewer": "cy", "verdict": "fail",
                      "scores": {"helpfulness": 2}, "note": "n", "reference": "r",
                      "labelled_at": "2026-03-04T05:06:07.089Z"}),
        b"{not json",
        orjson.dumps({"item_id": "0000000000000000", "verdict": "pass"}),
        orjson.dumps({"item_id": items[1].id, "verdict": "maybe"}),
        b"",
        orjson.dumps({"item_id": items[1].id, "scores": {"helpfulness": 7}}),
        orjson.dumps({"item_id": items[2].id, "verdict": "pass"}),  # reviewer: --reviewer
    ]  # fmt: skip
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = _vigil(tmp_path, "review", "support", "--import", str(source), "--reviewer", "dee")
    assert result.returncode == 1
    assert "imported 2 labels into support (4 bad lines skipped)" in result.stdout
    reported = [line.split(":")[1] for line in result.stderr.splitlines() if str(source) in line]
    assert reported == ["2", "3", "4", "6"]
    assert "not an item of this eval set" in result.stderr
    assert "scores run from 1 to 5" in result.stderr

    first = _exported(tmp_path, "out.jsonl")
    assert [(r["item_id"], r["reviewer"]) for r in first] == [
        (items[0].id, "cy"), (items[2].id, "dee"),
    ]  # fmt: skip
    assert first[0]["labelled_at"] == "2026-03-04T05:06:07.089Z"
    assert (first[0]["scores"], first[0]["note"], first[0]["reference"]) == (
        {"helpfulness": 2.0}, "n", "r",
    )  # fmt: skip
    # Into a fresh store and out again: the same labels.
    again = _vigil(tmp_path, "review", "support", "--import", str(tmp_path / "out.jsonl"),
                   data="other")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert _exported(tmp_path, "out2.jsonl", data="other") == first
