"""What a campaign refuses, checked before it touches a device or the disk, for the CLI and a
notebook alike: a farm whose devices measure differently or share a name, interleaving anywhere
but on one local device, a campaign directory the file system cannot hold (a name too long) or
that is no folder, and a campaign directory recorded with another device setting or protocol or
other anchor models (with the exact ``blox-lat measure`` flags that would resume it); and
what a campaign on a local or SSH device does when its host is busy (:func:`check_host`).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blox_lat.errors import BloxLatError
from blox_lat.harness._protocol import LOCAL_INTERLEAVE, TimingProtocol
from blox_lat.harness._records import EnvironmentRecord

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile, HostState

__all__ = ["HOST_SAMPLE_S", "HOST_WAIT_S", "ON_BUSY", "CampaignConflictError", "CampaignSetupError", "HostBusyError",
           "HostCheck", "InterleaveError", "check_anchors", "check_campaign_dir", "check_farm", "check_host",
           "check_identity", "check_interleave", "default_anchors", "default_interleave", "default_max_attempts",
           "full_identity", "setting"]


class CampaignConflictError(BloxLatError):
    """The campaign directory was recorded with another device profile or protocol."""


class CampaignSetupError(BloxLatError):
    """The devices or settings given to a campaign cannot work together."""


class InterleaveError(CampaignSetupError):
    """Interleaving was asked for where it does not run (a remote device or a farm)."""


def setting(profile_dict: dict[str, Any]) -> dict[str, Any]:
    """What a measurement depends on: the profile without its name."""
    return {k: v for k, v in profile_dict.items() if k != "name"}


def check_farm(profiles: Sequence[DeviceProfile]) -> None:
    """A farm is devices of one setting, each named once."""
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise CampaignSetupError(f"a device is named twice in the farm {names}: name each device once")
    lead = profiles[0]
    for member in profiles[1:]:
        if setting(member.to_dict()) != setting(lead.to_dict()):
            raise CampaignSetupError(
                f"devices {lead.name!r} and {member.name!r} measure differently "
                f"({setting(lead.to_dict())} vs {setting(member.to_dict())}): a farm needs one "
                "setting; run separate campaigns"
            )


def check_campaign_dir(out_dir: str | os.PathLike[str]) -> Path:
    """The campaign directory ``out_dir``, refused (:class:`CampaignSetupError`) when the file
    system cannot look it up (a name longer than it takes: ENAMETOOLONG), it is a file, or it
    or its journal is a symbolic link: a link would append to whatever campaign it points at,
    silently, so the real path is asked for. A directory that does not exist yet is fine: the
    campaign creates it."""
    from blox_lat.harness._journal import JOURNAL_NAME

    out = Path(out_dir)
    try:
        os.lstat(out)
    except (FileNotFoundError, NotADirectoryError):
        return out  # the campaign creates it (a parent that is a file is refused there, by name)
    except OSError as exc:
        fix = ("give a shorter path (a name takes at most 255 bytes)" if exc.errno == errno.ENAMETOOLONG
               else "give another campaign folder")
        raise CampaignSetupError(f"--out {out}: {exc.strerror or type(exc).__name__}; {fix}") from None
    why = "a campaign is resumed at its real path only (a link would append to the campaign it points at)"
    if out.is_symlink():
        raise CampaignSetupError(f"--out {out} is a symbolic link to {out.resolve()}: {why}; give --out {out.resolve()}")
    if (out / JOURNAL_NAME).is_symlink():
        real = (out / JOURNAL_NAME).resolve()
        raise CampaignSetupError(f"--out {out}: its {JOURNAL_NAME} is a symbolic link to {real}: {why}; "
                                 f"give --out {real.parent}, or remove the link")
    if not out.is_dir():
        raise CampaignSetupError(f"--out {out} is a file; give a directory for the campaign")
    return out


def _one_local(profiles: Sequence[DeviceProfile]) -> bool:
    return len(profiles) == 1 and profiles[0].transport == "local"


def default_interleave(profiles: Sequence[DeviceProfile]) -> int:
    """How many models to time together by default: ``LOCAL_INTERLEAVE`` on one local device, else 1."""
    return LOCAL_INTERLEAVE if _one_local(profiles) else 1


def default_anchors(interleave: int, profiles: Sequence[DeviceProfile]) -> int:
    """How many anchor models by default: ``DEFAULT_ANCHORS`` on one device that interleaves or
    is remote (it measures one model at a time), 0 for the plain local protocol and for farms
    (each device of a farm has its own level)."""
    from blox_lat.harness._anchors import DEFAULT_ANCHORS

    if len(profiles) != 1:
        return 0
    return DEFAULT_ANCHORS if interleave > 1 or profiles[0].transport != "local" else 0


#: attempts per noisy model by default: sets of models timed together, and models timed alone
INTERLEAVED_MAX_ATTEMPTS, SERIAL_MAX_ATTEMPTS = 1, 3


def default_max_attempts(interleave: int) -> int:
    """Measurements of a noisy model (cv above the threshold) by default: one when interleaving,
    where re-timing a set's noisy models took 2.4x the campaign's time and agreed worse with a
    second campaign (``benchmarks/within_set_noise.py``, docs/protocol.md); else three."""
    return INTERLEAVED_MAX_ATTEMPTS if interleave > 1 else SERIAL_MAX_ATTEMPTS


def check_interleave(interleave: int, profiles: Sequence[DeviceProfile]) -> None:
    """Interleaving (``interleave > 1``) runs on one local device only: a remote runner or a farm
    measures one model at a time, and would otherwise ignore the setting silently."""
    if interleave > 1 and not _one_local(profiles):
        raise InterleaveError("--interleave K > 1 runs on one local device; remote devices and farms measure "
                              "one model at a time (--interleave 1)")


#: what a protocol identity without interleaving fields means (the plain consecutive protocol)
_PLAIN = {"interleave": 1, "rounds": 1, "rewarm_runs": 0}


def full_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` with the interleaving fields spelled out, so that a plain protocol and an
    interleaved one differ whichever of them the journal recorded first (a recorded protocol
    also holds ``cv_threshold``, which is not identity: callers compare this one's keys)."""
    return {**_PLAIN, **identity}


