"""The one pipeline behind `vigil replay` and the live worker.

Per batch: parse and validate (`monitor.events`), run the every-event checks
(`monitor.checks`), decide per scorer (`sampling`), offer jobs to the scorer stages
(`stages`), map everything to table rows (`rows`) and write it in one durable step.
"""

from monitor.pipeline.pipeline import Pipeline, Prepared
from monitor.pipeline.source import DeadLetter, RawMessage
from monitor.pipeline.stages import Stage
from monitor.pipeline.summary import Summary, render_summary

__all__ = ["DeadLetter", "Pipeline", "Prepared", "RawMessage", "Stage", "Summary", "render_summary"]
