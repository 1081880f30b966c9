"""Benchmark: DepGraph-pruned ResNet vs its baseline on the JPEG CIFAR-10 set, in one run.

Prepares a subset of the tarball, trains a baseline (or reuses --baseline), runs the
sensitivity analysis, plans a MACs target, prunes and fine-tunes with the pipeline's own
code, then prints side by side: MACs ratio, test-accuracy change and ONNX Runtime CPU
latency ratio (batch 1 and batch 32, A/B runs interleaved so machine load hits both alike).
`--orders loss,loss_per_saving` plans, prunes and fine-tunes once per planner order, from the same
baseline and sensitivity table, and times all the models in the same interleaved runs;
`--regularize-variants off,2:0.05` does the same for growing regularization (EPOCHS:SHRINK), each variant
training `--finetune-epochs` in all (regularizing epochs included), so they compare at equal cost.
`--control` also fine-tunes the unpruned baseline as the (first) pruned model was (its epochs in all, rate,
teacher): when the baseline is not converged, the extra epochs alone raise accuracy, and the change against
this equal-budget control is what pruning itself costs.

    PYTHONPATH=src python benchmarks/bench_prune.py --train-per-class 200 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    add_distill_args,
    add_reuse_args,
    baseline_for,
    bench_train_cfg,
    distill_config,
    line_buffered_stdout,
    reused_data,
)

from edgeopt.convert.onnx_export import export_onnx  # noqa: E402
from edgeopt.models import load_model  # noqa: E402
from edgeopt.prune.apply import prune_model  # noqa: E402
from edgeopt.prune.latency_probe import ort_latency_ms  # noqa: E402
from edgeopt.prune.planner import plan_pruning  # noqa: E402
from edgeopt.prune.recipe import control_recipe, load_recipe, save_recipe  # noqa: E402
from edgeopt.prune.sensitivity import analyze_sensitivity  # noqa: E402


def main() -> int:
    line_buffered_stdout()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20", choices=["resnet20", "resnet56"])
    ap.add_argument("--workdir", default="results/bench_prune")
    ap.add_argument(
        "--train-per-class", type=int, default=200, help="training-pool images per class (10%% go to val)"
    )
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10, help="baseline training epochs")
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--finetune-lr", type=float, default=0.05, help="peak OneCycle rate of the fine-tuning")
    add_distill_args(ap)
    ap.add_argument("--prune-steps", type=int, default=1, help="iterative pruning: steps to reach the plan (1: one shot)")
    ap.add_argument("--epochs-per-step", type=int, default=2, help="fine-tune epochs after each step but the last")
    ap.add_argument("--regularize-epochs", type=int, default=0,
                    help="growing regularization: epochs shrinking the channels to cut before the cut (0: off)")
    ap.add_argument("--regularize-shrink", type=float, default=0.01, help="per-step shrink at full strength")
    ap.add_argument(
        "--regularize-variants",
        help="compare growing regularization side by side, comma-separated off|EPOCHS:SHRINK (e.g. off,2:0.05); "
        "each variant trains --finetune-epochs in all, its regularizing epochs included (overrides --regularize-*)",
    )
    ap.add_argument("--reuse", action="store_true", help="reuse a sensitivity.csv already in --workdir")
    ap.add_argument("--target", type=float, default=2.5, help="MACs reduction the planner must reach")
    ap.add_argument(
        "--orders", default="loss",
        help="planner move orders (prune.order) to compare side by side, comma-separated: loss,loss_per_saving,global",
    )
    ap.add_argument("--ratios", default="0.25,0.5,0.75", help="sensitivity sweep")
    ap.add_argument(
        "--control", action="store_true",
        help="also fine-tune the unpruned baseline with the same recipe and report the change against it",
    )
    ap.add_argument(
        "--batch-size", type=int, default=128, help="baseline training and fine-tuning batch size"
    )
    ap.add_argument(
        "--channels-last", action="store_true", help="train in channels_last (faster on AVX-512 CPUs)"
    )
    ap.add_argument("--sens-val-limit", type=int, help="sensitivity evaluates this many validation images")
    ap.add_argument("--sens-bn-recalib", type=int, default=0,
                    help="sensitivity re-estimates BatchNorm statistics on this many training images after each cut (0: off)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the training and fine-tuning (batch order, augmentation): another one shows the noise")
    ap.add_argument("--runs", type=int, default=200, help="timed ORT runs per model and batch size")
    add_reuse_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    t_start = time.perf_counter()
    data = reused_data(args, work / "data")
    train_cfg = bench_train_cfg(args, eval_batch_size=500, channels_last=args.channels_last, seed=args.seed)
    args.model, base_pt, base = baseline_for(args, data, work / args.model / "baseline", train_cfg)
    t_train = time.perf_counter()
    sens = work / args.model / "sensitivity.csv"
    if not (args.reuse and sens.exists()):
        analyze_sensitivity(
            base_pt,
            data,
            sens,
            sens.with_suffix(".png"),
            {
                "ratios": [float(r) for r in args.ratios.split(",")],
                "device": args.device,
                "round_to": 8,
                "val_limit": args.sens_val_limit,
                "bn_recalib": args.sens_bn_recalib,
            },
        )
    t_sens = time.perf_counter()
    orders = args.orders.split(",")
    regs = _regularize_variants(args)
    prune_cfg = {
        "target": {"kind": "macs", "value": args.target},
        "round_to": 8,
        "max_ratio": 0.8,
        "schedule": {"steps": args.prune_steps, "epochs_per_step": args.epochs_per_step},
        "regularize": {"epochs": args.regularize_epochs, "shrink": args.regularize_shrink},
        "finetune": {
            "epochs": args.finetune_epochs,
            "lr": args.finetune_lr,
            "pct_start": 0.1,
            "distill": distill_config(args),
        },
    }
    pruned: dict[str, dict] = {}
    for order, (reg_epochs, shrink, ft_epochs) in [(o, r) for o in orders for r in regs]:
        # the default variant keeps the paths of earlier runs, so their fine-tuning checkpoints stay valid
        name = "pruned" + (f"-{order}" if order != "loss" else "") + (f"-reg{reg_epochs}x{shrink:g}" if reg_epochs else "")
        recipe = work / args.model / f"{name}.yaml"
        cfg = {**prune_cfg, "order": order, "regularize": {"epochs": reg_epochs, "shrink": shrink},
               "finetune": {**prune_cfg["finetune"], "epochs": ft_epochs}}
        plan_pruning("pruned", base_pt, recipe, cfg, sens, model_name=args.model)
        pruned_pt = work / args.model / name / "model.pt"
        # per-epoch checkpoints: a rerun of the same command resumes an interrupted fine-tuning
        pm = prune_model(
            recipe, base_pt, data, pruned_pt, pruned_pt.with_name("metrics.json"), train_cfg, base,
            checkpoint=pruned_pt.with_name("ckpt.pt"),
        )
        pruned[name] = {"order": order, "regularize": reg_epochs, "pt": pruned_pt, "metrics": pm}
    control = _control(work / args.model, next(iter(pruned.values()))["metrics"], base_pt, data, train_cfg,
                       base) if args.control else None
    t_prune = time.perf_counter()
    onnx = {}
    for name, pt in [("baseline", base_pt)] + [(n, v["pt"]) for n, v in pruned.items()]:
        model, _ = load_model(pt)
        onnx[name] = export_onnx(model, work / args.model / f"{name}.onnx", 32)
    lat = {
        b: ort_latency_ms(onnx, b, args.runs if b == 1 else max(20, args.runs // 8), args.threads)
        for b in (1, 32)
    }
    counts = json.loads((data / "meta.json").read_text())["counts"]
    print(
        f"\n== bench_prune: {args.model}, JPEG CIFAR-10 {data} ({counts['train']} train, {counts['val']} val, "
        f"{counts['test']} test images), CPU, {args.threads} threads =="
    )
    print(
        f"baseline: {base['epochs']} epochs, test acc {base['accuracy']:.4f}, {base['macs'] / 1e6:.2f} M MACs, "
        f"{base['params'] / 1e6:.3f} M params"
    )
    for name, v in pruned.items():
        pm = v["metrics"]
        print(
            f"\n{name} (planner order {v['order']}): {pm['prune_steps']} pruning step(s), "
            f"{pm['finetune_epochs']} fine-tune epochs in all (lr {args.finetune_lr:g}"
            + (f", distilled alpha {args.distill_alpha:g} T {args.distill_temperature:g}" if args.distill_alpha else "")
            + (f", {v['regularize']} of them regularizing before the cut, channels to cut at "
               f"{pm['pruning']['regularize']['norm_ratio_at_cut']:.3f} of the mean norm" if v["regularize"] else "")
            + f"), val acc before fine-tuning {pm['val_accuracy_before_finetune']:.4f}"
            + "".join(f", after cut {i} {a:.4f}" for i, a in enumerate(pm["val_accuracy_after_cuts"], 1))
            + f", test acc {pm['accuracy']:.4f}, "
            f"{pm['macs'] / 1e6:.2f} M MACs, {pm['params'] / 1e6:.3f} M params"
        )
        print(f"  MACs ratio (baseline/pruned):        {pm['macs_reduction']:.2f}x")
        print(f"  params ratio (baseline/pruned):      {pm['params_reduction']:.2f}x")
        print(f"  test accuracy change:                {100 * pm['accuracy_change']:+.2f} pt")
        if control is not None:
            print(f"  change vs the fine-tuned control:    {100 * (pm['accuracy'] - control['accuracy']):+.2f} pt")
        for b, d in lat.items():
            print(
                f"  ORT CPU latency batch {b:>2}: baseline {d['baseline']:.3f} ms, pruned {d[name]:.3f} ms, "
                f"speed-up {d['baseline'] / d[name]:.2f}x"
            )
    if control is not None:
        print(
            f"\ncontrol (the unpruned baseline, fine-tuned as the first pruned model: "
            f"{control['finetune_epochs']} epochs): test acc {control['accuracy']:.4f} "
            f"({100 * control['accuracy_change']:+.2f} pt on the baseline)"
        )
    print(
        f"\ntime: train {t_train - t_start:.0f}s, sensitivity {t_sens - t_train:.0f}s, "
        f"plan+prune+fine-tune {t_prune - t_sens:.0f}s, total {time.perf_counter() - t_start:.0f}s"
    )
    return 0


def _control(out: Path, pruned: dict, base_pt: Path, data: Path, train_cfg: dict, base: dict) -> dict:
    """The unpruned baseline fine-tuned as the `pruned` model was (its recipe's fine-tuning, its epochs in all)."""
    path = out / "control.yaml"
    save_recipe(path, control_recipe(load_recipe(pruned["recipe"]), pruned["finetune_epochs"]))
    model_pt = out / "control" / "model.pt"
    return prune_model(path, base_pt, data, model_pt, model_pt.with_name("metrics.json"), train_cfg, base,
                       checkpoint=model_pt.with_name("ckpt.pt"))


def _regularize_variants(args: argparse.Namespace) -> list[tuple[int, float, int]]:
    """(regularize epochs, shrink, fine-tune epochs after the cut) per variant to run."""
    if not args.regularize_variants:
        return [(args.regularize_epochs, args.regularize_shrink, args.finetune_epochs)]
    out = []
    for spec in args.regularize_variants.split(","):
        if spec == "off":
            out.append((0, args.regularize_shrink, args.finetune_epochs))
            continue
        try:
            e, sh = spec.split(":")
            epochs, shrink = int(e), float(sh)
        except ValueError:
            raise SystemExit(f"--regularize-variants: {spec!r} is neither off nor EPOCHS:SHRINK") from None
        if not 0 < epochs < args.finetune_epochs:
            raise SystemExit(f"--regularize-variants: {spec!r} needs 0 < EPOCHS < --finetune-epochs")
        out.append((epochs, shrink, args.finetune_epochs - epochs))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
