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
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson

from monitor.config import HeuristicsSettings
from monitor.events import Event
from monitor.scorers.jailbreak import JailbreakPatterns
from monitor.scorers.pii import find_pii

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
# Every built-in pattern contains one of these; a substring test in C rules most answers
# out before the (slower) case-insensitive regex runs.
_REFUSAL_HINTS = re.compile("sorry|can't|cannot|unable|not able|won't|as an ai")


@dataclass(slots=True)
class CheckResult:
    """The outcome of every heuristic check for one event."""

    response_chars: int
    empty: bool
    truncated: bool
    refusal: bool
    latency_slow: bool
    too_long: bool
    json_required: bool
    json_ok: bool
    json_error: str
    pii_kinds: list[str] = field(default_factory=list)
    jailbreak_kinds: list[str] = field(default_factory=list)
    """Jailbreak / prompt-injection pattern kinds found in the prompt (see scorers.jailbreak)."""

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks, in a fixed order."""
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
        if self.json_required and not self.json_ok:
            names.append("json")
        if self.pii_kinds:
            names.append("pii")
        if self.jailbreak_kinds:
            names.append("jailbreak")
        return names


class Heuristics:
    """The every-event checker, compiled once from `HeuristicsSettings`."""

    name = "heuristics"
    version = CHECKS_VERSION

    def __init__(self, settings: HeuristicsSettings) -> None:
        self.settings = settings
        patterns = list(_BUILTIN_REFUSALS) + list(settings.refusal_patterns)
        self._refusal = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        self._hints: re.Pattern[str] | None = None if settings.refusal_patterns else _REFUSAL_HINTS
        self._validators: dict[str, Any] = {
            route: jsonschema.Draft202012Validator(schema)
            for route, schema in settings.json_routes.items()
        }
        self._pii_kinds = tuple(settings.pii_kinds)
        self._jailbreak = JailbreakPatterns(settings.jailbreak_patterns)

    def check(self, event: Event) -> CheckResult:
        s = self.settings
        response = event.response
        content = response.content
        chars = len(content)
        stripped_len = len(content.strip()) if chars < 4096 else chars
        head = content[:_REFUSAL_WINDOW].replace("\u2019", "'").lower()
        json_required = event.route in self._validators
        json_ok, json_error = (
            self._check_json(event.route, content) if json_required else (True, "")
        )
        too_many_tokens = (
            s.max_completion_tokens is not None
            and response.completion_tokens is not None
            and response.completion_tokens > s.max_completion_tokens
        )
        return CheckResult(
            response_chars=chars,
            empty=stripped_len < s.min_response_chars,
            truncated=response.finish_reason == "length",
            refusal=self._is_refusal(head),
            latency_slow=response.latency_ms is not None and response.latency_ms > s.latency_ms_max,
            too_long=chars > s.max_response_chars or too_many_tokens,
            json_required=json_required,
            json_ok=json_ok,
            json_error=json_error,
            pii_kinds=find_pii(content, self._pii_kinds) if self._pii_kinds else [],
            jailbreak_kinds=self._jailbreak.find_in_messages(
                (m.role, m.text) for m in event.request.messages
            ),
        )

    def _is_refusal(self, head: str) -> bool:
        hints = self._hints
        if hints is not None and hints.search(head) is None:
            return False
        return self._refusal.search(head) is not None

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
