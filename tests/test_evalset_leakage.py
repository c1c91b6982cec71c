"""The leakage check through `vigil evalset check`: planted overlaps are found on the
right training line in every shape, clean text gives none, bad lines are reported and
skipped, exit codes, JSON, another eval set as the training side, embeddings."""

from __future__ import annotations

import gzip
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pexpect
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.evalset.items import EvalItem, Observed, item_id, split_of, write_items
from monitor.evalset.ngrams import _WORD, words
from monitor.evalset.versions import write_manifest, write_version
from vigil.cli.main import main

_SYLLABLES = ["ba", "do", "ki", "lu", "me", "no", "pa", "ri", "so", "tu", "ve", "xa", "zo"]
_VOCAB = sorted({"".join(random.Random(i).choices(_SYLLABLES, k=3)) for i in range(4000)})


def _words(rng: random.Random, n: int) -> list[str]:
    """Unrelated generated text: uniform over ~2,500 made-up words."""
    return rng.choices(_VOCAB, k=n)


def _item(prompt: str, answer: str = "an answer") -> EvalItem:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]
    ident = item_id(messages)
    return EvalItem(
        id=ident,
        split=split_of(ident, 0.8),
        messages=messages,
        prompt=prompt,
        observed=Observed(content=answer),
    )


def _evalset(root: Path, name: str, prompts: list[str]) -> list[EvalItem]:
    items = [_item(p) for p in prompts]

    def fill(folder: Path) -> None:
        write_items(folder / "items.jsonl", items)
        write_manifest(folder, {"name": name, "items": len(items)})

    write_version(root, name, "v1", fill)
    return items


class Env:
    """A config file pointing at a temporary eval-set folder, and a CLI runner."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp
        self.root = tmp / "evalsets"
        self.config = tmp / "vigil.yaml"
        self.config.write_text(f"evalset:\n  dir: {self.root}\n")
        self.capsys = capsys
        self.rng = random.Random(42)
        self.prompts = [" ".join(_words(self.rng, self.rng.randint(30, 60))) for _ in range(20)]
        self.items = _evalset(self.root, "support", self.prompts)

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["evalset", "check", "--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def report(self, *args: str, expect: int | None = None) -> dict[str, Any]:
        code, out, err = self.run(*args, "--json")
        if expect is not None:
            assert code == expect, err
        data: dict[str, Any] = orjson.loads(out)
        return data

    def clean(self, n: int = 1) -> list[str]:
        return [" ".join(_words(self.rng, self.rng.randint(50, 200))) for _ in range(n)]

    def copy(self, item: int, k: int, start: int = 3) -> str:
        """``k`` words of an item's prompt, inside clean text."""
        span = self.prompts[item].split()[start : start + k]
        return f"{self.clean()[0]} {' '.join(span)} {self.clean()[0]}"


