"""Typed errors of the training pipeline (each becomes one line + exit 2 in the CLI)."""

from blox_lat.errors import BloxLatError


class TrainingError(BloxLatError):
    """A training run cannot start or continue; the message says how to fix it."""


class DataError(TrainingError):
    """The CIFAR-100 copy is missing, incomplete or damaged."""


class CheckpointError(TrainingError):
    """A checkpoint, teacher, block library or existing record does not fit this run."""
