"""Typed errors of :mod:`blox_lat.predict`; the CLI shows each as one line and exits 2."""

from __future__ import annotations

from blox_lat.errors import BloxLatError


class PredictError(BloxLatError):
    """Base class: a predictor cannot be fitted, read or used as asked; the message says how to fix it."""


class TooFewModelsError(PredictError, ValueError):
    """The training set is too small for the family, or leaves (stage, block) pairs unseen."""


class MixedInputError(PredictError, ValueError):
    """Measurements from several devices, device settings or protocols were given to one fit."""


class PredictorFileError(PredictError, ValueError):
    """A predictor file is unreadable, of another format or schema, or of another search space."""


class DeviceMismatchError(PredictError, ValueError):
    """A predictor was asked about a device it was not fitted on."""


class PiecesError(PredictError, ValueError):
    """Block pieces cannot be built or measured for this device."""
