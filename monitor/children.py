"""Child processes Vigil starts on loopback (the dev broker, the local judge server):
picking a free port, stopping one by its PID, and waiting on one until Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from types import FrameType


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``grace_s``; waits for it to exit."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


@contextlib.contextmanager
def interrupt_flag() -> Iterator[threading.Event]:
    """While inside, SIGINT and SIGTERM set the returned event instead of raising.

    Why: Python raises KeyboardInterrupt wherever the main thread is, and inside
    `subprocess.Popen.poll` that can be between taking the Popen's wait lock and the
    ``try`` that releases it. The cleanup's `stop_process` then never gets the lock: its
    final ``wait()`` blocks for good (seen as `vigil judge serve` hanging after Ctrl-C).
    A loop that polls a child waits on this event instead, and stops at a safe point.
    Main thread only (signal handlers can only be set there).
    """
    flag = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
