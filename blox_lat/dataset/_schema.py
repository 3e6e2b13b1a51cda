"""Release schema: section kinds, their columns (types and units) and section names.

Schema history (``RELEASE_SCHEMA``):

1. first version.
2. per-epoch columns (``acc_epochs``, ``loss_epochs``) are stored as one fixed-size binary cell
   per row (the epochs' little-endian float32/float64 values) instead of a Parquet fixed-size
   list, which decodes ~7x faster; readers return them as fixed-size lists either way, and
   schema 1 releases keep loading.
3. integrity: sections are written with Parquet page checksums (CRC32 of every page), verified
   on every read, so a flipped bit is an error rather than a wrong value; ``dataset.json`` holds
   ``manifest_sha256``, the sha256 of its own canonical JSON (``manifest_digest``) without that
   field, checked on every open and by ``verify``. The data layout is schema 2's; schema 1 and 2
   releases (no checksums, no digest) keep loading.
4. ``bench/<device>`` gains ``level`` and ``latency_corrected_ms``: the level of the set that
   timed the model (from its anchor models) and the protocol latency divided by it; null for
   models measured without anchors. Releases of schema 1-3 have no such columns: the API reads
   them as null (``latency(..., corrected=True)`` is None).
5. ``pred/<device>`` sections: a predictor's latency for every model (``pred_ms``, its interval
   ``lo_ms``/``hi_ms``, ``measured``, ``method``), the predictor's description as metadata. A
   new optional kind; the other sections are schema 4's, and releases of schema 1-4 keep loading.
6. ``bench/<device>`` gains ``latency_se_ms`` and ``latency_corrected_se_ms``: the standard
   errors of the protocol latency (from its group means) and of the level-corrected latency (adding
   the level's own, from the anchors' scatter, and for campaigns rescaled onto the device's
   reference the rescaling's); ``level``, ``latency_corrected_ms`` and both errors are what
   :func:`blox_lat.harness.stand` gives for the standing record. Releases of schema 1-5 have no
   such columns: readers take them as null.
7. ``profile/<device>`` sections (``dataset build --profile DIR``): one row per profiled model
   with load time, first inference, peak memory, the protocol latency of the profile run, the
   profiler's overhead, one time column per piece of the model (``stem_ms``, ``block_s0_ms`` ..
   ``head_ms``) and the layers as a list of structs (``layerlist``). A new optional kind; the
   other sections are schema 6's, and releases of schema 1-6 keep loading.

Every model-keyed section has one row per model, keyed by ``model_hash`` with ``model_index``
alongside, rows sorted by ``model_index``. Missing values are nulls, never -1.

=========================== ===========================================================
section                     content
=========================== ===========================================================
``static``                  ``arch_vec`` (15 int8, the canonical vector flattened stage by
                            stage as ``op0, op1, prev, input, skip``), ``params``, ``flops``
``bench/<device>``          the protocol latency (ms) plus median, mean, min, std, IQR (ms),
                            cv, rel_iqr, run counts, noise flag and flags, status/reason,
                            where it came from, and its set's level and level-corrected
                            latency (null without anchors), with the standard errors of both
                            latencies; the device setting (runtime, format, precision,
                            batch, input size...) is the section metadata
``bench-raw/<device>``      raw samples and group means (ms), optional
``base/<seed>``             ``val_top1`` per epoch, ``test_top1``, ``train_time_s``
``ext/<seed>``              ``train_top1``, ``train_top5``, ``train_loss``, ``val_top5``,
                            ``val_loss`` per epoch, ``test_top5``, ``test_loss``
``env/<seed>``              python, torch, gpu, driver, codebase, seed of the training run
``distill/<teacher>/<E>``   per-stage block distillation losses and accuracy deltas and
                            their sums (DONNA score: ``loss_sum``; LANA: ``delta_sum``)
``finetune/<teacher>/<E>``  the ``base`` and ``ext`` metrics of the fine-tuned student
``measure-env/<device>``    the measurement campaigns' environment records (key ``env_id``)
``pred/<device>``           predicted latency (ms) and its interval, whether the model was in
                            the training set, and the method; never a measurement (the
                            predictor's description is the section metadata)
``profile/<device>``        per-layer profiles (``blox-lat profile``): load, first inference,
                            peak memory, protocol latency of the profile run, profiler
                            overhead, time per piece of the model and every layer
=========================== ===========================================================

Accuracies are percentages rounded to 3 decimals and stored as float32 (exact at that
precision); losses are rounded to 6 decimals and stored as float64, as in the Blox release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from blox_lat.dataset._errors import InputError, UnknownSectionError

__all__ = [
    "FORMAT",
    "KINDS",
    "LAYER_FIELDS",
    "MANIFEST",
    "MANIFEST_DIGEST_SINCE",
    "PROFILE_PIECES",
    "RELEASE_SCHEMA",
    "Column",
    "check_device_name",
    "columns_of",
    "key_column",
    "kind_of",
    "manifest_digest",
    "search_space_record",
    "section_file",
    "validate_section_name",
]

RELEASE_SCHEMA = 7
#: the first schema whose manifest must carry ``manifest_sha256``
MANIFEST_DIGEST_SINCE = 3
FORMAT = "blox-lat-dataset"
MANIFEST = "dataset.json"

ACC_DECIMALS = 3
LOSS_DECIMALS = 6


@dataclass(frozen=True)
class Column:
    """One column: ``type`` is an abbreviation turned into an Arrow type by the writer.

    Types: ``str``, ``i8x15`` (fixed list), ``i32``, ``i64``, ``f64``, ``bool``, ``strlist``,
    ``acc_epochs`` (fixed list of float32 per epoch), ``loss_epochs`` (fixed list of float64),
    ``f64list`` (variable list of float64), ``json`` (a JSON document as text), ``layerlist``
    (a list of structs, one per profiled layer: :data:`LAYER_FIELDS`).
    """

    name: str
    type: str
    unit: str | None = None
    description: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "unit": self.unit, "description": self.description}


_KEY = [
    Column("model_hash", "str", None, "model hash (32 hex digits), the row key"),
    Column("model_index", "i32", None, "model index 0..91124"),
]

_BENCH = [
    Column("latency_ms", "f64", "ms", "the protocol's latency: two-level inter-quartile mean"),
    Column("median_ms", "f64", "ms", "median of all samples"),
    Column("mean_ms", "f64", "ms", "mean of all samples"),
    Column("min_ms", "f64", "ms", "fastest sample"),
    Column("std_ms", "f64", "ms", "standard deviation of all samples"),
    Column("iqr_ms", "f64", "ms", "inter-quartile range of all samples"),
    Column("cv", "f64", "ratio", "coefficient of variation std/mean"),
    Column("rel_iqr", "f64", "ratio", "iqr/median"),
    Column("group_cv", "f64", "ratio", "coefficient of variation of the group means"),
    Column("runs", "i32", "count", "timed runs (groups x runs per group)"),
    Column("groups", "i32", "count", "groups of the two-level trimmed mean"),
    Column("runs_per_group", "i32", "count", "consecutive runs per group"),
    Column("warmup_runs", "i32", "count", "warm-up runs before timing"),
    Column("noisy", "bool", None, "cv above the campaign threshold"),
    Column("flags", "strlist", None, "noise/quality flags from the harness"),
    Column("status", "str", None, "ok or failed (failed rows have null timings)"),
    Column("reason", "str", None, "why the measurement failed"),
    Column("attempts", "i32", "count", "attempts the harness made"),
    Column("records", "i32", "count", "journal records seen for this model (duplicates rule)"),
    Column("env_id", "str", None, "environment record (measure-env section)"),
    Column("campaign_id", "str", None, "campaign that produced the row"),
    Column("recorded_at", "str", "ISO 8601", "when the measurement was journaled"),
    Column("level", "f64", "ratio", "level of the set that timed the model, from its anchors (null: no anchors)"),
    Column("latency_corrected_ms", "f64", "ms", "latency_ms / level: comparable across sets (null: no anchors)"),
    Column("latency_se_ms", "f64", "ms", "standard error of latency_ms, from its group means (null: under 2 groups)"),
    Column("latency_corrected_se_ms", "f64", "ms",
           "standard error of latency_corrected_ms, with the level's (null: no corrected latency or no latency_se_ms)"),
]

_BENCH_RAW = [
    Column("samples_ms", "f64list", "ms", "every timed run in order"),
    Column("group_means_ms", "f64list", "ms", "trimmed mean of each group"),
]

_BASE = [
    Column("val_top1", "acc_epochs", "%", "top-1 validation accuracy per epoch"),
    Column("test_top1", "f64", "%", "final top-1 test accuracy"),
    Column("train_time_s", "i64", "s", "training time, whole seconds"),
]

_EXT = [
    Column("train_top1", "acc_epochs", "%", "top-1 training accuracy per epoch"),
    Column("train_loss", "loss_epochs", "nats", "training loss per epoch"),
    Column("train_top5", "acc_epochs", "%", "top-5 training accuracy per epoch"),
    Column("val_loss", "loss_epochs", "nats", "validation loss per epoch"),
    Column("val_top5", "acc_epochs", "%", "top-5 validation accuracy per epoch"),
    Column("test_loss", "f64", "nats", "final test loss"),
    Column("test_top5", "f64", "%", "final top-5 test accuracy"),
]

_ENV = [
    Column("python", "str", None, "Python version"),
    Column("torch", "str", None, "PyTorch version"),
    Column("gpu", "str", None, "GPU model"),
    Column("driver", "str", None, "GPU driver version"),
    Column("codebase", "str", None, "training code version"),
    Column("seed", "i64", None, "random seed"),
]

_DISTILL = [
    *(Column(f"loss_s{s}", "f64", "mse", f"distillation loss of the stage-{s} block") for s in range(3)),
    Column("loss_sum", "f64", "mse", "sum of the three block losses (DONNA score)"),
    *(Column(f"delta_s{s}", "f64", "%", f"accuracy delta of the stage-{s} block") for s in range(3)),
    Column("delta_sum", "f64", "%", "sum of the three accuracy deltas (LANA score); null if any is null"),
    Column("seed", "i64", None, "seed of the distillation run"),
]

_FINETUNE = [
    Column("seed", "i64", None, "seed of the fine-tuning run"),
    *(_BASE),
    *(_EXT),
]

_MEASURE_ENV = [
    Column("env_id", "str", None, "environment id, the row key"),
    Column("campaign_id", "str", None, "campaign id"),
    Column("recorded_at", "str", "ISO 8601", "when the environment was recorded"),
    Column("host", "str", None, "host name"),
    Column("device", "str", None, "device profile name"),
    Column("os", "str", None, "operating system"),
    Column("cpu", "json", None, "CPU facts (JSON)"),
    Column("versions", "json", None, "software versions (JSON)"),
    Column("device_facts", "json", None, "device facts (JSON)"),
    Column("record", "json", None, "the whole journal record (JSON, sorted keys)"),
]

_STATIC = [
    Column("arch_vec", "i8x15", None, "canonical architecture vector, flattened"),
    Column("params", "i64", "count", "trainable parameters"),
    Column("flops", "i64", "FLOPs", "floating point operations, 2 x MACs"),
]

_PRED = [
    Column("pred_ms", "f64", "ms", "predicted latency (not a measurement)"),
    Column("lo_ms", "f64", "ms", "lower end of the calibrated interval (level in the metadata)"),
    Column("hi_ms", "f64", "ms", "upper end of the calibrated interval"),
    Column("measured", "bool", None, "the model was in the predictor's training set"),
    Column("method", "str", None, "fit | pieces | transfer, with the family: e.g. fit/additive"),
]

#: the struct fields of a ``layerlist`` cell, in order: (name, Arrow type abbreviation)
LAYER_FIELDS = (("name", "str"), ("op_type", "str"), ("provider", "str"), ("piece", "str"), ("stage", "i32"),
                ("block", "str"), ("ms", "f64"), ("mapped_by", "str"))

#: the pieces of a model whose profiled times are columns of ``profile/<device>``, in data-flow order
PROFILE_PIECES = (("stem", "stem"), ("block_s0", "cell/0"), ("reduction_s0", "reduction/0"), ("block_s1", "cell/1"),
                  ("reduction_s1", "reduction/1"), ("block_s2", "cell/2"), ("reduction_s2", "reduction/2"),
                  ("head", "head"))

_PROFILE = [
    Column("status", "str", None, "ok or failed (failed rows have null numbers)"),
    Column("reason", "str", None, "why the profile failed"),
    Column("latency_ms", "f64", "ms", "protocol latency of the profile run, profiler off"),
    Column("load_ms", "f64", "ms", "the runtime's load of the artifact (session creation)"),
    Column("first_inference_ms", "f64", "ms", "the first inference after loading"),
    Column("peak_memory_mib", "f64", "MiB", "resident-set high-water mark less the resident set before loading"),
    Column("peak_memory_how", "str", None, "how the peak was read: VmHWM or ru_maxrss"),
    Column("gpu_peak_memory_mib", "f64", "MiB", "CUDA max_memory_allocated (null off CUDA)"),
    Column("profiled_ms", "f64", "ms", "median wall time of one inference with the profiler on"),
    Column("overhead", "f64", "ratio", "profiled_ms / latency_ms - 1: the profiler's own cost"),
    Column("layers_ms", "f64", "ms", "sum of every layer's time (profiler on)"),
    *(Column(f"{col}_ms", "f64", "ms", f"summed time of the layers of the {piece} piece (null: none mapped)")
      for col, piece in PROFILE_PIECES),
    Column("unmapped_ms", "f64", "ms", "summed time of the layers mapped to no piece"),
    *(Column(f"block_s{s}", "str", None, f"name of the stage-{s} block") for s in range(3)),
    Column("layers", "layerlist", None, "every layer in execution order: name, op_type, provider, piece, stage, "
           "block, ms, mapped_by"),
    Column("profile_runs", "i32", "count", "profiled runs (and the protocol's timed runs)"),
    Column("records", "i32", "count", "profile records seen for this model (duplicates rule)"),
    Column("created_at", "str", "ISO 8601", "when the profile was journaled"),
]

KINDS: dict[str, list[Column]] = {
    "static": _KEY + _STATIC,
    "bench": _KEY + _BENCH,
    "bench-raw": _KEY + _BENCH_RAW,
    "base": _KEY + _BASE,
    "ext": _KEY + _EXT,
    "env": _KEY + _ENV,
    "distill": _KEY + _DISTILL,
    "finetune": _KEY + _FINETUNE,
    "measure-env": _MEASURE_ENV,
    "pred": _KEY + _PRED,
    "profile": _KEY + _PROFILE,
}

#: number of name parts after the kind
_ARITY = {"static": 0, "bench": 1, "bench-raw": 1, "base": 1, "ext": 1, "env": 1,
          "distill": 2, "finetune": 2, "measure-env": 1, "pred": 1, "profile": 1}

_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


@lru_cache(maxsize=4096)  # called once per input record: a build checks the same few names
def validate_section_name(name: str) -> str:
    """Check ``name`` against the section grammar and return it."""
    parts = name.split("/") if isinstance(name, str) else []
    if not parts or parts[0] not in KINDS:
        raise UnknownSectionError(
            f"{name!r} is not a section name; sections are {', '.join(_templates())}"
        )
    arity = _ARITY[parts[0]]
    if len(parts) != arity + 1 or not all(_PART_RE.fullmatch(p) for p in parts[1:]):
        raise UnknownSectionError(
            f"{name!r} is not a valid section name; expected {_templates()[list(KINDS).index(parts[0])]} "
            "with parts made of letters, digits, '.', '_', '+', '-'"
        )
    return name


def check_device_name(name: str, option: str = "--record-as") -> str:
    """A device name a campaign records (``measure --record-as``): it names the ``runs/NAME``
    folder and the release's ``bench/NAME`` section, so it must be one section-name part
    (letters, digits, '.', '_', '+', '-'; no '/', no '..'). Returns it; raises :class:`InputError`."""
    if not isinstance(name, str) or not _PART_RE.fullmatch(name):
        raise InputError(f"{option} {name!r} is not a device name: use 1-100 letters, digits, '.', '_', '+' or '-', "
                         "starting with a letter or digit (it names runs/NAME and the release's bench/NAME)")
    return name


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces, UTF-8), leaving out its
    own ``manifest_sha256`` field: the value that field holds."""
    import hashlib
    import json

    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _templates() -> list[str]:
    names = {"bench": "<device>", "bench-raw": "<device>", "measure-env": "<device>", "pred": "<device>",
             "profile": "<device>",
             "base": "<seed>", "ext": "<seed>", "env": "<seed>",
             "distill": "<teacher>/<epochs>", "finetune": "<teacher>/<epochs>"}
    return [k if k not in names else f"{k}/{names[k]}" for k in KINDS]


def kind_of(name: str) -> str:
    return name.split("/", 1)[0]


def columns_of(name: str) -> list[Column]:
    return KINDS[kind_of(name)]


def key_column(name: str) -> str:
    return "env_id" if kind_of(name) == "measure-env" else "model_hash"


def section_file(name: str) -> str:
    """Path of a section's Parquet file inside a release (``sections/bench/cpu.parquet``)."""
    return f"sections/{name}.parquet"


def search_space_record() -> dict:
    """What a release says about its search space; readers refuse any other."""
    from blox_lat import space as sp
    from blox_lat.space import load_hash_file

    return {
        "name": "blox",
        "ops": list(sp.OPS),
        "stages": 3,
        "nodes": 2,
        "models": 91125,
        # first digest of the shipped table = from_index(0).hash, without building the table
        "hash_of_index_0": load_hash_file()[:16].hex(),
    }
