"""The one training loop every stage uses (baseline, fine-tuning after pruning, QAT, retraining).

SGD + OneCycle + label smoothing, bf16/fp16 autocast on GPU, channels_last, per-epoch
checkpoints that a rerun resumes from, and hooks so pruning can re-apply masks after
each step without a loop of its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError
from edgeopt.safe_load import load_plain
from edgeopt.train.device_data import DeviceData
from edgeopt.train.distill import Distill

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PROGRESS = (True, False, "epochs")  # "epochs": one line per epoch, no bar (long runs logged to a file)


@dataclass
class TrainSettings:
    """The `train` config section (also used, with overrides, for fine-tuning and QAT)."""

    epochs: int = 30
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    pct_start: float = 0.25
    precision: str = "auto"
    channels_last: bool = True
    device: str = "auto"
    seed: int = 0
    crop_padding: int = 4
    flip: bool = True
    eval_batch_size: int = 1024
    progress: bool | str = True
    val_limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], **overrides: Any) -> TrainSettings:
        """Build from a config mapping, ignoring keys that are not training settings."""
        names = {f.name for f in fields(cls)}
        merged = {**{k: v for k, v in cfg.items() if k in names}, **overrides}
        s = cls(**merged)
        if s.precision not in PRECISIONS:
            raise EdgeoptError(f"train.precision: must be one of {PRECISIONS}, got {s.precision!r}")
        if isinstance(s.progress, int) and not isinstance(s.progress, bool) or s.progress not in PROGRESS:  # 1 == True
            raise EdgeoptError(f"train.progress: must be true, false or epochs, got {s.progress!r}")
        if s.epochs < 0 or s.batch_size < 1:
            raise EdgeoptError("train.epochs must be >= 0 and train.batch_size >= 1")
        return s

    def fingerprint(self) -> str:
        """Hash of the settings that change the result (a checkpoint resumes only on a match)."""
        d = asdict(self)
        d.pop("progress", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class FitResult:
    history: list[dict[str, float]]
    train_seconds: float
    images_per_second: float
    resumed_from_epoch: int


def remove_checkpoints(checkpoint: str | Path | None) -> None:
    """Delete a job's checkpoints (`checkpoint.pt` and its per-stage `checkpoint.<stage>.pt`) once its outputs exist.

    A checkpoint is for resuming an unfinished run: left beside a finished model, a forced rerun
    (`snakemake -f`/`-R`) would resume from the last epoch and silently return the old result.
    """
    if checkpoint is None:
        return
    c = Path(checkpoint)
    for f in [c, *c.parent.glob(f"{c.stem}.*{c.suffix}")]:
        f.unlink(missing_ok=True)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> CUDA when available, else CPU; a requested but missing CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdgeoptError(f"train.device: {name!r} requested but no CUDA GPU is available")
    return torch.device(name)


def sync_device(device: torch.device) -> None:
    """Wait for queued CUDA kernels, so a timer read after this sees the work done (no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting (None means plain fp32)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def one_cycle(opt: torch.optim.Optimizer, settings: TrainSettings, total_steps: int) -> Any:
    """OneCycle (linear warm-up then decay); very short runs (< 4 steps) use a constant rate."""
    if total_steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    pct = min(max(settings.pct_start, 1.5 / total_steps), 1 - 1.5 / total_steps)
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=settings.lr, total_steps=total_steps, pct_start=pct, anneal_strategy="linear"
    )


