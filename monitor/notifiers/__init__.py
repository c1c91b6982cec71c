"""Alert notifiers, chosen from an explicit registry by the settings (never by import side effects).

- ``stdout``  one readable line per alert (`alerts.notify_stdout`)
- ``webhook`` the alert as JSON to `alerts.webhook_url`
- ``slack``   a Slack-compatible message to `alerts.slack_webhook_url`
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.config import AlertSettings
from monitor.errors import NotifyError
from monitor.notifiers.base import Notice, Notifier, deliver


def _stdout(settings: AlertSettings) -> Notifier | None:
    from monitor.notifiers.stdout import StdoutNotifier

    return StdoutNotifier() if settings.notify_stdout else None


def _webhook(settings: AlertSettings) -> Notifier | None:
    from monitor.notifiers.webhook import WebhookNotifier

    url = settings.webhook_url.get_secret_value()
    return WebhookNotifier(url, settings.notify_timeout_s) if url else None


def _slack(settings: AlertSettings) -> Notifier | None:
    from monitor.notifiers.slack import SlackNotifier

    url = settings.slack_webhook_url.get_secret_value()
    return SlackNotifier(url, settings.notify_timeout_s) if url else None


#: name -> factory returning the notifier, or None when the settings leave it off.
NOTIFIERS: dict[str, Callable[[AlertSettings], Notifier | None]] = {
    "stdout": _stdout,
    "webhook": _webhook,
    "slack": _slack,
}


def build_notifiers(settings: AlertSettings) -> list[Notifier]:
    """Every notifier the settings switch on, in registry order."""
    made = (factory(settings) for factory in NOTIFIERS.values())
    return [notifier for notifier in made if notifier is not None]


__all__ = ["NOTIFIERS", "Notice", "Notifier", "NotifyError", "build_notifiers", "deliver"]
