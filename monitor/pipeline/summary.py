"""What a run did: counts kept while it runs, and how they read on a terminal."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Summary:
    """What a run did; printed by `vigil replay` / `vigil produce` and served as JSON."""

    read: int = 0
    stored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    feedback_stored: int = 0
    duplicates: int = 0
    """Messages skipped as redeliveries (an event id seen before with the same bytes)."""
    skipped_spans: int = 0
    """OTLP spans skipped as not being LLM calls (no GenAI attribute): not events."""
    decisions: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    timers_fired: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    prepare_s: float = 0.0
    """CPU half of the hot path: parse, checks, sampling, row building (main thread)."""
    write_s: float = 0.0
    """I/O half: store inserts (a worker thread; overlaps the next batch's prepare)."""
    stages: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "stored": self.stored,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "feedback_stored": self.feedback_stored,
            "duplicates": self.duplicates,
            "skipped_spans": self.skipped_spans,
            "decisions": {s: dict(sorted(c.items())) for s, c in sorted(self.decisions.items())},
            "timers_fired": dict(self.timers_fired),
            "stages": self.stages,
            "elapsed_s": round(self.elapsed_s, 3),
            "prepare_s": round(self.prepare_s, 3),
            "write_s": round(self.write_s, 3),
            "events_per_s": round(self.read / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
        }


def render_summary(data: dict[str, Any]) -> str:
    """The human-readable run summary (``--json`` prints ``data`` itself)."""
    lines = [
        f"events read      {data['read']}",
        f"events stored    {data['stored']}",
        f"rejected         {data['rejected']}"
        + (
            "  (" + ", ".join(f"{k}: {v}" for k, v in data["rejected_by_reason"].items()) + ")"
            if data["rejected_by_reason"]
            else ""
        ),
        f"feedback stored  {data['feedback_stored']}",
    ]
    if data.get("duplicates"):
        lines.append(f"duplicates       {data['duplicates']} (redelivered, same bytes: skipped)")
    if data.get("skipped_spans"):
        lines.append(f"skipped spans    {data['skipped_spans']} (not GenAI: not events)")
    for scorer, counts in data["decisions"].items():
        lines.append(_scored_line(scorer, counts, data.get("stages", {}).get(scorer, {})))
    for name, stats in data.get("stages", {}).items():
        shown = {k: v for k, v in stats.items() if k != "outcomes"}
        if shown:
            lines.append(f"stage {name:<14} " + ", ".join(f"{k}: {v}" for k, v in shown.items()))
    if data.get("events_per_s"):
        lines.append(f"elapsed          {data['elapsed_s']} s ({data['events_per_s']} events/s)")
        lines.append(
            f"time spent       prepare {data['prepare_s']} s, store writes {data['write_s']} s"
            " (they overlap)"
        )
    return "\n".join(lines)


#: Why an event was not scored, as the summary says it.
_NOT_SCORED = {
    "sampled_out": "sampled out (sampling.rates)",
    "over_budget": "over budget (sampling.budget_per_minute, or a full queue live)",
    "failed": "failed (see the decisions' reasons; retried by the worker)",
    "pending": "still queued when the run ended",
}


def _scored_line(scorer: str, decided: dict[str, int], stage: dict[str, Any]) -> str:
    """``judge: 11 of 5000 events scored; not: 4750 sampled out (...), ...``."""
    total = sum(decided.values())
    outcomes = dict(stage.get("outcomes") or {})
    scored = int(outcomes.get("scored", 0))
    failed = int(outcomes.get("failed", 0))
    queued = decided.get("pending", 0) - scored - failed
    rest = {k: v for k, v in decided.items() if k not in ("pending", "scored") and v}
    if failed:
        rest["failed"] = rest.get("failed", 0) + failed
    if queued > 0:
        rest["pending"] = queued
    why = "; ".join(f"{v} {_NOT_SCORED.get(k, k)}" for k, v in rest.items())
    return f"{scorer:<16} {scored} of {total} events scored" + (f"; not: {why}" if why else "")
