"""The one loop that feeds a `Source` through the pipeline (`vigil replay` and the worker).

Batch N+1 is prepared (`Pipeline.prepare`: CPU, on the main thread) while batch N is
written (`Pipeline.commit`: the store releases the GIL in its thread), so the two halves
use both cores. Writes and acknowledgements stay strictly in order: batch N+1 is handed
over only once batch N is stored and acknowledged, so a source's position (Kafka
offsets) only ever moves past stored batches.
"""

from __future__ import annotations

import asyncio
import contextlib

from monitor.pipeline.pipeline import Pipeline, Prepared
from monitor.pipeline.source import DeadLetter, Position, Source


async def drive(pipeline: Pipeline, source: Source[Position]) -> None:
    """Store every batch of ``source``; return once the last one is acknowledged.

    On a failure (a write that fails after its retries, a failed acknowledgement, a
    source error) the batch in flight is let finish first, then the first failure is
    raised; either way the source's batches are closed only after that.
    """
    in_flight: asyncio.Task[None] | None = None
    async with contextlib.aclosing(source.batches()) as batches:
        try:
            async for batch in batches:
                # CPU half now, while the previous batch is still being written.
                prepared = pipeline.prepare(batch.messages)
                pipeline.summary.skipped_spans += batch.skipped_spans
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(
                    source.acknowledge(batch, _store(pipeline, prepared))
                )
                await asyncio.sleep(0)  # let the commit hand its write to the thread pool
        except BaseException:
            if in_flight is not None:
                await asyncio.wait({in_flight})
                if not in_flight.cancelled():
                    in_flight.exception()  # retrieved: the failure raised is the first one
            raise
        if in_flight is not None:
            await in_flight


async def _store(pipeline: Pipeline, prepared: Prepared) -> list[DeadLetter]:
    await pipeline.commit(prepared)
    return prepared.rejected
