"""Latency prediction for the whole space from a small measured sample (``blox-lat predict``).

- Data: :func:`load_measurements` (campaign folders, journals or a release's ``bench/<device>``)
  -> :class:`TrainingSet` (one device setting and protocol; raw or level-corrected latency).
- Fit: :func:`fit` cross-validates the families (``additive``, ``additive-log``, ``interact``),
  chooses one and calibrates split-conformal intervals -> :class:`Predictor`
  (``predict(models, level=0.9)``, ``save(path)``; :func:`load` reads it back, JSON, versioned).
- Plans: :func:`plan_balanced` (every (stage, block) equally often), :func:`plan_next` (least
  certain unmeasured models), :func:`write_plan` (a selector file for ``measure @FILE``).
- Pieces: :func:`measure_pieces` times the 140 standalone pieces, :func:`from_pieces` predicts
  whole models from them plus a few whole-model measurements.
- Transfer: :func:`transfer` fits a new device from a few samples with another device's
  predictor as the prior.
- Output: :func:`write_predictions` (Parquet of all 91,125 models; the ``pred/<device>`` table);
  :func:`check_out` refuses an output path (exists, a folder, not writable) before any work.

Method, trust and file format: docs/predict.md.
"""

from blox_lat.predict._data import TrainingSet, from_arrays
from blox_lat.predict._data import load as load_measurements
from blox_lat.predict._errors import (
    DeviceMismatchError,
    MixedInputError,
    PiecesError,
    PredictError,
    PredictorFileError,
    TooFewModelsError,
)
from blox_lat.predict._files import check_out
from blox_lat.predict._fit import FAMILIES, accuracy, fit, spearman
from blox_lat.predict._model import PREDICTOR_SCHEMA, BlockCost, Predictions, Predictor, load
from blox_lat.predict._output import pred_section, write_predictions
from blox_lat.predict._pieces import (
    MIN_WHOLE,
    all_pieces,
    check_whole,
    from_pieces,
    load_pieces,
    measure_pieces,
    piece_onnx,
    save_pieces,
)
from blox_lat.predict._plan import balanced as plan_balanced
from blox_lat.predict._plan import next_models as plan_next
from blox_lat.predict._plan import write_plan
from blox_lat.predict._profile_prior import profile_prior
from blox_lat.predict._transfer import transfer

__all__ = [
    "FAMILIES",
    "MIN_WHOLE",
    "PREDICTOR_SCHEMA",
    "BlockCost",
    "DeviceMismatchError",
    "MixedInputError",
    "PiecesError",
    "PredictError",
    "Predictions",
    "Predictor",
    "PredictorFileError",
    "TooFewModelsError",
    "TrainingSet",
    "accuracy",
    "all_pieces",
    "check_out",
    "check_whole",
    "fit",
    "from_arrays",
    "from_pieces",
    "load",
    "load_measurements",
    "load_pieces",
    "measure_pieces",
    "piece_onnx",
    "plan_balanced",
    "plan_next",
    "profile_prior",
    "pred_section",
    "save_pieces",
    "spearman",
    "transfer",
    "write_plan",
    "write_predictions",
]
