"""The one place HTTP errors become `NotifyError`: a JSON POST shared by the webhook notifiers."""

from __future__ import annotations

from typing import Any

import httpx

from monitor.errors import NotifyError
from monitor.notifiers.base import safe_target


class JsonPoster:
    """POST JSON to one URL; 5xx, 429 and transport errors are retryable, other 4xx not."""

    def __init__(self, url: str, timeout_s: float, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.target = safe_target(url)
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers or {})

    async def post(self, payload: Any) -> None:
        try:
            response = await self._client.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise NotifyError(f"{self.target}: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise NotifyError(f"{self.target}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise NotifyError(f"{self.target}: HTTP {response.status_code}", retryable=False)

    async def close(self) -> None:
        await self._client.aclose()
