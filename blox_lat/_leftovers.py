"""Names for temporary files and folders that say who made them, and the rule for removing
the ones a killed process left behind.

A temporary name carries ``PID@HOST`` (:func:`owner_tag`). A leftover is stale when it was made
on this host by a process that no longer exists, or, whatever its owner, when nothing in it
changed for ``max_age_s`` (the only test possible for another node's process on a cluster
file system, and for names from older versions without a tag). A live builder keeps its files
young, so it is never cleaned away.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

__all__ = ["MAX_AGE_S", "owner_tag", "remove_stale"]

#: leftovers older than this are removed whoever made them (6 h: far beyond one export or build)
MAX_AGE_S = 6 * 3600

_TAG = re.compile(r"(\d+)@([A-Za-z0-9_]+)")


def _host() -> str:
    # letters, digits and '_' only, so that a tag ends where '-' or '.' follows it in a name
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def owner_tag(pid: int | None = None) -> str:
    """``PID@HOST`` of this process (or of ``pid`` on this host), for a temporary name."""
    return f"{os.getpid() if pid is None else pid}@{_host()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                try:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
                except OSError:
                    pass
    return newest


def is_stale(path: Path, max_age_s: float = MAX_AGE_S, now: float | None = None) -> bool:
    """Whether ``path`` (a temporary file or folder) was left by a process that is gone."""
    match = _TAG.search(path.name)
    if match and match.group(2) == _host() and not _alive(int(match.group(1))):
        return True
    if match and match.group(2) == _host():
        return False  # its owner runs on this host: never remove it under a live process
    try:
        return (now if now is not None else time.time()) - _newest_mtime(path) > max_age_s
    except OSError:
        return False  # gone already


def remove_stale(paths, max_age_s: float = MAX_AGE_S) -> list[Path]:
    """Remove each stale path of ``paths``; returns what was removed. Never raises for one path
    (another process may remove it at the same time)."""
    removed = []
    for p in paths:
        p = Path(p)
        try:
            if not is_stale(p, max_age_s):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed
