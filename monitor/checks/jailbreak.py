"""Jailbreak and prompt-injection detection: cheap patterns and similarity to known attacks.

Two halves with different costs, run in different places:

- `JailbreakPatterns` is a handful of regular expressions over the prompt. It is cheap
  enough for every event, so the heuristics run it (check ``jailbreak``); a failed check
  already gives the event priority for the judge and the other scorers in the sampler.
- Similarity to a user-supplied set of known attacks needs prompt embeddings, so it runs
  inside the embedding scorer on the events that stage sees; `load_attack_examples` reads
  the set and `nearest_attack` compares. Its hits are stored as incidents.

Patterns catch the generic shapes of attacks (instruction override, persona role-play,
"developer mode", system-prompt extraction); similarity catches paraphrases of the
specific attacks an operator has seen. Neither is a classifier with a measured error rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import orjson

from monitor.checks.scan import Joined
from monitor.errors import ConfigError

#: Built-in patterns by kind. The kind names become incident categories, so keep them stable.
#: Gaps are bounded (``{0,40}`` within a sentence) so a pattern cannot run across a document.
BUILTIN_PATTERNS: dict[str, str] = {
    "instruction_override": (
        r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}?"
        r"\b(?:previous|prior|above|earlier|preceding|all|your|any)\b[^.\n]{0,30}?"
        r"\b(?:instructions?|rules|guidelines|prompts?|directives|policies|restrictions)\b"
    ),
    "do_anything_now": r"\bdo anything now\b",
    "special_mode": r"\b(?:developer|god|jailbreak|jailbroken|dan|unrestricted|evil)\s+mode\b",
    # Role-play personas of the DAN family; names are case-sensitive so that "you are dan"
    # in lower case (a person) does not count, but "You are DAN" does.
    "persona": (
        r"\b(?:you are|you're|act as|pretend to be|role of|known as|called|play)\s+(?:an? )?"
        r"(?-i:DAN|STAN|DUDE|AIM|AntiDAN|ANTI-DAN|Mongo Tom|BetterDAN|JailBreak)\b"
    ),
    "unrestricted_roleplay": (
        r"\b(?:act|acting|pretend|roleplay|role-play|you are|you're|you will be|immerse)\b"
        r"[^.\n]{0,80}?\b(?:unfiltered|uncensored|unrestricted|amoral|"
        r"(?:free of|without(?: any)?|no) (?:rules|restrictions|filters|limits|limitations|"
        r"guidelines|censorship|ethics|morals))\b"
    ),
    "broken_free": r"\bbroken free of\b[^.\n]{0,40}\b(?:confines|rules|restrictions)\b",
    "system_prompt_extraction": (
        r"\b(?:print|reveal|show|repeat|output|leak|display|tell me)\b[^.\n]{0,30}?"
        r"\b(?:system|initial|hidden|original)\s+(?:prompt|instructions|message)\b"
    ),
}

#: Substrings (lower case) at least one of which a match of each built-in pattern contains: a
#: substring test in C rules most prompts out before the slower case-insensitive regex runs.
_HINTS: dict[str, tuple[str, ...]] = {
    "instruction_override": ("ignore", "disregard", "forget", "override"),
    "do_anything_now": ("anything now",),
    "special_mode": (" mode",),
    "persona": ("dan", "stan", "dude", "aim", "mongo tom", "jailbreak"),
    "unrestricted_roleplay": (
        "unfiltered", "uncensored", "unrestricted", "amoral", "rules", "restriction", "filter",
        "limit", "guideline", "censorship", "ethics", "morals",
    ),
    "broken_free": ("broken free",),
    "system_prompt_extraction": ("system", "initial", "hidden", "original"),
}

#: Roles whose text can carry an attack: the user, and tools (indirect prompt injection
#: through retrieved documents or tool output). The operator's own system prompt is left
#: out: it often says "never reveal your system prompt", which is not an attack.
ATTACK_ROLES = frozenset({"user", "tool"})

#: Longest text the patterns look at per event, so a huge prompt cannot stall the hot path.
MAX_SCAN_CHARS = 32_000


class _Message(Protocol):
    """What `JailbreakPatterns.find_in_messages` reads of a message (events.Message)."""

    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


class JailbreakPatterns:
    """The pattern half: which attack shapes a text matches, compiled once."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        patterns = dict(BUILTIN_PATTERNS)
        for i, pattern in enumerate(extra):
            patterns[f"custom_{i}"] = pattern
        try:
            self._compiled = [
                (kind, re.compile(pattern, re.IGNORECASE), _HINTS.get(kind, ()))
                for kind, pattern in patterns.items()
            ]
        except re.error as exc:
            raise ConfigError(
                f"heuristics.jailbreak_patterns: bad regular expression ({exc})"
            ) from exc
        # Every hint of every kind, for one pass that settles the usual prompt (it has none).
        self._all_hints = tuple(hint for _, _, hints in self._compiled for hint in hints)
        self._unhinted = [(kind, regex) for kind, regex, hints in self._compiled if not hints]

    def find(self, text: str) -> list[str]:
        """Kinds of attack pattern found in ``text``, in a fixed order (empty: none)."""
        if not text:
            return []
        text = text[:MAX_SCAN_CHARS]
        # Plain substring tests run in C at memchr-like speed, short text or long; a regex
        # looking for any of the hints at every position is several times slower.
        lowered = text.lower()
        if not contains_any(lowered, self._all_hints):
            # Only patterns without hints (the operator's own) can match.
            return [kind for kind, regex in self._unhinted if regex.search(text) is not None]
        return [
            kind
            for kind, regex, hints in self._compiled
            if (not hints or contains_any(lowered, hints)) and regex.search(text) is not None
        ]

    def find_in_messages(self, messages: Iterable[_Message]) -> list[str]:
        """Kinds found in the messages whose role can carry an attack."""
        return self.find(attack_text(messages))

    def find_many(self, texts: Sequence[str]) -> list[list[str]]:
        """`find` for each of ``texts``, with the hint test run once over the whole batch.

        Only texts holding a hint (or, with custom patterns, every text) go through `find`
        itself, so each result is exactly ``find(text)``.
        """
        # Hints are lower case; the texts are lowered one by one because lower() can
        # change a text's length (which the joined offsets must follow).
        lowered = [text[:MAX_SCAN_CHARS].lower() for text in texts]
        hits = [False] * len(texts)
        Joined(lowered).containing(self._all_hints, hits)
        # Without a hint only the hint-less (custom) patterns can match: `find` tries them.
        find, unhinted = self.find, bool(self._unhinted)
        return [
            find(text) if hit or unhinted else [] for text, hit in zip(texts, hits, strict=True)
        ]


