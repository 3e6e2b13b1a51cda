"""Unpickling with an allow-list: the one way blox-lat reads a pickle a user opted in to.

``pickle.loads`` calls whatever a payload names (``os.system`` included). :func:`restricted_loads`
resolves only the ``(module, name)`` globals a caller lists, so a payload can rebuild plain
containers, numbers, strings and the few classes the format needs, and nothing else. Used by
the CIFAR-100 python reader and by Blox-format files with a pickle payload.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from typing import Any

__all__ = ["NUMPY_ARRAYS", "NUMPY_SCALARS", "restricted_loads"]

#: what numpy arrays pickle to
NUMPY_ARRAYS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})
#: what numpy scalars (``np.float64(1.5)``) pickle to
NUMPY_SCALARS = frozenset({
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype"),
    ("_codecs", "encode"),
})


class _Restricted(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: frozenset[tuple[str, str]], encoding: str) -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self._allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not allowed in this file)")


def restricted_loads(data: bytes, allowed: Iterable[tuple[str, str]] = (), *, encoding: str = "ASCII") -> Any:
    """Unpickle ``data`` resolving only the globals in ``allowed``; others raise
    :class:`pickle.UnpicklingError`. Damaged data raises what ``pickle`` raises."""
    return _Restricted(data, frozenset(allowed), encoding).load()
