"""The ``dlc`` format: Qualcomm SNPE DLC, 8-bit, HTP-prepared (needs ``SNPE_ROOT``).

The SDK is found once up front (``toolchain_check``), and its version is part of the key.
"""

from __future__ import annotations

from blox_lat.exporters._format import ExportFormat, ExportJob, ExportOption, Produced
from blox_lat.exporters._format_onnx import ALLOW_PICKLE, CALIBRATION, OPSET, SAMPLES, calibration, write_fp32

__all__ = ["FORMAT"]


def _snpe_toolchain() -> dict[str, str]:
    from blox_lat.exporters._snpe import find_sdk

    return {"snpe": find_sdk().version or "unknown"}  # SnpeNotFoundError names the missing tool and the fix


def _produce(job: ExportJob) -> Produced:
    from blox_lat.exporters._snpe import export_dlc

    check, _ = write_fp32(job, job.out.with_name("fp32.onnx"), checker=False)
    calib, _ = calibration(job.options, job.batch)
    dlc = export_dlc(job.out.with_name("fp32.onnx"), job.out, calib, job.options["htp_socs"])
    return {**{f"onnx_{k}": v for k, v in check.items()}, **dlc}


FORMAT = ExportFormat(
    "dlc",
    ".dlc",
    "Qualcomm SNPE DLC, 8-bit, HTP-prepared (Snapdragon 888 Hexagon DSP; needs SNPE_ROOT)",
    1,
    (OPSET, CALIBRATION, SAMPLES, ALLOW_PICKLE, ExportOption("htp_socs", "sm8350", "snpe-dlc-graph-prepare --htp_socs")),
    ("torch", "onnx"),
    produce=_produce,
    toolchain_check=_snpe_toolchain,
)
