"""Does the device harness measure what ONNX Runtime itself measures? One run, side by side, local device.

For each batch size, alternating rounds of: (a) the full harness path (`edgeopt.devices` local device
-> `python -m edgeopt.harness.bench` in a fresh process, runner registry, real test images) and
(b) ONNX Runtime's own `onnxruntime_perf_test` when it is installed, else a plain timed loop over
the raw ORT API in a fresh process (same model, threads, warm-up and run count). Prints the median
of each side's per-round mean and p50 latency and their ratio. The medians (p50) must agree
within 10% (exit 1 otherwise); means are printed too, but on a shared, loaded machine a few
descheduled runs move a mean far more than a median. Usage:

    PYTHONPATH=src python benchmarks/bench_harness_vs_ort.py --model resnet20 --threads 1 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

PLAIN = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
path, threads, batch, warmup, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
if threads:
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
x = np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)
for _ in range(warmup):
    sess.run(None, {name: x})
t = []
for _ in range(runs):
    t0 = time.perf_counter()
    sess.run(None, {name: x})
    t.append(time.perf_counter() - t0)
a = np.asarray(t) * 1000
print(json.dumps({"mean": float(a.mean()), "p50": float(np.percentile(a, 50))}))
"""


def export_model(name: str, out: Path) -> None:
    import torch

    from edgeopt.convert.onnx_export import export_onnx
    from edgeopt.models import create_model

    torch.manual_seed(0)
    export_onnx(create_model(name, 10, 3).eval(), out, image_size=32)


def make_data(folder: Path, n: int = 256) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        folder / "test.npz", x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 10, n)
    )
    (folder / "meta.json").write_text(json.dumps({"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}))


def run_harness(
    device, model: Path, data: Path, batch: int, threads: int, warmup: int, runs: int, out: Path
) -> dict:
    from edgeopt.devices import File, Output

    meta = json.loads((data / "meta.json").read_text())
    res = device.run_module(
        "edgeopt.harness.bench",
        ["--runtime", "onnxruntime", "--model", File(model), "--test", File(data / "test.npz"),
         "--norm", json.dumps(meta), "--batch-sizes", str(batch), "--warmup", str(warmup), "--runs", str(runs),
         "--threads", str(threads), "--eval-images", str(batch), "--power", "none", "--out", Output("r.json")],
        fetch_to=out,
    )  # fmt: skip
    lat = json.loads(res.outputs["r.json"].read_text())["batches"][0]["latency_ms"]
    return {"mean": lat["mean"], "p50": lat["p50"]}


def run_plain(model: Path, batch: int, threads: int, warmup: int, runs: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, str(model), str(threads), str(batch), str(warmup), str(runs)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_perf_test(exe: str, model: Path, threads: int, runs: int) -> dict:
    """onnxruntime_perf_test (batch 1: it feeds the model's own input shape, symbolic dims as 1)."""
    proc = subprocess.run(
        [exe, "-e", "cpu", "-m", "times", "-r", str(runs), "-x", str(threads or 0), "-y", "1", "-I", str(model)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    mean = float(re.search(r"Average inference time cost:\s*([\d.]+)\s*ms", proc.stdout).group(1))
    p50 = re.search(r"P50 Latency:\s*([\d.e-]+)\s*s", proc.stdout)
    return {"mean": mean, "p50": float(p50.group(1)) * 1000 if p50 else mean}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20", help="registry architecture, exported untrained")
    p.add_argument("--batch-sizes", default="1,8,32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per side (medians are compared)")
    p.add_argument("--tolerance", type=float, default=0.10)
    args = p.parse_args()

    from edgeopt.devices import get_device

    device = get_device({}, "local")
    perf_test = shutil.which("onnxruntime_perf_test")
    reference = "onnxruntime_perf_test" if perf_test else "plain ORT loop"
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = tmp_path / f"{args.model}.onnx"
        export_model(args.model, model)
        make_data(tmp_path)
        print(f"model {args.model}, threads {args.threads}, warmup {args.warmup}, runs {args.runs}, "
              f"{args.rounds} alternating rounds; reference: {reference}")  # fmt: skip
        print(
            f"{'batch':>5} {'harness mean':>13} {'ref mean':>9} {'ratio':>6} {'harness p50':>12} {'ref p50':>8} {'ratio':>6}"
        )
        for b in (int(v) for v in args.batch_sizes.split(",")):
            h, r = [], []
            for _ in range(args.rounds):
                h.append(
                    run_harness(
                        device, model, tmp_path, b, args.threads, args.warmup, args.runs, tmp_path / "out"
                    )
                )
                if perf_test and b == 1:
                    r.append(run_perf_test(perf_test, model, args.threads, args.runs))
                else:
                    r.append(run_plain(model, b, args.threads, args.warmup, args.runs))
            hm, rm = statistics.median(x["mean"] for x in h), statistics.median(x["mean"] for x in r)
            hp, rp = statistics.median(x["p50"] for x in h), statistics.median(x["p50"] for x in r)
            ratio_mean, ratio_p50 = hm / rm, hp / rp
            ok &= abs(ratio_p50 - 1) <= args.tolerance
            print(
                f"{b:>5} {hm:>10.3f} ms {rm:>6.3f} ms {ratio_mean:>6.3f} {hp:>9.3f} ms {rp:>5.3f} ms {ratio_p50:>6.3f}"
            )
    print(f"p50 agreement within {args.tolerance:.0%}: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
