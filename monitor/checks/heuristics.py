"""Cheap checks on every event: latency, tokens, length, truncation, empty, refusal,
JSON/format compliance for configured routes, PII in the response, jailbreak and
prompt-injection patterns in the user's (and tools') messages.

Deterministic and pure: the same event and settings give the same `CheckResult`, which is
what lets `vigil replay` and the live worker agree. The result is one wide row per event
(table ``checks``); ``failed`` lists the names of the checks that failed, which the sampler
uses to prioritise events for the expensive scorers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jsonschema
import msgspec
import orjson

from monitor.checks.jailbreak import JailbreakPatterns, attack_text, contains_any
from monitor.checks.pii import find_pii, find_pii_many
from monitor.checks.scan import Joined
from monitor.config import HeuristicsSettings
from monitor.events.model import Event

#: Bump when a check's logic changes, so old and new rows stay distinguishable.
CHECKS_VERSION = "h2"

# Refusals as instruction-tuned models phrase them; matched near the start of the answer,
# where a refusal lives, so an answer that merely quotes one further down is not flagged.
_BUILTIN_REFUSALS = (
    r"i(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:'|no)t|cannot|am unable to|won't)",
    r"i (?:can(?:'|no)t|cannot|won't|am unable to|am not able to) "
    r"(?:help|assist|provide|comply|do that|answer|fulfil)",
    r"as an ai(?: language model)?,? i (?:can(?:'|no)t|cannot|don't|do not|am unable)",
    r"i(?:'m| am) not able to (?:help|assist|provide)",
    r"(?:sorry|unfortunately),? (?:but )?(?:i|we) (?:can(?:'|no)t|cannot) (?:help|assist)",
)
_REFUSAL_WINDOW = 300

# The refusal check runs on every answer, and a case-insensitive search of the patterns
# above costs microseconds even on a short head, so with only the built-ins it is guarded:
#
# - Every string a built-in pattern can match contains one of these hints (the patterns
#   have no open-ended repeats; tests/test_heuristics.py lists every such string and checks
#   this). A few substring tests in C on the lower-cased head rule out nearly every answer,
#   including the many that say "sorry" or "won't" without refusing.
_REFUSAL_HINTS = ("can't", "cannot", "i won't", "i am unable", "not able to", "as an ai")
# - The head is lower case already, where IGNORECASE changes nothing except for two
#   characters that lower() keeps and IGNORECASE equates with an ASCII letter: dotless i
#   (ı ~ i) and long s (ſ ~ s). Without them, a case-sensitive search (about three times
#   faster) finds exactly what the case-insensitive one finds.
_BUILTIN_REFUSAL = re.compile("|".join(f"(?:{p})" for p in _BUILTIN_REFUSALS))
_IGNORECASE_EXTRAS = ("\u0131", "\u017f")
# - A head with one of those takes the case-insensitive search behind the broader hints
#   that always guarded it, so its result is what it always was.
_BROAD_REFUSAL_HINTS = ("sorry", "can't", "cannot", "unable", "not able", "won't", "as an ai")


class CheckResult(msgspec.Struct, kw_only=True, gc=False):
    """The outcome of every heuristic check for one event.

    A msgspec struct: one is built per event, at half a dataclass's cost. Untracked by
    the garbage collector; it holds only strings, numbers and lists of strings."""

    response_chars: int
    empty: bool | None
    """None (NULL in ``checks``): not applicable, the event carries no captured text
    (`Event.content_captured`); likewise ``refusal`` and ``json_ok``."""
    truncated: bool
    refusal: bool | None
    latency_slow: bool
    too_long: bool
    json_required: bool
    json_ok: bool | None
    json_error: str
    pii_kinds: list[str] = msgspec.field(default_factory=list)
    jailbreak_kinds: list[str] = msgspec.field(default_factory=list)
    """Jailbreak / prompt-injection pattern kinds found in the prompt (see scorers.jailbreak)."""

    failed: list[str] = msgspec.field(default_factory=list)
    """Names of the failed checks, in a fixed order. Derived from the fields above once,
    at construction (a value passed in is replaced): the pipeline and the row builder
    both read it for every event."""

    def __post_init__(self) -> None:
        names = []
        if self.empty:
            names.append("empty")
        if self.truncated:
            names.append("truncated")
        if self.refusal:
            names.append("refusal")
        if self.latency_slow:
            names.append("latency")
        if self.too_long:
            names.append("length")
        if self.json_required and self.json_ok is False:
            names.append("json")
        if self.pii_kinds:
            names.append("pii")
        if self.jailbreak_kinds:
            names.append("jailbreak")
        self.failed = names


def _slow(latency_ms: float | None, limit_ms: float) -> bool:
    return latency_ms is not None and latency_ms > limit_ms


def _head(content: str) -> str:
    """Where a refusal is looked for: the start of the answer, lower case, with the
    typographic apostrophe as the ASCII one."""
    return content[:_REFUSAL_WINDOW].replace("\u2019", "'").lower()


class Heuristics:
    """The every-event checker, compiled once from `HeuristicsSettings`."""

    name = "heuristics"
    version = CHECKS_VERSION

    def __init__(self, settings: HeuristicsSettings) -> None:
        self.settings = settings
        patterns = list(_BUILTIN_REFUSALS) + list(settings.refusal_patterns)
        self._refusal = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        self._custom_refusals = bool(settings.refusal_patterns)
        self._validators: dict[str, Any] = {
            route: jsonschema.Draft202012Validator(schema)
            for route, schema in settings.json_routes.items()
        }
        self._pii_kinds = frozenset(settings.pii_kinds)  # find_pii uses a frozenset as it is
        self._jailbreak = JailbreakPatterns(settings.jailbreak_patterns)

    def check(self, event: Event) -> CheckResult:
        """Every check for one event."""
        content = event.response.content
        return self._result(
            event,
            self._is_refusal(_head(content)),
            find_pii(content, self._pii_kinds) if self._pii_kinds else [],
            self._jailbreak.find_in_messages(event.request.messages),
        )

    def check_many(self, events: Sequence[Event]) -> list[CheckResult]:
        """`check` for each event of a batch, equal to it result by result.

        The text scans (refusal hints, PII guards, jailbreak hints) each run once over the
        batch's joined text (`monitor.checks.scan`), which is what makes the every-event
        checks cheap; the full checks run only on the few texts a scan flags.
        """
        contents = [event.response.content for event in events]
        refusals = self._refusals([_head(content) for content in contents])
        pii = find_pii_many(contents, self._pii_kinds)  # no kinds wanted: all empty
        jailbreaks = self._jailbreak.find_many(
            [attack_text(event.request.messages) for event in events]
        )
        result = self._result
        return [result(*args) for args in zip(events, refusals, pii, jailbreaks, strict=True)]

    def _result(
        self, event: Event, refusal: bool, pii_kinds: list[str], jailbreak_kinds: list[str]
    ) -> CheckResult:
        s = self.settings
        response = event.response
        content = response.content
        chars = len(content)
        stripped_len = len(content.strip()) if chars < 4096 else chars
        json_required = event.route in self._validators
        json_ok, json_error = (
            self._check_json(event.route, content) if json_required else (True, "")
        )
        too_many_tokens = (
            s.max_completion_tokens is not None
            and response.completion_tokens is not None
            and response.completion_tokens > s.max_completion_tokens
        )
        if not event.content_captured:
            # No text was recorded (OpenTelemetry content capture off): the text checks
            # say "not applicable" instead of calling the placeholder answer empty.
            return CheckResult(
                response_chars=0,
                empty=None,
                truncated=response.finish_reason == "length",
                refusal=None,
                latency_slow=_slow(response.latency_ms, s.latency_ms_max),
                too_long=too_many_tokens,
                json_required=json_required,
                json_ok=None,
                json_error="",
            )
        return CheckResult(
            response_chars=chars,
            empty=stripped_len < s.min_response_chars,
            truncated=response.finish_reason == "length",
            refusal=refusal,
            latency_slow=_slow(response.latency_ms, s.latency_ms_max),
            too_long=chars > s.max_response_chars or too_many_tokens,
            json_required=json_required,
            json_ok=json_ok,
            json_error=json_error,
            pii_kinds=pii_kinds,
            jailbreak_kinds=jailbreak_kinds,
        )

    def _refusals(self, heads: list[str]) -> list[bool]:
        """`_is_refusal` for each head; only heads a batch scan flags are searched."""
        if self._custom_refusals:
            return [self._is_refusal(head) for head in heads]
        # The heads `_is_refusal` could call a refusal: those holding a hint, and those
        # holding one of the two characters that send it down its broader path.
        hits = [False] * len(heads)
        joined = Joined(heads)
        joined.containing(_REFUSAL_HINTS, hits)
        if not joined.text.isascii():
            joined.containing(_IGNORECASE_EXTRAS, hits)
        is_refusal = self._is_refusal
        return [hit and is_refusal(head) for head, hit in zip(heads, hits, strict=True)]

    def _is_refusal(self, head: str) -> bool:
        if self._custom_refusals:
            return self._refusal.search(head) is not None
        if not head.isascii() and contains_any(head, _IGNORECASE_EXTRAS):
            return (
                contains_any(head, _BROAD_REFUSAL_HINTS) and self._refusal.search(head) is not None
            )
        return contains_any(head, _REFUSAL_HINTS) and _BUILTIN_REFUSAL.search(head) is not None

    def _check_json(self, route: str, content: str) -> tuple[bool, str]:
        text = content.strip()
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return False, f"not JSON: {exc}"[:200]
        error = jsonschema.exceptions.best_match(self._validators[route].iter_errors(document))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "<root>"
            return False, f"{where}: {error.message}"[:200]
        return True, ""
