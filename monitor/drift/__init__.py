"""Embedding drift: prompt embeddings of the current window against a reference.

- `DriftJob` / `build_drift_timer` (`monitor.drift.job`): the event-time job that writes
  ``drift_reports``, coordinating `load`, `evaluate` and `describe`;
- the statistics, pure numpy: `comparison` (tests, decision, alpha spending), `mmd`,
  `topics`, on the primitives of `vectors` and the seeds of `seeds`;
- pinned baselines (`baseline`) and reading reports back (`reports`) for the CLI.

Their SQL is in `monitor.store.queries.drift`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitor.drift.baseline import Baseline, pin_baseline, read_baselines, unpin_baseline
from monitor.drift.reports import latest_report_ts, list_reports, render_reports

if TYPE_CHECKING:
    from monitor.drift.job import DriftJob, build_drift_timer

__all__ = [
    "Baseline",
    "DriftJob",
    "build_drift_timer",
    "latest_report_ts",
    "list_reports",
    "pin_baseline",
    "read_baselines",
    "render_reports",
    "unpin_baseline",
]


def __getattr__(name: str) -> Any:
    # The job pulls in numpy and scipy (most of a second); `vigil drift` and `vigil baseline`
    # need only baselines and reports, so the job loads on first use, not with the package.
    if name in ("DriftJob", "build_drift_timer"):
        from monitor.drift import job

        return getattr(job, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
