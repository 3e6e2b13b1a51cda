"""``export``: one model, one format -> a verified artifact in a store."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Mapping

from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._formats import ExportFormat, get_format, normalise_options, toolchain
from blox_lat.exporters._store import ArtifactStore
from blox_lat.exporters._types import Artifact, ArtifactKey
from blox_lat.space import Arch, resolve

DEFAULT_STORE = "artifacts"
MAX_BATCH = 4096
METHODS = ("fast", "naive")


def check_batch(batch) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ExportError(f"batch must be an integer in 1..{MAX_BATCH}, got {batch!r}")
    return batch


def check_toolchain(format: str) -> None:
    """Fail once, before any model, when the format's external toolchain is missing.

    Without it every model would fail the same way (one identical line per model).
    """
    if get_format(format).name == "dlc":
        from blox_lat.exporters._snpe import find_sdk

        find_sdk()  # SnpeNotFoundError names the missing tool and the fix


def make_key(arch: Arch, fmt: ExportFormat, batch: int, options: Mapping[str, str] | None) -> ArtifactKey:
    opts = normalise_options(fmt, options)
    snpe_version = None
    if fmt.name == "dlc":
        from blox_lat.exporters._snpe import find_sdk

        snpe_version = find_sdk().version
    return ArtifactKey(arch.hash, fmt.name, batch, opts, toolchain(fmt, snpe_version))


def export(
    arch,
    format: str,
    *,
    batch: int = 1,
    store: ArtifactStore | None = None,
    options: Mapping[str, str] | None = None,
    verify: bool = True,
    method: str = "fast",
) -> Artifact:
    """Export one model (any model name) to ``format``; a present artifact is returned as is.

    ``method="fast"`` builds models from pre-exported pieces (see ``_compose``), ``"naive"``
    builds and exports each model directly; both give the same weights and outputs. With
    ``verify`` (the default) the artifact is run and compared with the PyTorch model, and a
    mismatch raises :class:`VerificationError`. ``store`` defaults to ``./artifacts``.
    """
    arch = resolve(arch)
    fmt = get_format(format)
    batch = check_batch(batch)
    if method not in METHODS:
        raise ExportError(f"unknown export method {method!r}; choose one of: {', '.join(METHODS)}")
    key = make_key(arch, fmt, batch, options)
    if method == "naive" and dict(key.options).get("quantizer") == "pieces":
        raise ExportError("method 'naive' quantises each whole model; pass the option quantizer=whole")
    store = store if store is not None else ArtifactStore(DEFAULT_STORE)
    found = store.get(key, verify=True)  # a damaged file is evicted here and exported again
    if found is not None:
        return found
    with store.lock(key):
        found = store.get(key, verify=True)  # another process may have made it while we waited
        if found is not None:
            return found
        with store.tempdir() as tmp:
            out = Path(tmp) / f"model{fmt.suffix}"
            produced = _produce(arch, fmt, batch, dict(key.options), out, verify, method, store.root / "pieces")
            verification, sha256 = produced if isinstance(produced, tuple) else (produced, None)
            return store.put(key, out, verification, suffix=fmt.suffix, sha256=sha256)


def _produce(arch: Arch, fmt: ExportFormat, batch: int, opts: dict, out: Path, verify: bool, method: str,
             pieces: Path) -> dict | tuple[dict, str]:
    """Write the artifact to ``out``; its verification record (and its sha256 when the bytes were
    in memory anyway, which spares reading the file back)."""
    from blox_lat.exporters import _naive, _verify

    fast = method == "fast"
    if fast:
        from blox_lat.exporters import _compose
    if fmt.name == "torchscript":
        if fast:
            _compose.export_torchscript(arch, out, batch)
        else:
            _naive.export_torchscript(arch, out, batch)
        if not verify:
            return {"verified": False}
        reference = _compose.torch_reference(arch) if fast else None
        return _verify.verify_torchscript(out, arch, batch, reference)
    opset = int(opts["opset"])
    if fmt.name == "onnx-int8" and fast and opts.get("quantizer") == "pieces":
        return _produce_int8_pieces(arch, batch, opts, out, verify, pieces)
    fp32 = out if fmt.name == "onnx" else out.with_name("fp32.onnx")
    data = written = None
    if fast:
        data = _compose.onnx_bytes(arch, batch, opset, pieces)
        written = _write_in_background(fp32, data)
    else:
        _naive.export_onnx(arch, fp32, batch, opset)
    check: dict = {"verified": False}
    try:
        if verify:
            reference = _compose.torch_reference(arch) if fast else None
            check = _verify.verify_onnx_fp32(fp32, arch, batch, reference, data=data)
        if fmt.name == "onnx" and verify:
            import onnx

            try:
                onnx.checker.check_model(data if data is not None else str(fp32))
            except onnx.checker.ValidationError as exc:
                raise ExportError(f"onnx.checker rejects the export of {arch.hash}: {exc}") from exc
    finally:
        if written is not None:
            futures.wait([written])  # the file is complete (or failed) before anyone reads or removes it
    sha256 = written.result() if written is not None else None
    if fmt.name == "onnx":
        return (check, sha256) if sha256 is not None else check
    calib, held_out = _calibration(opts, batch)
    if fmt.name == "dlc":
        from blox_lat.exporters._snpe import export_dlc

        return {**{f"onnx_{k}": v for k, v in check.items()}, **export_dlc(fp32, out, calib, opts["htp_socs"])}
    from blox_lat.exporters._quant import quiet_preprocessing_hint

    with quiet_preprocessing_hint():
        _naive.quantize_int8(fp32, out, calib)
    if not verify:
        return check
    result = _verify.verify_int8(out, _verify.ort_session(fp32), held_out, float(opts["min_top1_agreement"]))
    return {**{f"fp32_{k}": v for k, v in check.items()}, **result}


def _calibration(opts: dict, batch: int) -> tuple[list, list]:
    """(calibration inputs, held-out agreement inputs) as the options ask."""
    from blox_lat.exporters._calib import calibration_inputs

    samples = int(opts["calibration_samples"])
    allow_pickle = opts.get("allow_pickle") == "yes"
    calib = calibration_inputs(opts["calibration"], samples, batch, seed=0, allow_pickle=allow_pickle)
    held_out = calibration_inputs(opts["calibration"], max(8, 32 // batch), batch, seed=1, allow_pickle=allow_pickle)
    return calib, held_out


def _produce_int8_pieces(arch: Arch, batch: int, opts: dict, out: Path, verify: bool,
                         pieces: Path) -> tuple[dict, str]:
    """int8 from per-piece quantisation templates (``_quant``), calibrated per model.

    One fp32 run of the composed model over the verification input, the held-out inputs and the
    calibration inputs stacked gives the PyTorch check (first rows), the agreement baseline and
    the calibration ranges.
    """
    from blox_lat.exporters import _compose, _quant, _verify

    opset = int(opts["opset"])
    calib, held_out = _calibration(opts, batch)
    x = _verify.verification_input(batch)
    try:
        data, logits = _quant.int8_bytes(arch, batch, opset, calib, [x, *held_out], pieces)
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime failures come in many types
        raise ExportError(f"int8 composition of {arch.hash} failed: {exc}") from exc
    written = _write_in_background(out, data)
    try:
        if verify:
            check = _verify.check_close(logits[:batch], _compose.torch_reference(arch)(x), f"ONNX fp32 of {arch.hash}")
            per_input = [logits[(i + 1) * batch:(i + 2) * batch] for i in range(len(held_out))]
            result = _verify.verify_int8(out, per_input, held_out, float(opts["min_top1_agreement"]), data=data)
    finally:
        futures.wait([written])
    sha256 = written.result()
    if not verify:
        return {"verified": False, "quantizer": "pieces"}, sha256
    return {**{f"fp32_{k}": v for k, v in check.items()}, **result, "quantizer": "pieces"}, sha256


def _write_in_background(path: Path, data: bytes) -> futures.Future:
    """Write ``data`` to ``path`` and hash it on a helper thread; the future gives the sha256.

    The ~10 MB write and hash overlap the verification runs instead of adding to them. Callers
    wait for the future before the file is published or its temporary directory removed.
    """
    from blox_lat.exporters import _background

    def write() -> str:
        import hashlib

        Path(path).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    return _background.submit(write)
