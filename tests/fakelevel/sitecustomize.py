"""A test-only runtime for the measurement worker: a model whose inference sleeps for
``level x true_ms``, where the level is read from a file when the model is loaded.

Put this directory on the worker's PYTHONPATH (``LocalWorkerRunner(env=...)``): Python imports
``sitecustomize`` at start-up, and this one wraps the worker's loader so that a ``*.json``
artifact (``{"true_ms": t, "level_file": path}``) loads as such a model; every other
artifact loads as usual. Each interleaved set loads its models afresh, so a test programs one
level per set by rewriting the level file between sets.
"""

import json
import time

from blox_lat.harness import _timing

_real_load = _timing.load_callable


def _load(runtime, path, options, *, batch, input_size):
    if not str(path).endswith(".json"):  # a remote runner names it <sha256>.json
        return _real_load(runtime, path, options, batch=batch, input_size=input_size)
    spec = json.loads(open(path).read())
    level = float(open(spec["level_file"]).read())
    seconds = level * float(spec["true_ms"]) / 1000.0
    sleep = time.sleep

    def run_once():
        sleep(seconds)

    return run_once, {"runtime": "fake-level", "level": level}


_timing.load_callable = _load
