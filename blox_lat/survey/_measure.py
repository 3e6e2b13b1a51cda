"""The one place a survey calls the harness to measure: :func:`measure_round`.

A measuring step is a campaign (``blox_lat.harness.run_campaign``) over the round's models in
the survey's campaign folder, resumable like any campaign. Around it this module times the
step's wall time and the part spent exporting artifacts (the artifact stream is wrapped), and
reports both while it runs (``on_cost``), so that the survey's state keeps them even if the
process is killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from blox_lat.survey._setup import Setup
from blox_lat.survey._state import StepCost

#: artifacts exported ahead of the device on remote transports
LOOKAHEAD = 4


class _ExportClock:
    """The artifact source of a campaign, counting the seconds spent waiting for exports."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.seconds = 0.0

    def __call__(self, archs: Sequence[Any], profile: Any) -> Iterable[Any]:
        from blox_lat.exporters import stream_artifacts

        return self._timed(stream_artifacts(archs, profile.format, batch=profile.batch, store=self.store,
                                            lookahead=LOOKAHEAD))

    def _timed(self, stream: Iterator[Any]) -> Iterator[Any]:
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(stream)
                except StopIteration:
                    return
                finally:
                    self.seconds += time.perf_counter() - t0
                yield item
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()


def measure_round(archs: Sequence[Any], setup: Setup, out_dir: Path, *, anchors: bool = True,
                  host_state: dict[str, Any] | None = None, on_event: Callable[[Any], None] | None = None,
                  on_cost: Callable[[StepCost], None] | None = None) -> tuple[Any, StepCost]:
    """Measure ``archs`` into the campaign folder ``out_dir`` (resuming it) and return the
    campaign's summary and this step's cost. ``anchors=False`` times the models without anchor
    models (the probe). Ctrl-C or SIGTERM during the campaign: :class:`KeyboardInterrupt`
    after the cost so far was reported."""
    from blox_lat.harness import CampaignConfig, ModelDone, run_campaign

    clock = _ExportClock(setup.store)
    start = time.perf_counter()
    done = [0]

    def cost() -> StepCost:
        return StepCost(time.perf_counter() - start, clock.seconds, done[0])

    def heard(event: Any) -> None:
        if isinstance(event, ModelDone) and event.record.ok:
            done[0] += 1
        if on_event is not None:
            on_event(event)
        if on_cost is not None:
            on_cost(cost())

    config = CampaignConfig(devices=(setup.profile,), protocol=setup.protocol, out_dir=Path(out_dir),
                            anchors=setup.anchors if anchors else 0, connection=setup.connection or None,
                            store=setup.store, lookahead=LOOKAHEAD, host_state=host_state)
    summary = run_campaign(list(archs), config, artifacts=clock, on_event=heard)
    spent = cost()
    if on_cost is not None:
        on_cost(spent)
    if summary.interrupted:
        raise KeyboardInterrupt
    return summary, spent
