"""The ``torchscript`` format: traced and frozen TorchScript (desktop GPU, batch 256)."""

from __future__ import annotations

from blox_lat.exporters._format import ExportFormat, ExportJob, Produced

__all__ = ["FORMAT"]


def _produce(job: ExportJob) -> Produced:
    from blox_lat.exporters import _compose, _naive, _verify

    if job.fast:
        _compose.export_torchscript(job.arch, job.out, job.batch)
    else:
        _naive.export_torchscript(job.arch, job.out, job.batch)
    if not job.verify:
        return {"verified": False}
    reference = _compose.torch_reference(job.arch) if job.fast else None
    return _verify.verify_torchscript(job.out, job.arch, job.batch, reference)


FORMAT = ExportFormat(
    "torchscript",
    ".pt",
    "TorchScript, traced and frozen (desktop GPU; load with torch.jit.load, optimise on the target)",
    256,
    (),
    ("torch",),
    produce=_produce,
)
