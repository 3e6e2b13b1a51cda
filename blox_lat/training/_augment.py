"""Table-4 augmentations on batched tensors (CPU or GPU), built on kornia.

Training batches go through, in the Blox reference's order: RandAugment (n=2, m=14) ->
horizontal flip (p=0.5) -> random 32x32 crop of the image padded by 4 zero pixels ->
normalisation with the CIFAR-100 mean/std -> cutout (one 16x16 hole, p=1.0). Validation and
test batches are only normalised. Every random draw comes from torch's global generator, so
``torch.manual_seed`` makes a run repeatable and a checkpoint of ``torch.get_rng_state()``
resumes it exactly.

RandAugment: kornia's :class:`kornia.augmentation.auto.RandAugment` ops and default policy
(the 15 operations of the original RandAugment policy). Its ``m`` lies in (0, 30) and sets
each operation's magnitude to ``low + (high - low) * m / 30`` of the operation's range;
torchvision's ``RandAugment(num_ops=2, magnitude=14)`` (what the Blox reference uses, with the
default ``num_magnitude_bins=31``) takes bin 14 of ``linspace(0, max, 31)``, also
``max * 14 / 30``: the scales coincide, so torchvision's m=14 is kornia's m=14. kornia picks
the operations once per *batch*; torchvision picks them per *image*, so this module draws the
two operations per image (distinct, as kornia does) and runs each kornia operation on the
images that drew it. Known differences from torchvision that remain: kornia's operation list
(it has Invert and SolarizeAdd, no Identity) and some operation ranges (e.g. translate 0.1 of
the image instead of 0.45; enhance factors ``0.1 + 1.8 m/30`` as in the original paper
instead of ``1 +/- 0.9 m/30``).

Cutout (kornia has no exact equivalent): DeVries & Taylor's, as in the Blox reference: the
centre is a uniformly random pixel, the hole covers rows/columns ``[c - 8, c + 8)`` clipped
at the borders (a full 16x16 hole when the centre is at least 8 pixels from every edge), and
is applied after normalisation (it sets pixels to 0, the mean colour).
"""

from __future__ import annotations

from typing import Any

from blox_lat.training._data import CIFAR100_MEAN, CIFAR100_STD

__all__ = ["TrainAugment", "cutout", "normalize"]


def normalize(x: Any) -> Any:
    """uint8 or [0, 1] float images -> normalised float32 (per-channel CIFAR-100 mean/std)."""
    import torch

    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    mean = torch.tensor(CIFAR100_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR100_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def cutout(x: Any, length: int = 16, p: float = 1.0) -> Any:
    """Zero one ``length`` x ``length`` square per image, centred at a uniformly random pixel
    and clipped at the borders (DeVries & Taylor 2017); applied to each image with prob. ``p``."""
    import torch

    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), device=x.device)
    cx = torch.randint(0, w, (b,), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    half = length // 2
    in_rows = (rows >= (cy - half).view(b, 1)) & (rows < (cy + half).view(b, 1))
    in_cols = (cols >= (cx - half).view(b, 1)) & (cols < (cx + half).view(b, 1))
    hole = in_rows.view(b, 1, h, 1) & in_cols.view(b, 1, 1, w)
    if p < 1.0:
        hole = hole & (torch.rand(b, device=x.device) < p).view(b, 1, 1, 1)
    return x.masked_fill(hole, 0.0)


class TrainAugment:
    """The training pipeline of table 4 as a callable on uint8 ``(B, 3, H, W)`` batches."""

    def __init__(self, *, num_ops: int = 2, magnitude: int = 14, flip_p: float = 0.5, crop_padding: int = 4,
                 cutout_length: int = 16, cutout_p: float = 1.0) -> None:
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment
        from kornia.augmentation.auto.rand_augment.rand_augment import default_policy

        self.num_ops, self.magnitude = num_ops, magnitude
        self.cutout_length, self.cutout_p = cutout_length, cutout_p
        # one single-operation RandAugment per policy entry: kornia maps m to each op's magnitude
        self._ops = [RandAugment(n=1, m=magnitude, policy=[entry]) for entry in default_policy] if num_ops else []
        self._flip = K.RandomHorizontalFlip(p=flip_p)
        self._crop = K.RandomCrop((32, 32), padding=crop_padding) if crop_padding else None

    def to(self, device: Any) -> "TrainAugment":
        for op in (*self._ops, self._flip, self._crop):
            if op is not None:
                op.to(device)
        return self

    def randaugment(self, x: Any) -> Any:
        """RandAugment with the operations drawn per image (``num_ops`` distinct ones each)."""
        import torch

        if not self._ops:
            return x
        choice = torch.rand(x.shape[0], len(self._ops), device=x.device).argsort(dim=1)[:, : self.num_ops]
        for step in range(self.num_ops):
            out = x.clone()
            for k, op in enumerate(self._ops):
                idx = torch.nonzero(choice[:, step] == k).flatten()
                if idx.numel():
                    out[idx] = op(x[idx]).clamp_(0.0, 1.0)
            x = out
        return x

    def __call__(self, images: Any) -> Any:
        import torch

        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images
        x = self.randaugment(x)
        x = self._flip(x)
        if self._crop is not None:
            x = self._crop(x)
        x = normalize(x)
        if self.cutout_length:
            x = cutout(x, self.cutout_length, self.cutout_p)
        return x
