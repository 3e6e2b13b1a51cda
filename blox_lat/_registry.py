"""One registry for the components that map a name to their behaviour (export formats,
runtimes): a name must be plain and free, and an unknown name is answered with the known ones.

Imports nothing else from blox_lat: the device runner bundle ships it beside the runtime
registry (``harness._bundle``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of ``item_type`` by their ``name``, in registration order. ``kind`` names them in
    messages (``export format``), ``noun`` in ``register_<noun>`` and ``<noun> name``; every
    refusal raises ``error``; ``unknown(name, names)`` words the answer to an unknown name."""

    def __init__(self, kind: str, noun: str, item_type: type, error: type[Exception],
                 unknown: Callable[[str, list[str]], str]) -> None:
        self.kind, self.noun, self.item_type, self.error, self.unknown = kind, noun, item_type, error, unknown
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        """Add ``item`` under its name and return it; a malformed or taken name is refused."""
        if not isinstance(item, self.item_type):
            article = "an" if self.item_type.__name__[0] in "AEIOU" else "a"
            raise self.error(f"register_{self.noun} takes {article} {self.item_type.__name__}, "
                             f"got {type(item).__name__}")
        name = item.name  # type: ignore[attr-defined]
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise self.error(f"{self.noun} name {name!r}: use letters, digits, '-', '_' or '.'")
        if name in self._items:
            raise self.error(f"{self.kind} {name!r} is already registered; choose another name")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> T:
        """Remove a registered item and return it (a test or plugin undoing its registration)."""
        self.get(name)
        return self._items.pop(name)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise self.error(self.unknown(name, list(self._items))) from None

    def items(self) -> list[T]:
        """Every item, in registration order."""
        return list(self._items.values())
