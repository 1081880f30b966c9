"""`edgeopt bench-retrain`: speedup of layer freezing and reduced precision against fp32 training.

One run trains the same model on the same images with every setting, through the very job
builder and device scripts the retrain_model rule uses (each job in its own process, one
after the other), and prints images/s and the ratio to full fp32 training per framework.
Synthetic CIFAR-sized images by default: throughput does not depend on the pixels.
Nothing is asserted: a timing is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SETTINGS = [
    {"name": "fp32", "freeze": 0, "precision": "fp32"},
    {"name": "bf16", "freeze": 0, "precision": "bf16"},
    {"name": "fp16", "freeze": 0, "precision": "fp16"},
    {"name": "freeze10", "freeze": 10, "precision": "fp32"},
    {"name": "freeze10-bf16", "freeze": 10, "precision": "bf16"},
    {"name": "head", "freeze": "all_but_classifier", "precision": "fp32"},
]


def make_inputs(
    work: Path, model_name: str, images: int, size: int = 32, classes: int = 10
) -> tuple[Path, Path]:
    """A synthetic dataset cache and a randomly initialised registry model (throughput only)."""
    from edgeopt.data.arrays import Split, save_split
    from edgeopt.models import create_model, save_model

    data = work / "data"
    rng = np.random.default_rng(0)
    for name, n in (("train", images), ("test", 256)):
        x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        save_split(data / f"{name}.npz", Split(x=x, y=rng.integers(0, classes, n).astype(np.int64)))
    meta = {"num_classes": classes, "channels": 3, "image_size": size, "mean": [0.5] * 3, "std": [0.25] * 3}
    (data / "meta.json").write_text(json.dumps(meta))
    model_path = work / "model.pt"
    save_model(model_path, create_model(model_name, classes, 3), {"arch": model_name, "num_classes": classes})
    return model_path, data


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    from edgeopt.errors import EdgeoptError
    from edgeopt.retrain import ort_env
    from edgeopt.retrain.run import retrain
    from edgeopt.retrain.settings import settings_of, supports

    wanted = [n.strip() for n in (args.settings or "").split(",") if n.strip()]
    settings = [
        {**s, "batch_size": args.batch_size} for s in DEFAULT_SETTINGS if not wanted or s["name"] in wanted
    ]
    if args.freeze != 10:
        for s in settings:
            if s["freeze"] == 10:
                s["freeze"] = args.freeze
                s["name"] = s["name"].replace("freeze10", f"freeze{args.freeze}")
    section = {
        "epochs": args.epochs,
        "subset_size": None,
        "eval_limit": 256,
        "lr": 1e-3,
        "threads": args.threads,
        "torch_device": args.device,
        "settings": settings,
    }
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    if "onnxruntime" in frameworks and not ort_env.venv_python().exists():
        print(
            f"onnxruntime skipped: no ORT training env at {ort_env.venv_dir()} (run edgeopt setup-ort-training)"
        )
        frameworks.remove("onnxruntime")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        model_path, data = make_inputs(Path(tmp), args.model, args.images)
        for fw in frameworks:
            for s in settings_of(section).values():
                if not supports(fw, s):
                    continue
                try:
                    m = retrain(
                        model_path,
                        data,
                        fw,
                        s.name,
                        section,
                        out=None,
                        work_dir=Path(tmp) / "job",
                        log=Path(tmp) / "job.log",
                    )
                except EdgeoptError as exc:
                    print(f"  {fw}-{s.name}: failed ({exc})", file=sys.stderr)
                    continue
                rows.append(m)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="resnet20", help="registry model (randomly initialised)")
    p.add_argument("--images", type=int, default=2048, help="synthetic training images per epoch")
    p.add_argument("--epochs", type=int, default=3, help="epochs; the first is reported apart (warm-up)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--freeze", type=int, default=10, help="k for the freeze-first-k settings")
    p.add_argument("--frameworks", default="pytorch,onnxruntime")
    p.add_argument(
        "--settings",
        help=f"comma-separated subset of {', '.join(s['name'] for s in DEFAULT_SETTINGS)} (default: all)",
    )
    p.add_argument("--device", default="auto", help="torch device on this machine: auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: framework default)")
    p.add_argument("--json", help="also write the rows here")


def run(args: argparse.Namespace) -> int:
    rows = run_benchmark(args)
    if not rows:
        print("no setting ran")
        return 1
    r0 = rows[0]
    where = r0.get("gpu") or (r0.get("host") or {}).get("processor") or "CPU"
    print(
        f"bench-retrain {args.model} on {where} ({r0['torch_device']}), {args.images} images x {args.epochs} epochs,"
        f" batch {args.batch_size}, threads {args.threads or 'default'}"
    )
    print(
        f"  {'framework-setting':28s} {'img/s':>9s} {'1st ep':>9s} {'steady':>9s} {'speedup':>8s} {'peak RSS':>9s}  acc"
    )
    for fw in dict.fromkeys(r["framework"] for r in rows):
        ref = next((r for r in rows if r["framework"] == fw and r["setting"] == "fp32"), None)
        for r in (r for r in rows if r["framework"] == fw):
            base = ref["steady_images_per_second"] or ref["images_per_second"] if ref else None
            mine = r["steady_images_per_second"] or r["images_per_second"]
            speed = f"{mine / base:7.2f}x" if base else "      -"
            print(
                f"  {fw + '-' + r['setting']:28s} {r['images_per_second']:9.0f} {r['first_epoch_images_per_second']:9.0f}"
                f" {mine:9.0f} {speed} {r['peak_rss_bytes'] / 2**20:7.0f}MB  {r['accuracy_after']:.3f}"
            )
    if "pytorch" in {r["framework"] for r in rows} and "onnxruntime" in {r["framework"] for r in rows}:
        pt = next(r for r in rows if r["framework"] == "pytorch" and r["setting"] == "fp32")
        ox = next((r for r in rows if r["framework"] == "onnxruntime" and r["setting"] == "fp32"), None)
        if ox:
            a = ox["steady_images_per_second"] or ox["images_per_second"]
            b = pt["steady_images_per_second"] or pt["images_per_second"]
            print(f"  onnxruntime / pytorch at fp32: {a / b:.2f}x")
    print("  speedup: steady-state img/s (epochs after the first) against the same framework's fp32 setting")
    if args.json:
        from edgeopt.atomic import write_json

        write_json(args.json, rows)
    return 0
