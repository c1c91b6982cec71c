"""The house rules that a reader relies on: imports run one way, and modules stay small.

The import contract is import-linter's, configured in pyproject.toml; this runs it as
part of the test command, and shows that the same contract fails on a planted violation
(so a passing run means something).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "streams", "vigil")
#: "Modules stay under about 400 lines": the limit, with no exceptions granted.
MAX_LINES = 400


def _lint_imports(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    args = [str(lint), "--no-cache"] + (["--config", str(config)] if config else [])
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contract_holds() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout or "broken" not in result.stdout.lower()


def _plant(tree: Path, importer: str, imported: str) -> None:
    """A minimal copy of the package layout in which ``importer`` imports ``imported``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    modules = {"vigil", "streams", "monitor"}
    for contract in config["contracts"]:
        for container in contract.get("containers", [""]):
            for layer in contract["layers"]:
                for name in layer.replace(":", "|").split("|"):
                    modules.add(f"{container}.{name.strip()}" if container else name.strip())
    for module in sorted(modules):
        package = tree.joinpath(*module.split("."))
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").touch()
    target = tree.joinpath(*importer.split(".")) / "planted.py"
    target.write_text(f"import {imported}\n")


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("monitor.scorers", "monitor.store"),  # a scorer computes; the pipeline writes
        ("monitor.store", "monitor.pipeline"),
        ("monitor.store", "monitor.scorers"),
        ("monitor.pipeline", "streams"),  # the library never needs Kafka
        ("monitor.alerts", "vigil"),  # ...nor the CLI
        ("streams", "vigil"),
        ("monitor.pipeline", "monitor.alerts"),  # timers are plugged in by assembly
        ("monitor.pipeline", "monitor.ops"),  # the pipeline is observed, never observes
        ("monitor.ops", "streams"),  # the Kafka wiring hands ops what it knows
    ],
)
def test_import_contract_catches_a_violation(tmp_path: Path, importer: str, imported: str) -> None:
    _plant(tmp_path, importer, imported)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    result = _lint_imports(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode != 0, result.stdout[-3000:]
    assert f"{importer}.planted -> {imported}" in result.stdout, result.stdout[-3000:]


def test_modules_stay_small() -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
