"""The measurement worker: ``python -m blox_lat.harness._worker [--serve]``.

Requests and answers are single JSON lines. One-shot mode (the default, what a remote
transport runs) reads one request from stdin and writes one answer to stdout. ``--serve``
(the local fast path) answers requests until stdin closes, so the interpreter and runtime
imports are paid once per campaign rather than once per model.

The protocol channel is a private duplicate of the original stdout; file descriptor 1 is
pointed at stderr so that anything a runtime prints cannot corrupt an answer. SIGINT is ignored
(the campaign decides when to stop and kills us); on Linux we also ask to be killed when the
parent dies, so a SIGKILLed campaign leaves no worker burning CPU behind it.

Request: ``{"op": "measure", "runtime", "artifact_path", "options", "batch", "input_size",
"affinity", "protocol": {groups, runs_per_group, warmup_min_runs, warmup_min_s}}`` or
``{"op": "probe"}``, or ``{"op": "profile", ...}`` (a measure request plus ``profile_runs``:
load time, first inference, peak memory and per-layer times, see ``_layerprof``).
Answer: ``{"ok": true, "raw": RawRun.to_dict()}`` / ``{"ok": true, "profile": {...}}`` /
``{"ok": true, "facts": {...}}`` or ``{"ok": false, "error": "<type>: <message>"}``.
A ``measure-many`` request with ``"progress": true`` is also answered, before its final line,
by one ``{"progress": {"round": r, "rounds": R}}`` line per finished round; with
``"round_samples": true`` each such line also carries ``"raws"``, that round's own samples per
model (so that the campaign can keep every finished round). ``"start_round": k`` times only
rounds ``k+1 ..`` of the set (a set resumed after a kill).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
from typing import Any, Callable, TextIO


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def probe() -> dict[str, Any]:
    """Facts about the runtimes available in this process (no model loaded)."""
    from importlib import metadata

    facts: dict[str, Any] = {"python": platform.python_version(), "pid": os.getpid(), "worker": __file__}
    for dist in ("onnxruntime", "torch", "numpy"):
        try:
            facts[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            facts[dist] = None
    return facts


def handle(request: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None = None
           ) -> dict[str, Any]:
    """Answer one request; ``progress`` receives the progress lines a request asks for."""
    from blox_lat.harness._timing import measure_request, measure_request_many

    op = request.get("op", "measure")
    try:
        if op == "probe":
            return {"ok": True, "facts": probe()}
        if op == "measure":
            import time

            start = time.perf_counter()
            raw = measure_request(request).to_dict()
            raw["facts"]["handle_s"] = round(time.perf_counter() - start, 6)  # load + warm-up + runs
            return {"ok": True, "raw": raw}
        if op == "profile":
            from blox_lat.harness._layerprof import profile_request

            return {"ok": True, "profile": profile_request(request)}
        if op == "measure-many":
            on_round = on_round_raws = None
            if request.get("progress") and progress is not None and request.get("round_samples"):
                def on_round_raws(done: int, rounds: int, raws: list[Any]) -> None:
                    progress({"progress": {"round": done, "rounds": rounds, "raws": [r.to_dict() for r in raws]}})
            elif request.get("progress") and progress is not None:
                def on_round(done: int, rounds: int) -> None:
                    progress({"progress": {"round": done, "rounds": rounds}})
            raws = measure_request_many(request, on_round, on_round_raws)
            return {"ok": True, "raws": [r.to_dict() for r in raws]}
        return {"ok": False, "error": f"ValueError: unknown op {op!r}"}
    except Exception as exc:  # a model that fails to load or run fails that model, reported
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _answer(channel: TextIO, answer: dict[str, Any]) -> None:
    channel.write(json.dumps(answer, separators=(",", ":")) + "\n")
    channel.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    serve = "--serve" in argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            _answer(channel, {"ok": False, "error": f"JSONDecodeError: {exc}"})
        else:
            _answer(channel, handle(request, lambda line: _answer(channel, line)))
        if not serve:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
