"""The Blox macro search space: 3 stages x 45 blocks = 91,125 CNNs for CIFAR-100.

Identical to the Blox reference (SamsungLabs/blox bc6669f): same enumeration order, model
hashes, model indices and PyTorch models. Name a model by index, hash, vector or block string
(:func:`resolve`), or many with a selector (:func:`select`). ``build_model`` imports torch
lazily so that the rest of this package stays light.
"""

from blox_lat.space._arch import Arch, from_blocks, from_hash, from_index, from_vector, resolve
from blox_lat.space._blocks import Block, get_block, list_blocks
from blox_lat.space._flops import _macs_of_blocks as macs_of_blocks
from blox_lat.space._flops import _params_of_blocks as params_of_blocks
from blox_lat.space._flops import flops, macs, op_macs, params
from blox_lat.space._graph import reference_hash
from blox_lat.space._selector import parse_shard, sample, select, shard
from blox_lat.space._table import NUM_BLOCKS, NUM_MODELS, load_hash_file, space_table
from blox_lat.space._vector import CONFIGS_PER_STAGE, OPS, format_vector, parse_vector, stage_digits

#: the PyTorch building blocks, importable from here without importing torch with the package
_TORCH_NAMES = ("STEM_CHANNELS", "Cell", "ConvBnRelu", "Reduction", "Residual", "SqueezeExcitation")

__all__ = [
    "CONFIGS_PER_STAGE",
    "NUM_BLOCKS",
    "NUM_MODELS",
    "STEM_CHANNELS",
    "Cell",
    "ConvBnRelu",
    "Reduction",
    "Residual",
    "SqueezeExcitation",
    "OPS",
    "Arch",
    "Block",
    "build_model",
    "count_params",
    "flops",
    "format_vector",
    "from_blocks",
    "from_hash",
    "from_index",
    "from_vector",
    "get_block",
    "list_blocks",
    "load_hash_file",
    "macs",
    "macs_of_blocks",
    "op_macs",
    "params",
    "params_of_blocks",
    "parse_shard",
    "parse_vector",
    "reference_hash",
    "resolve",
    "sample",
    "select",
    "shard",
    "space_info",
    "stage_digits",
    "space_table",
]


def build_model(arch, num_classes: int = 100, input_hw: int = 32):
    """A freshly initialised torch ``nn.Module`` for any model name (torch imported here)."""
    from blox_lat.space._model import build_model as _build

    return _build(arch, num_classes=num_classes, input_hw=input_hw)


def count_params(module) -> int:
    """Trainable parameter count of a built model."""
    from blox_lat.space._model import count_params as _count

    return _count(module)


def space_info() -> dict:
    """The sizes of the space (the figures the reference reports)."""
    table = space_table()
    return {
        "operations": list(OPS),
        "stages": 3,
        "raw_arch_vectors": table.num_raw,
        "invalid_raw_vectors": table.num_invalid,
        "valid_raw_vectors": table.num_raw - table.num_invalid,
        "unique_models": table.num_models,
        "unique_blocks_per_stage": len(list_blocks()),
    }


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from blox_lat.space import _model

        return getattr(_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
