"""What every run shares: configuration, devices, batches, losses, evaluation and the
checkpointed epoch loop (resume after a kill, identical results on the same device)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from blox_lat.training._errors import CheckpointError, TrainingError
from blox_lat.training._records import load_torch, save_torch

__all__ = ["SETTINGS", "TrainConfig", "default_config", "evaluate", "parse_fraction", "resolve_device"]

SETTINGS = ("normal", "distill", "finetune")
FRACTIONS = ("1/27", "1/9", "1/3")
#: a progress callback receives dicts: {"event": "start"|"batch"|"epoch"|"done"|"skip", ...}
ProgressFn = Callable[[dict], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; table 4 values come from :func:`default_config`."""

    setting: str
    epochs: int
    optimizer: str  # sgd | adam
    lr: float
    weight_decay: float = 5e-4
    batch_size: int = 256
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    loss: str = "ce"  # ce | kd | mse
    alpha: float = 0.9
    temperature: float = 4.0
    augment: bool = True
    seed: int = 0
    split_seed: int = 0
    fraction: str | None = None  # low-fidelity: "1/27" | "1/9" | "1/3"
    init: str = "random"  # distill: random | remap
    limit_train: int | None = None
    limit_eval: int | None = None

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise TrainingError(f"unknown setting {self.setting!r}; use one of {', '.join(SETTINGS)}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise TrainingError(f"--epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size < 1:
            raise TrainingError(f"--batch-size must be positive, got {self.batch_size}")
        if not self.lr > 0:
            raise TrainingError(f"--lr must be positive, got {self.lr}")
        if self.fraction is not None:
            parse_fraction(self.fraction)
        if self.init not in ("random", "remap"):
            raise TrainingError(f"--init must be random or remap, got {self.init!r}")
        for name in ("limit_train", "limit_eval"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be positive, got {v}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    def fingerprint(self) -> str:
        """What must match for a checkpoint or record to count as this run."""
        return json.dumps(self.to_dict(), sort_keys=True)


def parse_fraction(text: str) -> float:
    if text not in FRACTIONS:
        raise TrainingError(f"--fraction must be one of {', '.join(FRACTIONS)}, got {text!r}")
    return float(Fraction(text))


def default_config(setting: str, **overrides: Any) -> TrainConfig:
    """Table 4 of the Blox paper (SPEC section 4), with ``overrides`` (``None`` values ignored).

    Epoch defaults: normal 200; distillation 1 and fine-tuning 10, the smallest of the values
    the paper lists (1/10/50 and 10/50/200): pass ``epochs`` for the others, each of which
    becomes its own dataset section (``distill/<teacher>/<epochs>``).
    """
    base = {
        "normal": dict(setting="normal", epochs=200, optimizer="sgd", lr=0.01, loss="ce", augment=True),
        "distill": dict(setting="distill", epochs=1, optimizer="adam", lr=0.005, loss="mse", augment=False),
        "finetune": dict(setting="finetune", epochs=10, optimizer="adam", lr=5e-5, loss="kd", augment=True),
    }
    if setting not in base:
        raise TrainingError(f"unknown setting {setting!r}; use one of {', '.join(SETTINGS)}")
    cfg = TrainConfig(**base[setting])
    values = {k: v for k, v in overrides.items() if v is not None}
    if values.get("fraction") is not None and setting == "normal":
        values.setdefault("loss", "kd")  # low-fidelity runs learn from the teacher
    return replace(cfg, **values)


def resolve_device(name: str | None) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; CUDA asked for but missing is a user error."""
    import torch

    name = (name or ("cuda" if torch.cuda.is_available() else "cpu")).strip().lower()
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise TrainingError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return name
    raise TrainingError(f"--device {name!r}: use cpu, cuda or cuda:N")


def make_optimizer(params, cfg: TrainConfig):
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def make_scheduler(optimizer, cfg: TrainConfig):
    """Cosine from the base LR to 0 over the run, stepped once per epoch (as the reference)."""
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=0.0)


def kd_loss(logits, target, teacher_logits, alpha: float, temperature: float):
    """The Blox reference's KD loss: ``(1 - alpha) CE + alpha KL(softmax(t/T) || softmax(s/T))``
    (batch mean, no T^2 factor, exactly as ``blox/training/utils.py`` ``KDLoss``)."""
    import torch.nn.functional as F

    hard = F.cross_entropy(logits, target)
    soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return (1 - alpha) * hard + alpha * soft


def batch_order(n: int, seed: int, epoch: int):
    """The shuffled sample order of one epoch (a function of seed and epoch: resumable)."""
    import torch

    g = torch.Generator()
    g.manual_seed(1_000_003 * (seed + 1) + epoch)
    return torch.randperm(n, generator=g)


def topk_correct(logits, target) -> tuple[int, int]:
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hit = top5.eq(target.view(-1, 1))
    return int(hit[:, :1].sum()), int(hit.any(dim=1).sum())


def evaluate(model, x, y, *, device: str, batch_size: int = 500) -> dict:
    """top1 / top5 (%) and mean cross-entropy of ``model`` on uint8 images ``x``."""
    import torch
    import torch.nn.functional as F

    from blox_lat.training._augment import normalize

    model.eval()
    loss_sum, c1, c5, n = 0.0, 0, 0, len(y)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            xb = normalize(x[start:start + batch_size].to(device, non_blocking=True))
            yb = y[start:start + batch_size].to(device, non_blocking=True)
            logits = model(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            a, b = topk_correct(logits, yb)
            c1, c5 = c1 + a, c5 + b
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": loss_sum / n}


def rng_state(device: str) -> dict:
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def set_rng_state(state: dict, device: str) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if device.startswith("cuda") and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))


class EpochLoop:
    """Runs ``epoch_fn`` for the remaining epochs, saving a checkpoint after each one.

    The checkpoint (one ``torch.save`` file written atomically) holds the modules', the
    optimizer's and the RNG's tensors plus a JSON string with the epoch, the metrics so far,
    the scheduler state, the time spent and the run's fingerprint. A run killed at any point
    restarts from the start of the epoch it was in, with the same RNG state, so it ends with
    the same number of epochs and (on the same device and software) the same numbers.
    """

    def __init__(self, path: Path, *, modules: dict, optimizer, scheduler, fingerprint: str, device: str) -> None:
        self.path, self.modules, self.optimizer, self.scheduler = path, modules, optimizer, scheduler
        self.fingerprint, self.device = fingerprint, device
        self.epoch, self.metrics, self.train_time_s, self.resumed_from = 0, {}, 0.0, None

    def restore(self) -> bool:
        if not self.path.exists():
            return False
        ckpt = load_torch(self.path)
        try:
            meta = json.loads(ckpt["meta"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"checkpoint {self.path} has no valid metadata; delete it to restart that model") from None
        if meta.get("fingerprint") != self.fingerprint:
            raise CheckpointError(f"checkpoint {self.path} belongs to a run with other settings; delete it or use another --out")
        for name, module in self.modules.items():
            module.load_state_dict(ckpt["modules"][name])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(meta["scheduler"])
        set_rng_state(ckpt["rng"], self.device)
        self.epoch, self.metrics, self.train_time_s = meta["epoch"], meta["metrics"], meta["train_time_s"]
        self.resumed_from = self.epoch
        return True

    def save(self) -> None:
        meta = {"epoch": self.epoch, "metrics": self.metrics, "train_time_s": self.train_time_s,
                "scheduler": self.scheduler.state_dict(), "fingerprint": self.fingerprint}
        save_torch(self.path, {"modules": {k: m.state_dict() for k, m in self.modules.items()},
                               "optimizer": self.optimizer.state_dict(), "rng": rng_state(self.device),
                               "meta": json.dumps(meta)})

    def run(self, epochs: int, epoch_fn: Callable[[int], tuple[dict, float]]) -> None:
        """``epoch_fn(epoch)`` trains one epoch and returns (metrics of the epoch, train seconds)."""
        while self.epoch < epochs:
            values, seconds = epoch_fn(self.epoch)
            self.scheduler.step()
            for key, value in values.items():
                self.metrics.setdefault(key, []).append(value)
            self.train_time_s += seconds
            self.epoch += 1
            self.save()

    def discard(self) -> None:
        """Remove the checkpoint (the model is done) and its folder once empty."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        try:
            self.path.parent.rmdir()
        except OSError:
            pass