def attack_text(messages: Iterable[_Message]) -> str:
    """The text the patterns look at: the messages whose role can carry an attack, joined
    by newlines (the role test comes first so the other messages' text is never built)."""
    return "\n".join([m.text for m in messages if m.role in ATTACK_ROLES])


def contains_any(text: str, needles: tuple[str, ...]) -> bool:
    """Whether any of ``needles`` is a substring of ``text``.

    A plain loop, not ``any()`` over a generator, which costs more than the few substring
    tests themselves on the short texts of the every-event checks.
    """
    for needle in needles:  # noqa: SIM110 - see the docstring
        if needle in text:
            return True
    return False


def load_attack_examples(path: Path) -> list[str]:
    """Known attack prompts from a JSON list of strings, or a text file with one a line.

    Raises `ConfigError` when the file cannot be read or holds no usable example.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"embedding.jailbreak_examples {path}: {exc.strerror}") from exc
    examples: list[str]
    stripped = raw.lstrip()
    if stripped.startswith(b"["):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(
                f"embedding.jailbreak_examples {path}: not valid JSON ({exc})"
            ) from exc
        if not all(isinstance(item, str) for item in data):
            raise ConfigError(f"embedding.jailbreak_examples {path}: must be a list of strings")
        examples = [item.strip() for item in data]
    else:
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise ConfigError(f"embedding.jailbreak_examples {path}: not UTF-8 text") from exc
        examples = [line.strip() for line in text.splitlines()]
    examples = [e for e in examples if e]
    if not examples:
        raise ConfigError(f"embedding.jailbreak_examples {path}: no examples in the file")
    return examples


def nearest_attack(
    prompts: np.ndarray, attacks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Highest cosine similarity of each prompt to any attack, and that attack's index.

    Both matrices hold L2-normalised rows, so the dot product is the cosine.
    """
    sims = prompts @ attacks.T
    best = sims.argmax(axis=1)
    return sims[np.arange(len(prompts)), best], best
