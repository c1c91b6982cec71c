"""The one pipeline behind `vigil replay` and the live worker.

Per batch: parse and validate (`monitor.events`), run the every-event checks
(`monitor.checks`), decide per scorer (`sampling`), offer jobs to the scorer stages
(`stages`), map everything to table rows (`rows`) and write it in one durable step.
A `Source` (a file, a Kafka topic) feeds it through the one `drive` loop; event-time
jobs fire from `timers`.
"""

from monitor.pipeline.driver import drive
from monitor.pipeline.pipeline import Pipeline, Prepared
from monitor.pipeline.source import Batch, DeadLetter, RawMessage, Source
from monitor.pipeline.stages import Stage
from monitor.pipeline.summary import Summary, render_summary

__all__ = [
    "Batch",
    "DeadLetter",
    "Pipeline",
    "Prepared",
    "RawMessage",
    "Source",
    "Stage",
    "Summary",
    "drive",
    "render_summary",
]
