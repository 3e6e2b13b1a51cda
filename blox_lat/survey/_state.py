"""The survey folder's state file, ``survey.json``: read and validated here, written whole.

It says what the survey has done so far, so that a killed or interrupted survey goes on where
it stopped: the probe's cost, every round (planned models, measured, fitted), the wall time
each measuring step spent (kept up to date while it runs, so that a kill loses at most the
time since the latest progress event) and whether the results were published. What was
measured is in the campaign journals themselves, which resume on their own.

Schema history: 1 (first version).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from blox_lat._fs import atomic_write
from blox_lat.survey._errors import SurveyError

STATE_NAME = "survey.json"
FORMAT = "blox-lat-survey"
#: state file schema (history in the module docstring and CHANGELOG.md)
STATE_SCHEMA = 1


@dataclass(frozen=True)
class StepCost:
    """Wall time of one measuring step and the part of it spent exporting artifacts."""

    wall_s: float = 0.0
    export_s: float = 0.0
    measured: int = 0  # models measured ok in it (cumulative over reruns)

    def plus(self, other: StepCost) -> StepCost:
        return StepCost(self.wall_s + other.wall_s, self.export_s + other.export_s, self.measured + other.measured)


@dataclass(frozen=True)
class Round:
    """One round: a balanced plan or the least certain models, measured, then fitted."""

    number: int
    kind: str  # "balanced", "next" or "retest" (models of round 1 measured again)
    indices: tuple[int, ...]
    cost: StepCost = StepCost()
    measured: bool = False
    fit: dict[str, Any] | None = None  # the fit's figures after this round (None: not fitted yet)


@dataclass(frozen=True)
class SurveyState:
    """Everything a survey folder records about its progress (immutable; ``with_*`` copies)."""

    identity: dict[str, Any]
    probe: StepCost | None = None
    probe_models: int = 0
    rounds: tuple[Round, ...] = ()
    stopped: str | None = None  # why the rounds ended (budget, target, space)
    published: int = 0  # rounds the published outputs were made from
    host: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def spent_s(self) -> float:
        """Wall time of every measuring step so far (probe and rounds)."""
        return (self.probe.wall_s if self.probe else 0.0) + sum(r.cost.wall_s for r in self.rounds)

    def measured_indices(self) -> list[int]:
        """Every model a measured round holds (a retest round's are in round 1 too)."""
        return sorted({i for r in self.rounds if r.measured for i in r.indices})

    def with_round(self, rnd: Round) -> SurveyState:
        rounds = [r for r in self.rounds if r.number != rnd.number] + [rnd]
        return replace(self, rounds=tuple(sorted(rounds, key=lambda r: r.number)))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema": STATE_SCHEMA, "identity": self.identity,
                "probe": asdict(self.probe) if self.probe else None, "probe_models": self.probe_models,
                "rounds": [{**asdict(r), "indices": list(r.indices)} for r in self.rounds],
                "stopped": self.stopped, "published": self.published, "host": self.host, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> SurveyState:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SurveyError(f"{where} is not a survey state file; use another --out")
        if data.get("schema") != STATE_SCHEMA:
            raise SurveyError(f"{where}: state schema {data.get('schema')!r}, this blox-lat reads "
                              f"{STATE_SCHEMA}; upgrade blox-lat or use another --out")
        try:
            rounds = tuple(Round(int(r["number"]), _kind(r["kind"]), tuple(int(i) for i in r["indices"]),
                                 _cost(r["cost"]), bool(r["measured"]), r.get("fit")) for r in data["rounds"])
            return cls(dict(data["identity"]), _cost(data["probe"]) if data.get("probe") else None,
                       int(data.get("probe_models", 0)), rounds, data.get("stopped"), int(data.get("published", 0)),
                       data.get("host"), tuple(str(n) for n in data.get("notes", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise SurveyError(f"{where} is damaged ({type(exc).__name__}: {exc}); restore it or use another "
                              "--out (the campaign journals beside it keep every measurement)") from None


def _kind(value: Any) -> str:
    if value not in ("balanced", "next", "retest"):
        raise ValueError(f"round kind {value!r}")
    return str(value)


def _cost(data: Any) -> StepCost:
    return StepCost(float(data["wall_s"]), float(data["export_s"]), int(data.get("measured", 0)))


def read_state(folder: str | os.PathLike[str]) -> SurveyState | None:
    """The state of the survey in ``folder``, None when it holds none yet."""
    path = Path(folder) / STATE_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SurveyError(f"{path} cannot be read ({exc}); restore it or use another --out") from None
    return SurveyState.from_dict(data, str(path))


def write_state(folder: str | os.PathLike[str], state: SurveyState) -> None:
    """Write ``survey.json`` whole (temp file + rename, fsync)."""
    atomic_write(Path(folder) / STATE_NAME, json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n")
