"""Generic JSON webhook: POSTs the alert notice itself (the `list_alerts` shape) as JSON."""

from __future__ import annotations

from monitor.notifiers.base import Notice
from monitor.notifiers.http import JsonPoster


class WebhookNotifier:
    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._poster = JsonPoster(url, timeout_s, {"User-Agent": "vigil-alerts"})

    async def send(self, notice: Notice) -> None:
        await self._poster.post({"source": "vigil", "kind": "alert", **notice})

    async def close(self) -> None:
        await self._poster.close()
