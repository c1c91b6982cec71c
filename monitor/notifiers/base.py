"""The notifier contract, and delivery with retries and backoff.

A notifier sends one alert notice (a plain JSON-able dict, the shape `list_alerts`
returns) somewhere. It raises `NotifyError` when that fails; `deliver` retries retryable
failures with exponential backoff and never lets one broken channel stop the others or
the evaluator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from monitor.errors import NotifyError

log = logging.getLogger("vigil.alerts.notify")

Notice = Mapping[str, Any]


@runtime_checkable
class Notifier(Protocol):
    """One notification channel."""

    name: str
    """Channel name for logs (stdout, webhook, slack)."""

    async def send(self, notice: Notice) -> None:
        """Deliver one alert notice; raise `NotifyError` on failure."""

    async def close(self) -> None:
        """Release connections."""


def safe_target(url: str) -> str:
    """Where a webhook points, without path or query: those often carry the secret token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


async def deliver(
    notifiers: Sequence[Notifier], notice: Notice, *, retries: int = 3, backoff_s: float = 0.5
) -> dict[str, bool]:
    """Send ``notice`` through every notifier; returns channel -> delivered."""
    results: dict[str, bool] = {}
    for notifier in notifiers:
        results[notifier.name] = await _send_one(notifier, notice, retries, backoff_s)
    return results


async def _send_one(notifier: Notifier, notice: Notice, retries: int, backoff_s: float) -> bool:
    for attempt in range(retries + 1):
        try:
            await notifier.send(notice)
            return True
        except NotifyError as exc:
            last = attempt == retries or not exc.retryable
            log.warning(
                "notification failed" + ("" if last else ", retrying"),
                extra={
                    "channel": notifier.name,
                    "alert_id": notice.get("alert_id"),
                    "attempt": attempt + 1,
                    "error": str(exc)[:200],
                },
            )
            if last:
                return False
            await asyncio.sleep(backoff_s * 2**attempt)
    return False  # pragma: no cover - the loop always returns
