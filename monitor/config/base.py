"""The building blocks of every settings section: strict models, documented fields."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
PiiKind = Literal["email", "phone", "card", "iban", "national_id"]
PII_KIND_NAMES: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "national_id")
Positive = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, docstrings document fields."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)
