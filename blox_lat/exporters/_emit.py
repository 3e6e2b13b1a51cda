"""Emit a piece's ONNX graph straight from its PyTorch modules (no ``torch.onnx.export``).

A Blox piece uses six module kinds: ``ConvBnRelu``, ``nn.Sequential``, ``Residual``,
``SqueezeExcitation``, ``Cell``, ``Reduction`` (plus the head's pool + linear). For each we write
exactly the nodes the legacy exporter writes for it in eval mode: Conv with the BatchNorm folded
into its weights (``w * gamma / sqrt(var + eps)``, ``(b - mean) * gamma / sqrt(var + eps) +
beta``), Relu, Add, GlobalAveragePool, Sigmoid, Mul, Slice for the reduction's crop, Flatten and
Gemm for the head. ``torch.onnx.export`` spends ~0.5 s per piece tracing and optimising; this
takes milliseconds, which is what makes a cold export (no piece cache) fast. Every exported
model is still verified against the PyTorch model, and a test checks the emitted graph against a
direct export (same operators, same parameter count, same outputs).
"""

from __future__ import annotations

import numpy as np

__all__ = ["emit_piece"]


class _Graph:
    def __init__(self, prefix: str) -> None:
        import onnx

        self.onnx = onnx
        self.prefix = prefix
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, what: str) -> str:
        self._n += 1
        return f"{self.prefix}{what}_{self._n}"

    def const(self, array: np.ndarray, what: str) -> str:
        from onnx import numpy_helper

        name = self.name(what)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv(g: _Graph, x: str, conv, bn=None) -> str:
    w = conv.weight.detach().double().numpy()
    b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w.shape[0])
    if bn is not None:
        scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
        w = w * scale[:, None, None, None]
        b = (b - bn.running_mean.detach().double().numpy()) * scale + bn.bias.detach().double().numpy()
    kh, kw = conv.kernel_size
    ph, pw = conv.padding
    return g.node(
        "Conv", [x, g.const(w.astype(np.float32), "w"), g.const(b.astype(np.float32), "b")],
        dilations=list(conv.dilation), group=conv.groups, kernel_shape=[kh, kw],
        pads=[ph, pw, ph, pw], strides=list(conv.stride),
    )


def _emit(g: _Graph, module, x: str) -> str:
    from torch import nn

    from blox_lat.space import Cell, ConvBnRelu, Reduction, Residual, SqueezeExcitation

    if isinstance(module, ConvBnRelu):
        conv, bn, _relu = module
        return g.node("Relu", [_conv(g, x, conv, bn)])
    if isinstance(module, Residual):
        return g.node("Add", [x, _emit(g, module.body, x)])
    if isinstance(module, SqueezeExcitation):
        s = g.node("GlobalAveragePool", [x])
        s = g.node("Relu", [_conv(g, s, module.fc1)])
        s = g.node("Sigmoid", [_conv(g, s, module.fc2)])
        return g.node("Mul", [x, s])
    if isinstance(module, Cell):
        a = _emit(g, module.op0, x) if module.op0 is not None else x
        if module.op1 is None:
            return a
        z = g.node("Add", [a, x]) if module.prev and module.use_input else (a if module.prev else x)
        b = _emit(g, module.op1, z)
        return g.node("Add", [b, a]) if module.skip else b
    if isinstance(module, Reduction):
        main = _emit(g, module.main, x)
        if module.crop:
            hw = np.array([module.out_hw, module.out_hw], dtype=np.int64)
            main = g.node("Slice", [main, g.const(np.zeros(2, np.int64), "starts"), g.const(hw, "ends"),
                                    g.const(np.array([2, 3], np.int64), "axes")])
        return g.node("Add", [main, _emit(g, module.proj, x)])
    if isinstance(module, nn.Sequential):
        for sub in module:
            x = _emit(g, sub, x)
        return x
    if hasattr(module, "classifier") and hasattr(module, "pool"):  # the head piece
        h = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
        lin = module.classifier
        return g.node("Gemm", [h, g.const(lin.weight.detach().numpy().astype(np.float32), "w"),
                               g.const(lin.bias.detach().numpy().astype(np.float32), "b")],
                      alpha=1.0, beta=1.0, transB=1)
    raise TypeError(f"the ONNX emitter does not know {type(module).__name__}")


def emit_piece(module, prefix: str, src: str, dst: str) -> bytes:
    """Serialized GraphProto (nodes + initializers) of ``module`` reading ``src``, writing ``dst``."""
    import onnx

    g = _Graph(prefix)
    out = _emit(g, module, src)
    if out == src:
        raise ValueError(f"piece {prefix!r} computes nothing (output is its input)")
    for node in g.nodes:  # the last producer of `out` writes the boundary tensor instead
        node.output[:] = [dst if o == out else o for o in node.output]
        node.input[:] = [dst if i == out else i for i in node.input]
    graph = onnx.GraphProto()
    graph.node.extend(g.nodes)
    graph.initializer.extend(g.inits)
    return graph.SerializeToString()
