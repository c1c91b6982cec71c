"""Training data for the leakage check: JSON Lines files in the common shapes, or another
eval set, read once as a stream of (line number, texts).

One JSON object per line, in the first of these shapes it has:

- ``{"messages": [{"role", "content"}, ...]}``: the user and assistant contents (a
  content may be a list of ``{"type": "text", "text"}`` parts);
- ``{"conversations": [{"from", "value"}, ...]}`` (ShareGPT): human and gpt values;
- ``{"prompt", "completion"}``; ``{"instruction", "input", "output"}``; ``{"text"}``.

``field`` names the one field to read instead (text, or a list of messages), for files
with another layout or more than one of these. Each text is compared on its own, so an
n-gram never spans two fields. A line that is not JSON, has none of the shapes, or has
a wrong type is handed to ``on_bad`` with its number and skipped; blank lines are
skipped silently. Plain and gzip (``.gz``) files are read.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import EvalsetError
from monitor.evalset.items import EvalItem, message_text

OnBad = Callable[[int, str], None]

#: Bytes read at a time.
BLOCK = 1 << 22

_ROLES = ("user", "assistant")
_SHAREGPT_ROLES = ("human", "gpt", "user", "assistant")


class BadShape(Exception):
    """A line that is JSON but none of the shapes (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def prompt_texts(item: EvalItem) -> list[str]:
    """What an item is compared on: the text of its user messages (its ``prompt`` when
    it has none)."""
    texts = [
        message_text(m)
        for m in item.messages
        if m.get("role", "user") == "user" and isinstance(m.get("content"), str | list)
    ]
    texts = [t for t in texts if t]
    return texts or [item.prompt]


def _messages(
    value: Any, where: str, role_key: str, text_key: str, roles: tuple[str, ...]
) -> list[str]:
    if not isinstance(value, list):
        raise BadShape(f"{where!r} is not a list of messages")
    texts = []
    for message in value:
        if not isinstance(message, dict):
            raise BadShape(f"{where!r}: a message is not an object")
        content = message.get(text_key)
        if isinstance(content, list):
            if not all(isinstance(p, dict) for p in content):
                raise BadShape(f"{where!r}: a content part is not an object")
            content = message_text({"content": content})
        elif not isinstance(content, str):
            raise BadShape(f"{where!r}: a message {text_key!r} is not text")
        if message.get(role_key, "user") in roles:
            texts.append(content)
    return texts


def _strings(obj: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    texts = []
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadShape(f"{key!r} is not text")
        texts.append(value)
    return texts


def extract(obj: Any, field: str | None = None) -> list[str]:
    """The texts of one parsed training line; `BadShape` when it has none of the shapes."""
    if not isinstance(obj, dict):
        raise BadShape("not a JSON object")
    if field is not None:
        if field not in obj:
            raise BadShape(f"no field {field!r}")
        value = obj[field]
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return _messages(value, field, "role", "content", _ROLES)
        raise BadShape(f"field {field!r} is neither text nor a list of messages")
    if "messages" in obj:
        return _messages(obj["messages"], "messages", "role", "content", _ROLES)
    if "conversations" in obj:
        return _messages(obj["conversations"], "conversations", "from", "value", _SHAREGPT_ROLES)
    if "prompt" in obj:
        return _strings(obj, ("prompt", "completion"))
    if "instruction" in obj:
        return _strings(obj, ("instruction", "input", "output"))
    if "text" in obj:
        return _strings(obj, ("text",))
    raise BadShape(
        "none of the shapes messages, conversations, prompt/completion, "
        "instruction/input/output, text (name one with --field)"
    )


class JsonlSource:
    """A training file (``.jsonl``, or ``.jsonl.gz``), or a byte range of a plain one
    (``start`` and ``end`` on line starts; lines are numbered from 1 at ``start``)."""

    kind = "file"
    unit = "bytes"

    def __init__(
        self, path: Path, field: str | None = None, start: int = 0, end: int | None = None
    ) -> None:
        self.path = path
        self.label = str(path)
        self.field = field
        self.gzip = path.suffix == ".gz"
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise EvalsetError(f"cannot read {path}: {exc.strerror}") from exc
        if not path.is_file():
            raise EvalsetError(f"{path}: not a file")
        self.total: int | None = size
        self.start = start
        self.end = size if end is None else end
        self._raw: Any = None
        self._read = 0

    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for gzip)."""
        if self.gzip:
            return int(self._raw.tell()) if self._raw is not None and not self._raw.closed else 0
        return self.start + self._read

    def other_id(self, line: int) -> str:
        return ""

    def texts(self, on_bad: OnBad) -> Iterator[tuple[int, list[str]]]:
        """(line number, texts) of every good line, in order."""
        loads, field = orjson.loads, self.field
        number = 0
        try:
            with self.path.open("rb") as raw:
                self._raw = raw
                for line in self._lines(raw):
                    number += 1
                    try:
                        texts = extract(loads(line), field)
                    except orjson.JSONDecodeError as exc:
                        if line.strip():
                            on_bad(number, f"not JSON ({str(exc)[:80]})")
                        continue
                    except BadShape as exc:
                        on_bad(number, exc.reason)
                        continue
                    yield number, texts
        except (OSError, EOFError, zlib.error) as exc:
            raise EvalsetError(f"cannot read {self.path}: {exc}") from exc

    def _lines(self, raw: Any) -> Iterator[bytes]:
        # Blocks split on newlines: as fast as iterating the file, and a byte range
        # needs no per-line position.
        handle: Any = gzip.GzipFile(fileobj=raw) if self.gzip else raw
        remaining = None if self.gzip else self.end - self.start
        if not self.gzip:
            raw.seek(self.start)
        carry = b""
        while True:
            size = BLOCK if remaining is None else min(BLOCK, remaining)
            block = handle.read(size) if size else b""
            if not block:
                if carry:
                    yield carry
                return
            if remaining is not None:
                remaining -= len(block)
            self._read += len(block)
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            yield from lines


class EvalsetSource:
    """Another eval set as the training side: its items' prompts, one item a "line"
    (numbered in file order), e.g. to check that a dev set does not overlap a test set."""

    kind = "evalset"
    unit = "lines"

    def __init__(self, label: str, items: list[EvalItem]) -> None:
        self.label = label
        self.items = items
        self.total: int | None = len(items)
        self._done = 0

    def position(self) -> int:
        return self._done

    def other_id(self, line: int) -> str:
        """The id of the item on that line."""
        return self.items[line - 1].id

    def texts(self, on_bad: OnBad) -> Iterator[tuple[int, list[str]]]:
        for number, item in enumerate(self.items, 1):
            self._done = number
            yield number, prompt_texts(item)


Source = JsonlSource | EvalsetSource