def _write(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def _found(report: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """item id -> [(source, line)] of its n-gram matches."""
    return {
        leak["item_id"]: [(m["source"], m["line"]) for m in leak["matches"]]
        for leak in report["leaks"]
    }


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Env:
    return Env(tmp_path, capsys)


def test_planted_overlaps_are_found_on_their_line_in_every_shape(env: Env) -> None:
    records: list[Any] = [{"text": t} for t in env.clean(30)]
    shapes: dict[int, Callable[[str], Any]] = {
        5: lambda s: {"messages": [{"role": "user", "content": env.clean()[0]},
                                   {"role": "assistant", "content": s}]},
        11: lambda s: {"prompt": s, "completion": env.clean()[0]},
        17: lambda s: {"instruction": env.clean()[0], "input": s, "output": "ok"},
        23: lambda s: {"text": s.upper().replace(" ", ",\n ")},  # normalisation sees through
        29: lambda s: {"conversations": [{"from": "human", "value": s}]},
        30: lambda s: {"messages": [{"role": "user", "content": [{"type": "text", "text": s}]}]},
    }  # fmt: skip
    planted = {}
    for n, (line, shape) in enumerate(shapes.items()):
        records[line - 1] = shape(env.copy(n, 20))
        planted[env.items[n].id] = line
    train = _write(env.tmp / "train.jsonl", records)
    report = env.report("support@v1", "--against", str(train), expect=1)
    assert _found(report) == {i: [(str(train), line)] for i, line in planted.items()}
    for leak in report["leaks"]:
        assert leak["longest"] >= 20
        assert leak["matches"][0]["shared_ngrams"] >= 20 - 13 + 1
        prompt = env.prompts[[i.id for i in env.items].index(leak["item_id"])]
        assert leak["matches"][0]["span"] in b" ".join(words(prompt)).decode()
    assert report["contaminated"] == len(shapes)
    assert report["rate"] == pytest.approx(len(shapes) / len(env.items))
    assert report["lines"] == 30 and report["skipped"] == 0

    # The same lines gzipped are read the same.
    gz = env.tmp / "train.jsonl.gz"
    gz.write_bytes(gzip.compress(train.read_bytes()))
    from_gz = _found(env.report("support", "--against", str(gz)))
    assert {i: [line for _, line in m] for i, m in from_gz.items()} == {
        i: [line] for i, line in planted.items()
    }


def test_span_text_is_the_shared_words(env: Env) -> None:
    span = env.prompts[4].split()[5:30]
    train = _write(env.tmp / "t.jsonl", [{"text": "zzz " + " ".join(span) + " qqq"}])
    match = env.report("support", "--against", str(train))["leaks"][0]["matches"][0]
    assert match["span"] == " ".join(span).lower()
    assert match["longest"] == 25 and match["shared_ngrams"] == 13


def test_clean_training_data_gives_no_hits(env: Env) -> None:
    train = _write(env.tmp / "train.jsonl", [{"prompt": a, "completion": b}
                   for a, b in zip(env.clean(1500), env.clean(1500), strict=True)])  # fmt: skip
    report = env.report("support@v1", "--against", str(train), expect=0)
    assert report["contaminated"] == 0 and report["leaks"] == []
    assert report["lines"] == 1500 and report["passed"] is True


def test_an_overlap_shorter_than_13_words_is_no_hit(env: Env) -> None:
    train = _write(env.tmp / "t.jsonl", [{"text": env.copy(0, 12)}, {"text": env.copy(1, 13)}])
    report = env.report("support", "--against", str(train))
    assert _found(report) == {env.items[1].id: [(str(train), 2)]}
    assert report["leaks"][0]["longest"] == 13


def test_bad_lines_are_reported_with_their_number_and_skipped(env: Env) -> None:
    records: list[Any] = [
        {"text": env.clean()[0]},
        "{not json",
        "[1, 2]",
        {"question": "which shape is this?"},
        {"prompt": 3, "completion": "x"},
        "",
        {"messages": "hello"},
        {"messages": [{"role": "user", "content": 7}]},
        {"text": env.copy(2, 15)},
    ]
    train = _write(env.tmp / "train.jsonl", records)
    report = env.report("support", "--against", str(train), expect=1)
    assert report["skipped"] == 6
    bad = {b["line"]: b["reason"] for b in report["bad_lines"]}
    assert sorted(bad) == [2, 3, 4, 5, 7, 8]
    assert "not JSON" in bad[2] and "not a JSON object" in bad[3]
    assert "none of the shapes" in bad[4] and "'prompt' is not text" in bad[5]
    assert "not a list of messages" in bad[7] and "not text" in bad[8]
    assert _found(report) == {env.items[2].id: [(str(train), 9)]}  # the check went on

    code, out, _err = env.run("support", "--against", str(train))
    assert code == 1
    assert f"skipped {train}:2: not JSON" in out
    assert re.search(r"6 skipped", out) and "FAIL" in out and env.items[2].id in out


def test_field_picks_one_field(env: Env) -> None:
    train = _write(env.tmp / "t.jsonl", [{"question": env.copy(3, 20), "answer": "x"}])
    assert env.report("support", "--against", str(train))["skipped"] == 1
    report = env.report("support", "--against", str(train), "--field", "question")
    assert _found(report) == {env.items[3].id: [(str(train), 1)]}
    report = env.report("support", "--against", str(train), "--field", "answer")
    assert report["contaminated"] == 0 and report["skipped"] == 0


def test_exit_codes(env: Env) -> None:
    train = _write(env.tmp / "t.jsonl", [{"text": env.copy(0, 20)}, {"text": env.copy(1, 20)}])
    assert env.run("support", "--against", str(train))[0] == 1  # 2/20 > 0
    assert env.run("support", "--against", str(train), "--max-leak-rate", "0.1")[0] == 0
    assert env.run("support", "--against", str(train), "--max-leak-rate", "0.05")[0] == 1
    code, out, _ = env.run("support", "--against", str(train), "--max-leak-rate", "0.1")
    assert "PASS" in out and "10.00%" in out

    code, _, err = env.run("support", "--against", str(env.tmp / "missing.jsonl"))
    assert code == 2 and "vigil: error:" in err and "missing.jsonl" in err
    code, _, err = env.run("nosuchset", "--against", str(train))
    assert code == 2 and "no eval set 'nosuchset'" in err
    code, _, err = env.run("support@v7", "--against", str(train))
    assert code == 2 and "no version v7" in err
    code, _, err = env.run("support", "--against", "other@v1")
    assert code == 2 and "other@v1" in err
    code, _, err = env.run("support", "--against", str(train), "--max-leak-rate", "1.5")
    assert code == 2 and "--max-leak-rate" in err
    (env.root / "support" / "v1" / "items.jsonl").write_text('{"id": 1}\n')
    code, _, err = env.run("support", "--against", str(train))
    assert code == 2 and "items.jsonl:1" in err


def test_another_evalset_as_the_training_side(env: Env) -> None:
    dev_prompts = [env.clean()[0] for _ in range(3)]
    dev_prompts[1] = env.copy(6, 25)
    dev = _evalset(env.root, "dev", dev_prompts)
    report = env.report("support@v1", "--against", "dev@v1", expect=1)
    assert report["contaminated"] == 1
    leak = report["leaks"][0]
    assert leak["item_id"] == env.items[6].id
    assert leak["matches"][0] | {"span": ""} == {
        "source": "dev@v1", "line": 2, "other_id": dev[1].id, "longest": 25,
        "shared_ngrams": 13, "span": "",
    }  # fmt: skip
    assert report["sources"][0]["kind"] == "evalset" and report["lines"] == 3


def test_a_large_file_split_over_processes_keeps_line_numbers(env: Env) -> None:
    records: list[Any] = [{"text": t} for t in env.clean(600)]
    plants = {57: 0, 301: 1, 302: 2, 599: 3}
    for line, item in plants.items():
        records[line - 1] = {"text": env.copy(item, 14)}
    records[449] = "oops"
    train = _write(env.tmp / "t.jsonl", records)
    env.config.write_text(
        f"evalset:\n  dir: {env.root}\n  leakage:\n    workers: 2\n    parallel_min_mb: 0\n"
    )
    report = env.report("support", "--against", str(train))
    assert report["sources"][0]["workers"] == 2
    assert _found(report) == {env.items[i].id: [(str(train), ln)] for ln, i in plants.items()}
    assert report["lines"] == 600 and [b["line"] for b in report["bad_lines"]] == [450]


def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(env: Env) -> None:
    train = _write(env.tmp / "t.jsonl", [{"text": t} for t in env.clean(9000)])
    args = ["-m", "vigil", "evalset", "check", "support", "--config", str(env.config),
            "--against", str(train)]  # fmt: skip
    # poll, not select: select() refuses descriptors past 1023, which a long run reaches.
    child = pexpect.spawn(sys.executable, args, encoding="utf-8", timeout=120, use_poll=True,
                          dimensions=(30, 150), env={**os.environ, "TERM": "xterm"})  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before or "")  # no colours
    assert re.search(r"100%\s+9,000 lines\s+[\d,]+ lines/s", screen), screen[-2000:]
    assert "PASS" in screen
    piped = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    assert piped.returncode == 0 and "lines/s" not in piped.stderr.replace("lines_per_s", "")
    assert "PASS" in piped.stdout


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_the_ascii_fast_path_tokenises_like_the_unicode_one(text: str) -> None:
    assert words(text) == [w.encode() for w in _WORD.findall(text.casefold())]
    assert words(text + " é")[: len(words(text))] == words(text)


def test_embeddings_find_a_near_copy_that_shares_no_13_gram(env: Env) -> None:
    prompts = [
        "My parcel was supposed to arrive last Tuesday but the tracking page still says it "
        "is waiting at the depot, can you tell me when it will be delivered to my house?",
        "How do I change the email address on my account without losing my order history "
        "and the loyalty points I collected over the last two years?",
        "Please write a short poem about the sea at night, with stars and a small boat.",
    ]
    _evalset(env.root, "english", prompts)
    near_copy = (
        "My parcel was meant to arrive last Tuesday but the tracking site still says it "
        "is waiting at the depot, could you tell me when it will be delivered to my home?"
    )
    lines: list[Any] = [{"text": t} for t in env.clean(30)]
    lines[12] = {"prompt": near_copy, "completion": "It will arrive tomorrow."}
    lines[20] = {"text": "What is the capital of France, and how many people live there?"}
    train = _write(env.tmp / "t.jsonl", lines)
    report = env.report("english", "--against", str(train), "--embeddings", expect=1)
    assert report["contaminated"] == 0  # no shared run of 13 words
    assert report["near_duplicates"] == 1 and report["flagged"] == 1
    near = report["near"][0]
    assert near["item_id"] == _item(prompts[0]).id
    assert [(m["line"], m["source"]) for m in near["matches"]] == [(13, str(train))]
    assert 0.95 <= near["best"] <= 1.0
    assert report["embedding_cosine"] == 0.95
