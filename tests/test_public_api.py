"""The library's public surface: every listed name resolves, and loading one part does
not load the heavy ones (torch, chDB) that only some configurations use."""

from __future__ import annotations

import subprocess
import sys

import monitor


def test_every_public_name_resolves() -> None:
    missing = [name for name in monitor.__all__ if getattr(monitor, name, None) is None]
    assert not missing
    assert set(dir(monitor)) == set(monitor.__all__) == set(monitor._EXPORTS)


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        getattr(monitor, "not_a_name")  # noqa: B009
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_settings_and_events_load_without_models_or_store() -> None:
    code = (
        "import sys, monitor; monitor.load_settings; monitor.parse_event; "
        "print(sorted(m for m in ('torch', 'chdb', 'sentence_transformers', 'faust') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
