"""The worker's operations endpoints: /healthz, /readyz and /metrics on one HTTP port."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, model_validator

from monitor.config.base import Positive, Section


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); a host name other
    than ``localhost`` counts as not loopback (it may resolve to anything)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OpsSettings(Section):
    """The worker's HTTP endpoints for probes and scraping (Faust's web server):
    ``/healthz`` (alive), ``/readyz`` (store and broker reachable, not backpressured:
    200, else 503 with why) and ``/metrics`` (Prometheus text format). No
    authentication: keep it on loopback, or behind something that adds it."""

    enabled: bool = True
    """Serve the endpoints while `vigil worker` (or `vigil up`) runs. A second worker on
    the same host needs its own ``port``; one whose port is taken stops at start-up."""
    bind: str = "127.0.0.1"
    """Address the endpoints listen on. Loopback by default: the metrics name models,
    rules and partitions. Any other address (``0.0.0.0`` for a pod's probes and
    scraper) needs ``allow_remote: true``, and the worker logs a warning at start-up."""
    port: Annotated[int, Field(ge=1, le=65535)] = 6066
    """TCP port of the endpoints."""
    allow_remote: bool = False
    """Allow a ``bind`` beyond loopback (the endpoints have no authentication)."""
    stats_interval_s: Positive = 5.0
    """How often the events consumer (librdkafka) reports its per-partition lag and its
    broker connections, which ``/metrics`` and ``/readyz`` show. The report comes with a
    fetch, so while ingest is paused (the store is down) it is as old as the pause."""

    malloc_arenas: Annotated[int, Field(ge=0)] = 2
    """Cap on glibc's malloc arenas in the worker (what ``MALLOC_ARENA_MAX`` sets); 0
    keeps glibc's default of eight per core, under which memory freed by the worker's
    ~170 threads stays mapped and RSS creeps. Ignored where the C library is not glibc."""
    release_memory_every_s: Annotated[float, Field(ge=0)] = 60.0
    """How often the worker gives free malloc pages back to the kernel
    (``malloc_trim``); 0 never."""

    @model_validator(mode="after")
    def _remote_needs_consent(self) -> OpsSettings:
        if self.enabled and not self.allow_remote and not is_loopback(self.bind):
            raise ValueError(
                f"ops.bind {self.bind!r} is not loopback: the endpoints have no"
                " authentication; set ops.allow_remote: true to serve them there"
            )
        return self
