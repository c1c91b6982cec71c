"""Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat read ``text``)."""

from __future__ import annotations

from monitor.notifiers.base import Notice
from monitor.notifiers.format import format_alert
from monitor.notifiers.http import JsonPoster

_EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}


class SlackNotifier:
    name = "slack"

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._poster = JsonPoster(url, timeout_s)

    async def send(self, notice: Notice) -> None:
        text = f"{_EMOJI.get(str(notice.get('state')), '')} {format_alert(notice)}".strip()
        fields = [
            {"type": "mrkdwn", "text": f"*{key}*\n{notice[key]}"}
            for key in ("rule", "segment_key", "severity", "confidence")
            if notice.get(key) not in (None, "")
        ]
        blocks: list[dict[str, object]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        ]
        if fields:
            blocks.append({"type": "section", "fields": fields})
        if notice.get("command"):
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"`{notice['command']}`"}],
                }
            )
        await self._poster.post({"text": text, "blocks": blocks})

    async def close(self) -> None:
        await self._poster.close()
