"""Who owns the embedded store's data directory, and where its HTTP endpoint is.

chDB lets one process open a data directory. The daemon (`vigil up`, `vigil worker`)
claims it and publishes its ClickHouse-compatible HTTP endpoint; every other command
finds the endpoint here and reads through it, or opens the directory itself when no
daemon is alive. Two files in the data directory:

- ``vigil-daemon.lock``: held with ``fcntl.flock`` by the daemon for its whole life.
  The kernel drops the lock when the process dies, however it dies, so a file left by
  a killed daemon is recognisably stale.
- ``vigil-daemon.json``: ``{"pid", "url", "started_at"}``, written atomically
  (temp file + rename, mode 0600) once the endpoint serves, removed on clean exit. The
  URL carries the endpoint's writer key as its password (``http://vigil:KEY@host:port``):
  the endpoint is read-only for everyone else, and whoever can read this file can open
  the data directory anyway. `ServerStore` uses it when ``store.password`` is empty.

The daemon's side, in one call (what streams/worker.py and `vigil up` use)::

    owned = own_embedded_store(settings.store)   # StoreError if another daemon owns it
    try:
        ... run the pipeline on owned.store ...    # an EmbeddedStore, migrated
    finally:
        owned.close()                             # endpoint down, files removed

or step by step: ``claim = claim_data_dir(dir)`` -> open the store -> serve it ->
``claim.publish(url)`` -> ... -> ``claim.release()``.

The reader's side: ``find_daemon(dir)`` returns the live daemon's `DaemonInfo` or None;
`monitor.store.open_store` does this for the embedded backend.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from monitor.errors import StoreError

if TYPE_CHECKING:
    from monitor.config import StoreSettings
    from monitor.store.embedded import EmbeddedStore
    from monitor.store.endpoint import EndpointHandle

log = logging.getLogger("vigil.store.lock")

LOCK_NAME = "vigil-daemon.lock"
INFO_NAME = "vigil-daemon.json"


@dataclass(frozen=True)
class DaemonInfo:
    """What the owning daemon published: its pid, endpoint URL and start time (UTC)."""

    pid: int
    url: str
    started_at: str


class DataDirClaim:
    """This process's exclusive claim on a data directory (see `claim_data_dir`)."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd
        self.info: DaemonInfo | None = None

    def publish(self, url: str) -> DaemonInfo:
        """Write ``{pid, url, started_at}`` atomically for readers to find."""
        if self._fd is None:
            raise StoreError(f"claim on {self.data_dir} was released")
        info = DaemonInfo(os.getpid(), url, datetime.now(UTC).isoformat(timespec="seconds"))
        target = self.data_dir / INFO_NAME
        temp = self.data_dir / f".{INFO_NAME}.{os.getpid()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps(info.__dict__))
            os.replace(temp, target)
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {exc.strerror}") from exc
        self.info = info
        log.info("data dir published", extra={"data_dir": str(self.data_dir), "url": _redact(url)})
        return info

    def release(self) -> None:
        """Remove the info file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / INFO_NAME).unlink()
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        log.info("data dir released", extra={"data_dir": str(self.data_dir)})

    def __enter__(self) -> DataDirClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_exclusive(fd: int, attempts: int = 20) -> bool:
    """Take the exclusive lock; a reader's `find_daemon` probe holds a shared lock for
    microseconds, so a failure is retried briefly before the directory counts as owned."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.05)
    return False


