"""The regression gate end to end: the real CLI against a REAL llama.cpp server (SmolLM2-135M)
as candidate, baseline and judge, chDB as the store, the bundled MiniLM and
profanity-check models for similarity and toxicity.

Requests are counted by the server's own access log. Candidate and baseline are the one
server under two model names (llama-cpp-python serves its only model whatever the name),
so their answers are cached apart. SmolLM2 is far too small to answer or judge well:
these tests check the gate's plumbing and decisions, never answer quality. Calls are few
and short (5 items, short answers) because the server answers one request at a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.children import free_port
from monitor.evalset.gate.cache import ResponseCache
from monitor.evalset.items import EvalItem, item_id, write_items
from monitor.evalset.versions import write_manifest, write_version
from monitor.scorers.judge.llama_server import LlamaServer
from tests.fixtures.llama import small_rubric
from vigil.cli.main import main

pytestmark = pytest.mark.integration



LOOSE = """\
metrics:
  exact_match: {min: 0.0, required: true}
  token_f1: {min: 0.0, required: true}
  rouge_l: {min: 0.0}
  semantic_similarity: {min: -1.0, required: true}
  pass@1: {min: 0.0, required: true}
  judge.helpfulness: {min: 1.0, required: true}
  pairwise.loss_rate: {max: 1.0, required: true}
  safety.safe_rate: {min: 0.0, required: true}
  format.json_rate: {min: 0.0, required: true}
  latency.p95_ms: {max: 3600000}
"""
# For a run of the first items only: no metric is required there.
ANY = "metrics:\n  latency.p95_ms: {max: 3600000}\n"
# No real endpoint answers in a microsecond, and a judge mean cannot pass 5.
STRICT = """\
metrics:
  latency.p50_ms: {max: 0.001}
  judge.overall: {min: 5.01}
  exact_match: {max_drop: 0.5}