def _protocol_flags(recorded: dict[str, Any]) -> str:
    """The ``blox-lat measure`` options that reproduce a recorded protocol identity."""
    try:
        runs = int(recorded["groups"]) * int(recorded["runs_per_group"])
        flags = [f"--runs {runs}", f"--runs-per-group {int(recorded['runs_per_group'])}",
                 f"--warmup-runs {int(recorded['warmup_min_runs'])}", f"--warmup-s {float(recorded['warmup_min_s']):g}",
                 f"--interleave {int(recorded.get('interleave', 1))}"]
        if int(recorded.get("interleave", 1)) > 1 or int(recorded.get("rounds", 1)) > 1:
            flags += [f"--rounds {int(recorded['rounds'])}", f"--rewarm-runs {int(recorded.get('rewarm_runs', 2))}"]
    except (KeyError, TypeError, ValueError):
        return ""
    return " ".join(flags)


def check_identity(first_env: EnvironmentRecord | None, device: str, profile: DeviceProfile,
                   protocol: TimingProtocol, out_dir: Path) -> None:
    """Refuse a directory whose first environment line names another device, setting or protocol."""
    if first_env is None:
        return
    if first_env.device not in (None, device):
        raise CampaignConflictError(
            f"{out_dir} holds a campaign for device {first_env.device!r} (another profile), not {device!r}: "
            "use another --out"
        )
    recorded_profile = first_env.profile
    if recorded_profile is not None and setting(recorded_profile) != setting(profile.to_dict()):
        raise CampaignConflictError(
            f"{out_dir} holds a campaign for device {first_env.device!r} with profile "
            f"{recorded_profile}; this run's profile is {profile.to_dict()}: use another --out"
        )
    recorded = first_env.protocol or {}
    theirs, mine = full_identity(recorded), full_identity(protocol.identity())
    differs = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
    if differs:
        detail = ", ".join(f"{k} {old} vs {new}" for k, (old, new) in differs.items())
        flags = _protocol_flags(recorded)
        raise CampaignConflictError(
            f"{out_dir} was measured with another protocol ({detail}); to resume it, rerun with "
            + (f"{flags}" if flags else "the same --runs/--runs-per-group/--warmup settings")
            + ", or use another --out"
        )


def _anchor_flags(recorded: list[dict[str, Any]] | None) -> str:
    """The ``blox-lat measure`` option that reproduces recorded anchors, or '' when no count does
    (anchors a notebook chose by hand)."""
    from blox_lat.harness._anchors import choose_anchors

    hashes = [a.get("model_hash") for a in recorded or []]
    if hashes != [a.hash for a in choose_anchors(len(hashes))]:
        return ""
    return f"--anchors {len(hashes)}"


