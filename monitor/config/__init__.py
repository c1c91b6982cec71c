"""Settings: pydantic models, one section per concern, read by `load_settings` from
``VIGIL_*`` env (nested with ``__``), an optional YAML file and CLI flags.

Every field has a docstring and unknown keys are errors: a typo stops start-up with a
message naming the field.
"""

from monitor.config.analysis import AlertSettings, DriftSettings
from monitor.config.base import PII_KIND_NAMES, PiiKind, Positive, Rate, Section
from monitor.config.evalset import (
    CaptureSettings,
    EvalsetSettings,
    ExportSettings,
    GateSettings,
    LeakageSettings,
)
from monitor.config.ingest import EventSettings, KafkaSettings, StoreSettings
from monitor.config.ops import OpsSettings
from monitor.config.privacy import PrivacySettings, StoreRedaction, stricter
from monitor.config.results_export import ResultsExportSettings
from monitor.config.scoring import (
    EmbeddingSettings,
    HeuristicsSettings,
    JudgeCascadeSettings,
    JudgeSettings,
    RequeueSettings,
    SamplingOverride,
    SamplingSettings,
    ToxicitySettings,
)
from monitor.config.settings import (
    Settings,
    load_settings,
    masked_dump,
    read_yaml,
    write_settings_file,
)

__all__ = [
    "PII_KIND_NAMES",
    "AlertSettings",
    "CaptureSettings",
    "DriftSettings",
    "EmbeddingSettings",
    "EvalsetSettings",
    "EventSettings",
    "ExportSettings",
    "GateSettings",
    "HeuristicsSettings",
    "JudgeCascadeSettings",
    "JudgeSettings",
    "KafkaSettings",
    "LeakageSettings",
    "OpsSettings",
    "PiiKind",
    "Positive",
    "PrivacySettings",
    "Rate",
    "RequeueSettings",
    "ResultsExportSettings",
    "SamplingOverride",
    "SamplingSettings",
    "Section",
    "Settings",
    "StoreRedaction",
    "StoreSettings",
    "ToxicitySettings",
    "load_settings",
    "masked_dump",
    "read_yaml",
    "stricter",
    "write_settings_file",
]
