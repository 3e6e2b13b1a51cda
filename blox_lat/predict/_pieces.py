"""Block pieces: time the 140 pieces of the space alone and predict whole models from them.

The exporters build every model from 140 pieces (stem, 3 x 45 cells, 3 reductions, head;
``blox_lat.exporters._compose``). :func:`piece_onnx` wraps one piece's graph as a standalone
ONNX model. So that the harness's runners time it unchanged (they feed a ``1 x 3 x 32 x 32``
input), a piece other than the stem is fed through a small adapter (reshape, tile, slice,
reshape) that turns that input into the piece's input shape; the adapter and each
``session.run`` cost about the same for every model, so they land in the calibration's
intercept. :func:`measure_pieces` times pieces on a device through the harness runner.

:func:`from_pieces` predicts ``latency = a + b * sum(pieces of the model)``, with ``a`` (the
per-inference overhead a model pays once but a piece sum pays seven times) and ``b`` fitted on a
handful of whole models (relative least squares; with fewer than 3, ``b = 1``). The result is an
additive table like the fitted one, so it saves, predicts and compares the same way.

Its interval comes from the leave-one-out residuals of those whole models, so it needs at least
``MIN_WHOLE`` of them (:func:`check_whole`): with none or one there is no residual, and the
interval would have zero width. Without whole models :func:`from_pieces` still gives the
uncalibrated piece sum, for comparisons; ``predict pieces fit`` refuses to write it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat._fs import utc_now
from blox_lat.predict._data import TrainingSet
from blox_lat.predict._errors import PiecesError
from blox_lat.predict._features import NUM_BLOCKS, NUM_STAGES, ONEHOT_DIM, blocks_of
from blox_lat.predict._files import write_out
from blox_lat.predict._fit import _provenance, accuracy
from blox_lat.predict._model import Predictor, space_id

PIECES_FORMAT = "blox-lat-pieces"
PIECES_SCHEMA = 1
#: fewest whole models that calibrate a pieces predictor and size its interval
MIN_WHOLE = 3


def check_whole(whole: TrainingSet | None, device: str) -> None:
    """:class:`PiecesError` unless ``whole`` holds at least ``MIN_WHOLE`` models: the piece sum
    counts the per-inference overhead seven times, and only whole models measure its error."""
    n = len(whole) if whole is not None else 0
    if n >= MIN_WHOLE:
        return
    got = f"got {n}" if whole is not None else "got none (--whole)"
    raise PiecesError(f"a pieces predictor needs at least {MIN_WHOLE} whole models of {device!r} to calibrate "
                      f"the overhead and size its interval, and {got}: measure a few (blox-lat predict plan 10 "
                      f"--out whole.txt; blox-lat measure @whole.txt --device {device} --out runs/whole) and pass "
                      "--whole runs/whole")


def all_pieces() -> list[str]:
    """The 140 piece names, as the exporters name them."""
    names = ["stem"]
    for s in range(NUM_STAGES):
        names += [f"cell/{s}/{b}" for b in range(NUM_BLOCKS)] + [f"reduction/{s}"]
    return names + ["head"]


def _shapes(piece: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    kind, _, rest = piece.partition("/")
    if kind == "stem":
        return (1, 3, 32, 32), (1, 32, 32, 32)
    if kind == "head":
        return (1, 256, 4, 4), (1, 100)
    if kind not in ("cell", "reduction") or not rest:
        raise PiecesError(f"unknown piece {piece!r}: use stem, cell/STAGE/BLOCK, reduction/STAGE or head")
    stage = int(rest.split("/")[0])
    if not 0 <= stage < NUM_STAGES:
        raise PiecesError(f"piece {piece!r}: stage must be 0..2")
    c, hw = 32 * 2**stage, 32 // 2**stage
    out = (1, c, hw, hw) if kind == "cell" else (1, 2 * c, hw // 2, hw // 2)
    return (1, c, hw, hw), out


def piece_onnx(piece: str, opset: int = 17) -> bytes:
    """A standalone fp32 ONNX model of one piece (input ``input``, 1 x 3 x 32 x 32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from blox_lat.exporters import onnx_piece as _onnx_piece

    src, dst = _shapes(piece)
    body = onnx.GraphProto()
    body.ParseFromString(_onnx_piece(piece, "piece_in", "piece_out", 1, opset, None))
    graph = onnx.GraphProto(name=piece.replace("/", "_"))
    if piece == "stem":
        graph.node.extend([helper.make_node("Identity", ["input"], ["piece_in"], name="adapter")])
    else:
        need = int(np.prod(src))
        reps = -(-need // 3072)
        consts = {"adapter_flat": [1, 3072], "adapter_reps": [1, reps], "adapter_start": [0],
                  "adapter_end": [need], "adapter_axes": [1], "adapter_shape": list(src)}
        graph.initializer.extend(numpy_helper.from_array(np.asarray(v, dtype=np.int64), k) for k, v in consts.items())
        graph.node.extend([
            helper.make_node("Reshape", ["input", "adapter_flat"], ["adapter_a"], name="adapter_reshape"),
            helper.make_node("Tile", ["adapter_a", "adapter_reps"], ["adapter_b"], name="adapter_tile"),
            helper.make_node("Slice", ["adapter_b", "adapter_start", "adapter_end", "adapter_axes"], ["adapter_c"],
                             name="adapter_slice"),
            helper.make_node("Reshape", ["adapter_c", "adapter_shape"], ["piece_in"], name="adapter_shape"),
        ])
    graph.node.extend(body.node)
    graph.initializer.extend(body.initializer)
    graph.node.extend([helper.make_node("Identity", ["piece_out"], ["output"], name="piece_output")])
    graph.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32]))
    graph.output.append(helper.make_tensor_value_info("output", TensorProto.FLOAT, list(dst)))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return model.SerializeToString()


