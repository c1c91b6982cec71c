"""The regression gate (`vigil evalset run`): a candidate model against a baseline on an
eval-set version, with thresholds, a report, an exit status and a stored trend.

Modules by job: `thresholds` (gate.yaml), `endpoints` (URL#model, the cached and retried
client), `cache`, `answers` (getting answers, verdicts, test results), `metrics`, `passk`,
`judging`, `safety`, `benchmarks` (lm-evaluation-harness files), `stats`, `measure`,
`gating` (the decision), `report`, `run` (orchestration).
"""

from monitor.evalset.gate.run import GateRequest, GateResult, execute, prepare, run_gate
from monitor.evalset.gate.thresholds import Thresholds, load_thresholds, parse_thresholds

__all__ = [
    "GateRequest",
    "GateResult",
    "Thresholds",
    "execute",
    "load_thresholds",
    "parse_thresholds",
    "prepare",
    "run_gate",
]
