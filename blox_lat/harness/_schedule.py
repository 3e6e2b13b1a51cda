"""The anchors of a campaign run: which models, their artifacts, the reference their levels are
relative to, and (one model at a time) when they are due again."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from blox_lat._fs import utc_now
from blox_lat.errors import BloxLatError
from blox_lat.harness._anchors import set_level
from blox_lat.harness._protocol import Measurement
from blox_lat.harness._records import AnchorsRecord
from blox_lat.harness._stability import SetStability

__all__ = ["AnchorSchedule"]


class AnchorSchedule:
    """The anchor models of a campaign run (none: every method is a no-op question).

    ``reference`` is the campaign's first anchor run (a resumed campaign's, or this run's
    first). On a device measuring one model at a time the anchors are due at a run's first
    model and every ``every`` models after (:meth:`due`); ``level`` is the latest run's line."""

    def __init__(self, anchors: Sequence[Any], every: int, device: str, campaign_id: str,
                 reference: Sequence[float] | None = None) -> None:
        self.anchors = tuple(anchors)
        self.every, self.device, self.campaign_id = every, device, campaign_id
        self.reference: list[float] | None = list(reference) if reference is not None else None
        self.level: AnchorsRecord | None = None
        self.runs = 0
        self.since = 0
        self._items: list[tuple[str, Any]] | None = None

    def __bool__(self) -> bool:
        return bool(self.anchors)

    def pairs(self, export: Callable[[Sequence[Any]], Iterable[Any]]) -> list[tuple[str, Any]]:
        """(hash, artifact) of each anchor model, exported once per run by ``export``."""
        if self._items is None:
            from blox_lat.exporters import ExportFailure

            items = list(export(self.anchors)) if self.anchors else []
            for arch, item in zip(self.anchors, items):
                if isinstance(item, ExportFailure):
                    raise BloxLatError(f"anchor model {arch.index} could not be exported ({item.reason}); "
                                       "measure without anchors (--anchors 0)")
            self._items = [(a.hash, item) for a, item in zip(self.anchors, items)]
        return self._items

    def due(self) -> str | None:
        """Why the anchors are due before the next model measured one at a time, or None."""
        if not self.runs:
            return "start"
        return "every" if self.since >= self.every else None

    def model_measured(self) -> None:
        self.since += 1

    def record(self, env_id: str, attempt: int, timed: int, measured: Sequence[Measurement], *,
               trigger: str | None = None, stability: SetStability | None = None) -> AnchorsRecord:
        """The ``anchors`` line of one timed attempt of a set (``timed`` models), or of one
        anchor run on its own (``trigger``); the campaign's first becomes the reference."""
        latencies = [m.latency_ms for m in measured]
        if self.reference is None:
            self.reference = latencies
        if trigger is not None:
            self.runs += 1
            self.since = 0
        summary = [{"model_hash": a.hash, "model_index": a.index, "latency_ms": m.latency_ms, "cv": m.cv}
                   for a, m in zip(self.anchors, measured)]
        return AnchorsRecord(set_id=uuid.uuid4().hex[:16], attempt=attempt, device=self.device,
                             campaign_id=self.campaign_id, env_id=env_id, anchors=summary,
                             reference_ms=list(self.reference), level=set_level(latencies, self.reference),
                             members=timed, recorded_at=utc_now("microseconds"), trigger=trigger,
                             stability=stability.to_dict() if stability is not None else None)

    def failed_run(self) -> None:
        """An anchor run on its own failed: the models up to the next run carry no level."""
        self.runs += 1
        self.since = 0
