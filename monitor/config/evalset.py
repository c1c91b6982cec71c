"""The eval-set library: failure capture, export, the leakage check and the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr

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
    embedding_chunk: Annotated[int, Field(ge=16, le=65536)] = 1024
    """With ``--embeddings``: training texts embedded and compared per step; memory is
    about this many x (embedding dimension + items) floats, whatever the file size."""
    workers: Annotated[int, Field(ge=0, le=64)] = 0
    """Processes that share one large training file (byte ranges); 0: one per CPU this
    process may use (at most 8); 1: none."""
    parallel_min_mb: Annotated[float, Field(ge=0)] = 64.0
    """Plain training files at least this large are split over ``workers`` (smaller ones:
    starting processes would cost more than it saves)."""


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
    cache_dir: Path | None = None
    """Response cache (by endpoint, model, prompt and parameters): an interrupted run
    resumes, and a rerun costs nothing. None: ``gate-cache`` beside the store's data
    directory."""
    backoff_s: Positive = 0.5
    """First retry delay; doubles per retry, at most 20 s (a Retry-After header wins)."""
    api_key: SecretStr = SecretStr("")
    """API key sent to every endpoint; empty: ``$OPENAI_API_KEY``, else a placeholder (local
    servers ignore it)."""
    default_model: str = ""
    """Model for an endpoint given without ``#model``; empty: the first model it lists."""
    samples: Annotated[int, Field(ge=1, le=200)] = 1
    """Answers per code item for pass@k. 1: the temperature-0 answer only (pass@1); more:
    that many extra answers at ``sample_temperature`` (seeds 0..n-1), pass@k for k <= n."""
    sample_temperature: Annotated[float, Field(gt=0, le=2)] = 0.8
    """Temperature of the extra pass@k samples (the main answer is always at 0)."""
    test_timeout_s: Positive = 10.0
    """Timeout of one code item's test program (its subprocess is killed after it)."""
    semantic_similarity: bool = True
    """Compute embedding cosine (MiniLM) against references (loads the embedding model)."""
    judge_max_tokens: Annotated[int, Field(ge=16)] = 384
    """Most tokens of one judge verdict."""
    judge_max_chars: Annotated[int, Field(ge=200)] = 2000
    """Prompt and answers are each cut to this many characters for the judge."""
    judge_structured_output: Literal["auto", "json_schema", "json_object_schema", "json_object"] = (
        "auto"
    )
    """How verdict JSON is requested (see ``judge.structured_output``); auto:
    json_object_schema (llama.cpp's form) for a loopback judge URL, json_schema otherwise."""
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    """Level of the reported intervals (Wilson for rates, bootstrap for means)."""
    bootstrap_samples: Annotated[int, Field(ge=100, le=100_000)] = 2000
    """Resamples of the bootstrap intervals (seeded: a rerun reports the same interval)."""


class EvalsetSettings(Section):
    """Where eval sets live and how they are made, checked and run."""

    dir: Path | None = None
    """Directory of eval sets: one folder per name, one immutable folder per version.
    None: ``evalsets`` beside the store's data directory (``.vigil/evalsets``)."""
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    """Failure capture in the pipeline."""
    export: ExportSettings = Field(default_factory=ExportSettings)
    """Exports."""
    leakage: LeakageSettings = Field(default_factory=LeakageSettings)
    """The leakage check."""
    gate: GateSettings = Field(default_factory=GateSettings)
    """The regression gate."""
