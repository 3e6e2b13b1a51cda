"""The ``onnx`` format (fp32, fixed batch, for CPUs) and what the ONNX-based formats share:
their common options, the fp32 export with its checks, and the calibration inputs."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._format import ExportFormat, ExportJob, ExportOption, Produced

__all__ = ["ALLOW_PICKLE", "CALIBRATION", "FORMAT", "OPSET", "SAMPLES", "calibration", "write_fp32",
           "write_in_background"]


def _check_opset(value: str) -> str | None:
    if not value.isdigit() or not 17 <= int(value) <= 21:
        return f"opset must be an integer in 17..21, got {value!r}"
    return None


def _check_samples(value: str) -> str | None:
    if not value.isdigit() or not 1 <= int(value) <= 10000:
        return f"calibration_samples must be an integer in 1..10000, got {value!r}"
    return None


def _check_yes_no(value: str) -> str | None:
    return None if value in ("yes", "no") else f"allow_pickle must be yes or no, got {value!r}"


def _calibration_identity(value: str, options) -> str:
    """A calibration path becomes the identity of its contents (so the key names the data)."""
    if value == "random":
        return value
    from blox_lat.exporters._calib import calibration_identity

    return calibration_identity(value, options.get("allow_pickle") == "yes")


OPSET = ExportOption("opset", "17", "ONNX opset (>= 17)", check=_check_opset)
CALIBRATION = ExportOption(
    "calibration",
    "random",
    "calibration data: 'random' (seeded N(0,1) tensors) or a CIFAR-100 path "
    "(cifar-100-binary.tar.gz or its folder; the python version needs allow_pickle=yes)",
    normalise=_calibration_identity,
)
ALLOW_PICKLE = ExportOption(
    "allow_pickle", "no",
    "yes: a calibration path may be CIFAR-100's python version, whose pickles are then unpickled "
    "(restricted to arrays and strings); no: never unpickle",
    check=_check_yes_no,
)
SAMPLES = ExportOption("calibration_samples", "16", "number of calibration inputs", check=_check_samples)


def write_fp32(job: ExportJob, fp32: Path, *, checker: bool) -> tuple[dict, str | None]:
    """Export the fp32 ONNX model to ``fp32`` and verify it against PyTorch (when asked).

    Returns the verification record and, on the fast path, the file's sha256. ``checker`` also
    runs ``onnx.checker`` (for the ``onnx`` artifact itself).
    """
    from blox_lat.exporters import _compose, _naive, _verify

    arch, batch, opset = job.arch, job.batch, int(job.options["opset"])
    data = written = None
    if job.fast:
        data = _compose.onnx_bytes(arch, batch, opset, job.pieces)
        written = write_in_background(fp32, data)
    else:
        _naive.export_onnx(arch, fp32, batch, opset)
    check: dict = {"verified": False}
    try:
        if job.verify:
            reference = _compose.torch_reference(arch) if job.fast else None
            check = _verify.verify_onnx_fp32(fp32, arch, batch, reference, data=data)
        if checker and job.verify:
            import onnx

            try:
                onnx.checker.check_model(data if data is not None else str(fp32))
            except onnx.checker.ValidationError as exc:
                raise ExportError(f"onnx.checker rejects the export of {arch.hash}: {exc}") from exc
    finally:
        if written is not None:
            futures.wait([written])  # the file is complete (or failed) before anyone reads or removes it
    return check, (written.result() if written is not None else None)


def calibration(options, batch: int) -> tuple[list, list]:
    """(calibration inputs, held-out agreement inputs) as the options ask."""
    from blox_lat.exporters._calib import calibration_inputs

    samples = int(options["calibration_samples"])
    allow_pickle = options.get("allow_pickle") == "yes"
    calib = calibration_inputs(options["calibration"], samples, batch, seed=0, allow_pickle=allow_pickle)
    held_out = calibration_inputs(options["calibration"], max(8, 32 // batch), batch, seed=1,
                                  allow_pickle=allow_pickle)
    return calib, held_out


def write_in_background(path: Path, data: bytes) -> futures.Future:
    """Write ``data`` to ``path`` and hash it on a helper thread; the future gives the sha256.

    The write and hash overlap the verification runs instead of adding to them. Callers wait
    for the future before the file is published or its temporary directory removed.
    """
    from blox_lat.exporters import _background

    def write() -> str:
        import hashlib

        Path(path).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    return _background.submit(write)


def _produce(job: ExportJob) -> Produced:
    check, sha256 = write_fp32(job, job.out, checker=True)
    return (check, sha256) if sha256 is not None else check


FORMAT = ExportFormat("onnx", ".onnx", "ONNX fp32, fixed batch (local CPU)", 1, (OPSET,), ("torch", "onnx"),
                      produce=_produce)
