"""Direct (per-model) exporters: build the model, then torch.onnx / torch.jit / onnxruntime.

These are the reference implementations: simple, slow (0.5-2 s per model) and obviously right.
The fast paths in ``_compose`` must produce models whose outputs match these.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from blox_lat.exporters._errors import ExportError
from blox_lat.space import Arch

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx_module(module, path: Path, batch: int, opset: int, in_shape=(3, 32, 32)) -> None:
    """``torch.onnx.export(dynamo=False)`` of an eval-mode module with a fixed batch."""
    import torch

    example = torch.zeros((batch, *in_shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def export_onnx(arch: Arch, path: Path, batch: int, opset: int = 17) -> None:
    from blox_lat.exporters._weights import seeded_model

    export_onnx_module(seeded_model(arch), path, batch, opset)


def export_torchscript(arch: Arch, path: Path, batch: int) -> None:
    """Trace with a batch-``batch`` input, freeze, save (loadable with ``torch.jit.load``)."""
    import torch

    from blox_lat.exporters._weights import seeded_model

    model = seeded_model(arch)
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(batch, 3, 32, 32))
        frozen = torch.jit.freeze(traced.eval())
    torch.jit.save(frozen, str(path))


class _Reader:
    """An onnxruntime CalibrationDataReader over a list of arrays."""

    def __init__(self, inputs: Sequence[np.ndarray], name: str = INPUT_NAME):
        self._it = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self._it, None)


def quantize_int8(fp32_path: Path, out_path: Path, calibration: Sequence[np.ndarray], input_name: str = INPUT_NAME,
                  ranges: dict[str, tuple[float, float]] | None = None) -> None:
    """onnxruntime ``quantize_static``: QDQ, per-channel int8 weights, int8 activations, MinMax.

    ``ranges`` fixes the calibration range of named tensors (``TensorQuantOverrides``).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    try:
        quantize_static(
            str(fp32_path),
            str(out_path),
            _Reader(calibration, input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"TensorQuantOverrides": {
                name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in (ranges or {}).items()
            }} if ranges else None,
        )
    except Exception as exc:  # onnxruntime raises bare Exceptions of many types
        raise ExportError(f"onnxruntime quantize_static failed on {fp32_path.name}: {exc}") from exc
