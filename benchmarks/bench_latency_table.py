"""Benchmark: pruning judged on the device: a MACs target, today's `measured` latency mode and a target planned
from a latency table measured on the device, side by side on one baseline and one device in one run.

1. Builds the latency table both ways (`whole`: the whole model with one group cut; `layers`: the group's layers
   alone, summed) on the device, then times a set of pruned models there (random per-group widths and uniform
   cuts) and compares each table's predicted speed-up with the measured one: the better method plans.
2. Plans four recipes from the same sensitivity table: `macs` at --speedup fewer MACs (latency assumed to follow
   MACs), `measured` (today's `latency_model: measured`, a budget of baseline / --speedup), `table` (kind
   speedup, checked on the device) and `macs-same` (a MACs target equal to what the table plan reached).
3. Times the baseline and every plan side by side on the device (rounds interleaved); with --finetune-epochs > 0
   also fine-tunes each the same way on --data (the baseline teaching with --distill-alpha) and reports test
   accuracy against the baseline's; --control also fine-tunes the unpruned baseline exactly alike, the
   equal-budget comparison for a baseline that is not quite converged. Fine-tuning checkpoints every epoch, and a
   plan already fine-tuned in --workdir is reused, so a stopped run resumes.

    PYTHONPATH=src python benchmarks/bench_latency_table.py --baseline results/models/resnet56/baseline/model.pt \\
        --sensitivity results/sensitivity/resnet56/sensitivity.csv --speedup 1.8 [--data results/data/cifar10 \\
        --finetune-epochs 40]

Latency needs no training: a freshly initialised or briefly trained baseline gives the speed-up part; the
accuracy part needs a converged baseline and --finetune-epochs as long as the deployment would use.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_distill_args, distill_config, line_buffered_stdout  # noqa: E402

from edgeopt.devices import device_from_json  # noqa: E402
from edgeopt.formats import FORMATS  # noqa: E402
from edgeopt.prune.apply import apply_recipe, prune_model  # noqa: E402
from edgeopt.prune.common import count, load_for_pruning  # noqa: E402
from edgeopt.prune.groups import list_groups  # noqa: E402
from edgeopt.prune.latency_sweep import build_artifact, cut_to, time_files, write_table  # noqa: E402
from edgeopt.prune.latency_table import read_table  # noqa: E402
from edgeopt.prune.planner import plan_pruning  # noqa: E402
from edgeopt.prune.recipe import control_recipe, load_recipe, save_recipe  # noqa: E402
from edgeopt.records import BenchBatch, BenchResult, write_record  # noqa: E402


def main() -> int:
    line_buffered_stdout()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="baseline model.pt (metrics.json beside it for its accuracy)")
    ap.add_argument("--sensitivity", required=True, help="its sensitivity.csv")
    ap.add_argument("--data", help="dataset cache folder (needed for --finetune-epochs > 0)")
    ap.add_argument("--workdir", default="results/bench_latency_table/run")
    ap.add_argument("--device", default="local")
    ap.add_argument("--device-params", default="{}", help="the device's settings as JSON (as in `devices:`)")
    ap.add_argument("--format", default="ort-fp32")
    ap.add_argument("--speedup", type=float, default=1.8)
    ap.add_argument("--max-ratio", type=float, default=0.8)
    ap.add_argument("--ratios", default="0.125,0.25,0.375,0.5,0.625,0.75", help="table sweep")
    ap.add_argument("--threads", type=int, default=2, help="runtime threads on the device")
    ap.add_argument("--rounds", type=int, default=10, help="table: rounds of side-by-side timing")
    ap.add_argument("--runs", type=int, default=3, help="table: runs per file per round")
    ap.add_argument("--plan-rounds", type=int, default=3, help="target.rounds of the table plan")
    ap.add_argument("--probe-runs", type=int, default=50, help="`measured` mode: timed runs per candidate")
    ap.add_argument("--validate", type=int, default=8, help="random pruned models timed to compare the methods")
    ap.add_argument("--final-rounds", type=int, default=30, help="final comparison: rounds (runs: --runs)")
    ap.add_argument("--finetune-epochs", type=int, default=0)
    ap.add_argument("--finetune-lr", type=float, default=0.02)
    add_distill_args(ap)
    ap.add_argument("--control", action="store_true",
                    help="also fine-tune the unpruned baseline exactly as the plans and report the change against it")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse-tables", action="store_true", help="keep tables already in --workdir (same settings!)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    device = device_from_json(args.device, args.device_params)
    model, meta = load_for_pruning(args.baseline, "cpu")
    ratios = [float(r) for r in args.ratios.split(",")]
    timing = {"warmup": 3, "rounds": args.rounds, "runs": args.runs, "threads": args.threads, "ratios": ratios}
    t_start = time.time()

    # 1. both tables, then predicted vs measured on pruned models
    tables, build_s = {}, {}
    for method in ("whole", "layers"):
        t0 = time.time()
        path = work / f"table-{method}.csv"
        if not (args.reuse_tables and path.exists()):
            write_table(args.baseline, meta.get("arch", "model"), device, args.format, {**timing, "method": method},
                        path)
        tables[method], build_s[method] = read_table(path), time.time() - t0
        print(f"table {method}: {len(tables[method].channels)} groups, baseline {tables[method].baseline_ms:.3f} ms, "
              f"built in {build_s[method]:.0f} s")
    groups = list_groups(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"))
    channels = {g.name: g.channels for g in groups}
    rng = random.Random(args.seed)
    configs: list[dict[str, int]] = []
    for r in (0.25, 0.5):  # uniform cuts
        configs.append({g: max(1, round(c * (1 - r))) for g, c in channels.items()})
    while len(configs) < args.validate:
        configs.append({g: rng.choice(sorted(tables["whole"].saved[g])) for g in channels if rng.random() < 0.6})
    ext = FORMATS[args.format].ext
    files = [build_artifact(model, meta, args.format, work / f"v-base.{ext}", {})]
    files += [build_artifact(cut_to(model, meta, w, channels), meta, args.format, work / f"v{i}.{ext}", {})
              for i, w in enumerate(configs)]
    ms = [m["latency_ms"] for m in time_files(device, args.format, files,
                                              {**timing, "rounds": args.final_rounds})["models"]]
    errors: dict[str, list[float]] = {"whole": [], "layers": []}
    print("\n== predicted vs measured speed-up of pruned models (one interleaved run on the device) ==")
    print("model | measured | whole predicts | layers predicts")
    for i, w in enumerate(configs):
        measured = ms[0] / ms[i + 1]
        pred = {k: t.baseline_ms / t.predict_ms(w) for k, t in tables.items()}
        for k in errors:
            errors[k].append(abs(pred[k] - measured) / measured)
        print(f"v{i} ({len(w)} groups cut) | {measured:.3f}x | {pred['whole']:.3f}x | {pred['layers']:.3f}x")
    mae = {k: statistics.mean(v) for k, v in errors.items()}
    best = min(mae, key=mae.get)
    print(f"mean |predicted - measured| / measured speed-up: whole {mae['whole']:.1%}, layers {mae['layers']:.1%} "
          f"-> planning with `{best}`")

    # 2. the plans
    bench_json = work / "baseline-bench.json"
    base_ms = tables[best].baseline_ms
    write_record(bench_json, BenchResult(  # the `measured` mode scales this board latency, as a bench result gives it
        device=args.device, model=str(meta.get("arch", "model")), variant="baseline", format=args.format,
        runtime=FORMATS[args.format].runtime, precision=FORMATS[args.format].precision, artifact="",
        size_bytes=0, accuracy=None, accuracy_host=None,
        batches=[BenchBatch(batch_size=1, latency_ms={"p50": base_ms}, throughput_ips=1000 / base_ms)]))
    finetune = {"epochs": args.finetune_epochs, "lr": args.finetune_lr, "batch_size": args.batch_size,
                "distill": distill_config(args)}
    common = {"round_to": 8, "max_ratio": args.max_ratio, "order": "loss", "finetune": finetune}
    cfgs = {
        "macs": {**common, "target": {"kind": "macs", "value": args.speedup}},
        "measured": {**common, "target": {"kind": "latency", "value": base_ms / args.speedup,
                                          "latency_model": "measured", "probe_runs": args.probe_runs,
                                          "probe_threads": args.threads}},
        "table": {**common, "target": {"kind": "speedup", "value": args.speedup, "device": args.device,
                                       "format": args.format, "rounds": args.plan_rounds},
                  "latency_table": {**timing, "method": best}, "device_settings": json.loads(args.device_params)},
    }
    recipes, plan_s = {}, {}
    for name, cfg in cfgs.items():
        t0 = time.time()
        try:
            recipes[name] = plan_pruning("pruned", args.baseline, work / f"{name}.yaml", cfg, args.sensitivity,
                                         bench_json if name == "measured" else None, latency_table=work / f"table-{best}.csv")
        except Exception as exc:  # noqa: BLE001 - a plan that cannot reach the target is a result too
            print(f"plan {name}: {exc}")
        plan_s[name] = time.time() - t0
    if "table" in recipes:
        same = recipes["table"]["planned"]["macs_reduction"]
        t0 = time.time()
        recipes["macs-same"] = plan_pruning("pruned", args.baseline, work / "macs-same.yaml",
                                            {**common, "target": {"kind": "macs", "value": same}}, args.sensitivity)
        plan_s["macs-same"] = time.time() - t0

    # 3. every plan timed side by side with the baseline on the device
    names = list(recipes)
    files = [files[0]]
    base_macs = count(model, meta)[0]
    macs = {}
    for name in names:
        pruned, _ = load_for_pruning(args.baseline, "cpu")
        apply_recipe(pruned, load_recipe(work / f"{name}.yaml"), meta)
        macs[name] = base_macs / count(pruned, meta)[0]
        files.append(build_artifact(pruned, meta, args.format, work / f"final-{name}.{ext}", {}))
    ms = [m["latency_ms"] for m in time_files(device, args.format, files,
                                              {**timing, "rounds": args.final_rounds})["models"]]
    acc = {}
    base_metrics = Path(args.baseline).with_name("metrics.json")
    base_acc = json.loads(base_metrics.read_text()).get("accuracy") if base_metrics.exists() else None
    if args.finetune_epochs > 0:
        if not args.data:
            sys.exit("--finetune-epochs needs --data")
        if args.control:
            save_recipe(work / "control.yaml", control_recipe(load_recipe(work / f"{names[0]}.yaml")))
        for name in [*names, *(["control"] if args.control else [])]:
            acc[name] = _finetuned(work, name, args, base_acc)
    print(f"\n== bench_latency_table: {meta.get('arch')} on {args.device} ({args.format}), batch 1, {args.threads} "
          f"threads; baseline {ms[0]:.3f} ms; medians of {args.final_rounds}x{args.runs} interleaved runs; "
          f"target {args.speedup:g}x ==")
    print("plan | MACs | planner said | measured speed-up | target | accuracy (change) | plan time")
    for i, name in enumerate(names):
        p = recipes[name]["planned"]
        said = {"macs": f"{p['reached_reduction']:.2f}x fewer MACs", "macs-same": f"{p['reached_reduction']:.2f}x fewer MACs",
                "measured": f"{base_ms / p.get('predicted_latency_ms', base_ms):.2f}x (probe here)",
                "table": f"{p.get('predicted_speedup', 0):.2f}x predicted, {p.get('measured_speedup', 0):.2f}x checked"
                         f" in {len(p.get('rounds', []))} round(s)"}[name]
        speed = ms[0] / ms[i + 1]
        a = (f"{acc[name]:.4f} ({acc[name] - base_acc:+.4f})" if name in acc and base_acc is not None else "-")
        print(f"{name} | {macs[name]:.2f}x fewer | {said} | {speed:.2f}x | {'met' if speed >= args.speedup else 'missed'}"
              f" | {a} | {plan_s[name]:.0f} s")
    if base_acc is not None:
        print(f"baseline test accuracy {base_acc:.4f}")
    if "control" in acc:
        print(f"control (the baseline fine-tuned as the plans were): test accuracy {acc['control']:.4f}; "
              "change of each plan against it: "
              + ", ".join(f"{n} {acc[n] - acc['control']:+.4f}" for n in names if n in acc))
    summary = {"device": args.device, "format": args.format, "speedup": args.speedup, "method_errors": mae,
               "best_method": best, "table_build_seconds": build_s, "final_ms": dict(zip(["baseline", *names], ms, strict=True)),
               "macs_reduction": macs, "accuracy": acc, "baseline_accuracy": base_acc, "finetune": finetune,
               "seconds": time.time() - t_start}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


def _finetuned(work: Path, name: str, args: argparse.Namespace, base_acc: float | None) -> float:
    """Test accuracy of recipe `name` fine-tuned on --data.

    The recipe is copied beside the fine-tuned model, and a rerun whose plan cuts the same widths the same way keeps
    that copy: its finished result is reused and an unfinished one resumes from its checkpoint (a re-planned recipe
    differs in its timing notes only, which would otherwise restart the checkpoint)."""
    out, plan = work / "finetuned" / name, load_recipe(work / f"{name}.yaml")
    copy = out / "recipe.yaml"
    same = ("pruner", "importance", "round_to", "ignore", "ratios", "finetune", "source")
    if not (copy.exists() and all(load_recipe(copy).get(k) == plan.get(k) for k in same)):
        (out / "metrics.json").unlink(missing_ok=True)
        save_recipe(copy, plan)
    if not (out / "metrics.json").exists():
        prune_model(copy, args.baseline, args.data, out / "model.pt", out / "metrics.json",
                    {"batch_size": args.batch_size, "eval_batch_size": 256, "progress": False, "device": "cpu",
                     "seed": args.seed}, {"accuracy": base_acc}, checkpoint=out / "ckpt.pt")
    return float(json.loads((out / "metrics.json").read_text())["accuracy"])


if __name__ == "__main__":
    raise SystemExit(main())
