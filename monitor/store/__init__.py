"""Storage: the `Store` interface, the ClickHouse schema and the two backends.

Backends are chosen from an explicit registry by `open_store`, never by import side
effects: ``embedded`` (chDB under a data directory) or ``server`` (clickhouse-connect).
The daemon that owns a data directory opens it with
`monitor.store.lock.own_embedded_store` instead, which also serves it over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from monitor.config import Settings
from monitor.store.base import Store


def _embedded(settings: Settings) -> Store:
    # chDB allows one process per data directory: while a daemon owns it, read through
    # the daemon's HTTP endpoint (see monitor.store.lock); otherwise open it here.
    from monitor.store.embedded import EmbeddedStore
    from monitor.store.lock import find_daemon

    s = settings.store
    text_days = settings.privacy.raw_text_days
    daemon = find_daemon(s.data_dir)
    if daemon is not None:
        from monitor.store.server import ServerStore

        # The daemon's URL carries the key that may also write Vigil's own rows; it wins
        # over store.password, which the endpoint takes as a reader's credential.
        has_key = urlsplit(daemon.url).password is not None
        password = "" if has_key else s.password.get_secret_value()
        return ServerStore(daemon.url, "" if has_key else s.username, password, s.database,
                           s.ttl_days, text_days)  # fmt: skip
    return EmbeddedStore(s.data_dir, s.database, s.ttl_days, text_days)


def _server(settings: Settings) -> Store:
    from monitor.store.server import ServerStore

    s = settings.store
    return ServerStore(
        s.url, s.username, s.password.get_secret_value(), s.database, s.ttl_days,
        settings.privacy.raw_text_days,
    )  # fmt: skip


BACKENDS: dict[str, Callable[[Settings], Store]] = {"embedded": _embedded, "server": _server}


def open_store(settings: Settings) -> Store:
    """The store the settings name (``auto`` resolves to server when a URL is set)."""
    return BACKENDS[settings.store_backend](settings)


__all__ = ["BACKENDS", "Store", "open_store"]
