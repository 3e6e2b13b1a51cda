"""The ``onnxruntime`` runtime: CPUExecutionProvider, sequential execution (``onnx``, ``onnx-int8``)."""

from __future__ import annotations

from typing import Any

from blox_lat.harness._runtime import RuntimeSpec, RuntimeUnavailableError, input_array

__all__ = ["RUNTIME", "session_options"]


def session_options(options: dict[str, Any]) -> Any:
    """The ``SessionOptions`` a profile's options give (also what the per-layer profiler uses)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(options.get("threads", 1))
    so.inter_op_num_threads = int(options.get("inter_op_threads", 1))
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    level = str(options.get("graph_optimization", "all"))
    if level not in levels:
        raise RuntimeUnavailableError(
            f"graph_optimization {level!r} unknown: use one of {', '.join(levels)}"
        )
    so.graph_optimization_level = levels[level]
    return so


def _load(path: str, options: dict[str, Any], batch: int, input_size: int):
    import onnxruntime as ort

    so = session_options(options)
    session = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: input_array(batch, input_size)}
    run = session.run

    def run_once() -> Any:
        return run(None, feed)

    facts = {"runtime": "onnxruntime", "onnxruntime": ort.__version__, "threads": so.intra_op_num_threads}
    return run_once, facts


RUNTIME = RuntimeSpec(
    name="onnxruntime",
    formats=("onnx", "onnx-int8"),
    options={"threads": 1, "inter_op_threads": 1, "graph_optimization": "all"},
    description="onnxruntime CPUExecutionProvider, sequential execution",
    load=_load,
)
