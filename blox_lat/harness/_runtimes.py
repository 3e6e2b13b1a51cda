"""The registry of runtimes: a name maps to a :class:`RuntimeSpec` and its loader.

The built-in runtimes are each one module (``_runtime_<name>``), listed once in ``_BUILTIN``;
other code adds a runtime with :func:`register_runtime`. Nothing registers itself on import.
Shipped in the device runner bundle with the ``_runtime*`` modules (see ``_bundle``).
"""

from __future__ import annotations

from blox_lat.harness import _runtime_onnxruntime, _runtime_snpe, _runtime_torchscript
from blox_lat.harness._runtime import RuntimeSpec, RuntimeUnavailableError

__all__ = ["get_runtime", "list_runtimes", "register_runtime", "unregister_runtime"]

_BUILTIN = (_runtime_onnxruntime.RUNTIME, _runtime_torchscript.RUNTIME, _runtime_snpe.RUNTIME)
_REGISTRY: dict[str, RuntimeSpec] = {}


def register_runtime(spec: RuntimeSpec) -> RuntimeSpec:
    """Add ``spec`` under its name and return it; a name already taken is refused."""
    if not isinstance(spec, RuntimeSpec):
        raise RuntimeUnavailableError(f"register_runtime takes a RuntimeSpec, got {type(spec).__name__}")
    if not spec.name or not all(c.isalnum() or c in "-_." for c in spec.name):
        raise RuntimeUnavailableError(f"runtime name {spec.name!r}: use letters, digits, '-', '_' or '.'")
    if spec.name in _REGISTRY:
        raise RuntimeUnavailableError(f"runtime {spec.name!r} is already registered; choose another name")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_runtime(name: str) -> RuntimeSpec:
    """Remove a registered runtime and return it (a test or plugin undoing its registration)."""
    get_runtime(name)
    return _REGISTRY.pop(name)


def list_runtimes() -> list[str]:
    """Every runtime name, sorted."""
    return sorted(_REGISTRY)


def get_runtime(name: str) -> RuntimeSpec:
    """The runtime called ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise RuntimeUnavailableError(
            f"unknown runtime {name!r}: choose one of {', '.join(list_runtimes())}"
        ) from None


for _spec in _BUILTIN:
    register_runtime(_spec)
