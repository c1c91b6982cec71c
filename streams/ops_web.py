"""/healthz, /readyz and /metrics on Faust's web server (aiohttp, on the worker's loop).

Only the HTTP wiring: what each endpoint answers is `monitor.ops.OpsEndpoints`. The
server runs on the event loop that runs ingest, not in a thread of its own
(``web_in_thread``), on purpose: ``/healthz`` answering is the proof that this loop
still turns. Faust's own pages (statistics, graph, router, tables, performance) are
off: they expose internals and nothing here needs them; its index ``/`` stays.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.web import Request, Response, View

from monitor.config import OpsSettings
from monitor.config.ops import is_loopback
from monitor.ops import METRICS_CONTENT_TYPE, OpsEndpoints

log = logging.getLogger("vigil.ops")


def web_options(ops: OpsSettings) -> dict[str, Any]:
    """The web half of the Faust app's settings (``faust.App(id, **these)``)."""
    return {
        "web_enabled": ops.enabled,
        "web_bind": ops.bind,
        "web_port": ops.port,
        "web_in_thread": False,  # see the module docstring
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_metrics_enabled": False,
    }


def add_ops_views(app: faust.App, ops: OpsSettings, endpoints: OpsEndpoints) -> None:
    """Register the three pages on ``app`` (nothing when ``ops.enabled`` is off)."""
    if not ops.enabled:
        return
    if not is_loopback(ops.bind):
        log.warning(
            "operations endpoints served beyond loopback, without authentication",
            extra={"bind": ops.bind, "port": ops.port},
        )

    @app.page("/healthz")
    async def healthz(self: View, request: Request) -> Response:
        status, body = endpoints.healthz()
        return self.json(body, status=status)

    @app.page("/readyz")
    async def readyz(self: View, request: Request) -> Response:
        status, body = endpoints.readyz()
        return self.json(body, status=status)

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        return self.text(endpoints.metrics_text().decode(), content_type=METRICS_CONTENT_TYPE)
