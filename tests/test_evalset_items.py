"""Eval-set items: stable ids and splits, the JSON Lines round trip, and version folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import EvalsetError
from monitor.evalset.items import (
    EvalItem,
    Observed,
    content_hash,
    item_id,
    read_items,
    split_of,
    write_items,
)
from monitor.evalset.versions import (
    load,
    next_version,
    parse_ref,
    versions,
    write_manifest,
    write_version,
)


def _item(text: str) -> EvalItem:
    messages = [{"role": "user", "content": text}]
    ident = item_id(messages)
    return EvalItem(
        id=ident,
        split=split_of(ident, 0.8),
        messages=messages,
        prompt=text,
        observed=Observed(content="no idea", model="m", model_version="v2"),
        reasons=["judge_low"],
        scores={"judge.helpfulness": 1.0},
    )


def test_id_ignores_case_spacing_and_unicode_form() -> None:
    a = item_id([{"role": "user", "content": "Where is my  REFUND?"}])
    b = item_id([{"role": "user", "content": " where is my refund?\n"}])
    c = item_id([{"role": "user", "content": "Where is my ｒefund?"}])  # fullwidth r (NFKC)
    assert a == b == c
    assert a != item_id([{"role": "system", "content": "where is my refund?"}])
    assert len(a) == 16


def test_split_is_a_function_of_the_id_with_the_share_asked() -> None:
    ids = [item_id([{"role": "user", "content": f"question {i}"}]) for i in range(4000)]
    splits = [split_of(i, 0.8) for i in ids]
    assert splits == [split_of(i, 0.8) for i in ids]
    share = splits.count("test") / len(splits)
    assert 0.77 < share < 0.83
    assert {split_of(i, 1.0) for i in ids} == {"test"}


def test_items_round_trip_and_hash_ignores_order(tmp_path: Path) -> None:
    items = [_item("refund please"), _item("cancel my order")]
    path = tmp_path / "items.jsonl"
    assert write_items(path, items) == 2
    back = read_items(path)
    assert back == items
    assert content_hash(back) == content_hash(list(reversed(items)))
    assert content_hash(items[:1]) != content_hash(items)


def test_a_bad_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    write_items(path, [_item("ok")])
    with path.open("a") as out:
        out.write('{"id": 3}\n')
    with pytest.raises(EvalsetError, match=r"items.jsonl:2:"):
        read_items(path)


def test_versions_are_immutable_and_numbered(tmp_path: Path) -> None:
    assert next_version(tmp_path, "support") == "v1"

    def fill(folder: Path) -> None:
        write_items(folder / "items.jsonl", [_item("refund please")])
        write_manifest(folder, {"name": "support"})

    write_version(tmp_path, "support", "v1", fill)
    with pytest.raises(EvalsetError, match="immutable"):
        write_version(tmp_path, "support", "v1", fill)
    write_version(tmp_path, "support", next_version(tmp_path, "support"), fill)
    for i in range(3, 11):
        write_version(tmp_path, "support", f"v{i}", fill)
    assert versions(tmp_path, "support")[-2:] == ["v9", "v10"]  # numeric, not text, order
    latest = load(tmp_path, "support")
    assert latest.version == "v10" and latest.items[0].prompt == "refund please"
    assert load(tmp_path, "support@v2").version == "v2"
    with pytest.raises(EvalsetError, match="no version v11"):
        load(tmp_path, "support@v11")
    with pytest.raises(EvalsetError):
        parse_ref("../etc@v1")
    with pytest.raises(EvalsetError):
        parse_ref("support@latest")
