"""`vigil dashboards push`: the folder, the datasource (when asked), the dashboards and the
alert rules into a Grafana, through `grafana-client`. Idempotent: what exists is updated
in place (by uid), so a second push changes nothing but versions.

grafana-client's and niquests' exceptions are translated here, and only here, into
`GrafanaError`; an unreachable Grafana or a 5xx is retried with backoff first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from dashboards.alert_rules import RULES, rule_body
from dashboards.build import DASHBOARDS, DATASOURCE_TYPE, DATASOURCE_UID, build_dashboard
from monitor.errors import GrafanaError

log = logging.getLogger("vigil.dashboards")

T = TypeVar("T")
_ATTEMPTS = 4
_FIRST_DELAY_S = 0.5


@dataclass(frozen=True)
class ClickHouseSource:
    """Where Grafana's ClickHouse datasource should point (``--datasource-url``)."""

    host: str
    port: int
    protocol: str = "http"
    username: str = "default"
    password: str = ""
    secure: bool = False


@dataclass
class PushReport:
    """What a push did, per kind: created or updated names."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    """Dashboards, saved with ``overwrite`` (Grafana keeps their version history)."""

    def lines(self) -> list[str]:
        return (
            [f"created {n}" for n in self.created]
            + [f"updated {n}" for n in self.updated]
            + [f"saved {n}" for n in self.saved]
        )


def _call(what: str, fn: Callable[[], T]) -> T:
    """Run one API call; 5xx, timeouts and unreachable servers are retried with backoff."""
    from grafana_client.client import GrafanaClientError, GrafanaException
    from niquests.exceptions import RequestException

    delay = _FIRST_DELAY_S
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return fn()
        except GrafanaClientError as exc:  # 4xx: retrying will not help
            raise GrafanaError(f"Grafana refused {what}: {exc.status_code} {exc.message}") from exc
        except (GrafanaException, RequestException) as exc:
            if attempt == _ATTEMPTS:
                raise GrafanaError(f"Grafana failed {what} after {attempt} tries: {exc}") from exc
            log.warning(
                "grafana request failed, retrying",
                extra={"what": what, "attempt": attempt, "delay_s": delay},
            )
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _exists(what: str, fn: Callable[[], Any]) -> bool:
    """Whether a GET finds the object (404: no); other failures as `_call`."""
    from grafana_client.client import GrafanaClientError

    try:
        _call(what, fn)
        return True
    except GrafanaError as exc:
        if isinstance(exc.__cause__, GrafanaClientError) and exc.__cause__.status_code == 404:
            return False
        raise


def datasource_body(source: ClickHouseSource, database: str) -> dict[str, Any]:
    """The ClickHouse datasource as ``POST /api/datasources`` takes it."""
    return {
        "uid": DATASOURCE_UID,
        "name": "Vigil ClickHouse",
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "jsonData": {
            "host": source.host,
            "port": source.port,
            "protocol": source.protocol,
            "secure": source.secure,
            "username": source.username,
            "defaultDatabase": database,
        },
        "secureJsonData": {"password": source.password},
    }


def push(
    url: str,
    token: str,
    *,
    database: str = "vigil",
    folder_uid: str = "vigil",
    folder_title: str = "Vigil",
    source: ClickHouseSource | None = None,
) -> PushReport:
    """Create or update everything in the Grafana at ``url``; what was done."""
    from grafana_client.api import GrafanaApi

    api = GrafanaApi.from_url(url, credential=token)
    report = PushReport()

    def upsert(
        name: str, exists: bool, create: Callable[[], Any], update: Callable[[], Any]
    ) -> None:
        _call(f"{'updating' if exists else 'creating'} {name}", update if exists else create)
        (report.updated if exists else report.created).append(name)

    if not _exists("reading the folder", lambda: api.folder.get_folder(folder_uid)):
        _call("creating the folder", lambda: api.folder.create_folder(folder_title, uid=folder_uid))
        report.created.append(f"folder {folder_uid}")
    if source is not None:
        body = datasource_body(source, database)
        upsert(
            f"datasource {DATASOURCE_UID}",
            _exists("reading the datasource",
                    lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID)),
            lambda: api.datasource.create_datasource(body),
            lambda: api.datasource.update_datasource_by_uid(DATASOURCE_UID, body),
        )  # fmt: skip
    for spec in DASHBOARDS:
        payload = {
            "dashboard": build_dashboard(spec, database),
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "vigil dashboards push",
        }
        _call(f"saving dashboard {spec.uid}", partial(api.dashboard.update_dashboard, payload))
        report.saved.append(f"dashboard {spec.uid}")
    provisioning = api.alertingprovisioning
    for rule in RULES:
        body = rule_body(rule, folder_uid, DATASOURCE_UID, database)
        upsert(
            f"alert rule {rule.uid}",
            _exists("reading an alert rule", partial(provisioning.get_alertrule, rule.uid)),
            partial(provisioning.create_alertrule, body),
            partial(provisioning.update_alertrule, rule.uid, body),
        )
    return report
