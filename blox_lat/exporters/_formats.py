"""The registry of export formats and the options each accepts."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata
from typing import Mapping

from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._types import EXPORTER_VERSION


@dataclass(frozen=True)
class ExportOption:
    name: str
    default: str
    help: str


@dataclass(frozen=True)
class ExportFormat:
    """One artifact format: file suffix, the device it serves, default batch and options."""

    name: str
    suffix: str
    description: str
    default_batch: int
    options: tuple[ExportOption, ...] = ()
    packages: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "suffix": self.suffix,
            "description": self.description,
            "default_batch": self.default_batch,
            "options": {o.name: o.default for o in self.options},
        }


_OPSET = ExportOption("opset", "17", "ONNX opset (>= 17)")
_CALIB = ExportOption(
    "calibration",
    "random",
    "calibration data: 'random' (seeded N(0,1) tensors) or a CIFAR-100 path "
    "(cifar-100-binary.tar.gz or its folder; the python version needs allow_pickle=yes)",
)
_ALLOW_PICKLE = ExportOption(
    "allow_pickle", "no",
    "yes: a calibration path may be CIFAR-100's python version, whose pickles are then unpickled "
    "(restricted to arrays and strings); no: never unpickle",
)
_SAMPLES = ExportOption("calibration_samples", "16", "number of calibration inputs")
_QUANTIZER = ExportOption(
    "quantizer", "pieces",
    "pieces: each of the 140 pieces quantised once by quantize_static, models composed and "
    "calibrated per model (same nodes and values; fast); whole: quantize_static on each whole model",
)
_MIN_AGREE = ExportOption("min_top1_agreement", "0.5", "fail if int8 top-1 agreement with fp32 is lower")

_FORMATS = (
    ExportFormat(
        "torchscript",
        ".pt",
        "TorchScript, traced and frozen (desktop GPU; load with torch.jit.load, optimise on the target)",
        256,
        (),
        ("torch",),
    ),
    ExportFormat("onnx", ".onnx", "ONNX fp32, fixed batch (local CPU)", 1, (_OPSET,), ("torch", "onnx")),
    ExportFormat(
        "onnx-int8",
        ".onnx",
        "ONNX 8-bit static QDQ quantisation, per-channel weights (onnxruntime tooling)",
        1,
        (_OPSET, _CALIB, _SAMPLES, _QUANTIZER, _ALLOW_PICKLE, _MIN_AGREE),
        ("torch", "onnx", "onnxruntime"),
    ),
    ExportFormat(
        "dlc",
        ".dlc",
        "Qualcomm SNPE DLC, 8-bit, HTP-prepared (Snapdragon 888 Hexagon DSP; needs SNPE_ROOT)",
        1,
        (_OPSET, _CALIB, _SAMPLES, _ALLOW_PICKLE, ExportOption("htp_socs", "sm8350", "snpe-dlc-graph-prepare --htp_socs")),
        ("torch", "onnx"),
    ),
)


def list_formats() -> list[ExportFormat]:
    """Every export format, in registry order."""
    return list(_FORMATS)


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; an unknown name lists the valid ones."""
    for fmt in _FORMATS:
        if fmt.name == name:
            return fmt
    valid = ", ".join(f.name for f in _FORMATS)
    raise ExportError(f"unknown export format {name!r}; choose one of: {valid}")


def normalise_options(fmt: ExportFormat, options: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Options with defaults filled in, as sorted pairs; unknown or bad values are errors."""
    given = {str(k): str(v) for k, v in (options or {}).items()}
    known = {o.name: o for o in fmt.options}
    unknown = sorted(set(given) - set(known))
    if unknown:
        valid = ", ".join(known) or "none"
        raise ExportError(f"format {fmt.name!r} takes no option {', '.join(unknown)}; valid options: {valid}")
    merged = {name: given.get(name, opt.default) for name, opt in known.items()}
    if "opset" in merged:
        if not merged["opset"].isdigit() or not 17 <= int(merged["opset"]) <= 21:
            raise ExportError(f"opset must be an integer in 17..21, got {merged['opset']!r}")
    if "calibration_samples" in merged:
        if not merged["calibration_samples"].isdigit() or not 1 <= int(merged["calibration_samples"]) <= 10000:
            raise ExportError(
                f"calibration_samples must be an integer in 1..10000, got {merged['calibration_samples']!r}"
            )
    if "min_top1_agreement" in merged:
        try:
            value = float(merged["min_top1_agreement"])
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ExportError(f"min_top1_agreement must be a number in 0..1, got {merged['min_top1_agreement']!r}")
    if "quantizer" in merged and merged["quantizer"] not in ("pieces", "whole"):
        raise ExportError(f"quantizer must be pieces or whole, got {merged['quantizer']!r}")
    if "allow_pickle" in merged and merged["allow_pickle"] not in ("yes", "no"):
        raise ExportError(f"allow_pickle must be yes or no, got {merged['allow_pickle']!r}")
    if "calibration" in merged and merged["calibration"] != "random":
        from blox_lat.exporters._calib import calibration_identity

        merged["calibration"] = calibration_identity(merged["calibration"], merged.get("allow_pickle") == "yes")
    return tuple(sorted(merged.items()))


def toolchain(fmt: ExportFormat, snpe_version: str | None = None) -> tuple[tuple[str, str], ...]:
    """Versions of every package that shapes the artifact (part of the store key)."""
    versions = {"blox-lat-exporter": EXPORTER_VERSION}
    for package in fmt.packages:
        versions[package] = _package_version(package)
    if fmt.name == "dlc":
        versions["snpe"] = snpe_version or "unknown"
    return tuple(sorted(versions.items()))


@functools.lru_cache(maxsize=None)
def _package_version(package: str) -> str:
    """An installed package's version, read once per process (importlib.metadata parses the
    package's METADATA file on every call: ~3 ms, paid per export before this cache)."""
    return metadata.version(package)
