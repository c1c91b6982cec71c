"""Pinned drift baselines: a reference span of prompt embeddings, stored in table ``state``
under ``drift.baseline`` (all traffic) or ``drift.baseline:<model_version>``.

`vigil baseline pin` writes one; the drift job (`monitor.drift.job`) reads them; an empty
value means unpinned (back to the rolling reference).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from monitor.config import DriftSettings
from monitor.errors import ConfigError
from monitor.store.base import Store
from monitor.store.queries import drift as queries
from monitor.times import iso, parse_ts

log = logging.getLogger("vigil.drift")

BASELINE_KEY = "drift.baseline"


@dataclass(frozen=True)
class Baseline:
    """A pinned reference span of prompt embeddings (one version, or all when '')."""

    start: datetime
    end: datetime
    model_version: str
    embedder: str
    n: int
    pinned_at: str

    @property
    def key(self) -> str:
        return baseline_key(self.model_version)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": iso(self.start),
            "end": iso(self.end),
            "model_version": self.model_version,
            "embedder": self.embedder,
            "n": self.n,
            "pinned_at": self.pinned_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        return cls(
            start=parse_ts(data["start"]),
            end=parse_ts(data["end"]),
            model_version=str(data.get("model_version", "")),
            embedder=str(data.get("embedder", "")),
            n=int(data.get("n", 0)),
            pinned_at=str(data.get("pinned_at", "")),
        )


def baseline_key(model_version: str) -> str:
    return f"{BASELINE_KEY}:{model_version}" if model_version else BASELINE_KEY


def read_baselines(store: Store) -> dict[str, Baseline]:
    """Pinned baselines by model_version ('' = all versions). Unpinned keys hold ''."""
    rows = queries.state_under(store, BASELINE_KEY)
    out: dict[str, Baseline] = {}
    for row in rows:
        if not row["value"]:
            continue
        try:
            baseline = Baseline.from_dict(orjson.loads(row["value"]))
        except (orjson.JSONDecodeError, KeyError, ValueError) as exc:
            log.warning(
                "ignoring unreadable drift baseline", extra={"key": row["key"], "error": str(exc)}
            )
            continue
        out[baseline.model_version] = baseline
    return out


def _write_state(store: Store, key: str, value: str) -> None:
    store.insert(
        "state",
        [
            {
                "key": key,
                "value": value,
                "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        ],
    )


def pin_baseline(
    settings: DriftSettings,
    store: Store,
    start: datetime | None = None,
    end: datetime | None = None,
    model_version: str = "",
) -> Baseline:
    """Pin ``[start, end)`` of prompt embeddings as the drift reference.

    ``end`` defaults to just after the latest prompt embedding (of ``model_version`` when
    given), ``start`` to ``reference_minutes`` before ``end``. Raises `ConfigError` when
    the span holds fewer than ``min_reference_events`` embeddings.
    """
    if end is None:
        last = queries.last_prompt_ts(store, model_version)
        if last is None:
            raise ConfigError("no prompt embeddings stored yet: nothing to pin as a drift baseline")
        end = last + timedelta(milliseconds=1)
    if start is None:
        start = end - timedelta(minutes=settings.reference_minutes)
    if start >= end:
        raise ConfigError(
            f"baseline span is empty: --from {iso(start)} is not before --to {iso(end)}"
        )
    embedder, n = queries.span_embedder(store, start, end, model_version) or ("", 0)
    # The drift job tests against no smaller reference; a pin it would ignore is refused.
    if n < max(settings.min_reference_events, settings.min_window_events):
        raise ConfigError(
            f"baseline {iso(start)}..{iso(end)} holds {n} prompt embeddings"
            f" (drift.min_reference_events is {settings.min_reference_events})"
        )
    baseline = Baseline(
        start,
        end,
        model_version,
        embedder,
        n,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _write_state(store, baseline.key, orjson.dumps(baseline.as_dict()).decode())
    log.info(
        "drift baseline pinned",
        extra={"model_version": model_version, "n": n, "start": iso(start), "end": iso(end)},
    )
    return baseline


def unpin_baseline(store: Store, model_version: str = "") -> bool:
    """Remove a pin (the drift job falls back to the rolling reference); False if none."""
    if model_version not in read_baselines(store):
        return False
    _write_state(store, baseline_key(model_version), "")
    return True
