"""Training pipeline: normal training, blockwise distillation and fine-tuning (SPEC section 4).

Produces the training records that :func:`blox_lat.dataset.build` turns into the
``base``/``ext``/``env``, ``distill/<teacher>/<epochs>`` and ``finetune/<teacher>/<epochs>``
sections. Typical use (what ``blox-lat train`` does)::

    data = load_cifar100("~/data/cifar-100-binary.tar.gz")
    train_models("normal", select("0:10"), data, "runs", default_config("normal"), device="cuda")
    teacher = load_teacher("runs/normal/weights/<hash>-0.pt", device="cuda")
    distill_blocks(candidate_blocks(select("all")), data, "runs", default_config("distill"), teacher=teacher)
    train_models("finetune", select("0:10"), data, "runs", default_config("finetune"), teacher=teacher,
                 library="runs/distill-<t8>-1")

Modules: ``_data`` (CIFAR-100 reading and split), ``_augment`` (kornia augmentations, cutout),
``_loop`` (config, losses, evaluation, checkpointed epochs), ``_blocks`` (stage features,
remapping, block library, students), ``_runs`` (the runs and their records), ``_records``
(record format, atomic files, environment). torch and kornia are imported lazily.
"""

from blox_lat.training._augment import TrainAugment, cutout, normalize
from blox_lat.training._blocks import Teacher, assemble_student, load_teacher, make_cell, remap_into, stage_io
from blox_lat.training._data import CIFAR100_MEAN, CIFAR100_STD, ENV_VAR, CifarData, find_cifar100, load_cifar100
from blox_lat.training._errors import CheckpointError, DataError, TrainingError
from blox_lat.training._loop import SETTINGS, TrainConfig, default_config, evaluate, resolve_device
from blox_lat.training._records import TRAINING_RECORD_SCHEMA, load_torch
from blox_lat.training._runs import RunResult, candidate_blocks, distill_blocks, train_models
from blox_lat.training._runs import _folder as records_folder

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "ENV_VAR",
    "TRAINING_RECORD_SCHEMA",
    "SETTINGS",
    "CheckpointError",
    "CifarData",
    "DataError",
    "RunResult",
    "Teacher",
    "TrainAugment",
    "TrainConfig",
    "TrainingError",
    "assemble_student",
    "candidate_blocks",
    "cutout",
    "default_config",
    "distill_blocks",
    "evaluate",
    "find_cifar100",
    "load_cifar100",
    "load_teacher",
    "load_torch",
    "make_cell",
    "normalize",
    "records_folder",
    "remap_into",
    "resolve_device",
    "stage_io",
    "train_models",
]
