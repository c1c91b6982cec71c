"""Code items: run an answer against the item's tests, and the unbiased pass@k estimator.

An answer's code is its first fenced block (```python ... ```), else the whole answer.
Each test program runs as ``code + test`` in its own Python subprocess (isolated mode,
a fresh temporary folder, a minimal environment, its own process group) and is killed
with its whole group after ``evalset.gate.test_timeout_s``. An item's answer passes
when every test exits 0.

This is isolation from the gate, not a sandbox: the code runs with the user's rights.
Run the gate in a container when the model under test is not trusted.

pass@k = 1 - C(n - c, k) / C(n, k) for n answers of which c pass (Chen et al., 2021):
the chance that at least one of k answers drawn without replacement passes.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Literal

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

Outcome = Literal["pass", "fail", "timeout"]


def extract_code(answer: str) -> str:
    """The code in an answer: the first fenced block, else all of it."""
    match = _FENCE.search(answer)
    return match.group(1) if match else answer


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from ``n`` answers of which ``c`` passed."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass(frozen=True, slots=True)
class TestResult:
    outcome: Outcome
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def run_test(code: str, test: str, timeout_s: float) -> TestResult:
    """Run ``code`` followed by ``test`` in a subprocess; pass when it exits 0."""
    with tempfile.TemporaryDirectory(prefix="vigil-passk-") as folder:
        program = Path(folder) / "candidate_test.py"
        program.write_text(f"{code}\n\n{test}\n")
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-I", str(program)], cwd=folder, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: a timeout kills what it spawned too
        )
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return TestResult("timeout", f"no exit after {timeout_s:g} s")
        finally:
            if proc.poll() is None:
                _kill_group(proc)
    if proc.returncode == 0:
        return TestResult("pass")
    lines = stderr.decode(errors="replace").strip().splitlines()
    return TestResult("fail", lines[-1][:200] if lines else f"exit status {proc.returncode}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created for this one child
    proc.communicate()


def run_tests(answer: str, tests: list[str], timeout_s: float) -> TestResult:
    """An answer against every test of its item: the first that does not pass, else pass."""
    code = extract_code(answer)
    for test in tests:
        result = run_test(code, test, timeout_s)
        if not result.passed:
            return result
    return TestResult("pass")
