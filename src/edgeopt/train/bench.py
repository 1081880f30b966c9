"""`edgeopt bench-train`: the training loop's throughput beside a plain PyTorch loop, in one run.

Both loops train the same architecture on the same GPU-resident uint8 data with the same
batch size, precision and memory format; the plain loop is what a careful user writes by
hand (bf16 autocast, channels_last, per-batch crop/flip, torch's default SGD). The ratio is
printed; nothing is asserted, because a timing is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeopt.data import Split, load_meta, load_split
from edgeopt.models import create_model
from edgeopt.train.device_data import DeviceData
from edgeopt.train.loop import PRECISIONS, TrainSettings, autocast_dtype, fit, resolve_device, sync_device


def synthetic_split(n: int, size: int = 32, channels: int = 3, classes: int = 10, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    return Split(
        x=rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
        y=rng.integers(0, classes, n).astype(np.int64),
    )


def plain_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    epochs: int,
    batch_size: int,
    amp: torch.dtype | None,
    lr: float,
) -> float:
    """A hand-written loop over the same device-resident data; returns images/s."""
    device = x.device
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    n = (len(y) // batch_size) * batch_size
    seen, elapsed = 0, 0.0
    for _ in range(epochs):
        sync_device(device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(y), device=device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xb = F.pad(x[idx], (4, 4, 4, 4))
            dy, dx = (int(v) for v in torch.randint(0, 9, (2,)))
            xb = xb[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]
            if torch.rand(()) < 0.5:
                xb = xb.flip(3)
            xb = ((xb.float() - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = loss_fn(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
        sync_device(device)
        elapsed += time.perf_counter() - t0
    return seen / elapsed


def run_benchmark(
    model_name: str,
    split: Split,
    meta: dict[str, Any],
    epochs: int,
    batch_size: int,
    device_name: str = "auto",
    precision: str = "auto",
) -> dict[str, float]:
    device = resolve_device(device_name)
    amp = autocast_dtype(precision, device)
    data = DeviceData(split, meta, device, channels_last=True)
    settings = TrainSettings.from_config(
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "precision": precision,
            "device": device_name,
            "progress": False,
        }
    )
    results: dict[str, float] = {}
    # warm-up both (cuDNN autotuning, allocator) before timing
    warm = TrainSettings.from_config({**settings.__dict__, "epochs": 1})
    fit(create_model(model_name, meta["num_classes"], meta["channels"]).to(device), data, None, warm)
    plain_model = create_model(model_name, meta["num_classes"], meta["channels"]).to(device)
    plain_model.to(memory_format=torch.channels_last)
    plain_loop(plain_model, data.x, data.y, data.mean, data.std, 1, batch_size, amp, settings.lr)

    torch.manual_seed(0)
    model = create_model(model_name, meta["num_classes"], meta["channels"]).to(device)
    results["pipeline_img_s"] = fit(model, data, None, settings).images_per_second
    torch.manual_seed(0)
    plain_model = create_model(model_name, meta["num_classes"], meta["channels"]).to(device)
    plain_model.to(memory_format=torch.channels_last)
    results["plain_img_s"] = plain_loop(
        plain_model, data.x, data.y, data.mean, data.std, epochs, batch_size, amp, settings.lr
    )
    results["ratio"] = results["pipeline_img_s"] / results["plain_img_s"]
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="resnet18")
    p.add_argument("--data", help="dataset cache folder; default: synthetic CIFAR-sized images")
    p.add_argument("--images", type=int, default=50000, help="synthetic images when --data is not given")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)


def run(args: argparse.Namespace) -> int:
    if args.data:
        meta, split = load_meta(args.data), load_split(args.data, "train")
    else:
        split = synthetic_split(args.images)
        meta = {"num_classes": 10, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
    r = run_benchmark(args.model, split, meta, args.epochs, args.batch_size, args.device, args.precision)
    device = resolve_device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"bench-train {args.model} on {where}, {len(split)} images x {args.epochs} epochs, "
        f"batch {args.batch_size}, precision {args.precision}"
    )
    print(f"  edgeopt loop : {r['pipeline_img_s']:10.0f} img/s")
    print(f"  plain loop   : {r['plain_img_s']:10.0f} img/s")
    print(f"  ratio        : {r['ratio']:10.2f}x (edgeopt / plain)")
    return 0
