"""What every rules file (alert rules, capture rules) has in common: a ``rules`` list with
unique names, and errors that name the rule and the field."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError


def duplicate_names(names: Iterable[str]) -> str | None:
    """An error message when a name appears twice, else None."""
    seen: set[str] = set()
    dupes: set[str] = set()
    for name in names:
        (dupes if name in seen else seen).add(name)
    return f"duplicate rule names: {', '.join(sorted(dupes))}" if dupes else None


def describe(exc: ValidationError, data: Any, kinds: Sequence[str] = ()) -> str:
    """The first error as ``rule NAME: field: message`` (a rule without a name is ``#n``,
    counted from 1). ``kinds``: for rule lists that are a union tagged by ``kind``, the
    kinds to list when one is missing or unknown."""
    first = exc.errors(include_url=False)[0]
    loc = list(first["loc"])
    where = ".".join(str(p) for p in loc) or "rules"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rule: Any = None
        with contextlib.suppress(KeyError, IndexError, TypeError):
            rule = data["rules"][loc[1]]
        fields = dict(rule) if isinstance(rule, dict) else {}
        name = fields.get("name", f"#{loc[1] + 1}")
        # A tagged union puts the kind into the location: drop it, the reader knows it.
        rest = loc[3:] if kinds and len(loc) >= 3 and loc[2] == fields.get("kind") else loc[2:]
        where = f"rule {name}: " + (".".join(str(p) for p in rest) or "kind")
        if first["type"] == "union_tag_invalid":
            return f"{where}: unknown kind {fields.get('kind')!r} (one of {', '.join(kinds)})"
    if first["type"] == "union_tag_not_found":
        return f"{where}: missing (one of {', '.join(kinds)})"
    return f"{where}: " + ("unknown field" if first["type"] == "extra_forbidden" else first["msg"])
