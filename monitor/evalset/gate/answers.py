"""Getting every answer a run needs: both models' answers, the judge's verdicts, and the
code items' test results.

Each model answers each item once at temperature 0 (the answer every metric reads). With
``evalset.gate.samples`` n > 1, code items (items with ``tests``) also get n answers at
``sample_temperature`` with seeds 0..n-1 (seeded, so a rerun asks for, and the cache
holds, the same n answers); pass@k is then estimated from those n. With n = 1 the
temperature-0 answer is the only sample, which gives pass@1 and nothing above it.

Work is started all at once and throttled per endpoint by the caller; the first call
that fails for good cancels the rest, and the run stops with that error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from monitor.errors import VigilError
from monitor.evalset.gate.endpoints import Caller, Completion, Endpoint
from monitor.evalset.gate.judging import GateJudge, PairTally
from monitor.evalset.gate.passk import TestResult, run_tests
from monitor.evalset.items import EvalItem
from monitor.scorers.judge.prompt import PointwiseVerdict, Winner

T = TypeVar("T")


class Progress(Protocol):
    """What a terminal (or nothing) is told while a run works."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str) -> None: ...


class NoProgress:
    def start(self, stage: str, total: int) -> None:
        return None

    def advance(self, stage: str) -> None:
        return None


async def gather_all(coros: Sequence[Awaitable[T]], stage: str, progress: Progress) -> list[T]:
    """Results of ``coros`` in order; the first error cancels the others and is raised."""

    async def one(coro: Awaitable[T]) -> T:
        result = await coro
        progress.advance(stage)
        return result

    progress.start(stage, len(coros))
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(c)) for c in coros]
    except BaseExceptionGroup as errors:
        first = _first_error(errors)
        raise first from None
    return [task.result() for task in tasks]


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    ours = [e for e in group.exceptions if isinstance(e, VigilError)]
    chosen = ours[0] if ours else group.exceptions[0]
    return _first_error(chosen) if isinstance(chosen, BaseExceptionGroup) else chosen


@dataclass
class ModelAnswers:
    endpoint: Endpoint
    primary: list[Completion]
    samples: dict[int, list[Completion]] = field(default_factory=dict)
    """Item index -> the extra pass@k samples (only with samples > 1)."""

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.primary]


@dataclass(frozen=True)
class Generation:
    max_tokens: int
    samples: int
    sample_temperature: float


async def answer_all(caller: Caller, endpoints: Sequence[Endpoint], items: Sequence[EvalItem],
                     gen: Generation, progress: Progress) -> list[ModelAnswers]:
    """Every model's answers (primary and samples), in the order of ``endpoints``."""
    greedy = {"temperature": 0, "max_tokens": gen.max_tokens}
    code = [i for i, item in enumerate(items) if item.tests] if gen.samples > 1 else []
    jobs: list[Awaitable[Completion]] = []
    for endpoint in endpoints:
        jobs += [caller.complete(endpoint, item.messages, greedy) for item in items]
        for i in code:
            jobs += [caller.complete(endpoint, items[i].messages,
                                     {"temperature": gen.sample_temperature,
                                      "max_tokens": gen.max_tokens, "seed": seed})
                     for seed in range(gen.samples)]
    results = iter(await gather_all(jobs, "answers", progress))
    out = []
    for endpoint in endpoints:
        primary = [next(results) for _ in items]
        samples = {i: [next(results) for _ in range(gen.samples)] for i in code}
        out.append(ModelAnswers(endpoint, primary, samples))
    return out


@dataclass
class Verdicts:
    pointwise: list[list[PointwiseVerdict | None]]
    """Per model (in the order answered), per item."""
    pairs: PairTally


async def judge_all(judge: GateJudge, items: Sequence[EvalItem], models: Sequence[ModelAnswers],
                    progress: Progress) -> Verdicts:
    """Rubric scores of both models' answers and the pairwise preference in both orders."""
    cand, base = models[0].texts, models[1].texts
    pointwise: list[Awaitable[Any]] = [
        judge.pointwise(item, m.texts[i]) for m in models for i, item in enumerate(items)
    ]
    pairs: list[Awaitable[Any]] = [
        coro for i, item in enumerate(items)
        for coro in (judge.pairwise(item, cand[i], base[i]), judge.pairwise(item, base[i], cand[i]))
    ]
    results = await gather_all([*pointwise, *pairs], "judge", progress)
    n = len(items)
    scores = [results[k * n:(k + 1) * n] for k in range(len(models))]
    winners: list[Winner | None] = results[len(models) * n:]
    tally = PairTally()
    for i in range(n):
        tally.add(winners[2 * i], winners[2 * i + 1])
    return Verdicts(scores, tally)


@dataclass(frozen=True)
class CodeResult:
    """One model on one code item: the temperature-0 answer and the pass@k counts."""

    item: int
    primary: TestResult
    n: int
    passed: int


async def test_all(models: Sequence[ModelAnswers], items: Sequence[EvalItem], timeout_s: float,
                   progress: Progress,
                   runner: Callable[[str, list[str], float], TestResult] = run_tests
                   ) -> list[list[CodeResult]]:
    """Run every code answer against its item's tests (one subprocess per test, one at a
    time: test programs are CPU work and the machine is shared)."""
    code = [i for i, item in enumerate(items) if item.tests]
    total = sum(1 + len(m.samples.get(i, [])) for m in models for i in code)
    progress.start("tests", total)
    out: list[list[CodeResult]] = []
    for model in models:
        rows = []
        for i in code:
            tests = list(items[i].tests or [])
            primary = await asyncio.to_thread(runner, model.primary[i].text, tests, timeout_s)
            progress.advance("tests")
            extra = model.samples.get(i, [])
            passed = 0
            for sample in extra:
                result = await asyncio.to_thread(runner, sample.text, tests, timeout_s)
                passed += result.passed
                progress.advance("tests")
            if extra:
                rows.append(CodeResult(i, primary, len(extra), passed))
            else:
                rows.append(CodeResult(i, primary, 1, int(primary.passed)))
        out.append(rows)
    return out
