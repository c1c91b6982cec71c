"""The LLM-as-judge scorer, its verdict cache and the local llama.cpp judge server."""

from monitor.scorers.judge.cache import CachedVerdict, VerdictLookup, cache_key
from monitor.scorers.judge.llama_server import (
    SERVER_PARALLELISM,
    LlamaServer,
    bundled_model_path,
    serve,
    start_local_server,
)
from monitor.scorers.judge.rubric import Rubric, builtin_rubrics, load_rubric
from monitor.scorers.judge.scorer import JudgeScorer, build_judge_scorer
from monitor.scorers.judge.verdicts import combine_orders

__all__ = [
    "SERVER_PARALLELISM",
    "CachedVerdict",
    "JudgeScorer",
    "LlamaServer",
    "Rubric",
    "VerdictLookup",
    "build_judge_scorer",
    "builtin_rubrics",
    "bundled_model_path",
    "cache_key",
    "combine_orders",
    "load_rubric",
    "serve",
    "start_local_server",
]
