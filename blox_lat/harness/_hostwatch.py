"""The host during a campaign on a local device: quiet before a set is redone, and
``--on-busy`` between sets.

A set hit by a noise burst (:mod:`blox_lat.harness._stability`) is timed again only once the
host is quiet; after :data:`REDO_WAIT_S` of waiting for it the set stays as it is (a redo in
the same burst would be hit again, and a campaign must not stall). Between sets, ``--on-busy wait`` pauses while the
host is busy (bounded like the wait before a campaign) and ``--on-busy stop`` stops the
campaign (:class:`~blox_lat.harness.HostBusyError`); ``warn`` samples nothing between sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blox_lat.harness._rules import HOST_WAIT_PAUSE_S, HOST_WAIT_S, HostBusyError

__all__ = ["REDO_WAIT_S", "SET_SAMPLE_S", "HostWatch"]

#: the longest wait for a quiet host before a redo: a burst of a test run or a build often ends
#: within it, and a host busy for longer should not stall the campaign set after set
REDO_WAIT_S = 60.0
#: the sampling window between sets (``--on-busy wait|stop``): short, as it is paid every set
SET_SAMPLE_S = 0.5


@dataclass
class HostWatch:
    """Samples the cores of ``affinity`` (None: all this process may use) with ``sample``
    (:func:`~blox_lat.devices.sample_host` by default); counts the seconds spent waiting."""

    on_busy: str = "warn"
    affinity: Sequence[int] | None = None
    sample: Callable[..., Any] | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    waited_s: float = field(default=0.0)

    def _sampler(self) -> Callable[..., Any]:
        if self.sample is None:
            from blox_lat.devices import sample_host

            self.sample = sample_host
        return self.sample

    def _wait_quiet(self, limit_s: float, window_s: float) -> Any:
        """Sample until the host is quiet or ``limit_s`` passed; the last sample."""
        sample = self._sampler()
        start = self.clock()
        state = sample(window_s, self.affinity)
        while state.busy and self.clock() - start < limit_s:
            self.sleep(min(HOST_WAIT_PAUSE_S, max(0.0, limit_s - (self.clock() - start))))
            state = sample(window_s, self.affinity)
        self.waited_s += self.clock() - start
        return state

    def before_redo(self) -> bool:
        """Wait (bounded) for a quiet host before a burst-hit set is timed again; whether it
        got quiet."""
        return not self._wait_quiet(REDO_WAIT_S, 1.0).busy

    def between_sets(self) -> None:
        """``--on-busy``: wait (bounded) or stop when the host is busy before the next set."""
        if self.on_busy == "warn":
            return
        if self.on_busy == "stop":
            state = self._sampler()(SET_SAMPLE_S, self.affinity)
            if state.busy:
                raise HostBusyError(f"busy host between sets: {state.reason}; stopped (--on-busy stop); "
                                    "rerun the same command to resume once it is quiet")
            return
        self._wait_quiet(HOST_WAIT_S, SET_SAMPLE_S)
