"""Verification on export: every artifact is run and compared with the PyTorch model.

Failures raise :class:`VerificationError`; they are never warnings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blox_lat.exporters._errors import VerificationError

MAX_REL_ERR = 1e-4
#: TorchScript graphs are batch-agnostic; check them on this many images at most (CPU time)
TS_VERIFY_BATCH = 4


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Max absolute difference relative to the largest reference magnitude."""
    scale = max(float(np.max(np.abs(want))), 1e-12)
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale


def verification_input(batch: int, seed: int = 1234) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 32, 32), dtype=np.float32)


def ort_session(path: Path | str | bytes, optimize: bool = False, threads: int = 1):
    """A CPU session (``threads`` 0: one per core); ``optimize`` turns on every graph
    optimisation (slower to create, several times faster per run: worth it for batched runs)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), so, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, x: np.ndarray) -> np.ndarray:
    sess = path_or_session if hasattr(path_or_session, "run") else ort_session(path_or_session)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def check_close(got: np.ndarray, want: np.ndarray, what: str) -> dict:
    if got.shape != want.shape:
        raise VerificationError(f"{what}: output shape {got.shape} != PyTorch {want.shape}; re-export it")
    if not np.all(np.isfinite(got)):
        raise VerificationError(f"{what}: output has NaN/inf; re-export it")
    err = rel_err(got, want)
    if not err <= MAX_REL_ERR:
        raise VerificationError(f"{what}: relative max error {err:.3g} > {MAX_REL_ERR:g} against PyTorch; re-export it")
    return {"max_rel_err": err, "verify_batch": int(got.shape[0])}


def torch_reference(arch, x: np.ndarray) -> np.ndarray:
    import torch

    from blox_lat.exporters._weights import seeded_model

    with torch.no_grad():
        return seeded_model(arch)(torch.from_numpy(x)).numpy()


def verify_onnx_fp32(path: Path, arch, batch: int, reference=None, data: bytes | None = None) -> dict:
    """Run the model at ``path`` (or its bytes ``data``, already in memory) against PyTorch."""
    from concurrent import futures

    from blox_lat.exporters import _background

    x = verification_input(batch)
    # the PyTorch run goes on a helper thread while onnxruntime runs here: both release the GIL
    want = _background.submit(reference if reference is not None else (lambda v: torch_reference(arch, v)), x)
    try:
        got = run_onnx(data if data is not None else path, x)
    except Exception as exc:  # onnxruntime failures come in many types
        futures.wait([want])
        raise VerificationError(f"onnxruntime cannot run {path.name}: {exc}") from exc
    return check_close(got, want.result(), f"ONNX {path.name}")


def verify_torchscript(path: Path, arch, batch: int, reference=None) -> dict:
    import torch

    x = verification_input(min(batch, TS_VERIFY_BATCH))
    want = reference(x) if reference is not None else torch_reference(arch, x)
    try:
        loaded = torch.jit.load(str(path))
        with torch.no_grad():
            got = loaded(torch.from_numpy(x)).numpy()
    except Exception as exc:  # torch.jit raises RuntimeError and friends
        raise VerificationError(f"torch.jit.load/run of {path.name} failed: {exc}") from exc
    return check_close(got, want, f"TorchScript {path.name}")


def verify_int8(int8_path: Path, fp32, inputs: list[np.ndarray], min_agreement: float, data: bytes | None = None) -> dict:
    """Top-1 agreement of the int8 model with fp32 on held-out inputs; also checks int8 ops exist.

    ``fp32`` is an onnxruntime session of the fp32 model, or its logits for ``inputs`` (a list of
    arrays, one per input) computed beforehand in one batched call. ``data``: the model's bytes,
    when they are in memory already.
    """
    import onnx

    model = onnx.load_from_string(data) if data is not None else onnx.load(str(int8_path), load_external_data=False)
    qops = sum(1 for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv"))
    if qops == 0:
        raise VerificationError(f"{int8_path.name} has no quantised operators; quantisation did not happen")
    try:
        # the int8 kernels a device runs (QDQ fused); every core: int8 runs at batch 1 are ~1.5x
        # faster on two threads (fp32 ones are not), and these 32 runs are most of an int8 export
        sess = ort_session(data if data is not None else int8_path, optimize=True, threads=0)
        agree = total = 0
        for i, x in enumerate(inputs):
            a = np.argmax(run_onnx(sess, x), axis=1)
            want = fp32[i] if isinstance(fp32, list) else run_onnx(fp32, x)
            b = np.argmax(want, axis=1)
            agree += int(np.sum(a == b))
            total += a.size
    except Exception as exc:  # onnxruntime failures come in many types
        raise VerificationError(f"onnxruntime cannot run {int8_path.name}: {exc}") from exc
    agreement = agree / max(total, 1)
    if agreement < min_agreement:
        raise VerificationError(
            f"{int8_path.name}: int8 top-1 agreement {agreement:.3f} with fp32 is below {min_agreement}; "
            "calibrate with more/real data (calibration=<cifar path>, calibration_samples=N) or lower min_top1_agreement"
        )
    return {"top1_agreement": agreement, "agreement_inputs": total, "quant_ops": qops}
