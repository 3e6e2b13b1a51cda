"""The device and the protocol a survey measures with, resolved once from its config.

The protocol follows ``blox-lat measure``'s defaults (the harness's rules): interleaved sets
of ``LOCAL_INTERLEAVE`` models on a local device with one group per round, one model at a
time elsewhere; three anchor models on a device that interleaves or is remote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blox_lat.survey._config import SurveyConfig


@dataclass(frozen=True)
class Setup:
    """What every measuring step of a survey uses: the profile, its connection, the protocol,
    the anchor count and the models timed together per set (1: one at a time)."""

    profile: Any  # blox_lat.devices.DeviceProfile
    connection: dict[str, Any]
    protocol: Any  # blox_lat.harness.TimingProtocol
    anchors: int
    interleave: int
    store: Any = None  # blox_lat.exporters.ArtifactStore or None (the exporters' default)

    @property
    def local(self) -> bool:
        return self.profile.transport == "local"

    def models_per_anchor_run(self) -> int:
        """Models measured per timing of the anchors: a set, or ``anchor_every`` models."""
        from blox_lat.harness import DEFAULT_ANCHOR_EVERY

        return self.interleave if self.interleave > 1 else DEFAULT_ANCHOR_EVERY


def resolve(config: SurveyConfig) -> Setup:
    """The :class:`Setup` of ``config`` (unknown device, missing exporter packages: typed errors)."""
    from blox_lat.devices import load_profiles
    from blox_lat.exporters import check_packages
    from blox_lat.harness import TimingProtocol, default_anchors, default_interleave

    profile = load_profiles(list(config.device_files)).get(config.device)
    check_packages(profile.format)
    interleave = default_interleave([profile])
    groups = max(1, config.runs // config.runs_per_group)
    protocol = TimingProtocol.from_total(config.runs, config.runs_per_group, warmup_min_runs=config.warmup_runs,
                                         warmup_min_s=config.warmup_s, interleave=interleave,
                                         rounds=groups if interleave > 1 else 1)
    store = None
    if config.store is not None:
        from blox_lat.exporters import ArtifactStore

        store = ArtifactStore(config.store)
    return Setup(profile, dict(config.connection), protocol, default_anchors(interleave, [profile]), interleave, store)
