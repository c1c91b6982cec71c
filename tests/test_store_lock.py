"""The data-directory lock: a daemon owns the embedded store and publishes its endpoint;
other processes find it, read through it, and recognise a lock left by a killed daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from monitor.config import Settings
from monitor.errors import StoreError
from monitor.store import open_store
from monitor.store.embedded import EmbeddedStore
from monitor.store.lock import INFO_NAME, LOCK_NAME, claim_data_dir, find_daemon
from monitor.store.server import ServerStore
from tests.fixtures import rows as fixture_rows
from tests.test_store_backends import NOW, make_events

# A daemon in its own process: owns the directory, prints its URL, exits when stdin closes.
DAEMON = """
import sys
from monitor.config import load_settings
from monitor.store.lock import own_embedded_store
settings = load_settings(overrides={"store": {"data_dir": sys.argv[1]}})
owned = own_embedded_store(settings.store)
print(owned.url, flush=True)
sys.stdin.read()
owned.close()
print("closed", flush=True)
"""


def _python(script: str, data_dir: Path) -> subprocess.Popen[str]:
    """``script`` in a child process with this checkout importable, talking over pipes."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


@pytest.fixture
def daemon(settings: Settings) -> Iterator[subprocess.Popen[str]]:
    proc = _python(DAEMON, settings.store.data_dir)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _url_of(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("http://127.0.0.1:"), f"daemon did not start: {line!r}"
    return line


def test_claim_publish_find_release(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    assert find_daemon(data_dir) is None
    claim = claim_data_dir(data_dir)
    with pytest.raises(StoreError, match="starting"):
        find_daemon(data_dir)  # held, nothing published yet
    info = claim.publish("http://127.0.0.1:1234")
    assert find_daemon(data_dir) == info
    assert info.pid == os.getpid()
    assert orjson.loads((data_dir / INFO_NAME).read_bytes())["url"] == "http://127.0.0.1:1234"
    with pytest.raises(StoreError, match=rf"owned by another Vigil daemon \(pid {os.getpid()}"):
        claim_data_dir(data_dir)
    claim.release()
    claim.release()
    assert not (data_dir / INFO_NAME).exists()
    assert find_daemon(data_dir) is None
    with claim_data_dir(data_dir):  # free again
        pass


def test_second_opener_reads_through_the_daemon(
    settings: Settings, daemon: subprocess.Popen[str]
) -> None:
    url = _url_of(daemon)
    info = find_daemon(settings.store.data_dir)
    assert info is not None and info.pid == daemon.pid
    # The published URL carries the endpoint's writer key; the file is private.
    assert info.url.startswith("http://vigil:") and info.url.endswith("@" + url[len("http://") :])
    assert (settings.store.data_dir / INFO_NAME).stat().st_mode & 0o077 == 0
    store = open_store(settings)
    try:
        assert isinstance(store, ServerStore)
        events = make_events(8)
        store.insert("events", [fixture_rows.event_row(e, NOW) for e in events])
        got = store.query(f"SELECT count() AS n FROM {store.database}.events FINAL")
        assert int(got[0]["n"]) == 8
    finally:
        store.close()
    with pytest.raises(StoreError, match="owned by another Vigil daemon"):
        claim_data_dir(settings.store.data_dir)
    # A clean exit removes the published file.
    assert daemon.stdin is not None and daemon.stdout is not None
    daemon.stdin.close()
    assert daemon.stdout.readline().strip() == "closed"
    assert daemon.wait() == 0
    assert not (settings.store.data_dir / INFO_NAME).exists()
    assert find_daemon(settings.store.data_dir) is None


def test_killed_daemon_leaves_a_stale_lock_that_is_detected(
    settings: Settings, daemon: subprocess.Popen[str]
) -> None:
    _url_of(daemon)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait()
    data_dir = settings.store.data_dir
    assert (data_dir / INFO_NAME).exists() and (data_dir / LOCK_NAME).exists()
    assert find_daemon(data_dir) is None  # the kernel dropped the flock with the process
    store = open_store(settings)
    try:
        assert isinstance(store, EmbeddedStore)
        assert int(store.query(f"SELECT count() AS n FROM {store.database}.events")[0]["n"]) == 0
    finally:
        store.close()
    with claim_data_dir(data_dir):
        assert not (data_dir / INFO_NAME).exists()  # the stale file is removed on claim


# A reader that opened the directory itself (no daemon yet): holds chDB's lock until told.
READER = """
import sys
from monitor.store.embedded import EmbeddedStore
store = EmbeddedStore(sys.argv[1])
store.query("SELECT 1")
print("open", flush=True)
sys.stdin.readline()
store.close()
"""


def test_a_starting_daemon_waits_for_a_reader_holding_the_directory(settings: Settings) -> None:
    import threading

    from monitor.store.lock import own_embedded_store

    reader = _python(READER, settings.store.data_dir)
    assert reader.stdout is not None and reader.stdin is not None
    try:
        assert reader.stdout.readline().strip() == "open"
        # The reader lets go while the daemon is already retrying.
        release = threading.Timer(1.0, lambda: reader.stdin.close())  # type: ignore[union-attr]
        release.start()
        owned = own_embedded_store(settings.store)
        try:
            assert owned.store.query("SELECT 1 AS one") == [{"one": 1}]
            assert find_daemon(settings.store.data_dir) is not None
        finally:
            owned.close()
            release.join()
    finally:
        reader.wait(30)
        if reader.stdout is not None:
            reader.stdout.close()
