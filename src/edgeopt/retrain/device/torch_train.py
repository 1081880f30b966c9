"""Device side: fine-tune a model with PyTorch and measure the cost (needs torch + numpy only).

Usage: python -m edgeopt.retrain.device.torch_train --job job.json --train train.npz --test test.npz
--model model.pt --out result.json. The model is a torch.fx GraphModule: it unpickles with torch alone,
so no model code (edgeopt, torchvision) is needed on the device.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    from . import common
except ImportError:  # run as a plain script on the device
    import common  # type: ignore[no-redef]

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"device {name!r} requested but torch sees no CUDA GPU")
    return torch.device(name)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, dev: torch.device, bs: int) -> dict[str, float]:
    """fp32 top-1 accuracy and loss on the test split (the same yardstick for every setting)."""
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.inference_mode():
        for i in range(0, len(y), bs):
            xb = torch.from_numpy(x[i : i + bs]).to(dev)
            yb = torch.from_numpy(y[i : i + bs]).to(dev)
            logits = model(xb).float()
            loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    n = max(len(y), 1)
    return {"accuracy": correct / n, "loss": loss_sum / n}


def set_train_mode(model: nn.Module, frozen_modules: set[str]) -> None:
    """Training mode, except frozen normalisation layers keep their running statistics."""
    model.train()
    for name, mod in model.named_modules():
        if name in frozen_modules:
            mod.eval()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    t_start = time.perf_counter()
    args = common.parse_args(argv, ("model",), __doc__)
    job = common.load_job(args.job)
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    torch.manual_seed(job["seed"])
    dev = pick_device(job.get("device", "auto"))
    amp = AMP_DTYPES[job["precision"]]
    model: nn.Module = torch.load(args.model, map_location=dev, weights_only=False)
    model.to(dev)
    if job.get("channels_last", True):
        model.to(memory_format=torch.channels_last)
    frozen = set(job["frozen_params"])
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
        if name not in frozen:
            trainable.append(p)
    if not trainable:
        raise SystemExit("every parameter is frozen: nothing to train")
    xtr, ytr = common.load_split(args.train, job["mean"], job["std"])
    xte, yte = common.load_split(args.test, job["mean"], job["std"])
    before = evaluate(model, xte, yte, dev, job["eval_batch_size"])
    snapshot = (
        {n: p.detach().float().cpu().numpy().copy() for n, p in model.named_parameters()}
        if job.get("verify_freeze")
        else None
    )
    opt = torch.optim.AdamW(trainable, lr=job["lr"], weight_decay=job["weight_decay"])
    scaler = torch.amp.GradScaler(dev.type, enabled=amp is torch.float16)
    loss_fn = nn.CrossEntropyLoss()
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    rss_before = common.current_rss_bytes()
    timer = common.EpochTimer(torch.cuda.synchronize if dev.type == "cuda" else None)
    frozen_modules = set(job.get("frozen_modules", []))
    for epoch in range(job["epochs"]):
        set_train_mode(model, frozen_modules)
        timer.start()
        loss_acc = torch.zeros((), device=dev)
        batches = common.batch_order(len(ytr), job["batch_size"], epoch, job["seed"])
        for idx in batches:
            it = torch.from_numpy(idx)
            xb = xtr_t[it].to(dev, non_blocking=True)
            yb = ytr_t[it].to(dev, non_blocking=True)
            if job.get("channels_last", True):
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            loss_acc += loss.detach().float()
        timer.stop(len(batches) * len(batches[0]), float(loss_acc) / len(batches))
    after = evaluate(model, xte, yte, dev, job["eval_batch_size"])
    n_train = sum(p.numel() for p in trainable)
    changes = (
        common.param_change(
            snapshot, {n: p.detach().float().cpu().numpy() for n, p in model.named_parameters()}, frozen
        )
        if snapshot is not None
        else None
    )
    result = {
        "framework": "pytorch",
        "runtime_version": torch.__version__,
        "torch_device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "precision": job["precision"],
        "amp": amp is not None,
        "batch_size": job["batch_size"],
        "train_images": int(len(ytr)),
        "test_images": int(len(yte)),
        "trainable_params": int(n_train),
        "frozen_params": int(sum(p.numel() for p in model.parameters()) - n_train),
        "accuracy_before": before["accuracy"],
        "loss_before": before["loss"],
        "accuracy_after": after["accuracy"],
        "loss_after": after["loss"],
        **timer.summary(),
        "peak_rss_bytes": common.peak_rss_bytes(),
        "rss_before_training_bytes": rss_before,
        "gpu_max_allocated_bytes": int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None,
        "param_change": changes,
        "wall_seconds": time.perf_counter() - t_start,
        "host": common.host_info(),
    }
    common.write_result(args.out, result)
    return result


if __name__ == "__main__":
    r = main()
    print(
        f"pytorch: {r['images_per_second']:.0f} img/s, accuracy {r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f}"
    )
