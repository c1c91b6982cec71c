"""Shared test set-up. Real parts (tansu broker, chDB, llama.cpp server) are started by
fixtures in tests/fixtures/, as subprocesses on loopback, and stopped by PID."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

# Nothing may reach for a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "tests.fixtures.store",
    "tests.fixtures.broker",
    "tests.fixtures.llama",
    "tests.fixtures.judge_stub",
    "tests.fixtures.seeded",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`vigil.cli.main.main` points the root logger at the (captured, later closed) stderr
    of the test that calls it; every test gets the logging it started with back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
