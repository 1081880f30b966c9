"""Keep a whole split on the training device as uint8 and make batches there.

Moving the data once and doing crop/flip/normalise on the device removes the host-side
data loader, which is what limits small-image training on a fast GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from edgeopt.data.arrays import Split


class DeviceData:
    """A split resident on `device` as uint8 NCHW, yielding normalised float batches."""

    def __init__(
        self,
        split: Split,
        meta: dict[str, Any],
        device: torch.device,
        channels_last: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = device
        self.x = torch.from_numpy(split.x).to(device).permute(0, 3, 1, 2).contiguous()
        self.y = torch.from_numpy(split.y).to(device)
        c = self.x.shape[1]
        self.mean = torch.tensor(meta["mean"], device=device, dtype=torch.float32).view(1, c, 1, 1) * 255
        self.std = torch.tensor(meta["std"], device=device, dtype=torch.float32).view(1, c, 1, 1) * 255
        self.channels_last = channels_last
        self.dtype = dtype

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> normalised float (channels_last when asked)."""
        out = (x.float() - self.mean) / self.std
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out.to(self.dtype)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        crop_padding: int = 0,
        flip: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images, labels); augmentation uses `generator` so runs are reproducible."""
        n = len(self) if limit is None else min(limit, len(self))
        order = (
            torch.randperm(len(self), device=self.device, generator=generator)[:n]
            if shuffle
            else torch.arange(n, device=self.device)
        )
        stop = n - (n % batch_size) if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            x = self.x[idx]
            if crop_padding or flip:
                x = random_crop_flip(x, crop_padding, flip, generator)
            yield self.normalise(x), self.y[idx]


def random_crop_flip(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Batched random crop (zero padding `pad`) and horizontal flip, done with one gather on device."""
    b, c, h, w = x.shape
    dev = x.device
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(c, device=dev)[None, :, None, None]
        x = xp[bi, ci, rows, cols]
    if flip:
        mask = torch.rand(b, device=dev, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x
