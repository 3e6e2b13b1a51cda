"""Optional dependencies: which extra of ``pip install 'blox-lat[EXTRA]'`` brings each one.

The core install reads, queries and verifies releases (numpy, pyarrow, click, orjson, pyyaml,
rich). Everything heavier comes with the extra of the stage that needs it, and a command that
meets a missing one says which to install, in one line (:func:`missing_extra_message`, used at
the CLI's error boundary), instead of a traceback.
"""

from __future__ import annotations

__all__ = ["COMMAND_EXTRA", "OPTIONAL_MODULES", "missing_extra_message"]

#: top-level module -> distribution that provides it (the optional ones)
OPTIONAL_MODULES = {
    "torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime", "paramiko": "paramiko",
    "adb_shell": "adb-shell", "kornia": "kornia", "matplotlib": "matplotlib", "threadpoolctl": "threadpoolctl",
}
#: command -> the extra that makes it work
COMMAND_EXTRA = {"export": "export", "measure": "measure", "devices": "measure", "train": "train",
                 "report": "report", "compare": "report", "predict": "predict", "cluster": "all"}


def missing_extra_message(module: str | None, command: str | None) -> str | None:
    """The one line for a missing optional ``module`` met by ``command``; None when ``module``
    is not one of ours to install (a bug, or a broken environment: keep the traceback)."""
    top = (module or "").split(".")[0]
    if top not in OPTIONAL_MODULES:
        return None
    extra = COMMAND_EXTRA.get(command or "", "all")
    torch_first = " (torch first: pip install torch==2.13.0 on a CPU-only machine, docs/install.md)" \
        if top == "torch" else ""
    what = f"'blox-lat {command}'" if command else "this command"
    return (f"{what} needs {OPTIONAL_MODULES[top]}, which is not installed: "
            f"pip install 'blox-lat[{extra}]'{torch_first}")
