"""The ``torchscript`` runtime: ``torch.jit.load`` + ``optimize_for_inference`` on CPU or CUDA."""

from __future__ import annotations

from typing import Any

from blox_lat.harness._runtime import RuntimeSpec, RuntimeUnavailableError, input_array

__all__ = ["RUNTIME"]


def _load(path: str, options: dict[str, Any], batch: int, input_size: int):
    import torch

    device = str(options.get("device", "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeUnavailableError(
            f"profile asks for torchscript on {device!r} but torch.cuda.is_available() is False "
            "here: run it on a CUDA host or use the 'cpu-torchscript' device"
        )
    torch.set_num_threads(int(options.get("threads", 1)))
    module = torch.jit.load(path, map_location=device)
    module.eval()
    module = torch.jit.optimize_for_inference(module)
    x = torch.from_numpy(input_array(batch, input_size)).to(device)
    torch.set_grad_enabled(False)
    if device.startswith("cuda"):
        sync = torch.cuda.synchronize

        def run_once() -> Any:
            out = module(x)
            sync()
            return out

    else:

        def run_once() -> Any:
            return module(x)

    facts = {"runtime": "torchscript", "torch": torch.__version__, "device": device,
             "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return run_once, facts


RUNTIME = RuntimeSpec(
    name="torchscript",
    formats=("torchscript",),
    options={"threads": 1, "device": "cpu"},
    description="torch.jit.load + optimize_for_inference; device 'cpu' or 'cuda'",
    load=_load,
)