class _PieceArtifact:
    """What a runner needs of an artifact: a path (and a checksum for remote transports)."""

    def __init__(self, piece: str, path: Path, sha256: str) -> None:
        self.piece, self.path, self.sha256, self.format = piece, path, sha256, "onnx"
        self.model_hash = piece


def _check_device(profile: Any) -> None:
    if profile.runtime != "onnxruntime" or profile.format != "onnx":
        raise PiecesError(f"device {profile.name!r} runs {profile.runtime}/{profile.format}: pieces are built as "
                          "fp32 ONNX only, so use an onnxruntime device with format onnx (e.g. cpu)")


def measure_pieces(pieces: list[str] | None = None, *, device: str = "cpu", protocol: Any = None,
                   runner: Any = None, workdir: str | os.PathLike[str] | None = None,
                   on_piece=None) -> dict:
    """Time ``pieces`` (default all 140) on ``device`` through the harness; a pieces document.

    ``protocol`` is a :class:`blox_lat.harness.TimingProtocol` (default the plain one); pieces
    are timed interleaved in sets of ``protocol.interleave`` when the runner can.
    """
    import hashlib

    from blox_lat.devices import get_device
    from blox_lat.harness import Measurement, TimingProtocol, get_runner

    pieces = list(pieces) if pieces is not None else all_pieces()
    if not pieces:
        raise PiecesError("the piece list names no pieces; give names like stem,cell/0/3,reduction/1,head "
                          "or leave --pieces out to time all 140")
    for p in pieces:
        _shapes(p)
    profile = get_device(device)
    _check_device(profile)
    protocol = protocol or TimingProtocol()
    own = runner is None
    runner = runner or get_runner(profile)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        arts = []
        for p in pieces:
            data = piece_onnx(p)
            path = Path(tmp) / (p.replace("/", "_") + ".onnx")
            path.write_bytes(data)
            arts.append(_PieceArtifact(p, path, hashlib.sha256(data).hexdigest()))
        try:
            size = max(1, int(getattr(protocol, "interleave", 1)))
            for start in range(0, len(arts), size):
                chunk = arts[start:start + size]
                if size > 1 and callable(getattr(runner, "measure_many", None)):
                    raws = runner.measure_many(chunk, profile, protocol)
                else:
                    raws = [runner.measure(a, profile, protocol) for a in chunk]
                for art, raw in zip(chunk, raws):
                    m = Measurement.from_ns(raw.samples_ns, runs_per_group=protocol.runs_per_group,
                                            warmup_runs=raw.warmup_runs, started_at=raw.started_at,
                                            finished_at=raw.finished_at, cv_threshold=protocol.cv_threshold)
                    results[art.piece] = {"latency_ms": m.latency_ms, "cv": m.cv, "noisy": m.noisy,
                                          "median_ms": m.median_ms}
                    if on_piece is not None:
                        on_piece(art.piece, results[art.piece])
        finally:
            if own:
                runner.close()
    return {"format": PIECES_FORMAT, "schema_version": PIECES_SCHEMA, "device": profile.name,
            "setting": {k: v for k, v in profile.to_dict().items() if k != "name"},
            "protocol": protocol.identity(), "measured_at": utc_now(zulu=True),
            "pieces": results}


