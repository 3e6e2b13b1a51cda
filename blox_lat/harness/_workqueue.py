"""The campaign's work queue: models pulled from one artifact stream by one or more devices.

A device that is lost mid-model hands its model back (:meth:`WorkQueue.hand_back`) and another
takes it; so a worker that finds the queue empty waits while any other worker still holds a
model (:meth:`WorkQueue.take`), unless it is only topping up a set it already holds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["WorkQueue"]

T = TypeVar("T")


class WorkQueue(Generic[T]):
    """Items of ``source`` (read lazily, one ahead at most) plus those handed back, first."""

    def __init__(self, source: Iterator[T]) -> None:
        self._source = source
        self._exhausted = False
        self._pending: deque[T] = deque()
        self._handed_back: deque[T] = deque()
        self._busy = 0  # items taken and not yet finished
        self._wake = threading.Condition(threading.Lock())
        self._stop = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Every worker stops at its next :meth:`take`."""
        self._stop.set()

    def _fill(self) -> None:
        """Under ``_wake``: move the source's next item into ``_pending`` if there is one."""
        if not self._pending and not self._exhausted:
            item = next(self._source, None)
            if item is None:
                self._exhausted = True
            else:
                self._pending.append(item)

    def peek(self) -> T | None:
        """The next item, without taking it (for prefetching)."""
        with self._wake:
            if self._handed_back:
                return self._handed_back[0]
            self._fill()
            return self._pending[0] if self._pending else None

    def take(self, wait: bool = True) -> T | None:
        """The next item; None when none is left. With ``wait``, an empty queue waits while
        another worker holds an item (its device can be lost and hand it back)."""
        with self._wake:
            while not self._stop.is_set():
                self._fill()
                queue = self._handed_back or self._pending
                if queue:
                    self._busy += 1
                    return queue.popleft()
                if self._busy == 0 or not wait:
                    return None
                self._wake.wait(0.2)
            return None

    def hand_back(self, item: T) -> None:
        """A taken item goes back to the front for another worker (call :meth:`finished` too)."""
        with self._wake:
            self._handed_back.append(item)

    def finished(self) -> None:
        """A taken item is done with (measured or handed back)."""
        with self._wake:
            self._busy -= 1
            self._wake.notify_all()
