"""What a profile's ``options`` and ``connection`` values may be, checked when a profile loads.

Checked here, so that a bad value fails ``devices validate`` instead of every model of a
campaign in the worker (``threads = "lots"``), and ``port = 99999`` is refused rather than
wrapped round to another port. Each check returns an error text, or None when the value is fine; the profile
loader adds the file and device. The harness reads these options (``harness._runtime_*`` loaders,
``harness._snpe_runner``, the thermal wait in ``harness._runners``); a new option is added here
and there together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RUNTIME_FORMATS", "RUNTIME_OPTIONS", "RUNTIME_RULES", "SNPE_PERF_PROFILES", "SNPE_RUNTIMES", "RuntimeRules",
           "check_options", "check_port"]

#: ``snpe-net-run --perf_profile`` values (the SNPE runner passes the option through)
SNPE_PERF_PROFILES = frozenset({
    "balanced", "burst", "default", "extreme_power_saver", "high_performance", "high_power_saver",
    "low_balanced", "low_power_saver", "power_saver", "sustained_high_performance", "system_settings",
})
SNPE_RUNTIMES = frozenset({"cpu", "dsp", "gpu"})
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")

_Check = Callable[[str, Any], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> str | None:
    if _is_int(value) and value >= 1:
        return None
    return f"option {name} must be an integer >= 1, got {value!r}"


def _positive_number(name: str, value: Any) -> str | None:
    if (_is_int(value) or isinstance(value, float)) and value > 0 and value != float("inf"):
        return None
    return f"option {name} must be a number > 0, got {value!r}"


def _one_of(choices: Any) -> _Check:
    def check(name: str, value: Any) -> str | None:
        if isinstance(value, str) and value in choices:
            return None
        return f"option {name} {value!r} unknown; use one of {', '.join(sorted(choices))}"
    return check


def _cpus(name: str, value: Any) -> str | None:
    if isinstance(value, list) and value and all(_is_int(c) and c >= 0 for c in value):
        return None
    return f"option {name} must be a list of CPU numbers such as [0, 1], got {value!r}"


def _torch_device(name: str, value: Any) -> str | None:
    if isinstance(value, str) and (value in ("cpu", "cuda") or
                                   (value.startswith("cuda:") and value[5:].isdigit())):
        return None
    return f"option {name} {value!r} unknown; use 'cpu', 'cuda' or 'cuda:N'"


def _text(name: str, value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return f"option {name} must be a non-empty string, got {value!r}"


#: options every runtime accepts: the thermal wait of remote devices (``harness._runners``)
_COMMON: dict[str, _Check] = {"thermal_max_c": _positive_number, "thermal_timeout_s": _positive_number}

@dataclass(frozen=True)
class RuntimeRules:
    """What a device profile may say about one runtime: the artifact formats it runs and the
    options it takes (each with its check). The harness's runtime registry must agree
    (tests/test_registries.py), so a new runtime adds one entry here and one module there."""

    formats: tuple[str, ...]
    options: dict[str, _Check]


RUNTIME_RULES: dict[str, RuntimeRules] = {
    "onnxruntime": RuntimeRules(("onnx", "onnx-int8"), {
        "threads": _positive_int, "inter_op_threads": _positive_int,
        "graph_optimization": _one_of(GRAPH_OPTIMIZATIONS), "affinity": _cpus, **_COMMON}),
    "torchscript": RuntimeRules(("torchscript",), {
        "threads": _positive_int, "device": _torch_device, "affinity": _cpus, **_COMMON}),
    "snpe": RuntimeRules(("dlc",), {
        "runtime": _one_of(SNPE_RUNTIMES), "perf_profile": _one_of(SNPE_PERF_PROFILES), "htp_soc": _text, **_COMMON}),
}
#: runtime -> artifact formats it can run / options it takes (views of RUNTIME_RULES)
RUNTIME_FORMATS: dict[str, tuple[str, ...]] = {name: r.formats for name, r in RUNTIME_RULES.items()}
RUNTIME_OPTIONS: dict[str, dict[str, _Check]] = {name: r.options for name, r in RUNTIME_RULES.items()}


def check_options(runtime: str, options: Mapping[str, Any]) -> str | None:
    """The first problem with ``options`` for ``runtime`` (unknown names first), or None."""
    allowed = RUNTIME_OPTIONS.get(runtime, {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        return (f"unknown option(s) {', '.join(unknown)} for runtime {runtime}; "
                f"allowed: {', '.join(sorted(allowed))}")
    for name, value in options.items():
        problem = allowed[name](name, value)
        if problem:
            return problem
    return None


def check_port(value: Any) -> int:
    """A TCP port, 1..65535, from an integer or its decimal text (``--connect port=2222``).

    ValueError otherwise: a socket would wrap 99999 round to 34463 and connect there."""
    port = value
    if isinstance(value, str) and value.strip().isdigit():
        port = int(value)
    if not _is_int(port) or not 1 <= port <= 65535:
        raise ValueError(f"connection port must be an integer in 1..65535, got {value!r}")
    return port
