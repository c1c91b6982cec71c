"""Judge rubrics: named dimensions scored 1-5 with anchor descriptions, loaded from YAML.

Built-in rubrics live in ``monitor/scorers/judge/rubrics/<name>.yaml`` (package data); the setting
``judge.rubric`` names one of them or gives a path to the user's own file. A rubric has a
version that is stored with every verdict and is part of the verdict cache key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.config import read_yaml
from monitor.errors import ConfigError

RUBRICS_DIR = Path(__file__).resolve().parent / "rubrics"
SCALE = (1, 2, 3, 4, 5)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Dimension(BaseModel):
    """One scored aspect of an answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Score name in table ``scores`` (lower_snake_case): helpfulness, safety..."""
    question: str
    """What the judge is asked about this dimension."""
    anchors: dict[int, str]
    """What each point of the 1-5 scale looks like; every point must be described."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower_snake_case, at most 40 characters")
        return value

    @field_validator("anchors")
    @classmethod
    def _check_anchors(cls, value: dict[int, str]) -> dict[int, str]:
        if sorted(value) != list(SCALE):
            raise ValueError("anchors must describe each of 1, 2, 3, 4 and 5")
        return value


class Rubric(BaseModel):
    """A named, versioned set of dimensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: Annotated[str, Field(min_length=1)]
    description: str = ""
    dimensions: Annotated[list[Dimension], Field(min_length=1)]

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        # YAML reads `version: 1` as an int; a version is a label, not a number.
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _unique(self) -> Rubric:
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ValueError("dimension names must be unique")
        return self

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def builtin_rubrics() -> list[str]:
    return sorted(p.stem for p in RUBRICS_DIR.glob("*.yaml"))


def load_rubric(name_or_path: str) -> Rubric:
    """A built-in rubric by name, or a rubric YAML file by path; `ConfigError` if invalid."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.is_file():
        path = candidate
    else:
        path = RUBRICS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"judge.rubric: no built-in rubric {name_or_path!r} "
                f"(built-in: {', '.join(builtin_rubrics())}; or give a YAML path)"
            )
    data = read_yaml(path, "judge.rubric")
    try:
        return Rubric.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "rubric"
        raise ConfigError(f"judge.rubric {path}: {where}: {first['msg']}") from exc
