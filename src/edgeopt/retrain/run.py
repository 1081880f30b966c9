"""One retraining measurement: build the job, run it on the device, write the metrics JSON."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.provenance import provenance
from edgeopt.records import RetrainResult, write_record
from edgeopt.retrain import ort_env
from edgeopt.retrain.jobs import build_job
from edgeopt.retrain.runner import job_python, run_on_device
from edgeopt.retrain.settings import check_framework, get_setting, supports

#: keys copied from the device result into the metrics JSON (all measured on the device)
DEVICE_KEYS = (
    "runtime_version",
    "torch_device",
    "gpu",
    "amp",
    "trainable_params",
    "frozen_params",
    "accuracy_before",
    "loss_before",
    "accuracy_after",
    "loss_after",
    "seconds_per_epoch",
    "images_per_second",
    "first_epoch_images_per_second",
    "steady_images_per_second",
    "train_seconds",
    "peak_rss_bytes",
    "rss_before_training_bytes",
    "gpu_max_allocated_bytes",
    "wall_seconds",
    "param_change",
    "epochs",
    "host",
)


def retrain(
    model_path: str | Path,
    data_dir: str | Path,
    framework: str,
    setting_name: str,
    section: dict[str, Any],
    device: str = "local",
    out: str | Path | None = None,
    work_dir: str | Path | None = None,
    model: str | None = None,
    variant: str | None = None,
    log: str | Path | None = None,
    device_cfg: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune `model_path` with `framework` in `setting_name` on `device`; returns (and writes) metrics."""
    check_framework(framework)
    setting = get_setting(section, setting_name)
    if not supports(framework, setting):
        raise EdgeoptError(
            f"retrain.settings.{setting.name}.precision: {framework} cannot train in {setting.precision} (fp32 only)"
        )
    out = Path(out) if out else None
    work = Path(work_dir) if work_dir else (out.with_suffix(".job") if out else Path("retrain-job"))
    logp = Path(log) if log else None
    ort_python = None
    if framework == "onnxruntime":
        ort_python = ort_env.python_or_error(section.get("ort_python"))
    host = build_job(work, model_path, data_dir, framework, setting, section, ort_python, logp)
    python = job_python(section, device, framework, ort_python)
    res = run_on_device(work, framework, device, device_cfg or {}, python, section.get("timeout_s"), logp)
    metrics = {
        "model": model or host.get("arch"),
        "variant": variant,
        "framework": framework,
        "device": device,
        "setting": setting.name,
        "freeze": setting.freeze,
        "precision": setting.precision,
        "batch_size": setting.batch_size,
        "epochs_run": len(res.get("epochs", [])),
        "lr": float(section.get("lr", 1e-3)),
        "frozen_layers": host["frozen_layers"],
        "total_layers": host["total_layers"],
        "train_images": res.get("train_images", host["train_images"]),
        "test_images": res.get("test_images", host["test_images"]),
        "accuracy": res["accuracy_after"],
        "loss": res["loss_after"],
        "accuracy_delta": res["accuracy_after"] - res["accuracy_before"],
        **{k: res.get(k) for k in DEVICE_KEYS},
        "job_bytes": host["job_bytes"],
        "prepare_seconds": host["prepare_seconds"],
        "provenance": provenance(section),
    }
    # the host block describes where the workflow ran; the training ran on the device
    metrics["provenance"]["device_side"] = {
        **(res.get("host") or {}),
        "device": device,
        "torch_device": res.get("torch_device"),
        "gpu": res.get("gpu"),
        "framework_version": res.get("runtime_version"),
    }
    # the device-side trainer runs without edgeopt.records: its reply is checked here, as a record
    record = RetrainResult.from_json(metrics, f"device {device}: retraining result")
    if out is not None:
        write_record(out, record)
        if not section.get("keep_job", False):
            shutil.rmtree(work, ignore_errors=True)
    return metrics
