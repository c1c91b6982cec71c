"""Eval-set items as Parquet (``items.parquet``): one row per item, native column types.

For tools that read columns (pandas, DuckDB, Hugging Face datasets): lists and maps are
Parquet lists and maps, ``observed`` a struct, ``messages`` a list of role/content
structs. `read_parquet` gives back exactly the items `write_parquet` was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.errors import EvalsetError
from monitor.evalset.items import EvalItem, Observed


def _schema() -> Any:
    import pyarrow as pa

    text = pa.string()
    return pa.schema(
        [
            ("id", text),
            ("split", text),
            ("messages", pa.list_(pa.struct([("role", text), ("content", text)]))),
            ("prompt", text),
            (
                "observed",
                pa.struct(
                    [
                        ("content", text),
                        ("model", text),
                        ("model_version", text),
                        ("finish_reason", text),
                    ]
                ),
            ),
            ("reasons", pa.list_(text)),
            ("scores", pa.map_(text, pa.float64())),
            ("judge_rationale", pa.map_(text, text)),
            ("feedback_comment", text),
            ("topic", text),
            ("model_version", text),
            ("source_event_ids", pa.list_(text)),
            ("alert_ids", pa.list_(text)),
            ("first_seen", text),
            ("reference", text),
            ("tests", pa.list_(text)),
            ("metadata", pa.map_(text, text)),
        ]
    )


def _messages(item: EvalItem) -> list[dict[str, str]]:
    out = []
    for message in item.messages:
        content = message.get("content")
        if set(message) != {"role", "content"} or not isinstance(content, str):
            raise EvalsetError(
                f"item {item.id}: Parquet holds messages as role and text content only; "
                "export JSON Lines for messages with other fields"
            )
        out.append({"role": str(message["role"]), "content": content})
    return out


def _row(item: EvalItem) -> dict[str, Any]:
    observed = item.observed
    return {
        "id": item.id,
        "split": item.split,
        "messages": _messages(item),
        "prompt": item.prompt,
        "observed": None
        if observed is None
        else {
            "content": observed.content,
            "model": observed.model,
            "model_version": observed.model_version,
            "finish_reason": observed.finish_reason,
        },
        "reasons": item.reasons,
        "scores": list(item.scores.items()),
        "judge_rationale": list(item.judge_rationale.items()),
        "feedback_comment": item.feedback_comment,
        "topic": item.topic,
        "model_version": item.model_version,
        "source_event_ids": item.source_event_ids,
        "alert_ids": item.alert_ids,
        "first_seen": item.first_seen,
        "reference": item.reference,
        "tests": item.tests,
        "metadata": list(item.metadata.items()),
    }


def write_parquet(path: Path, items: Sequence[EvalItem]) -> int:
    """Write ``items`` to ``path`` (zstd-compressed); returns how many."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([_row(item) for item in items], schema=_schema())
    pq.write_table(table, path, compression="zstd")
    return len(items)


def _item(row: dict[str, Any]) -> EvalItem:
    observed = row["observed"]
    return EvalItem(
        id=row["id"],
        split=row["split"],
        messages=[dict(m) for m in row["messages"]],
        prompt=row["prompt"],
        observed=None if observed is None else Observed(**observed),
        reasons=list(row["reasons"]),
        scores=dict(row["scores"]),
        judge_rationale=dict(row["judge_rationale"]),
        feedback_comment=row["feedback_comment"],
        topic=row["topic"],
        model_version=row["model_version"],
        source_event_ids=list(row["source_event_ids"]),
        alert_ids=list(row["alert_ids"]),
        first_seen=row["first_seen"],
        reference=row["reference"],
        tests=None if row["tests"] is None else list(row["tests"]),
        metadata=dict(row["metadata"]),
    )


def read_parquet(path: Path) -> list[EvalItem]:
    """The items of an ``items.parquet``; `EvalsetError` when it cannot be read as one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise EvalsetError(f"cannot read {path}: {exc}") from exc
    missing = set(_schema().names) - set(table.column_names)
    if missing:
        raise EvalsetError(f"{path}: not an eval-set file (no {', '.join(sorted(missing))})")
    try:
        return [_item(row) for row in table.to_pylist()]
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalsetError(f"{path}: not an eval-set file ({exc})") from exc
