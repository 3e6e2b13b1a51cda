"""The registry of export formats: a name maps to an :class:`ExportFormat` and its behaviour.

The built-in formats are each one module (``_format_<name>``), listed once in ``_BUILTIN``;
other code adds a format with :func:`register_format`. Nothing registers itself on import.
"""

from __future__ import annotations

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
_REGISTRY: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add ``fmt`` under its name (returned, so that a module can write ``FORMAT = register_format(...)``).

    A name already taken is refused: two formats under one name would share store keys.
    """
    if not isinstance(fmt, ExportFormat):
        raise ExportError(f"register_format takes an ExportFormat, got {type(fmt).__name__}")
    if not fmt.name or not all(c.isalnum() or c in "-_." for c in fmt.name):
        raise ExportError(f"format name {fmt.name!r}: use letters, digits, '-', '_' or '.'")
    if fmt.name in _REGISTRY:
        raise ExportError(f"export format {fmt.name!r} is already registered; choose another name")
    _REGISTRY[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> ExportFormat:
    """Remove a registered format and return it (a test or plugin undoing its registration)."""
    get_format(name)
    return _REGISTRY.pop(name)


def list_formats() -> list[ExportFormat]:
    """Every export format, in registration order."""
    return list(_REGISTRY.values())


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(_REGISTRY)
        raise ExportError(f"unknown export format {name!r}; choose one of: {valid}") from None


for _fmt in _BUILTIN:
    register_format(_fmt)
