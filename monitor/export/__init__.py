"""Results out: evaluation results as OpenTelemetry ``gen_ai.evaluation.result`` events,
sent over OTLP/HTTP to a collector (`export.otlp_endpoint`, off by default)."""

from monitor.export.otlp import OtlpResultsExporter
from monitor.export.records import EVENT_NAME, evaluation_name, evaluation_records

__all__ = ["EVENT_NAME", "OtlpResultsExporter", "evaluation_name", "evaluation_records"]
