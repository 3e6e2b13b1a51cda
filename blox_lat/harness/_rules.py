"""What a campaign refuses, checked before it touches a device or the disk, for the CLI and a
notebook alike: a farm whose devices measure differently or share a name, interleaving anywhere
but on one local device, a campaign directory the file system cannot hold (a name too long) or
that is no folder, and a campaign directory recorded with another device setting or protocol or
other anchor models (with the exact ``blox-lat measure`` flags that would resume it).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blox_lat.errors import BloxLatError
from blox_lat.harness._protocol import LOCAL_INTERLEAVE, TimingProtocol
from blox_lat.harness._records import EnvironmentRecord

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = ["CampaignConflictError", "CampaignSetupError", "InterleaveError", "check_anchors", "check_campaign_dir",
           "check_farm", "check_identity", "check_interleave", "default_anchors", "default_interleave", "default_max_attempts",
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
