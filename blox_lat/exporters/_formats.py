"""The registry of export formats: a name maps to an :class:`ExportFormat` and its behaviour.

The built-in formats are each one module (``_format_<name>``), listed once in ``_BUILTIN``;
other code adds a format with :func:`register_format`. Nothing registers itself on import.
"""

from __future__ import annotations

from blox_lat._registry import Registry
from blox_lat.exporters import _format_dlc, _format_onnx, _format_onnx_int8, _format_torchscript
from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._format import ExportFormat, ExportOption, normalise_options, toolchain

__all__ = [
    "ExportFormat",
    "ExportOption",
    "get_format",
    "list_formats",
    "normalise_options",
    "register_format",
    "toolchain",
    "unregister_format",
]

_BUILTIN = (_format_torchscript.FORMAT, _format_onnx.FORMAT, _format_onnx_int8.FORMAT, _format_dlc.FORMAT)
_REGISTRY: Registry[ExportFormat] = Registry(
    "export format", "format", ExportFormat, ExportError,
    lambda name, names: f"unknown export format {name!r}; choose one of: {', '.join(names)}")


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add ``fmt`` under its name (returned, so that a module can write ``FORMAT = register_format(...)``).

    A name already taken is refused: two formats under one name would share store keys.
    """
    return _REGISTRY.register(fmt)


def unregister_format(name: str) -> ExportFormat:
    """Remove a registered format and return it (a test or plugin undoing its registration)."""
    return _REGISTRY.unregister(name)


def list_formats() -> list[ExportFormat]:
    """Every export format, in registration order."""
    return _REGISTRY.items()


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; an unknown name lists the valid ones."""
    return _REGISTRY.get(name)


for _fmt in _BUILTIN:
    register_format(_fmt)