def save_pieces(doc: dict, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    return write_out(path, json.dumps(doc, indent=1, sort_keys=True) + "\n", overwrite=overwrite)


def load_pieces(path: str | os.PathLike[str]) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PiecesError(f"{path}: not a pieces file ({exc}); make one with 'blox-lat predict pieces measure'") from None
    if not isinstance(doc, dict) or doc.get("format") != PIECES_FORMAT:
        raise PiecesError(f"{path} is not a blox-lat pieces file")
    if not isinstance(doc.get("schema_version"), int) or doc["schema_version"] > PIECES_SCHEMA:
        raise PiecesError(f"{path}: pieces schema {doc.get('schema_version')!r} is newer than this blox-lat reads")
    return doc


def from_pieces(doc: dict, whole: TrainingSet | None = None) -> Predictor:
    """An additive-table predictor from piece latencies, calibrated on ``whole`` models if given
    (at least ``MIN_WHOLE``); without them, the uncalibrated piece sum with a zero-width interval."""
    lat = {k: float(v["latency_ms"]) for k, v in doc["pieces"].items()}
    missing = [p for p in all_pieces() if p not in lat]
    if missing:
        raise PiecesError(f"{len(missing)} of the 140 pieces are not measured ({', '.join(missing[:6])}"
                          f"{' ...' if len(missing) > 6 else ''}); measure them with 'blox-lat predict pieces measure'")
    if whole is not None and whole.device != doc["device"]:
        from blox_lat.predict._errors import MixedInputError

        raise MixedInputError(f"pieces were timed on {doc['device']!r} and the whole models on {whole.device!r}; "
                              "calibrate with whole models of the same device")
    if whole is not None:
        check_whole(whole, doc["device"])
    fixed = lat["stem"] + lat["head"] + sum(lat[f"reduction/{s}"] for s in range(NUM_STAGES))
    cells = np.array([[lat[f"cell/{s}/{b}"] for b in range(NUM_BLOCKS)] for s in range(NUM_STAGES)])

    def sums(blocks: np.ndarray) -> np.ndarray:
        return fixed + sum(cells[s][blocks[:, s]] for s in range(NUM_STAGES))

    a, b, scores, figures = 0.0, 1.0, np.zeros(1), {}
    if whole is not None and len(whole):
        blocks = blocks_of(whole.indices)
        s, y = sums(blocks), whole.latency_ms
        a, b = _calibrate(s, y)
        loo = np.array([_calibrate(np.delete(s, i), np.delete(y, i)) for i in range(len(y))]) if len(y) > 1 else None
        pred = loo[:, 0] + loo[:, 1] * s if loo is not None else a + b * s
        scores = np.log(y / np.maximum(pred, 1e-9))
        figures = {"pieces": {**accuracy(y, np.maximum(pred, 1e-9)), "models": len(y),
                              "validation": "leave-one-out over the calibration models"},
                   "uncalibrated": accuracy(y, s)}
    model = {"space": "ms", "intercept": float(a + b * fixed), "costs": b * cells}
    training = whole.summary() if whole is not None else {"models": 0}
    return Predictor(doc["device"], dict(doc.get("setting") or {}), doc.get("protocol"), "raw", "pieces", model,
                     np.zeros((ONEHOT_DIM, ONEHOT_DIM)), np.sort(scores),
                     {**training, "indices": whole.indices.tolist() if whole is not None else []},
                     {"chosen": "pieces", "families": figures, "calibration": {"a_ms": a, "b": b}}, "pieces",
                     {**_provenance(), "pieces_measured_at": doc.get("measured_at")}, space_id())


def _calibrate(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``y ~ a + b * s`` for relative error; ``b = 1`` with fewer than 3 models."""
    if len(y) < 3:
        return float(np.mean(y - s)), 1.0
    w = 1.0 / y
    (a, b), *_ = np.linalg.lstsq(np.stack([w, s * w], axis=1), y * w, rcond=None)
    return float(a), float(b)
