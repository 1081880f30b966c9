"""Side-by-side CPU latency of one model in PyTorch and in every runtime conversion produces.

Converts a model (a trained `model.pt`, or an untrained registry model) to model.onnx, ort-fp32.onnx,
tflite-fp32 and tflite-fp16 exactly as the workflow does, then times batch-1 inference of each on the
same random images in one process, interleaving runtimes round by round so machine noise hits all
of them alike, and prints median ms/image and the ratio to PyTorch.

    python benchmarks/convert_runtimes.py --model resnet20 --threads 1 --rounds 5 --iters 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20", help="registry name (ignored with --model-file)")
    p.add_argument("--model-file", help="a trained results/models/<m>/<v>/model.pt")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=50, help="batch-1 inferences per runtime per round")
    args = p.parse_args()

    import torch

    from edgeopt.convert.formats import get_converter
    from edgeopt.harness.runtimes import load_runner
    from edgeopt.models import create_model, load_model

    torch.set_num_threads(args.threads)
    if args.model_file:
        model, meta = load_model(args.model_file)
    else:
        model = create_model(args.model, 10, 3, 1.0).eval()
        meta = {"image_size": 32, "in_channels": 3}
    size, ch = int(meta["image_size"]), int(meta.get("in_channels", 3))
    settings = {
        "onnx": {"opset": 18, "dynamic_batch": True, "simplify": True},
        "ort": {},
        "tflite": {"batch_size": 1},
    }
    runners = {"pytorch": None}
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "model.onnx"
        for fmt, name in [
            ("onnx", "model.onnx"),
            ("ort-fp32", "ort-fp32.onnx"),
            ("tflite-fp32", "fp32.tflite"),
            ("tflite-fp16", "fp16.tflite"),
        ]:
            built = get_converter(fmt)(model, meta, settings, Path(tmp) / name, onnx)
            opts = {**built.runner_options, "threads": args.threads}
            runners[fmt] = load_runner(built.runtime, str(Path(tmp) / name), **opts)
        x = np.random.default_rng(0).standard_normal((args.iters, 1, ch, size, size)).astype(np.float32)

        def run(name: str) -> float:
            t0 = time.perf_counter()
            if name == "pytorch":
                with torch.no_grad():
                    for xi in x:
                        model(torch.from_numpy(xi))
            else:
                for xi in x:
                    runners[name].predict(xi)
            return (time.perf_counter() - t0) / len(x) * 1e3

        for name in runners:  # warm up
            run(name)
        times: dict[str, list[float]] = {n: [] for n in runners}
        for _ in range(args.rounds):
            for name in runners:
                times[name].append(run(name))
    base = statistics.median(times["pytorch"])
    print(
        f"{args.model_file or args.model}: batch 1, {args.threads} thread(s), median of {args.rounds} rounds x {args.iters}"
    )
    print(f"{'runtime':<14}{'ms/image':>10}{'vs PyTorch':>12}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<14}{med:>10.3f}{base / med:>11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