def claim_data_dir(data_dir: Path) -> DataDirClaim:
    """Take the data directory for this process; `StoreError` if a live daemon has it."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open lock file in {data_dir}: {exc.strerror}") from exc
    if not _lock_exclusive(fd):
        os.close(fd)
        owner = _read_info(data_dir)
        where = f" (pid {owner.pid}, {_redact(owner.url)})" if owner else ""
        raise StoreError(
            f"data directory {data_dir} is owned by another Vigil daemon{where}"
        ) from None
    # Whatever info file is there was left by a dead daemon: remove it before anyone
    # can mistake it for ours.
    stale = _read_info(data_dir)
    if stale is not None:
        log.warning(
            "stale daemon lock removed", extra={"data_dir": str(data_dir), "stale_pid": stale.pid}
        )
        with contextlib.suppress(FileNotFoundError):
            (data_dir / INFO_NAME).unlink()
    return DataDirClaim(data_dir, fd)


def find_daemon(data_dir: Path) -> DaemonInfo | None:
    """The live daemon owning ``data_dir``, or None when none is (a stale file is ignored).

    Raises `StoreError` while a daemon holds the lock but has not published yet
    (it is starting): the directory cannot be opened and there is no endpoint yet.
    """
    data_dir = Path(data_dir)
    lock_path = data_dir / LOCK_NAME
    if not lock_path.exists():
        return None
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read lock file {lock_path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held = True
        else:
            held = False
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    info = _read_info(data_dir)
    if not held:
        if info is not None:
            log.info(
                "ignoring stale daemon lock",
                extra={"data_dir": str(data_dir), "stale_pid": info.pid},
            )
        return None
    if info is None:
        raise StoreError(f"a Vigil daemon is starting in {data_dir}; try again in a moment")
    return info


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _read_info(data_dir: Path) -> DaemonInfo | None:
    try:
        data = orjson.loads((data_dir / INFO_NAME).read_bytes())
        return DaemonInfo(int(data["pid"]), str(data["url"]), str(data["started_at"]))
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # half-written or foreign: treat as absent; the flock decides liveness


@dataclass
class OwnedStore:
    """The daemon's embedded store, its HTTP endpoint and its claim on the directory."""

    store: EmbeddedStore
    endpoint: EndpointHandle
    claim: DataDirClaim

    @property
    def url(self) -> str:
        return self.endpoint.url

    def close(self) -> None:
        """Stop the endpoint, close the store, release the directory (in that order)."""
        try:
            self.endpoint.close()
            self.store.close()
        finally:
            self.claim.release()


#: How long a starting daemon waits for chDB's own lock on the directory.
OPEN_WAIT_S = 15.0


def _open_when_free(settings: StoreSettings, raw_text_days: int | None) -> EmbeddedStore:
    """Open the embedded store, waiting out a reader that opened the directory itself.

    A command run just before the daemon took its claim found no daemon and opened the
    directory directly; chDB then refuses a second process until that reader closes its
    session (one query, usually well under a second). Retried with backoff, then the
    last error.
    """
    from monitor.store.embedded import EmbeddedStore

    deadline = time.monotonic() + OPEN_WAIT_S
    delay = 0.2
    while True:
        try:
            return EmbeddedStore(
                settings.data_dir, settings.database, settings.ttl_days, raw_text_days
            )
        except StoreError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "embedded store busy, retrying",
                extra={"data_dir": str(settings.data_dir), "delay_s": delay, "error": str(exc)},
            )
            time.sleep(delay)
            delay = min(2.0, delay * 2)


def own_embedded_store(settings: StoreSettings, raw_text_days: int | None = None) -> OwnedStore:
    """Claim ``settings.data_dir``, open and migrate the store, serve it and publish the URL.

    The endpoint listens on ``settings.http_host:http_port`` (port 0: any free port),
    read-only, with the ``http_*`` limits; it requires ``http_token`` (or ``password``)
    when a token is set, and refuses to start beyond loopback without one. The URL
    published carries its writer key (see the module docstring); `OwnedStore.url` does not.
    ``raw_text_days``: ``privacy.raw_text_days``, for the tables migration creates.
    """
    from monitor.store.endpoint import serve_store

    claim = claim_data_dir(settings.data_dir)
    store: EmbeddedStore | None = None
    try:
        store = _open_when_free(settings, raw_text_days)
        store.migrate()
        endpoint = serve_store(
            store,
            settings.http_host,
            settings.http_port,
            username=settings.username,
            password=(settings.http_token or settings.password).get_secret_value(),
            max_body_bytes=settings.http_max_body_bytes,
            max_query_bytes=settings.http_max_query_bytes,
            max_execution_s=settings.http_max_execution_s,
            allowed_table_functions=settings.http_allowed_table_functions,
            allowed_origins=settings.http_allowed_origins,
        )
        try:
            claim.publish(endpoint.writer_url)
        except BaseException:
            endpoint.close()
            raise
    except BaseException:
        if store is not None:
            store.close()
        claim.release()
        raise
    return OwnedStore(store, endpoint, claim)
