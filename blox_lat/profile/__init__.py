"""Per-layer profiles: load time, first inference, peak memory, and each layer's and block's
time on a device, beside the protocol latency measured in the same run (docs/profile.md).

:func:`profile_models` profiles a selection through the device's runner and journals one
:class:`ProfileRecord` per model in ``<out>/profiles.jsonl`` (:func:`read_profiles` is the one
reader; a rerun resumes). Layers are mapped to the pieces of the model (stem, a stage's block,
its reduction, the head) by the names the exporters write (``_mapping``).
"""

from blox_lat.profile._mapping import attribute, block_of_piece, cell_costs, cell_ms, piece_of_name, pieces_of_blocks
from blox_lat.profile._records import (
    PROFILE_SCHEMA,
    PROFILES_NAME,
    BlockTime,
    LayerTime,
    ProfileKey,
    ProfileRecord,
    ProfileRecordError,
    read_profiles,
    standing_profiles,
)
from blox_lat.profile._run import (
    DEFAULT_PROFILE_RUNS,
    ModelProfiled,
    ProfileError,
    ProfileStarted,
    ProfileSummary,
    build_record,
    profile_models,
)

__all__ = [
    "DEFAULT_PROFILE_RUNS",
    "PROFILES_NAME",
    "PROFILE_SCHEMA",
    "BlockTime",
    "LayerTime",
    "ModelProfiled",
    "ProfileError",
    "ProfileKey",
    "ProfileRecord",
    "ProfileRecordError",
    "ProfileStarted",
    "ProfileSummary",
    "attribute",
    "block_of_piece",
    "build_record",
    "cell_costs",
    "cell_ms",
    "piece_of_name",
    "pieces_of_blocks",
    "profile_models",
    "read_profiles",
    "standing_profiles",
]
