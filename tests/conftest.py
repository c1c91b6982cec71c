"""Shared test set-up. Real parts (tansu broker, chDB, llama.cpp server) are started by
fixtures in tests/fixtures/, as subprocesses on loopback, and stopped by PID."""

from __future__ import annotations

import os

# Nothing may reach for a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "tests.fixtures.store",
    "tests.fixtures.broker",
    "tests.fixtures.llama",
]