def evaluate(
    model: nn.Module,
    data: DeviceData,
    batch_size: int = 1024,
    amp_dtype: torch.dtype | None = None,
    limit: int | None = None,
) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy over (the first `limit` images of) a split."""
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    with (
        torch.inference_mode(),
        torch.autocast(data.device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
    ):
        for x, y in data.batches(batch_size, limit=limit):
            logits = model(x).float()
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += int(y.numel())
    return {"accuracy": correct / max(n, 1), "loss": loss_sum / max(n, 1), "images": n}


def recalibrate_bn(
    model: nn.Module,
    data: DeviceData,
    images: int,
    batch_size: int = 256,
    crop_padding: int = TrainSettings.crop_padding,
    flip: bool = TrainSettings.flip,
    seed: int = 0,
) -> None:
    """Re-estimate every BatchNorm's running statistics from the first `images` images of `data`.

    A cut changes what the layers after it see, so evaluating with the statistics averaged before the
    cut overstates the damage (EagleEye's "adaptive BN"); a few thousand images fix the statistics
    without training. The images get the training's augmentation: the weights were learnt together with
    statistics of augmented images (plain ones cost an uncut 10-epoch ResNet-20 3.8 pt, augmented 0.4).
    The model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below, not an exponential one
    gen = torch.Generator(device=data.device).manual_seed(seed)
    model.train()
    with torch.no_grad():
        for x, _ in data.batches(batch_size, crop_padding=crop_padding, flip=flip, generator=gen, limit=images):
            model(x)
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def fit(
    model: nn.Module,
    train: DeviceData,
    val: DeviceData | None,
    settings: TrainSettings,
    checkpoint: str | Path | None = None,
    after_step: Callable[[nn.Module, int], None] | None = None,
    desc: str = "train",
    params: list[nn.Parameter] | None = None,
    teacher: nn.Module | None = None,
    distill: Distill | None = None,
) -> FitResult:
    """Train `model` in place; resume from `checkpoint` when it matches these settings.

    `after_step(model, global_step)` runs after every optimizer step (pruning masks, AGP
    schedules); `params` restricts what is optimised (layer freezing); `teacher` + `distill`
    add a knowledge-distillation term (the teacher stays frozen, in eval mode).
    """
    device = train.device
    amp = autocast_dtype(settings.precision, device)
    model.to(device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    kd = distill if teacher is not None and distill is not None and distill.enabled else None
    if kd is not None:
        teacher = teacher.to(device).eval().requires_grad_(False)
        if settings.channels_last:
            teacher.to(memory_format=torch.channels_last)
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda"
    opt = torch.optim.SGD(
        params,
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.nesterov and settings.momentum > 0,
        weight_decay=settings.weight_decay,
        fused=fused or None,
    )
    steps_per_epoch = (
        max(1, math.floor(len(train) / settings.batch_size)) if len(train) >= settings.batch_size else 1
    )
    total_steps = max(1, settings.epochs * steps_per_epoch)
    sched = one_cycle(opt, settings, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    gen = torch.Generator(device=device)
    gen.manual_seed(settings.seed)
    history: list[dict[str, float]] = []
    start_epoch, elapsed, seen = 0, 0.0, 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = load_plain(ckpt, "training checkpoint", map_location=device)
        if isinstance(state, dict) and state.get("fingerprint") == settings.fingerprint():
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(
                state["generator"].cpu() if hasattr(state["generator"], "cpu") else state["generator"]
            )
            history, start_epoch = state["history"], state["epoch"] + 1
            elapsed, seen = state["elapsed"], state["seen"]
    resumed = start_epoch
    if resumed and settings.progress:
        tqdm.write(f"{desc}: resuming after epoch {resumed}/{settings.epochs} from {ckpt}")
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, settings.epochs):
        model.train()
        sync_device(device)
        t0 = time.perf_counter()
        batches = train.batches(
            settings.batch_size,
            shuffle=True,
            crop_padding=settings.crop_padding,
            flip=settings.flip,
            generator=gen,
            drop_last=True,
        )
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            desc=f"{desc} {epoch + 1}/{settings.epochs}",
            disable=settings.progress is not True,
            mininterval=1.0,
            leave=False,
        )
        loss_acc = torch.zeros((), device=device)
        n_batches = 0
        for x, y in bar:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = model(x)
                loss = loss_fn(logits, y)
                if kd is not None:
                    with torch.no_grad():
                        soft_targets = teacher(x)
                    loss = kd.loss(loss, logits, soft_targets)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if step < total_steps - 1:
                sched.step()
            step += 1
            if after_step is not None:
                after_step(model, step)
            loss_acc += loss.detach()
            n_batches += 1
            seen += int(y.numel())
        sync_device(device)
        elapsed += time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "train_loss": float(loss_acc) / max(n_batches, 1),
            "lr": sched.get_last_lr()[0],
        }
        if val is not None and len(val):
            ev = evaluate(model, val, settings.eval_batch_size, amp, settings.val_limit)
            record.update(val_accuracy=ev["accuracy"], val_loss=ev["loss"])
        history.append(record)
        if settings.progress:
            tqdm.write(
                f"{desc} epoch {epoch + 1}/{settings.epochs}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")
                + f", {time.perf_counter() - t0:.0f}s"
            )
            sys.stdout.flush()  # a log file is block-buffered: show each epoch as it ends
        if ckpt is not None:
            with atomic_path(ckpt) as tmp:
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "generator": gen.get_state(),
                        "epoch": epoch,
                        "history": history,
                        "elapsed": elapsed,
                        "seen": seen,
                        "fingerprint": settings.fingerprint(),
                    },
                    tmp,
                )
        if os.environ.get("EDGEOPT_STOP_AFTER_EPOCH") == str(epoch + 1):
            raise KeyboardInterrupt(f"stopped after epoch {epoch + 1} (EDGEOPT_STOP_AFTER_EPOCH)")
    model.eval()
    return FitResult(history, elapsed, seen / elapsed if elapsed > 0 else 0.0, resumed)