def check_anchors(first_env: EnvironmentRecord | None, anchors: Sequence[Any], out_dir: Path) -> None:
    """Refuse a campaign whose recorded anchors (none, for a campaign begun without them)
    differ from this run's: its levels would not be relative to one reference."""
    if first_env is None:
        return
    recorded = first_env.anchors or []
    if [a.get("model_hash") for a in recorded] == [a.hash for a in anchors]:
        return
    theirs = ", ".join(str(a.get("model_index")) for a in recorded) or "none"
    mine = ", ".join(str(a.index) for a in anchors) or "none"
    flags = _anchor_flags(recorded)
    raise CampaignConflictError(
        f"{out_dir} was measured with other anchor models (models {theirs} vs {mine}); to resume it, rerun with "
        + (flags if flags else f"the anchors it recorded (models {theirs})") + ", or use another --out"
    )


#: seconds a campaign on a local device samples its host before it starts: a process that holds
#: a core shows in one second, and the campaign pays that second once. Not the 1-minute load
#: average, which accuses a host that went quiet seconds ago.
HOST_SAMPLE_S = 1.0
#: ``--on-busy wait``: how long to wait for a quiet host before going on with the warning (a
#: test run or a build of a few minutes ends within it), and the pause between two samples
HOST_WAIT_S, HOST_WAIT_PAUSE_S = 300.0, 4.0
#: what a campaign does on a busy host: say so and measure, wait for quiet, or not start
ON_BUSY = ("warn", "wait", "stop")

_ADVICE = ("stop the other jobs, or pin the worker to a free core with --affinity CPU, "
           "or --on-busy wait (docs/devices.md, 'A quiet host')")


class HostBusyError(CampaignSetupError):
    """``--on-busy stop`` and the host was busy: the message says who uses its cores."""


@dataclass(frozen=True)
class HostCheck:
    """The host as a campaign found it before starting: the last sample, the policy, and how
    long it waited for quiet (``--on-busy wait``)."""

    state: HostState
    on_busy: str
    waited_s: float = 0.0

    @property
    def warning(self) -> str | None:
        """One line for a busy host (what is wrong, what to do), None for a quiet one."""
        if not self.state.busy:
            return None
        waited = f" (still, after waiting {self.waited_s:.0f} s)" if self.on_busy == "wait" else ""
        return f"busy host{waited}: {self.state.reason}; timings now carry that noise: {_ADVICE}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.state.to_dict(), "on_busy": self.on_busy, "waited_s": round(self.waited_s, 1)}


def check_host(profiles: Sequence[DeviceProfile], affinity: Sequence[int] | None = None, on_busy: str = "warn", *,
               connection: Mapping[str, Any] | None = None, window_s: float = HOST_SAMPLE_S,
               wait_s: float = HOST_WAIT_S, pause_s: float = HOST_WAIT_PAUSE_S,
               sample: Callable[..., HostState] | None = None, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> HostCheck | None:
    """Sample the host the devices time on before a campaign, judging the cores of ``affinity``
    (default: all a worker there may use): this machine for local devices, the remote one for
    SSH devices (``connection``: the ``--connect`` overrides; one that cannot be reached is
    ``unknown``), ``not checked`` for ADB devices (``devices.sample_device_hosts``). None only
    for no devices. ``warn``: return the state, the caller warns; ``wait``: sample again every
    ``pause_s`` until quiet or ``wait_s`` passed, then go on as ``warn``; ``stop``: raise
    :class:`HostBusyError`."""
    if on_busy not in ON_BUSY:
        raise CampaignSetupError(f"on_busy {on_busy!r} is not one of {', '.join(ON_BUSY)}")
    if not profiles:
        return None
    check_farm(profiles)  # a farm refused for its setting is refused before a second is spent here
    if sample is None:
        from blox_lat.devices import sample_device_hosts

        def sample(window: float, cpus: Sequence[int] | None) -> HostState:
            return sample_device_hosts(profiles, window, cpus, connection=connection)
    start = clock()
    state = sample(window_s, affinity)
    while on_busy == "wait" and state.busy and clock() - start < wait_s:
        sleep(min(pause_s, max(0.0, wait_s - (clock() - start))))
        state = sample(window_s, affinity)
    check = HostCheck(state, on_busy, clock() - start if on_busy == "wait" else 0.0)
    if on_busy == "stop" and state.busy:
        raise HostBusyError(f"busy host: {state.reason}; not started (--on-busy stop): {_ADVICE}")
    return check
