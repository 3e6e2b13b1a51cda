"""What a survey tells its caller while it runs: small frozen event values (the library never
prints). The measuring steps' own campaign events (``blox_lat.harness.CampaignEvent``) reach
the same listener between these."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class SurveyEvent:
    kind: ClassVar[str] = "survey"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True)
class SurveyOpened(SurveyEvent):
    """The survey starts or resumes: ``rounds`` done before, ``spent_s`` of ``budget_s`` spent;
    ``warning`` is the host check's line for a busy local host."""

    kind: ClassVar[str] = "opened"
    device: str
    budget_s: float
    spent_s: float
    rounds: int
    warning: str | None


@dataclass(frozen=True)
class ProbeTimed(SurveyEvent):
    """The anchors were timed alone: ``per_model_s`` is the estimated cost of a model."""

    kind: ClassVar[str] = "probe"
    models: int
    wall_s: float
    per_model_s: float


@dataclass(frozen=True)
class RoundPlanned(SurveyEvent):
    kind: ClassVar[str] = "round-planned"
    number: int
    plan: str  # balanced | next
    models: int
    budget_left_s: float
    per_model_s: float


@dataclass(frozen=True)
class RoundMeasured(SurveyEvent):
    kind: ClassVar[str] = "round-measured"
    number: int
    measured: int
    wall_s: float
    spent_s: float
    budget_s: float


@dataclass(frozen=True)
class RoundFitted(SurveyEvent):
    kind: ClassVar[str] = "round-fitted"
    number: int
    figures: dict


@dataclass(frozen=True)
class SurveyStopped(SurveyEvent):
    """The rounds are over: ``reason`` says why (budget spent, target width reached, ...)."""

    kind: ClassVar[str] = "stopped"
    reason: str


@dataclass(frozen=True)
class Published(SurveyEvent):
    kind: ClassVar[str] = "published"
    what: str
    path: str
