"""The ``onnx-int8`` format: static QDQ quantisation with per-channel weights (onnxruntime).

``quantizer=pieces`` (the default) composes each model from per-piece quantisation templates and
calibrates it per model; ``quantizer=whole`` runs ``quantize_static`` on the whole fp32 model.
"""

from __future__ import annotations

from concurrent import futures

from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._format import ExportFormat, ExportJob, ExportOption, Produced
from blox_lat.exporters._format_onnx import (
    ALLOW_PICKLE,
    CALIBRATION,
    OPSET,
    SAMPLES,
    calibration,
    write_fp32,
    write_in_background,
)

__all__ = ["FORMAT"]


def _check_quantizer(value: str) -> str | None:
    return None if value in ("pieces", "whole") else f"quantizer must be pieces or whole, got {value!r}"


def _check_agreement(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    return None if 0.0 <= number <= 1.0 else f"min_top1_agreement must be a number in 0..1, got {value!r}"


_QUANTIZER = ExportOption(
    "quantizer", "pieces",
    "pieces: each of the 140 pieces quantised once by quantize_static, models composed and "
    "calibrated per model (same nodes and values; fast); whole: quantize_static on each whole model",
    check=_check_quantizer,
)
_MIN_AGREE = ExportOption("min_top1_agreement", "0.5", "fail if int8 top-1 agreement with fp32 is lower",
                          check=_check_agreement)


def _produce(job: ExportJob) -> Produced:
    if job.fast and job.options.get("quantizer") == "pieces":
        return _produce_pieces(job)
    from blox_lat.exporters import _naive, _verify
    from blox_lat.exporters._quant import quiet_preprocessing_hint

    fp32 = job.out.with_name("fp32.onnx")
    check, _ = write_fp32(job, fp32, checker=False)
    calib, held_out = calibration(job.options, job.batch)
    with quiet_preprocessing_hint():
        _naive.quantize_int8(fp32, job.out, calib)
    if not job.verify:
        return check
    result = _verify.verify_int8(job.out, _verify.ort_session(fp32), held_out,
                                 float(job.options["min_top1_agreement"]))
    return {**{f"fp32_{k}": v for k, v in check.items()}, **result}


def _produce_pieces(job: ExportJob) -> tuple[dict, str]:
    """int8 from per-piece quantisation templates (``_quant``), calibrated per model.

    One fp32 run of the composed model over the verification input, the held-out inputs and the
    calibration inputs stacked gives the PyTorch check (first rows), the agreement baseline and
    the calibration ranges.
    """
    from blox_lat.exporters import _compose, _quant, _verify

    arch, batch = job.arch, job.batch
    calib, held_out = calibration(job.options, batch)
    x = _verify.verification_input(batch)
    try:
        data, logits = _quant.int8_bytes(arch, batch, int(job.options["opset"]), calib, [x, *held_out], job.pieces)
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime failures come in many types
        raise ExportError(f"int8 composition of {arch.hash} failed: {exc}") from exc
    written = write_in_background(job.out, data)
    try:
        if job.verify:
            check = _verify.check_close(logits[:batch], _compose.torch_reference(arch)(x), f"ONNX fp32 of {arch.hash}")
            per_input = [logits[(i + 1) * batch:(i + 2) * batch] for i in range(len(held_out))]
            result = _verify.verify_int8(job.out, per_input, held_out, float(job.options["min_top1_agreement"]),
                                         data=data)
    finally:
        futures.wait([written])
    sha256 = written.result()
    if not job.verify:
        return {"verified": False, "quantizer": "pieces"}, sha256
    return {**{f"fp32_{k}": v for k, v in check.items()}, **result, "quantizer": "pieces"}, sha256


FORMAT = ExportFormat(
    "onnx-int8",
    ".onnx",
    "ONNX 8-bit static QDQ quantisation, per-channel weights (onnxruntime tooling)",
    1,
    (OPSET, CALIBRATION, SAMPLES, _QUANTIZER, ALLOW_PICKLE, _MIN_AGREE),
    ("torch", "onnx", "onnxruntime"),
    produce=_produce,
)
