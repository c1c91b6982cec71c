"""Where eval sets live, and how a name or ``NAME@VERSION`` finds one.

Layout under ``evalset.dir`` (default ``.vigil/evalsets``)::

    <name>/v1/items.jsonl      the items (or items.parquet)
    <name>/v1/manifest.json    counts, hashes, source window, scorer versions, parent
    <name>/v2/...

A version folder is written once, through a temporary folder renamed into place, and
never changed afterwards; a new export makes the next version (``v<n+1>``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import EvalsetError
from monitor.evalset.items import EvalItem, read_items

ITEMS_JSONL = "items.jsonl"
ITEMS_PARQUET = "items.parquet"
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class Ref:
    """An eval set by name, and optionally one version of it."""

    name: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name


def parse_ref(text: str) -> Ref:
    """``NAME`` or ``NAME@vN``; `EvalsetError` for anything else."""
    name, _, version = text.partition("@")
    check_name(name)
    if version and not _VERSION.match(version):
        raise EvalsetError(f"{text!r}: a version looks like v1, v2, ...")
    return Ref(name, version or None)


def check_name(name: str) -> str:
    """An eval-set name: letters, digits, ``_ . -``, at most 100 characters."""
    if not _NAME.match(name):
        raise EvalsetError(
            f"eval-set name {name!r}: use letters, digits, '_', '.', '-' (at most 100)"
        )
    return name


def versions(root: Path, name: str) -> list[str]:
    """The versions of ``name``, oldest first (``v1``, ``v2``...)."""
    folder = root / name
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in folder.iterdir() if (m := _VERSION.match(p.name))]
    return [v for _, v in sorted(found)]


def names(root: Path) -> list[str]:
    """Every eval-set name under ``root`` that has at least one version."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and versions(root, p.name))


def next_version(root: Path, name: str) -> str:
    """The version a new export of ``name`` gets."""
    existing = versions(root, name)
    return f"v{int(existing[-1][1:]) + 1}" if existing else "v1"


def resolve(root: Path, ref: Ref) -> Path:
    """The folder of ``ref`` (its latest version when none is named)."""
    existing = versions(root, ref.name)
    if not existing:
        raise EvalsetError(f"no eval set {ref.name!r} under {root}")
    version = ref.version or existing[-1]
    if version not in existing:
        raise EvalsetError(f"{ref.name} has no version {version} (has {', '.join(existing)})")
    return root / ref.name / version


@dataclass
class EvalSet:
    """One loaded version: where it is, its manifest and its items."""

    name: str
    version: str
    path: Path
    manifest: dict[str, Any]
    items: list[EvalItem]


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a version folder."""
    try:
        data = orjson.loads((folder / MANIFEST).read_bytes())
    except OSError as exc:
        raise EvalsetError(f"cannot read {folder / MANIFEST}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise EvalsetError(f"{folder / MANIFEST}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EvalsetError(f"{folder / MANIFEST}: not a JSON object")
    return data


def load(root: Path, ref: Ref | str) -> EvalSet:
    """Load ``ref`` (``NAME`` or ``NAME@vN``, or a `Ref`) with its manifest and items."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    folder = resolve(root, ref)
    manifest = read_manifest(folder)
    if (folder / ITEMS_JSONL).exists():
        items = read_items(folder / ITEMS_JSONL)
    elif (folder / ITEMS_PARQUET).exists():
        from monitor.evalset.parquet import read_parquet

        items = read_parquet(folder / ITEMS_PARQUET)
    else:
        raise EvalsetError(f"{folder}: no {ITEMS_JSONL} or {ITEMS_PARQUET}")
    return EvalSet(ref.name, folder.name, folder, manifest, items)


def write_version(
    root: Path, name: str, version: str, write: Callable[[Path], None]
) -> Path:
    """Create ``root/name/version`` atomically: ``write(tmp)`` fills a temporary folder,
    which is then renamed into place. `EvalsetError` if the version already exists."""
    check_name(name)
    target = root / name / version
    if target.exists():
        raise EvalsetError(f"{name}@{version} already exists: versions are immutable")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        write(tmp)
        os.rename(tmp, target)  # atomic on one filesystem; fails if target appeared
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
