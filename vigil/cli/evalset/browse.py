"""`vigil evalset list | show | diff`: the eval sets on disk, one version, two compared."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson

from monitor.config import Settings

HELP = {
    "list": "list eval sets: versions, items, when each was made",
    "show": "show a version's manifest summary and a few items",
    "diff": "compare two versions: items added, removed and changed, counts by reason",
}
_PROMPT_CHARS = 100


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "show":
        parser.add_argument(
            "evalset", metavar="NAME[@VERSION]", help="the eval set (default: latest)"
        )
        parser.add_argument("--items", type=int, default=5, metavar="N", help="items to show (5)")
    elif name == "diff":
        parser.add_argument("a", metavar="NAME@A", help="the older version")
        parser.add_argument("b", metavar="NAME@B", help="the newer version")
    parser.add_argument("--dir", type=Path, metavar="DIR", help="eval-set directory (evalset.dir)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(name: str, args: argparse.Namespace, settings: Settings) -> int:
    root: Path = args.dir or settings.evalset_dir
    data, text = {"list": _list, "show": _show, "diff": _diff}[name](root, args)
    if args.json:
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
    else:
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False)
        if not console.is_terminal:  # piped: one line per row, for grep and less
            console = Console(highlight=False, width=200)
        for part in text:
            # Lines of text are not wrapped (a path or a count line stays one line for
            # grep); tables fit the terminal.
            console.print(part, soft_wrap=isinstance(part, Text))
    return 0


def _list(root: Path, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from rich.table import Table
    from rich.text import Text

    from monitor.evalset.versions import names, read_manifest, versions

    sets: list[dict[str, Any]] = []
    for set_name in names(root):
        entries = []
        for version in versions(root, set_name):
            m = read_manifest(root / set_name / version)
            entries.append(
                {
                    "version": version,
                    "items": m.get("items"),
                    "created_at": m.get("created_at"),
                    "format": m.get("format"),
                    "content_hash": m.get("content_hash"),
                }
            )
        sets.append({"name": set_name, "versions": entries})
    if not sets:
        return sets, [
            Text(f"no eval sets under {root} (`vigil evalset export --name NAME` makes one)")
        ]
    table = Table(title=f"eval sets in {root}")
    for column in ("name", "versions", "latest", "items", "created"):
        table.add_column(column)
    for s in sets:
        latest = s["versions"][-1]
        table.add_row(
            s["name"], str(len(s["versions"])), latest["version"], str(latest["items"]),
            str(latest["created_at"]),
        )  # fmt: skip
    return sets, [table]


def _short(text: str) -> Any:
    """User text for a table cell: one line, cut, and never read as rich markup."""
    from rich.text import Text

    text = " ".join(text.split())
    return Text(text if len(text) <= _PROMPT_CHARS else text[: _PROMPT_CHARS - 3] + "...")


def _show(root: Path, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from rich.table import Table
    from rich.text import Text

    from monitor.evalset.versions import load

    es = load(root, args.evalset)
    m = es.manifest
    items = es.items[: max(0, args.items)]
    data = {"manifest": m, "items": [msgspec.to_builtins(i) for i in items]}
    counts = m.get("counts", {})
    source = m.get("source", {})
    dedupe = m.get("dedupe", {})
    parent = m.get("parent") or {}

    def line(counter: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in counter.items()) or "-"

    summary = [
        f"{es.name}@{es.version}: {m.get('items')} items, {m.get('format')}, "
        f"created {m.get('created_at')} by vigil {m.get('vigil_version')}",
        f"  path          {es.path}",
        f"  content hash  {m.get('content_hash')}",
        f"  parent        {parent.get('version', '-')}"
        + (f" (+{len(parent['added'])} / -{len(parent['removed'])})" if parent else ""),
        f"  events        {source.get('first_event')} .. {source.get('last_event')} "
        f"({source.get('failures')} failures, {source.get('events')} events)",
        f"  by reason     {line(counts.get('reason', {}))}",
        f"  by topic      {line(counts.get('topic', {}))}",
        f"  by split      {line(counts.get('split', {}))}",
        f"  duplicates    {dedupe.get('exact')} exact, {dedupe.get('near')} near",
        f"  PII replaced  {line(m.get('pii', {}).get('replaced', {}))}",
    ]
    table = Table(title=f"first {len(items)} of {len(es.items)} items")
    table.add_column("id", no_wrap=True)
    table.add_column("split")
    for column in ("reasons", "topic", "prompt", "observed"):
        table.add_column(
            column, overflow="fold", ratio=2 if column in ("prompt", "observed") else 1
        )
    for item in items:
        observed = item.observed.content if item.observed else ""
        table.add_row(
            item.id, item.split, ",".join(item.reasons), item.topic, _short(item.prompt),
            _short(observed),
        )  # fmt: skip
    return data, [Text("\n".join(summary)), table]


def _diff(root: Path, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from rich.table import Table
    from rich.text import Text

    from monitor.evalset.diff import diff_versions
    from monitor.evalset.versions import load

    d = diff_versions(load(root, args.a), load(root, args.b))
    head = (
        f"{d['a']} -> {d['b']}: +{len(d['added'])} added, -{len(d['removed'])} removed, "
        f"~{len(d['changed'])} changed, {d['unchanged']} unchanged"
    )
    table = Table(title="items by reason")
    for column in ("reason", d["a"], d["b"], "added", "removed"):
        table.add_column(column)
    c = d["counts"]
    for reason in sorted(set(c["a"]) | set(c["b"])):
        table.add_row(
            reason, str(c["a"].get(reason, 0)), str(c["b"].get(reason, 0)),
            str(c["added"].get(reason, 0)), str(c["removed"].get(reason, 0)),
        )  # fmt: skip
    rows = Text()
    for sign, key in (("+", "added"), ("-", "removed")):
        for i in d[key]:
            rows.append(f"{sign} {i['id']}  {','.join(i['reasons'])}  ")
            rows.append(_short(i["prompt"]))
            rows.append("\n")
    for i in d["changed"]:
        rows.append(f"~ {i['id']}  {', '.join(i['fields'])}\n")
    return d, [Text(head), table, rows]
