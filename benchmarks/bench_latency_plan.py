"""Benchmark: a pruning latency budget planned two ways, measured side by side in one run.

Takes a trained model and its sensitivity table (bench_prune.py writes both), measures the baseline's
ONNX Runtime batch-1 latency, asks for a budget of that / --speedup, and plans it with
`target.latency_model: macs` (latency assumed to fall as MACs do) and `measured` (candidates timed
against the baseline). Then times the baseline and both pruned architectures interleaved (weights do
not change latency, so no fine-tuning) and prints what each plan predicted and what it measured.

    PYTHONPATH=src python benchmarks/bench_latency_plan.py --baseline results/bench_prune/resnet20/baseline/model.pt \\
        --sensitivity results/bench_prune/resnet20/sensitivity.csv --speedup 1.5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from edgeopt.convert.onnx_export import export_onnx  # noqa: E402
from edgeopt.prune.apply import apply_recipe  # noqa: E402
from edgeopt.prune.common import load_for_pruning  # noqa: E402
from edgeopt.prune.latency_probe import ort_latency_ms  # noqa: E402
from edgeopt.prune.planner import plan_pruning  # noqa: E402
from edgeopt.prune.recipe import load_recipe  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="results/bench_prune/resnet20/baseline/model.pt", help="trained model.pt")
    ap.add_argument("--sensitivity", default="results/bench_prune/resnet20/sensitivity.csv")
    ap.add_argument("--workdir", default="results/bench_latency_plan")
    ap.add_argument("--speedup", type=float, default=1.5, help="budget = measured baseline latency / this")
    ap.add_argument("--max-ratio", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--probe-runs", type=int, default=50, help="timed runs per candidate while planning")
    ap.add_argument("--runs", type=int, default=300, help="timed runs per model in the final comparison")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    for path in (args.baseline, args.sensitivity):
        if not Path(path).exists():
            sys.exit(f"{path}: not found (run benchmarks/bench_prune.py first, or pass --baseline/--sensitivity)")
    model, meta = load_for_pruning(args.baseline, "cpu")
    size, ch = meta["image_size"], meta.get("in_channels", 3)
    onnx = {"baseline": export_onnx(model, work / "baseline.onnx", size, ch)}
    base_ms = ort_latency_ms(onnx, 1, args.runs, args.threads, size, ch)["baseline"]
    bench = work / "baseline-bench.json"  # the layout of the benchmark stage's results/bench/<dev>/.../<fmt>.json
    bench.write_text(json.dumps({"batches": [{"batch_size": 1, "latency_ms": {"p50": base_ms}}]}))
    budget = base_ms / args.speedup
    planned = {}
    for how in ("macs", "measured"):
        cfg = {"round_to": 8, "max_ratio": args.max_ratio,
               "target": {"kind": "latency", "value": budget, "latency_model": how, "probe_runs": args.probe_runs,
                          "probe_threads": args.threads}}
        recipe = plan_pruning("pruned", args.baseline, work / f"{how}.yaml", cfg, args.sensitivity, bench)
        planned[how] = recipe["planned"]
        pruned, _ = load_for_pruning(args.baseline, "cpu")
        apply_recipe(pruned, load_recipe(work / f"{how}.yaml"), meta)
        onnx[how] = export_onnx(pruned, work / f"{how}.onnx", size, ch)
    ms = ort_latency_ms(onnx, 1, args.runs, args.threads, size, ch)
    print(f"\n== bench_latency_plan: {meta.get('arch')}, ONNX Runtime CPU batch 1, {args.threads} threads, "
          f"medians of {args.runs} interleaved runs ==")
    print(f"baseline: {base_ms:.3f} ms when planning, {ms['baseline']:.3f} ms in the comparison; "
          f"budget {budget:.3f} ms ({args.speedup:g}x faster)")
    for how, label in (("macs", "latency_model macs    "), ("measured", "latency_model measured")):
        p = planned[how]
        predicted = p.get("predicted_latency_ms", base_ms / p["required_reduction"])
        speedup = ms["baseline"] / ms[how]
        print(f"{label}: {p['reached_reduction']:.2f}x fewer MACs, predicted {predicted:.3f} ms, measured "
              f"{ms[how]:.3f} ms = {speedup:.2f}x faster -> {'meets' if speedup >= args.speedup else 'misses'} "
              f"the {args.speedup:g}x budget" + (f" ({p['candidates_timed']} candidates timed)" if how == "measured"
                                                 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
