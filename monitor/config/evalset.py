"""The eval-set library: failure capture, export, the leakage check and the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from monitor.config.base import Positive, Rate, Section


class CaptureSettings(Section):
    """Failure capture: rules applied in event time to what the pipeline stored."""

    enabled: bool = True
    """Run the capture timer (with the pipeline's other event-time jobs) at all."""
    rules_file: Path | None = None
    """YAML file of capture rules; None: the built-in defaults."""
    every_minutes: Positive = 5.0
    """How often (event time) the capture rules run."""
    lookback_minutes: Positive = 30.0
    """Each run re-reads this much event time before its end, so scores, judge verdicts
    and feedback that arrive late are still captured (rows are idempotent)."""


class ExportSettings(Section):
    """How `vigil evalset export` makes a version."""

    test_share: Rate = 0.8
    """Share of items in split ``test`` (the rest: ``dev``), assigned by a hash of the
    item id, so an item keeps its split in every version."""
    near_duplicate_jaccard: Rate = 0.7
    """Estimated Jaccard similarity of word shingles (MinHash) at or above which two
    prompts are near-duplicates; the first seen is kept."""
    minhash_permutations: Annotated[int, Field(ge=16, le=1024)] = 128
    """MinHash permutations (more: a finer similarity estimate, slower)."""
    shingle_words: Annotated[int, Field(ge=1, le=10)] = 3
    """Words per shingle for near-duplicate detection."""
    per_reason: Annotated[int, Field(ge=1)] | None = None
    """Most items per capture reason (stratified so no failure mode crowds out the rest)."""
    max_items: Annotated[int, Field(ge=1)] | None = None
    """Most items in one version."""
    format: Literal["jsonl", "parquet"] = "jsonl"
    """File format of the items (JSON Lines; Parquet needs pyarrow)."""


class LeakageSettings(Section):
    """`vigil evalset check`: an eval set against training data."""

    ngram: Annotated[int, Field(ge=5, le=50)] = 13
    """Words per n-gram: an item sharing one with a training line is contaminated
    (13, the usual contamination test)."""
    max_leak_rate: Rate = 0.0
    """Share of contaminated items above which the check exits 1."""
    embedding_cosine: Rate = 0.95
    """With ``--embeddings``: prompt cosine similarity at or above which an item counts as
    a near-duplicate of a training line."""


class GateSettings(Section):
    """`vigil evalset run`: the regression gate's calls to the models under test."""

    concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    """Requests in flight per endpoint."""
    timeout_s: Positive = 120.0
    """Timeout of one request."""
    max_retries: Annotated[int, Field(ge=0)] = 3
    """Retries of a failed request (429, 5xx, network), with exponential backoff."""
    max_tokens: Annotated[int, Field(ge=1)] = 512
    """Most tokens per answer."""
    cache_dir: Path = Path(".vigil/gate-cache")
    """Response cache (by endpoint, model, prompt and parameters): an interrupted run
    resumes, and a rerun costs nothing."""


class EvalsetSettings(Section):
    """Where eval sets live and how they are made, checked and run."""

    dir: Path = Path(".vigil/evalsets")
    """Directory of eval sets: one folder per name, one immutable folder per version."""
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    """Failure capture in the pipeline."""
    export: ExportSettings = Field(default_factory=ExportSettings)
    """Exports."""
    leakage: LeakageSettings = Field(default_factory=LeakageSettings)
    """The leakage check."""
    gate: GateSettings = Field(default_factory=GateSettings)
    """The regression gate."""
