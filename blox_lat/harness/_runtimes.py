"""The registry of runtimes: a name maps to a :class:`RuntimeSpec` and its loader.

The built-in runtimes are each one module (``_runtime_<name>``), listed once in ``_BUILTIN``;
other code adds a runtime with :func:`register_runtime`. Nothing registers itself on import.
Shipped in the device runner bundle with the ``_runtime*`` modules and ``_registry`` (see ``_bundle``).
"""

from __future__ import annotations

from blox_lat._registry import Registry
from blox_lat.harness import _runtime_onnxruntime, _runtime_snpe, _runtime_torchscript
from blox_lat.harness._runtime import RuntimeSpec, RuntimeUnavailableError

__all__ = ["get_runtime", "list_runtimes", "register_runtime", "unregister_runtime"]

_BUILTIN = (_runtime_onnxruntime.RUNTIME, _runtime_torchscript.RUNTIME, _runtime_snpe.RUNTIME)
_REGISTRY: Registry[RuntimeSpec] = Registry(
    "runtime", "runtime", RuntimeSpec, RuntimeUnavailableError,
    lambda name, names: f"unknown runtime {name!r}: choose one of {', '.join(sorted(names))}")


def register_runtime(spec: RuntimeSpec) -> RuntimeSpec:
    """Add ``spec`` under its name and return it; a name already taken is refused."""
    return _REGISTRY.register(spec)


def unregister_runtime(name: str) -> RuntimeSpec:
    """Remove a registered runtime and return it (a test or plugin undoing its registration)."""
    return _REGISTRY.unregister(name)


def list_runtimes() -> list[str]:
    """Every runtime name, sorted."""
    return sorted(spec.name for spec in _REGISTRY.items())


def get_runtime(name: str) -> RuntimeSpec:
    """The runtime called ``name``; an unknown name lists the valid ones."""
    return _REGISTRY.get(name)


for _spec in _BUILTIN:
    register_runtime(_spec)
