"""`vigil replay`: the whole pipeline in batch over a JSONL file, in event time.

Same pipeline, same sampler, same timers and the same driver (`monitor.pipeline.driver`)
as the live worker; only the source differs (`FileSource`: lines of a file instead of
Kafka messages). Scorer queues are settled before each event-time timer fires, so alerts
over history do not depend on model speed.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.assembly import build_pipeline
from monitor.config import Settings
from monitor.errors import ConfigError, EventError
from monitor.events.formats import FORMATS
from monitor.pipeline import DeadLetter, RawMessage, Summary
from monitor.pipeline.driver import drive
from monitor.pipeline.source import Batch
from monitor.store import open_store

_CHUNK_BYTES = 8 * 1024 * 1024
_FIRST_BATCH = 1000
_PROGRESS_EVERY_S = 0.5


def read_batches(
    path: Path, batch_size: int, first_batch: int | None = None
) -> Iterator[list[RawMessage]]:
    """Lines of a JSONL file as raw messages (blank lines skipped), ``batch_size`` at a time
    (``first_batch`` for the first one, when given)."""
    source = f"file:{path.name}"
    batch: list[RawMessage] = []
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    number = 0
    rest = b""
    size = first_batch or batch_size
    with handle:
        # Read in large chunks and split in C: iterating a file line by line costs more
        # than the rest of reading at 50k events/s.
        while chunk := handle.read(_CHUNK_BYTES):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                value = line[:-1] if line.endswith(b"\r") else line
                if not value or value.isspace():
                    continue
                batch.append(RawMessage(value, source, str(number)))
                if len(batch) >= size:
                    yield batch
                    batch, size = [], batch_size
        value = rest[:-1] if rest.endswith(b"\r") else rest
        if value and not value.isspace():
            batch.append(RawMessage(value, source, str(number + 1)))
    if batch:
        yield batch


def read_proto_records(path: Path) -> Iterator[RawMessage]:
    """Records of a length-prefixed protobuf file (each a 4-byte big-endian size, then
    that many bytes: the OpenTelemetry Collector's file exporter with ``format: proto``)."""
    source = f"file:{path.name}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    at, number = 0, 0
    while at < len(data):
        number += 1
        if at + 4 > len(data):  # a torn tail: handed on whole, to be dead-lettered
            yield RawMessage(data[at:], source, str(number), ("invalid_otlp", "truncated"))
            return
        (size,) = struct.unpack_from(">I", data, at)
        yield RawMessage(data[at + 4 : at + 4 + size], source, str(number))
        at += 4 + size


def decode_messages(fmt: str, messages: Sequence[RawMessage]) -> tuple[list[RawMessage], int]:
    """Raw records in input format ``fmt`` as raw contract messages: each record gives
    zero or more events at its position, or itself with why it could not be decoded;
    and how many non-GenAI spans the records held (skipped, not events)."""
    if fmt == "vigil":
        return list(messages), 0
    decode = FORMATS[fmt]
    out: list[RawMessage] = []
    skipped = 0
    for message in messages:
        try:
            decoded = decode(message.value)
        except EventError as exc:
            refused = (exc.reason, exc.detail)
            out.append(RawMessage(message.value, message.source, message.position, refused))
            continue
        skipped += decoded.skipped
        out.extend(RawMessage(e, message.source, message.position) for e in decoded.events)
    return out, skipped


class FileSource:
    """A JSONL file as a `Source`: batches of ``batch_max`` lines, the first one smaller.

    A small first batch gets the writer going early instead of idling through a whole
    batch's prepare (~15% of a 100k-event replay at 10,000 per batch). Stored batches
    need no acknowledgement: a replay starts from the top of the file every time.
    """

    def __init__(self, path: Path, batch_max: int, fmt: str = "vigil") -> None:
        self._path = path
        self._batch_max = batch_max
        self._format = fmt
        self.records = 0
        """Records (lines, or protobuf records) read so far: the progress of a replay."""

    async def batches(self) -> AsyncGenerator[Batch[None], None]:
        size, fmt = self._batch_max, self._format
        chunks: Iterator[list[RawMessage]]
        if fmt == "otlp_proto":
            records = list(read_proto_records(self._path))
            chunks = iter([records[i : i + size] for i in range(0, len(records), size)])
        else:
            chunks = read_batches(self._path, size, first_batch=min(size, _FIRST_BATCH))
        for batch in chunks:
            self.records += len(batch)
            messages, skipped = decode_messages(fmt, batch)
            yield Batch(messages, None, skipped)

    async def acknowledge(
        self, batch: Batch[None], stored: Awaitable[Sequence[DeadLetter]]
    ) -> None:
        await stored  # its dead letters are in the store; a file has no DLQ topic


@dataclass(frozen=True)
class ReplayProgress:
    """Where a replay stands, for a progress display (`replay_file`'s ``on_progress``)."""

    records: int
    """Records read so far."""
    total: int
    """Records in the file."""
    stored: int
    """Events stored so far."""
    queues: dict[str, int]
    """Jobs waiting per scorer stage."""
    settling: bool
    """The file is read; the last scorer jobs and event-time jobs are finishing."""


def count_records(path: Path, fmt: str = "vigil") -> int:
    """Records in ``path``: its non-blank lines (a protobuf file: its records)."""
    if fmt == "otlp_proto":
        return sum(1 for _ in read_proto_records(path))
    return sum(len(batch) for batch in read_batches(path, 1 << 16))


async def replay_file(
    settings: Settings,
    path: Path,
    fmt: str = "vigil",
    on_progress: Callable[[ReplayProgress], None] | None = None,
) -> Summary:
    """Run the pipeline over ``path`` (records in input format ``fmt``, one of
    `monitor.events.formats.FORMATS`) and return the run summary. ``on_progress``, when
    given, is called about twice a second, and once at the end."""
    total = count_records(path, fmt) if on_progress is not None else 0
    store = open_store(settings)
    try:
        # Building loads rules and models, and may refuse a setting: the store must be
        # closed then too (chDB keeps one session per process).
        pipeline = build_pipeline(settings, store, replay=True)
    except BaseException:
        store.close()
        raise
    source = FileSource(path, settings.kafka.batch_max, fmt)
    settling = False

    def report() -> None:
        if on_progress is not None:
            queues = {name: stage.depth for name, stage in pipeline.stages.items()}
            on_progress(ReplayProgress(
                source.records, total, pipeline.summary.stored, queues, settling
            ))  # fmt: skip

    async def tick() -> None:
        while True:
            report()
            await asyncio.sleep(_PROGRESS_EVERY_S)

    ticker = asyncio.ensure_future(tick()) if on_progress is not None else None
    try:
        await pipeline.start()
        await drive(pipeline, source)
        settling = True
        await pipeline.settle()
        summary = pipeline.final_summary()
    finally:
        if ticker is not None:
            ticker.cancel()
        await pipeline.stop()
        store.close()
    report()
    # Stopping the stages drains the results exporter: only now are its counts final.
    for name, stage in pipeline.stages.items():
        summary.stages[name].update(stage.stats())
    return summary


def run_replay(
    settings: Settings,
    path: Path,
    fmt: str = "vigil",
    on_progress: Callable[[ReplayProgress], None] | None = None,
) -> Summary:
    return asyncio.run(replay_file(settings, path, fmt, on_progress))
