"""The one writer of a campaign run: its journal, its counts and what its caller hears.

Farm threads share one publisher; every method that touches the journal or the counts holds
its lock, so a record is journaled, counted and announced as one step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from blox_lat.harness._attempts import Outcome
from blox_lat.harness._events import EventSink, ModelDone
from blox_lat.harness._journal import Journal
from blox_lat.harness._records import MeasurementRecord

__all__ = ["Counts", "Publisher"]


@dataclass
class Counts:
    """What a run did so far (mutable, under the publisher's lock)."""

    measured: int = 0
    failed: int = 0
    noisy: int = 0
    remeasured: int = 0
    redone_sets: int = 0
    unrepaired_sets: int = 0
    unrepaired_models: int = 0
    redo_s: float = 0.0
    lost: list[str] = field(default_factory=list)


class Publisher:
    """Journals lines and model records, counts them and tells ``emit``."""

    def __init__(self, journal: Journal, emit: EventSink, todo: int) -> None:
        self.journal, self.emit, self.todo = journal, emit, todo
        self.records: list[dict[str, Any]] = []
        self.counts = Counts()
        self.position = 0
        self._guard = threading.Lock()

    def line(self, line: dict[str, Any]) -> None:
        """Journal a line that is not a model's result (an ``environment`` or ``anchors`` line)."""
        with self._guard:
            self.journal.append(line)

    def publish(self, record: MeasurementRecord, outcome: Outcome | None = None) -> None:
        """Journal ``record``, count it and announce it."""
        best = outcome.best if outcome is not None else None
        line = record.to_dict()
        with self._guard:
            counts = self.counts
            if best is not None and outcome is not None and len(outcome.log) > 1:
                counts.remeasured += 1
            if best is not None and best.noisy:
                counts.noisy += 1
            if best is not None and outcome is not None and outcome.burst:
                counts.unrepaired_models += 1
            self.journal.append(line)
            self.records.append(line)
            if record.ok:
                counts.measured += 1
            else:
                counts.failed += 1
            self.position += 1
            self.emit(ModelDone(record=record, position=self.position, todo=self.todo))

    def set_timed(self, redone: int, unrepaired: bool, redo_s: float) -> None:
        """Count a set's redos, the seconds they took, and whether a burst stayed in it."""
        with self._guard:
            self.counts.redone_sets += redone
            self.counts.unrepaired_sets += unrepaired
            self.counts.redo_s += redo_s

    def lost(self, device: str) -> None:
        with self._guard:
            self.counts.lost.append(device)
