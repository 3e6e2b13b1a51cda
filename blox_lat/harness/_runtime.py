"""What a runtime is: the formats it runs, its default options, and how it loads a model.

A runtime is one :class:`RuntimeSpec` value; ``load(path, options, batch, input_size)`` turns an
artifact into a zero-argument callable that runs one inference (and, for CUDA, waits for it),
plus facts about the runtime. A runtime without ``load`` runs through its own device tools
(SNPE's ``snpe-net-run``), not in a blox-lat worker. This module is shipped in the device runner
bundle: it imports nothing outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from blox_lat.errors import BloxLatError

__all__ = ["Loader", "RuntimeSpec", "RuntimeUnavailableError", "input_array"]

#: ``load(path, options, batch, input_size) -> (run_once, facts)``
Loader = Callable[[str, dict[str, Any], int, int], tuple[Callable[[], Any], dict[str, Any]]]


class RuntimeUnavailableError(BloxLatError):
    """The runtime a profile names cannot run here (missing package, no GPU, unknown name)."""


@dataclass(frozen=True)
class RuntimeSpec:
    """A runtime the harness can drive: its formats, its option names (with defaults), and
    ``load`` when it runs inside a blox-lat worker process."""

    name: str
    formats: tuple[str, ...]
    options: dict[str, Any]
    description: str
    load: Loader | None = field(default=None, compare=False, repr=False)

    @property
    def local(self) -> bool:
        """Whether it can run inside a blox-lat worker (vs an external tool such as SNPE)."""
        return self.load is not None


def input_array(batch: int, input_size: int):
    """The seeded N(0, 1) input every runtime times (float32, NCHW)."""
    import numpy as np

    return np.random.default_rng(0).standard_normal((batch, 3, input_size, input_size)).astype(np.float32)
