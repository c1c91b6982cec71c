"""Judge-human agreement: kappa, Spearman and the confusion table against hand-computed
tables and against scikit-learn / scipy, the bootstrap interval, the warnings, the judge's
scores from stored judgments, and `vigil evalset agreement` end to end through the CLI."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from scipy.stats import rankdata
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from monitor.evalset.agreement import (
    MIN_ITEMS,
    SCALE,
    WEAK_KAPPA,
    bootstrap_kappa,
    cohen_kappa,
    confusion,
    measure,
    spearman,
    to_scale,
    warnings_for,
)
from monitor.evalset.agreement_report import judge_views
from monitor.evalset.items import EvalItem, Observed, item_id, split_of, write_items
from monitor.evalset.versions import write_manifest, write_version
from monitor.store.embedded import EmbeddedStore
from monitor.store.queries.agreement import agreement_rows, latest_agreement, store_agreement
from monitor.times import iso, now_utc, parse_ts


def _from_table(table: list[list[int]], labels: list[Any]) -> tuple[list[Any], list[Any]]:
    """Rater sequences whose confusion table is ``table`` (rows: judge)."""
    judge: list[Any] = []
    human: list[Any] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            judge += [labels[i]] * count
            human += [labels[j]] * count
    return judge, human


def test_plain_kappa_and_confusion_match_a_hand_computed_table() -> None:
    # p_o = 35/50 = 0.7; margins (25, 25) and (30, 20): p_e = (25*30 + 25*20)/50^2 = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    table = [[20, 5], [10, 15]]
    judge, human = _from_table(table, ["fail", "pass"])
    assert confusion(judge, human, ["fail", "pass"]).tolist() == table
    assert cohen_kappa(judge, human, ["fail", "pass"], "plain") == pytest.approx(0.4)


def test_quadratic_kappa_and_spearman_match_hand_computation() -> None:
    # Pairs (1,2), (2,2), (3,3): weighted observed disagreement 1; margins judge 1/1/1 on
    # 1,2,3 and human 2/1 on 2,3 give expected (1*(2*1 + 1*4) + 1*(0 + 1*1) + 1*(2*1 + 0))/3
    # = 3; kappa = 1 - 1/3.
    assert cohen_kappa([1, 2, 3], [2, 2, 3], SCALE, "quadratic") == pytest.approx(2 / 3)
    # Rank differences 0, -1, 1, 0: rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8.
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert cohen_kappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], SCALE, "quadratic") == 1.0
    # One label throughout on both sides: chance agreement is perfect, kappa undefined.
    assert math.isnan(cohen_kappa([4, 4, 4], [4, 4, 4], SCALE, "quadratic"))
    assert math.isnan(spearman([4.0, 4.0, 4.0], [1.0, 2.0, 3.0]))


def _correlated(rng: np.random.Generator, n: int, noise: float) -> tuple[list[int], list[int]]:
    truth = rng.integers(1, 6, n)
    other = np.clip(np.rint(truth + rng.normal(0, noise, n)), 1, 5).astype(int)
    return truth.tolist(), other.tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_statistics_agree_with_scikit_learn_and_scipy_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    judge, human = _correlated(rng, 300, 1.2)
    labels = list(SCALE)
    assert cohen_kappa(judge, human, SCALE, "quadratic") == pytest.approx(
        cohen_kappa_score(judge, human, labels=labels, weights="quadratic")
    )
    assert cohen_kappa(judge, human, SCALE, "plain") == pytest.approx(
        cohen_kappa_score(judge, human, labels=labels)
    )
    assert (confusion(judge, human, SCALE) == confusion_matrix(judge, human, labels=labels)).all()
    passes_j = ["pass" if v >= 4 else "fail" for v in judge]
    passes_h = ["pass" if v >= 3 else "fail" for v in human]
    assert cohen_kappa(passes_j, passes_h, ["fail", "pass"], "plain") == pytest.approx(
        cohen_kappa_score(passes_j, passes_h)
    )
    fractional = (np.array(judge) + rng.uniform(-0.4, 0.4, len(judge))).tolist()
    ranks = np.corrcoef(rankdata(fractional), rankdata(human))[0, 1]
    assert spearman(fractional, [float(h) for h in human]) == pytest.approx(ranks)


def test_to_scale_rounds_half_up_and_clips() -> None:
    assert [to_scale(v) for v in (0.2, 1.49, 1.5, 3.5, 4.4, 7.0)] == [1, 1, 2, 4, 4, 5]


def _interval(n: int, seed: int = 0) -> tuple[float, float, float]:
    judge, human = _correlated(np.random.default_rng(42), n, 1.0)
    a = measure("helpfulness", judge, human, [str(i) for i in range(n)], seed=seed)
    return a.kappa, a.kappa_low, a.kappa_high


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_n() -> None:
    small = _interval(40)
    large = _interval(1000)
    for kappa, low, high in (small, large):
        assert low <= kappa <= high
    assert (large[2] - large[1]) < (small[2] - small[1]) / 2
    assert _interval(40, seed=0) == small  # seeded: the same figures again
    assert _interval(40, seed=1) != small


def test_bootstrap_resamples_items_not_pairs() -> None:
    # The same 30 pairs twice over (two reviewers who agree): resampling items keeps the
    # interval as wide as for 30 items, where resampling pairs would shrink it.
    judge, human = _correlated(np.random.default_rng(5), 30, 1.0)
    cells = np.array(
        [(to_scale(j) - 1) * 5 + to_scale(h) - 1 for j, h in zip(judge, human, strict=True)]
    )
    once = bootstrap_kappa(cells, np.arange(30), 5, "quadratic", seed=3)
    twice = bootstrap_kappa(np.tile(cells, 2), np.tile(np.arange(30), 2), 5, "quadratic", seed=3)
    assert twice == pytest.approx(once)


def test_warnings_name_what_to_do() -> None:
    weak, thin = warnings_for("safety", 0.2, 10)
    assert "do not alert on this judge alone" in weak and "stronger judge model" in weak
    assert f"label at least {MIN_ITEMS} items" in thin
    assert warnings_for("safety", WEAK_KAPPA + 0.1, MIN_ITEMS) == []
    assert len(warnings_for("safety", math.nan, 100)) == 1
    judge, human = _correlated(np.random.default_rng(0), 12, 0.3)
    thin_only = measure("h", judge, human, list("abcdefghijkl")).warnings
    assert any("at least 30" in w for w in thin_only)


def test_judge_scores_come_from_items_else_the_latest_stored_judgment(
    embedded_store: EmbeddedStore,
) -> None:
    own = _item(0, {"judge.helpfulness": 2.0})
    stored = _item(1, {}, events=["e1", "e2"])
    day = now_utc() - timedelta(days=2)  # recent: older rows expire under the table's TTL
    rows = [
        _judgment("e1", "j1", {"helpfulness": 5.0}, iso(day)),
        _judgment("e2", "j2", {"helpfulness": 3.0}, iso(day + timedelta(days=1))),
        _judgment("e2", "j1", {"helpfulness": 4.0}, iso(day + timedelta(hours=12))),
    ]
    embedded_store.insert("judgments", rows)
    views = judge_views(embedded_store, [own, stored, _item(2, {}, events=["nothing"])])
    assert set(views) == {own.id, stored.id}
    assert (views[own.id].scores, views[own.id].version) == ({"helpfulness": 2.0}, "")
    assert (views[stored.id].scores, views[stored.id].version) == ({"helpfulness": 3.0}, "j2")


def test_latest_agreement_is_the_newest_defined_measurement(embedded_store: EmbeddedStore) -> None:
    def row(when: str, kappa: float, n: int) -> dict[str, Any]:
        return {
            "evalset": "s", "version": "v1", "judge_version": "j", "dimension": "helpfulness",
            "n": n, "kappa": kappa, "kappa_kind": "quadratic", "kappa_low": kappa - 0.1,
            "kappa_high": kappa + 0.1, "spearman": math.nan, "measured_at": when,
        }  # fmt: skip

    assert latest_agreement(embedded_store, "helpfulness") is None
    store_agreement(embedded_store, [row("2026-01-01T00:00:00Z", 0.5, 40)])
    store_agreement(embedded_store, [row("2026-01-03T00:00:00Z", math.nan, 3)])
    store_agreement(embedded_store, [row("2026-01-02T00:00:00Z", 0.7, 60)])
    found = latest_agreement(embedded_store, "helpfulness")
    assert found is not None and found[0] == pytest.approx(0.7) and found[1] == 60
    assert latest_agreement(embedded_store, "helpfulness", judge_version="other") is None
    back = agreement_rows(embedded_store, "s")
    assert len(back) == 3 and all(math.isnan(r["spearman"]) for r in back)
    assert math.isnan(back[-1]["kappa"])  # NaN survives the store, not turned into 0


def _item(i: int, scores: dict[str, float], events: list[str] | None = None) -> EvalItem:
    messages = [{"role": "user", "content": f"how do I change plan number {i}?"}]
    ident = item_id(messages)
    return EvalItem(
        id=ident, split=split_of(ident, 0.8), messages=messages, prompt=messages[0]["content"],
        observed=Observed(content=f"answer {i}"), reasons=["judge_low"], scores=scores,
        source_event_ids=events or [f"ev{i}"],
    )  # fmt: skip


def _judgment(event: str, version: str, scores: dict[str, float], when: str) -> dict[str, Any]:
    return {"event_id": event, "ts": when, "judge_version": version, "scores": scores,
            "created_at": when}  # fmt: skip


# -- end to end through the CLI ----------------------------------------------------------


def _vigil(data: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vigil", "--data-dir", str(data), "evalset", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_agreement_through_the_cli_stores_what_it_prints(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 40
    human_h, judge_h = _correlated(rng, n, 0.8)
    human_c, judge_c = _correlated(rng, n, 2.0)
    items = [
        _item(i, {"judge.helpfulness": float(judge_h[i]), "judge.correctness": float(judge_c[i])})
        for i in range(n)
    ]

    def write(folder: Path) -> None:
        write_items(folder / "items.jsonl", items)
        write_manifest(folder, {"count": n})

    write_version(tmp_path / "evalsets", "support", "v1", write)
    lines = [
        {"item_id": it.id, "reviewer": "ann", "verdict": "pass" if human_h[i] >= 4 else "fail",
         "scores": {"helpfulness": human_h[i], "correctness": human_c[i]}}
        for i, it in enumerate(items)
    ] + [  # a second reviewer on a few items, for the inter-reviewer figures
        {"item_id": it.id, "reviewer": "bob", "scores": {"helpfulness": human_h[i]}}
        for i, it in enumerate(items[:8])
    ]  # fmt: skip
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VIGIL_EVALSET__DIR": str(tmp_path / "evalsets")}
    data = tmp_path / "data"

    imported = _vigil(data, env, "review", "support", "--import", str(labels))
    assert imported.returncode == 0, imported.stderr
    shown = _vigil(data, env, "agreement", "support@v1", "--json")
    assert shown.returncode == 0, shown.stderr
    report = orjson.loads(shown.stdout)
    text = _vigil(data, env, "agreement", "support")
    assert text.returncode == 0, text.stderr

    by_dim = {d["dimension"]: d for d in report["dimensions"]}
    assert set(by_dim) == {"verdict", "helpfulness", "correctness"}
    assert by_dim["helpfulness"]["n"] == n + 8 and by_dim["verdict"]["n"] == n
    assert by_dim["helpfulness"]["kind"] == "quadratic" and by_dim["verdict"]["kind"] == "plain"
    expected = cohen_kappa_score(
        [to_scale(v) for v in judge_h + judge_h[:8]], human_h + human_h[:8],
        labels=list(SCALE), weights="quadratic",
    )  # fmt: skip
    assert by_dim["helpfulness"]["kappa"] == pytest.approx(expected)
    assert sum(map(sum, by_dim["correctness"]["confusion"])) == n
    assert [r["a"] + "/" + r["b"] for r in report["inter_reviewer"]] == ["ann/bob"]
    assert report["inter_reviewer"][0]["kappa"] == 1.0

    store = EmbeddedStore(data)
    try:
        rows = agreement_rows(store, "support")
    finally:
        store.close()
    first = [r for r in rows if iso(parse_ts(r["measured_at"])) == report["measured_at"]]
    assert len(rows) == 6 and len(first) == 3  # two runs of three dimensions
    for row in first:
        printed = by_dim[row["dimension"]]
        assert (row["n"], row["kappa_kind"], row["judge_version"]) == (
            printed["n"], printed["kind"], "",
        )  # fmt: skip
        for key in ("kappa", "kappa_low", "kappa_high", "spearman"):
            assert row[key] == pytest.approx(printed[key]), key
        assert f"{printed['kappa']:.3f}" in text.stdout
    weak = by_dim["correctness"]
    assert (weak["kappa"] < WEAK_KAPPA) == any("do not alert" in w for w in weak["warnings"])
    assert ("do not alert" in text.stdout) == any(
        d["kappa"] < WEAK_KAPPA for d in report["dimensions"]
    )
