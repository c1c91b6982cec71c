"""`vigil evalset review NAME[@VERSION]`: label eval-set items in the terminal, or import
and export labels as JSON Lines.

The terminal UI is a loop of small prompt_toolkit prompts (one key, a line, or a
multi-line text), no full-screen application, so it works in any plain terminal or
pseudo-terminal, TERM=dumb included. The queue itself (`monitor.evalset.review`) stores
every change at once; quitting, Ctrl-C or a crash loses nothing.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config import Settings
from monitor.errors import EvalsetError

if TYPE_CHECKING:
    from monitor.evalset.items import EvalItem
    from monitor.evalset.labels import LabelBook
    from monitor.evalset.review import ReviewQueue

HELP = {"review": "label items in the terminal (pass/fail, 1-5 scores, notes, references)"}

KEYS_HELP = (
    "keys: p pass · f fail · 1-5 then a dimension key: score · n note · r reference · "
    "s skip · u undo · Enter next · ? help · q quit"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LONG = 4000  # characters of one message shown before it is cut


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.epilog = KEYS_HELP + ". Every change is stored at once; starting again resumes."
    parser.add_argument("ref", metavar="NAME[@VERSION]", help="eval set (default: latest version)")
    parser.add_argument("--reviewer", help="who labels (default: $USER)")
    parser.add_argument("--split", choices=["test", "dev"], help="review one split only")
    io = parser.add_mutually_exclusive_group()
    io.add_argument(
        "--import",
        dest="import_file",
        type=Path,
        metavar="FILE",
        help="load labels from JSON Lines (item_id, reviewer, verdict, scores, note, reference)",
    )
    io.add_argument(
        "--export",
        dest="export_file",
        type=Path,
        metavar="FILE",
        help="write the labels as JSON Lines (every reviewer's unless --reviewer is given)",
    )


def run(name: str, args: argparse.Namespace, settings: Settings) -> int:
    from monitor.evalset.labels import LabelBook
    from monitor.evalset.versions import load
    from monitor.store import open_store

    interactive = args.import_file is None and args.export_file is None
    if interactive and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise EvalsetError(
            "review needs a terminal: stdin or stdout is not one "
            "(use --import FILE to load labels made elsewhere)"
        )
    evalset = load(settings.evalset_dir, args.ref)
    reviewer = args.reviewer or os.environ.get("USER") or getpass.getuser() or "reviewer"
    store = open_store(settings)
    try:
        store.migrate()
        book = LabelBook(store, evalset.name, evalset.version)
        if args.import_file is not None:
            return _import(book, args.import_file, {i.id for i in evalset.items}, reviewer)
        if args.export_file is not None:
            ids = {i.id for i in evalset.items}
            return _export(book, args.export_file, ids, args.reviewer)
        items = [i for i in evalset.items if args.split is None or i.split == args.split]
        if not items:
            which = f"{args.split} " if args.split else ""
            raise EvalsetError(f"{evalset.name}@{evalset.version} has no {which}items")
        return _review(book, items, reviewer, _default_dimensions(settings))
    finally:
        store.close()


def _import(book: LabelBook, path: Path, known: set[str], reviewer: str) -> int:
    from monitor.evalset.labels import parse_labels

    result = parse_labels(path, known, reviewer)
    for error in result.errors:
        print(error, file=sys.stderr)
    book.save_many(result.labels)
    skipped = f" ({len(result.errors)} bad lines skipped)" if result.errors else ""
    print(f"imported {len(result.labels)} labels into {book.evalset}{skipped}")
    return 1 if result.errors else 0


def _export(book: LabelBook, path: Path, known: set[str], reviewer: str | None) -> int:
    from monitor.evalset.labels import export_labels

    labels = [lb for lb in book.current(reviewer).values() if lb.item_id in known]
    n = export_labels(labels, path)
    print(f"exported {n} labels of {book.evalset}@{book.version} to {path}")
    return 0


def _default_dimensions(settings: Settings) -> list[str]:
    from monitor.evalset.review import rubric_dimensions

    # Looked up defensively: the judge's settings belong to another part of Vigil.
    rubric = getattr(getattr(settings, "judge", None), "rubric", None)
    return rubric_dimensions(str(rubric)) if rubric else rubric_dimensions("general")


# -- the terminal UI ----------------------------------------------------------------------


class _Terminal:
    """Three kinds of prompt: one key from a set, one line, a multi-line text."""

    def __init__(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.key_binding import KeyBindings

        self._bindings = KeyBindings
        self._session = PromptSession
        self._line: Any = PromptSession()
        done = KeyBindings()
        # Esc-Enter accepts a multi-line text (prompt_toolkit's own); Ctrl-D too.
        done.add("c-d")(lambda event: event.current_buffer.validate_and_handle())
        self._text: Any = PromptSession(multiline=True, key_bindings=done)
        self._keys: dict[frozenset[str], Any] = {}

    def key(self, message: str, keys: list[str]) -> str:
        """Wait for one of ``keys`` (prompt_toolkit key names); others are ignored.
        Ctrl-C and Ctrl-D come back as themselves, and so does a closed terminal (c-d)."""
        wanted = frozenset([*keys, "c-c", "c-d"])
        session = self._keys.get(wanted)
        if session is None:
            bindings = self._bindings()
            for key in wanted:
                bindings.add(key)(lambda event, key=key: event.app.exit(result=key))
            bindings.add("<any>")(lambda event: None)  # swallow every other key
            session = self._keys[wanted] = self._session(key_bindings=bindings)
        try:
            result: str = session.prompt(message)
        except (KeyboardInterrupt, EOFError):
            return "c-d"
        return result

    def line(self, message: str, default: str = "") -> str | None:
        try:
            text: str = self._line.prompt(message, default=default)
        except (KeyboardInterrupt, EOFError):
            return None
        return text

    def text(self, message: str, default: str = "") -> str | None:
        try:
            text: str = self._text.prompt(message, default=default)
        except (KeyboardInterrupt, EOFError):
            return None
        return text


def _clean(text: str, limit: int = _LONG) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n"))
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _show(queue: ReviewQueue, item: EvalItem, dims: list[str], keys: dict[str, str]) -> None:
    from monitor.evalset.items import message_text

    judged, total = queue.progress()
    assert queue.position is not None
    print(
        f"\n── {judged}/{total} labelled · item {queue.position + 1} of {total} · "
        f"{item.id} [{item.split}] ──"
    )
    print(f"capture reasons: {', '.join(item.reasons) or '-'}")
    print("prompt:")
    for message in item.messages:
        print(f"  [{message.get('role', 'user')}] {_clean(message_text(message))}")
    if item.observed is not None:
        o = item.observed
        model = " ".join(x for x in (o.model, o.model_version) if x)
        print(f"observed response{f' ({model})' if model else ''}:")
        print(f"  {_clean(o.content)}")
    judge = {k[6:]: v for k, v in item.scores.items() if k.startswith("judge.")}
    if judge:
        print("judge: " + "  ".join(f"{d} {v:g}" for d, v in judge.items()))
    for dim, why in item.judge_rationale.items():
        print(f"  {dim}: {_clean(why, 600)}")
    if item.feedback_comment:
        print(f"user feedback: {_clean(item.feedback_comment, 600)}")
    _show_label(queue, item)
    by_dim = {d: k for k, d in keys.items()}
    print("dimensions: " + "  ".join(f"{by_dim[d]}={d}" for d in dims if d in by_dim))
    print(KEYS_HELP)


def _show_label(queue: ReviewQueue, item: EvalItem) -> None:
    label = queue.label_of(item)
    if label.empty:
        return
    parts = [label.verdict or "no verdict"]
    parts += [f"{d} {v:g}" for d, v in label.scores.items()]
    if label.note:
        parts.append(f"note: {_clean(label.note, 200)}")
    if label.reference:
        parts.append(f"reference: {len(label.reference.splitlines())} lines")
    print("your label: " + " · ".join(parts))


def _review(book: LabelBook, items: list[EvalItem], reviewer: str, default: list[str]) -> int:
    from monitor.evalset.review import ReviewQueue, dimension_keys, item_dimensions

    os.environ.setdefault("PROMPT_TOOLKIT_NO_CPR", "1")  # a pty need not answer CPR queries
    labels = {item: label for (item, _), label in book.current(reviewer).items()}
    queue = ReviewQueue(items, labels, reviewer, book, book.version)
    all_dims = [d for item in items for d in item_dimensions(item, default)]
    keys = dimension_keys([*default, *all_dims])
    term = _Terminal()
    print(f"reviewing {book.evalset}@{book.version} as {reviewer}")
    if queue.done:
        print(f"nothing left to review: {reviewer} has labelled every item")
    shown: int | None = None
    while not queue.done:
        item = queue.current
        assert item is not None
        dims = item_dimensions(item, default)
        if queue.position != shown:
            _show(queue, item, dims, keys)
            shown = queue.position
        key = term.key("action> ", ["p", "f", "n", "r", "s", "u", "q", "?", "enter", *"12345"])
        if key in ("q", "c-c", "c-d"):
            break
        if key == "u":
            back = queue.undo()
            print(f"undone: back to {back.id}" if back else "nothing to undo")
            shown = None
        else:
            _act(queue, term, key, dims, keys)
    judged, total = queue.progress()
    left = f"; {len(queue.skipped)} skipped come back next time" if queue.skipped else ""
    print(f"{judged}/{total} labelled by {reviewer}{left}; labels are saved")
    return 0


def _act(
    queue: ReviewQueue, term: _Terminal, key: str, dims: list[str], keys: dict[str, str]
) -> None:
    item = queue.current
    assert item is not None
    if key in ("p", "f"):
        queue.verdict("pass" if key == "p" else "fail")
        print(f"saved: {'pass' if key == 'p' else 'fail'}")
    elif key in "12345" and len(key) == 1:
        dim = dims[0] if len(dims) == 1 else _pick(term, key, dims, keys)
        if dim is not None:
            queue.score(dim, int(key))
            print(f"saved: {dim} = {key}")
    elif key == "n":
        text = term.line("note> ", queue.label_of(item).note)
        if text is not None:
            queue.note(text.strip())
            print("saved: note")
    elif key == "r":
        print("reference answer (Esc-Enter or Ctrl-D to finish, Ctrl-C to cancel):")
        text = term.text("", queue.label_of(item).reference or item.reference)
        if text is not None:
            queue.reference(text.strip("\n"))
            print("saved: reference")
    elif key == "s":
        queue.skip()
        print("skipped")
    elif key == "enter":
        queue.next()
    elif key == "?":
        print(KEYS_HELP)


def _pick(term: _Terminal, score: str, dims: list[str], keys: dict[str, str]) -> str | None:
    mine = {k: d for k, d in keys.items() if d in dims}
    choices = "  ".join(f"{k}={d}" for k, d in mine.items())
    key = term.key(
        f"score {score} for which dimension? {choices} (Esc: cancel)> ", [*mine, "escape"]
    )
    return mine.get(key)
