"""The QAT rule: fine-tune a (baseline or pruned) checkpoint with fake quantization at one W/A pair.

Uses the shared training loop (`edgeopt.train.loop.fit`); measures accuracy before and after
fine-tuning next to the fp32 model on the same test images. Results are simulated (PyTorch
fake-quant), and only 8/8 maps onto integer kernels of a real runtime: both flags are recorded.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import torch

from edgeopt.atomic import write_text
from edgeopt.data import load_meta, load_split
from edgeopt.errors import EdgeoptError
from edgeopt.models import load_model
from edgeopt.provenance import provenance
from edgeopt.quantize.data import load_calibration, make_contiguous, subset
from edgeopt.quantize.fake_quant import FakeQuantQAT, check_bits, set_observe
from edgeopt.records import QAT_SWEEP_COLUMNS, QatResult, read_record, write_record
from edgeopt.train.device_data import DeviceData
from edgeopt.train.loop import TrainSettings, evaluate, fit, resolve_device

#: keys of `quantize.qat` that override the `train` section for fine-tuning
TRAIN_OVERRIDES = ("epochs", "lr", "batch_size", "weight_decay", "pct_start", "device", "seed")


def parse_pair(text: str) -> tuple[int, int]:
    """'w5a5' -> (5, 5), with the 2..8 range checked."""
    import re

    m = re.fullmatch(r"w(\d+)a(\d+)", text)
    if not m:
        raise EdgeoptError(f"bit pair {text!r}: expected w<bits>a<bits>, e.g. w5a5")
    return check_bits(int(m[1]), "bits_w"), check_bits(int(m[2]), "bits_a")


def qat_settings(train_cfg: dict[str, Any], qat_cfg: dict[str, Any]) -> TrainSettings:
    """The `train` section with QAT overrides; fp32 (fake-quant under autocast is not worth the risk)."""
    over = {k: qat_cfg[k] for k in TRAIN_OVERRIDES if qat_cfg.get(k) is not None}
    return TrainSettings.from_config(train_cfg, **over, precision="fp32")


def run_qat(
    model_path: str | Path,
    data_dir: str | Path,
    out: str | Path,
    bits_w: int,
    bits_a: int,
    qat_cfg: dict[str, Any],
    train_cfg: dict[str, Any],
    model_name: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """Fine-tune `model_path` fake-quantized at (bits_w, bits_a); write and return the result JSON."""
    check_bits(bits_w, "bits_w")
    check_bits(bits_a, "bits_a")
    settings = qat_settings(train_cfg, qat_cfg)
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    fp32, meta = load_model(model_path, "cpu")
    fp32 = make_contiguous(fp32)
    data_meta = load_meta(data_dir)
    calib = load_calibration(data_dir, data_meta, qat_cfg.get("calib_images"))
    train = subset(load_split(data_dir, "train"), qat_cfg.get("train_limit"), settings.seed)
    test = subset(load_split(data_dir, "test"), qat_cfg.get("test_limit"))
    dtrain = DeviceData(train, data_meta, device, settings.channels_last)
    dtest = DeviceData(test, data_meta, device, settings.channels_last)
    fp32_eval = evaluate(fp32.to(device), dtest, settings.eval_batch_size)

    family = FakeQuantQAT()
    qmodel, report = family.prepare(
        fp32, bits_w, bits_a, qat_cfg.get("overrides"), qat_cfg.get("fold_bn", True)
    )
    qmodel.to(device).eval()
    set_observe(qmodel, True)  # seed activation ranges on the calibration subset
    with torch.no_grad():
        for i in range(0, len(calib), 64):
            qmodel(torch.from_numpy(calib[i : i + 64]).to(device))
    set_observe(qmodel, False)
    before = evaluate(qmodel, dtest, settings.eval_batch_size)
    t0 = time.perf_counter()
    result = fit(qmodel, dtrain, None, settings, desc=f"qat w{bits_w}a{bits_a}")
    seconds = time.perf_counter() - t0
    after = evaluate(qmodel, dtest, settings.eval_batch_size)
    deployable = family.deployable(bits_w, bits_a)
    record = QatResult(
        model=model_name or meta.get("arch"),
        variant=variant or meta.get("variant", "baseline"),
        stage="qat",
        quantizer=family.name,
        bits_w=bits_w,
        bits_a=bits_a,
        accuracy=after["accuracy"],
        fp32_accuracy=fp32_eval["accuracy"],
        delta=after["accuracy"] - fp32_eval["accuracy"],
        accuracy_before_finetune=before["accuracy"],
        test_images=after["images"],
        train_images=len(train),
        epochs=settings.epochs,
        deployable=deployable,
        simulated=True,
        extra={
            "loss": after["loss"],
            "lr": settings.lr,
            "measured_in": "pytorch fake-quant (simulated integer arithmetic)",
            "deploy_note": (
                "8-bit W/A: deploy through the ort-int8 / tflite-int8 artifacts (integer kernels)"
                if deployable
                else "sub-8-bit: no runtime here has these kernels; accuracy is simulated, no latency exists"
            ),
            "bn_folded": report["bn_folded"],
            "layers": report["layers"],
            "qat_seconds": seconds,
            "history": result.history,
            "source_model": str(model_path),
        },
        provenance=provenance({"quantize.qat": qat_cfg, "train": train_cfg}, str(device)),
    )
    return write_record(out, record)


def write_sweep(jsons: list[str | Path], out: str | Path) -> list[dict[str, Any]]:
    """Collect per-pair QAT JSONs into the sweep table (one row per W/A pair, widest bits first)."""
    rows = []
    for path in jsons:
        p = Path(path)
        if not p.exists():
            raise EdgeoptError(f"{p}: QAT result missing")
        r = read_record(p, QatResult)
        rows.append({k: getattr(r, k) for k in QAT_SWEEP_COLUMNS})
    rows.sort(key=lambda r: (-r["bits_w"], -r["bits_a"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=QAT_SWEEP_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(out, buf.getvalue())
    return rows