benchmarks: {warn_drop: 3, fail_drop: 5}
"""


def _item(text: str, reference: str = "", **kw: Any) -> EvalItem:
    messages = [{"role": "user", "content": text}]
    return EvalItem(id=item_id(messages), split="test", messages=messages, prompt=text,
                    reference=reference, **kw)


ITEMS = [
    _item("What is the capital of France? Answer in one word.", "Paris"),
    _item("What is 2 + 2? Answer with a number.", "4"),
    _item("What colour is the sky on a clear day? One word.", "Blue"),
    _item('Reply with the JSON object {"ok": true} and nothing else.', reasons=["format_error"]),
    _item("Write a Python function add(a, b) that returns a + b. Only code.",
          tests=["assert add(2, 3) == 5"]),
]


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Any]:
    sets = tmp_path / "sets"

    def fill(folder: Path) -> None:
        write_items(folder / "items.jsonl", ITEMS)
        write_manifest(folder, {"name": "smoke", "items": len(ITEMS)})

    write_version(sets, "smoke", "v1", fill)
    config = tmp_path / "vigil.yaml"
    config.write_text(orjson.dumps({"evalset": {"dir": str(sets), "gate": {
        "cache_dir": str(tmp_path / "cache"), "concurrency": 2, "max_retries": 1,
        "backoff_s": 0.05, "judge_max_tokens": 200, "judge_max_chars": 600,
        # A busy 2-core machine can take long per call; a timeout would test the machine.
        "timeout_s": 900}}}).decode())
    for name, text in (("loose.yaml", LOOSE), ("strict.yaml", STRICT), ("any.yaml", ANY)):
        (tmp_path / name).write_text(text)
    return {"tmp": tmp_path, "config": config, "rubric": small_rubric(tmp_path)}


def _gate(ws: dict[str, Any], server_url: str, thresholds: str, *extra: str,
          candidate: str | None = None, baseline: str | None = None) -> int:
    tmp: Path = ws["tmp"]
    return main([
        "evalset", "run", "smoke@v1", "--config", str(ws["config"]),
        "--data-dir", str(tmp / "data"),
        "--candidate", candidate or f"{server_url}#smollm2-135m-instruct",
        "--baseline", baseline or f"{server_url}#smollm2-baseline",
        "--judge", f"{server_url}#smollm2-judge", "--rubric", str(ws["rubric"]),
        "--thresholds", str(tmp / thresholds), "--max-tokens", "24", "--out", str(tmp / "out"),
        *extra,
    ])


def _report(ws: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((ws["tmp"] / "out" / "report.json").read_bytes())
    return data


def _cached(ws: dict[str, Any]) -> int:
    cache = ResponseCache(ws["tmp"] / "cache")
    try:
        return len(cache)
    finally:
        cache.close()


def test_a_bad_thresholds_file_exits_2_before_any_request(
    llama_server: LlamaServer, workspace: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace["tmp"] / "bad.yaml").write_text("metrics:\n  exact_match: {min: 0.5}\n"
                                              "  judge.helpfulness: {minimum: 3}\n")
    before = llama_server.request_count()
    assert _gate(workspace, llama_server.base_url, "bad.yaml") == 2
    assert "metrics.judge.helpfulness.minimum: unknown key" in capsys.readouterr().err
    assert llama_server.request_count() == before
    assert not (workspace["tmp"] / "out").exists()


def test_an_unreachable_endpoint_exits_2(
    workspace: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    code = _gate(workspace, dead, "loose.yaml", candidate=f"{dead}#m", baseline=f"{dead}#m")
    assert code == 2
    err = capsys.readouterr().err
    assert "vigil: error: " in err and "connection error after 2 attempt(s)" in err
    assert _cached(workspace) == 0


def test_gate_passes_fails_resumes_and_keeps_a_trend(
    llama_server: LlamaServer, workspace: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    url = llama_server.base_url
    # An interrupted run, made deterministic: only the first 2 items get answered.
    start = llama_server.request_count()
    assert _gate(workspace, url, "any.yaml", "--limit", "2") == 0
    after_limited, cached_limited = llama_server.request_count(), _cached(workspace)
    assert cached_limited > 0
    assert after_limited - start == cached_limited  # every call made was cached as it came
    assert _report(workspace)["evalset"]["items"] == 2

    # The full run resumes: only answers and verdicts not cached yet are asked for.
    assert _gate(workspace, url, "loose.yaml") == 0
    after_full, cached_full = llama_server.request_count(), _cached(workspace)
    assert after_full - after_limited == cached_full - cached_limited > 0
    report = _report(workspace)
    assert report["passed"] and report["evalset"]["items"] == len(ITEMS)
    assert report["calls"]["made"] == after_full - after_limited
    assert report["judge"]["rubric"] == "tiny-support@t1"
    metrics = {m["name"]: m for m in report["metrics"]}
    assert metrics["semantic_similarity"]["note"] == "embedding cosine (MiniLM), not BERTScore"
    assert metrics["exact_match"]["candidate"]["n"] == 3
    assert metrics["pass@1"]["candidate"]["n"] == 1
    assert metrics["format.json_rate"]["candidate"]["n"] == 1
    assert 0 < metrics["pairwise.win_rate"]["candidate"]["n"] <= len(ITEMS)  # parsed pairs
    assert "safety.toxic_rate" in metrics  # profanity-check loaded
    assert {c["status"] for c in report["checks"]} == {"pass"}

    # A strict gate over the same answers fails, and makes no call at all.
    base = workspace["tmp"] / "base.json"
    cand = workspace["tmp"] / "cand.json"
    base.write_bytes(orjson.dumps({"results": {"arc_easy": {"acc,none": 0.70},
                                               "piqa": {"acc,none": 0.70}}}))
    cand.write_bytes(orjson.dumps({"results": {"arc_easy": {"acc,none": 0.60},
                                               "piqa": {"acc,none": 0.69}}}))
    assert _gate(workspace, url, "strict.yaml", "--benchmarks", str(base), str(cand)) == 1
    assert llama_server.request_count() == after_full
    report = _report(workspace)
    assert report["calls"]["made"] == 0
    assert {"latency.p50_ms:max", "judge.overall:min", "benchmark:arc_easy"} <= set(
        report["failed_checks"])
    assert {c["name"]: c["status"] for c in report["checks"]}["benchmark:piqa"] == "pass"
    assert "exact_match:max_drop" not in report["failed_checks"]  # same model both sides

    # The longitudinal view: every run stored, with its metrics.
    capsys.readouterr()
    assert main(["evalset", "runs", "smoke", "--json",
                 "--data-dir", str(workspace["tmp"] / "data")]) == 0
    runs = orjson.loads(capsys.readouterr().out)
    assert [r["passed"] for r in runs] == [1, 1, 0]
    assert all("latency.p50_ms" in r["metrics"] for r in runs)
    assert runs[2]["metrics"]["benchmark_drop:arc_easy"] == pytest.approx(10.0)
    assert len({r["config_hash"] for r in runs}) == 3


def test_a_run_interrupted_with_ctrl_c_resumes_without_asking_twice(
    llama_server: LlamaServer, workspace: dict[str, Any]
) -> None:
    """Ctrl-C (SIGINT) in the middle of a run, as a user would: every answer that had
    arrived is kept, and the rerun asks only for the rest (counted at the server)."""
    tmp: Path = workspace["tmp"]
    url = llama_server.base_url
    command = [
        sys.executable, "-m", "vigil", "evalset", "run", "smoke@v1",
        "--config", str(workspace["config"]), "--data-dir", str(tmp / "data"),
        "--candidate", f"{url}#smollm2-135m-instruct", "--baseline", f"{url}#smollm2-baseline",
        "--judge", f"{url}#smollm2-judge", "--rubric", str(workspace["rubric"]),
        "--thresholds", str(tmp / "loose.yaml"), "--max-tokens", "24", "--out", str(tmp / "out"),
    ]  # fmt: skip
    start = llama_server.request_count()
    # SIGINT at its default in the child: a suite started in the background by a
    # non-interactive shell inherits it ignored, and Ctrl-C is what this test sends.
    child = subprocess.Popen(
        command, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        # Interrupt at the first answer: the run is then far from its last phase, where a
        # signal landing as the final answers arrive may find nothing left to cancel.
        while (tmp / "cache").exists() is False or _cached(workspace) < 1:
            assert child.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline, "no answer was cached in 10 minutes"
            time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err.decode()[-2000:]
    interrupted = _cached(workspace)
    # Requests the run had in flight still finish at the server (it cannot cancel them):
    # count them once it is quiet, so the rerun's count is the rerun's alone.
    made_before = _quiet_count(llama_server) - start
    assert interrupted >= 1
    # An answer in flight at the interrupt may be lost, never one that arrived.
    assert made_before - interrupted <= workspace_concurrency(workspace) * 3

    assert _gate(workspace, url, "loose.yaml") == 0
    asked = llama_server.request_count() - start - made_before
    assert asked == _cached(workspace) - interrupted > 0  # nothing asked twice
    assert _report(workspace)["calls"]["made"] == asked


def _quiet_count(server: LlamaServer, quiet_s: float = 3.0, limit_s: float = 300.0) -> int:
    """The server's request count once it has not changed for ``quiet_s``."""
    deadline = time.monotonic() + limit_s
    count, since = server.request_count(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the server never went quiet"
        time.sleep(0.2)
        now = server.request_count()
        if now != count:
            count, since = now, time.monotonic()
    return count


def workspace_concurrency(workspace: dict[str, Any]) -> int:
    """Requests a run keeps in flight per endpoint (the config's gate.concurrency)."""
    config = orjson.loads(workspace["config"].read_bytes())
    return int(config["evalset"]["gate"]["concurrency"])
