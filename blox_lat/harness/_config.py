"""What a campaign is asked to do, as one frozen value: :class:`CampaignConfig`.

A field left ``None`` means *auto*; :meth:`CampaignConfig.resolved` fills every auto value with
the library's default for these devices (``_rules``: each default with its reason) and checks
the whole configuration before anything touches a device or the disk, so that the CLI only
parses options and a notebook gets the same defaults and the same refusals.
:class:`ProtocolChoice` is the timing protocol with ``auto`` interleaving and rounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blox_lat.harness._anchors import DEFAULT_ANCHOR_EVERY, AnchorError, choose_anchors
from blox_lat.harness._protocol import DEFAULT_CV_THRESHOLD, DEFAULT_HALFWIDTH_THRESHOLD, TimingProtocol
from blox_lat.harness._rules import (
    ON_BUSY,
    CampaignSetupError,
    check_campaign_dir,
    check_farm,
    check_interleave,
    default_anchors,
    default_interleave,
    default_max_attempts,
)

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = ["REMEASURABLE", "CampaignConfig", "ProtocolChoice", "default_redo_sets"]

_FARM_ANCHORS = ("anchors run on one device (each device of a farm has its own level): use --anchors 0, "
                 "or one campaign per device")

#: the flags ``remeasure`` takes: a set's burst no redo repaired, or a noisy measurement
REMEASURABLE = ("burst", "noisy")

#: redos of a set hit by a noise burst, by default, where sets are timed together with
#: anchors: one redo repairs most bursts of a few minutes (docs/protocol.md)
INTERLEAVED_REDO_SETS = 1


def default_redo_sets(interleave: int, anchors: int) -> int:
    """Redos of a burst-hit set by default: one for interleaved sets with anchors (the anchors
    make a redo comparable with the other sets), none elsewhere (no set to judge)."""
    return INTERLEAVED_REDO_SETS if interleave > 1 and anchors > 0 else 0


@dataclass(frozen=True)
class ProtocolChoice:
    """The timing protocol as asked: ``interleave`` None is auto (32 on one local device, else
    1) and ``rounds`` None one group per round when interleaving."""

    runs: int = 1000
    runs_per_group: int = 10
    warmup_runs: int = 10
    warmup_s: float = 0.5
    interleave: int | None = None
    rounds: int | None = None
    rewarm_runs: int = 0
    cv_threshold: float = DEFAULT_CV_THRESHOLD
    max_halfwidth: float = DEFAULT_HALFWIDTH_THRESHOLD

    def resolve(self, devices: Sequence[DeviceProfile]) -> TimingProtocol:
        """The protocol for ``devices`` (interleaving checked against them)."""
        if not 0 < self.max_halfwidth < 1:
            raise CampaignSetupError(f"--max-halfwidth {self.max_halfwidth} is not a fraction in (0, 1), "
                                     "e.g. 0.05 for +-5 %")
        k = default_interleave(devices) if self.interleave is None else self.interleave
        check_interleave(k, devices)
        if self.rounds is not None and k == 1 and self.rounds != 1:
            raise CampaignSetupError("--rounds needs --interleave K with K > 1 (or auto on a local device)")
        if self.runs < 1 or self.runs_per_group < 1:
            raise CampaignSetupError("--runs and --runs-per-group must be >= 1")
        groups = max(1, self.runs // self.runs_per_group)
        return TimingProtocol.from_total(self.runs, self.runs_per_group, warmup_min_runs=self.warmup_runs,
                                         warmup_min_s=self.warmup_s, cv_threshold=self.cv_threshold, interleave=k,
                                         rounds=(self.rounds if self.rounds is not None else groups) if k > 1 else 1,
                                         rewarm_runs=self.rewarm_runs, halfwidth_threshold=self.max_halfwidth)


@dataclass(frozen=True, kw_only=True)
class CampaignConfig:
    """Everything a campaign run is asked to do; ``None`` is auto (see :meth:`resolved`).

    ``devices``: one profile, or several for a *farm* (one setting, one queue, one journal
    under ``record_as``). ``anchors``: a count, or the anchor models themselves.
    ``max_attempts``: measurements of a noisy model; ``redo_sets``: redos of a set a noise burst
    hit; ``remeasure``: flags (``burst``, ``noisy``) whose models are measured again although
    done. ``timeout_s``, ``affinity``, ``connection``: how runners are opened. ``store``,
    ``lookahead``, ``overlap_exports``, ``export_chunk``: how artifacts reach the device.
    ``on_busy`` and ``host_state``: what to do on a busy host, and what was seen of it before.
    """

    devices: tuple[DeviceProfile, ...]
    protocol: TimingProtocol | ProtocolChoice = ProtocolChoice()
    out_dir: Path = Path("runs/cpu")
    record_as: str | None = None
    anchors: int | tuple[Any, ...] | None = None
    anchor_every: int | None = None
    max_attempts: int | None = None
    redo_sets: int | None = None
    skip_failed: bool = False
    remeasure: tuple[str, ...] = ()
    timeout_s: float = 600.0
    affinity: tuple[int, ...] | None = None
    connection: Mapping[str, Any] | None = None
    store: Any = None
    lookahead: int = 4
    overlap_exports: bool | None = None
    export_chunk: int = 16
    on_busy: str = "warn"
    host_state: Mapping[str, Any] | None = None

    @property
    def farm(self) -> bool:
        return len(self.devices) > 1

    @property
    def device(self) -> str:
        """The device name the journal records."""
        return self.record_as or self.devices[0].name

    @property
    def anchor_models(self) -> tuple[Any, ...]:
        """The anchor models of a resolved configuration."""
        if isinstance(self.anchors, int) or self.anchors is None:
            raise CampaignSetupError("the anchors are a count until the configuration is resolved: "
                                     "use config.resolved().anchor_models")
        return self.anchors

    @property
    def timing(self) -> TimingProtocol:
        """The protocol of a resolved configuration."""
        if not isinstance(self.protocol, TimingProtocol):
            raise CampaignSetupError("the protocol is a choice until the configuration is resolved: "
                                     "use config.resolved().timing")
        return self.protocol

    def resolved(self) -> CampaignConfig:
        """This configuration with every auto value filled and every setting checked
        (:class:`CampaignSetupError`, :class:`~blox_lat.harness.InterleaveError`)."""
        devices = tuple(self.devices)
        if not devices:
            raise CampaignSetupError("a campaign needs a device")
        if self.anchors and len(devices) > 1:  # before the farm's own checks: the flag is the mistake
            raise CampaignSetupError(_FARM_ANCHORS)
        check_farm(devices)
        protocol = self.protocol.resolve(devices) if isinstance(self.protocol, ProtocolChoice) else self.protocol
        check_interleave(protocol.interleave, devices)
        anchors = self._anchor_archs(protocol, devices)
        every = DEFAULT_ANCHOR_EVERY if self.anchor_every is None else self.anchor_every
        attempts = default_max_attempts(protocol.interleave) if self.max_attempts is None else self.max_attempts
        redo = default_redo_sets(protocol.interleave, len(anchors)) if self.redo_sets is None else self.redo_sets
        resolved = dataclasses.replace(
            self, devices=devices, protocol=protocol, out_dir=check_campaign_dir(self.out_dir), anchors=anchors,
            anchor_every=every, max_attempts=attempts, redo_sets=redo,
            affinity=tuple(self.affinity) if self.affinity is not None else None,
            overlap_exports=devices[0].transport != "local" if self.overlap_exports is None else self.overlap_exports)
        resolved._check()
        return resolved

    def _anchor_archs(self, protocol: TimingProtocol, devices: tuple[DeviceProfile, ...]) -> tuple[Any, ...]:
        count = default_anchors(protocol.interleave, devices) if self.anchors is None else self.anchors
        if isinstance(count, int) and not isinstance(count, bool):
            try:
                return tuple(choose_anchors(count)) if count else ()
            except AnchorError as exc:
                raise CampaignSetupError(str(exc)) from None
        return tuple(count)

    def _check(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise CampaignSetupError(f"max attempts must be >= 1, got {self.max_attempts}")
        if not isinstance(self.redo_sets, int) or self.redo_sets < 0:
            raise CampaignSetupError(f"--redo-sets must be an integer >= 0, got {self.redo_sets!r}")
        every = self.anchor_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise CampaignSetupError(f"--anchor-every must be an integer >= 1, got {every!r}")
        if len({a.hash for a in self.anchor_models}) != len(self.anchor_models):
            raise CampaignSetupError("an anchor model is named twice: name each anchor once")
        if self.timeout_s <= 0:
            raise CampaignSetupError(f"--timeout must be > 0, got {self.timeout_s}")
        if self.lookahead < 1 or self.export_chunk < 1:
            raise CampaignSetupError("--lookahead and the export chunk must be >= 1")
        unknown = set(self.remeasure) - set(REMEASURABLE)
        if unknown:
            raise CampaignSetupError(f"--remeasure {', '.join(sorted(unknown))}: not one of {', '.join(REMEASURABLE)}")
        if self.on_busy not in ON_BUSY:
            raise CampaignSetupError(f"on_busy {self.on_busy!r} is not one of {', '.join(ON_BUSY)}")
