"""Device-side benchmark: accuracy on the device's own outputs, latency per batch size, memory, energy.

Runs on the device with Python 3 + numpy + one runtime (no torch, no edgeopt outside
`edgeopt.harness`). `python -m edgeopt.harness.bench --runtime onnxruntime --model m.onnx
--test test.npz --norm '{"mean": [...], "std": [...]}' --out result.json`. On an input or
runtime problem it prints one line `edgeopt harness: ...` last on stderr and exits 3.
Without `--test` it times seeded random inputs of the model's own input shape (or `--input-shape`)
and measures no accuracy: how `edgeopt bench FILE` measures a model file a user brings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.harness import jetson, power, sysinfo
from edgeopt.harness.runtimes import RUNTIMES, RuntimeUnavailable, load_runner, preprocess

HARNESS_VERSION = 1


class HarnessError(Exception):
    """A problem the user can fix (missing runtime, bad file): reported as one line."""


def proc_status_bytes(field: str) -> int | None:
    """VmRSS / VmHWM (peak) of this process from /proc/self/status, in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def latency_stats(seconds: list[float], batch: int) -> dict[str, Any]:
    """Latency percentiles (ms) and throughput (images/s) of timed runs."""
    a = np.asarray(seconds, dtype=np.float64) * 1000.0
    mean = float(a.mean())
    return {
        "mean": mean,
        "std": float(a.std()),
        "min": float(a.min()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "throughput_ips": batch * 1000.0 / mean if mean > 0 else None,
    }


def load_model(
    runtime: str, model: str, threads: int, providers: list[str] | None = None, spin: bool = True
) -> Any:
    """Load through the runner registry (TensorRT: an engine built here first, see `build_trt_engine`);
    `spin`: ONNX Runtime's idle-thread spinning (`OrtRunner`)."""
    if runtime not in RUNTIMES:
        try:
            importlib.import_module(f"edgeopt.harness.{runtime}")
        except ImportError as exc:
            raise HarnessError(f"runtime {runtime!r} has no runner here ({exc})") from None
    options = {"providers": providers, "spin": spin} if runtime == "onnxruntime" else {}
    try:
        return load_runner(runtime, model, threads=threads, **options)
    except RuntimeUnavailable as exc:
        raise HarnessError(f"runtime {runtime!r} is not available on this device: {exc}") from None


def build_trt_engine(
    args: argparse.Namespace, chw: tuple[int, int, int], norm: dict[str, Any] | None
) -> tuple[str, dict, Any]:
    """Build (or reuse from the device's engine cache) a TensorRT engine for `args.model` on this device.

    Engines depend on the GPU and TensorRT version, so they are made here, keyed by the ONNX
    file's hash, the precision and the build options. Uses `edgeopt.harness.tensorrt` (trtexec or
    the Python API); int8 without a calibration cache or QDQ model calibrates on `--calib`.
    """
    import hashlib

    from edgeopt.harness import tensorrt as trt

    settings = _trt_settings(args)
    precision = args.precision or "fp32"
    biggest = max([*args.batch_sizes, args.eval_batch_size, int(settings.get("max_batch", 64))])
    c, h, w = chw
    cache = Path(args.cache_dir or ".")
    cache.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"max_batch": biggest}
    if settings.get("timing_cache"):
        overrides["timing_cache"] = str(cache / "timing.cache")
    try:
        opts = trt.options_from_config(settings, precision, (c, h, w), **overrides)
    except ValueError as exc:
        raise HarnessError(f"convert.tensorrt: {exc}") from None
    h_model = hashlib.sha256(Path(args.model).read_bytes()).hexdigest()[:16]
    h_opts = hashlib.sha256(json.dumps(asdict(opts), sort_keys=True, default=str).encode()).hexdigest()[
        :8
    ]
    engine = cache / f"{h_model}-{precision}-{h_opts}.engine"
    if engine.exists():
        reused = {"engine": str(engine), "reused": True, "engine_bytes": engine.stat().st_size}
        return str(engine), reused, opts
    calib_data = None
    if (
        precision in ("int8", "best")
        and args.calib
        and not trt.is_qdq(args.model)
        and norm is not None
        and not (opts.calibration_cache and Path(opts.calibration_cache).exists())
    ):
        with np.load(args.calib) as z:
            calib_data = preprocess(z["x"], norm["mean"], norm["std"])
    try:
        build = trt.build_engine(
            args.model, engine, opts, log=str(engine) + ".log", calibration_data=calib_data
        )
    except trt.TensorRTUnavailable as exc:
        raise HarnessError(f"runtime 'tensorrt' is not available on this device: {exc}") from None
    except trt.TensorRTBuildError as exc:
        raise HarnessError(f"TensorRT engine build failed: {exc}") from None
    build["reused"] = False
    return str(engine), build, opts


def _trt_settings(args: argparse.Namespace) -> dict[str, Any]:
    return json.loads(args.trt_options or "{}")


def jetson_record(before: dict[str, Any] | None, per_batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Power mode, jetson_clocks, temperatures and throttling of the run (None values off a Jetson)."""
    if before is None:
        return {"power_mode": None, "jetson_clocks": None, "throttled": None, "max_temp_c": None}
    after = jetson.state()
    temps: dict[str, float] = {}
    for entry in per_batch:
        for name, t in ((entry.get("energy") or {}).get("max_temp_c") or {}).items():
            temps[name] = max(t, temps.get(name, t))
    return {
        **jetson.summary(before, after, temps),
        "jetson": {"before": before, "after": after, **jetson.versions()},
    }


def runtime_info(runner: Any, runtime: str) -> dict[str, Any]:
    from importlib import metadata

    info: dict[str, Any] = {"name": runtime}
    dist = {"onnxruntime": "onnxruntime", "tensorrt": "tensorrt"}.get(
        runtime, getattr(runner, "package", None)
    )
    for candidate in [dist, "onnxruntime-gpu"] if runtime == "onnxruntime" else [dist]:
        if not candidate:
            continue
        try:
            info["package"], info["version"] = candidate, metadata.version(candidate)
            break
        except metadata.PackageNotFoundError:
            continue
    info.setdefault("version", getattr(runner, "version", None))
    session = getattr(runner, "session", None)
    if session is not None and hasattr(session, "get_providers"):
        info["providers"] = session.get_providers()
    return info


def parse_shape(text: str) -> list[int]:
    """`1,3,224,224` -> [1, 3, 224, 224] (argparse type)."""
    try:
        dims = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: every dimension must be a positive integer")
    return dims


def input_shape(given: list[int] | None, runner: Any) -> list[int | None] | None:
    """The model input's shape: `--input-shape` if given, else what the loaded model declares."""
    if given:
        return list(given)
    declared = getattr(runner, "input_shape", None)
    return list(declared) if declared else None


def random_batch(shape: list[int | None] | None, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded standard-normal float32 input of `shape` with batch dimension `batch`."""
    if not shape or any(d is None for d in shape[1:]):
        raise HarnessError(f"model input shape {shape} has unknown dimensions; pass --input-shape")
    return rng.standard_normal((batch, *shape[1:])).astype(np.float32)


def to_model_layout(batch: np.ndarray, shape: list[int | None] | None) -> np.ndarray:
    """A preprocessed NCHW batch in the model's layout (NHWC when the model's last dimension holds the
    channels), after checking that the image size matches what the model declares."""
    if not shape or len(shape) != 4:
        return batch
    c = batch.shape[1]
    nhwc = shape[3] == c and shape[1] != c
    out = np.ascontiguousarray(batch.transpose(0, 2, 3, 1)) if nhwc else batch
    if any(want is not None and want != got for want, got in zip(shape[1:], out.shape[1:], strict=True)):
        image = "x".join(str(d) for d in batch.shape[1:])
        raise HarnessError(f"the test images are {image} (CxHxW) but the model expects input {shape}")
    return out


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    result: dict[str, Any] = {"harness_version": HARNESS_VERSION, "runtime": args.runtime}
    if args.nvpmodel is not None:
        try:
            result["nvpmodel"] = sysinfo.nvpmodel_set(args.nvpmodel)
        except RuntimeError as exc:
            raise HarnessError(str(exc)) from None
    else:
        result["nvpmodel"] = sysinfo.nvpmodel_query()
    result["system"] = sysinfo.system_info()
    norm = json.loads(args.norm) if args.norm else None
    x = y = None
    if args.test:
        if norm is None:
            raise HarnessError("--test needs --norm (the dataset's mean and std)")
        try:
            with np.load(args.test) as z:
                x, y = z["x"], z["y"]
        except (OSError, ValueError, KeyError) as exc:
            raise HarnessError(f"{args.test}: unreadable test split ({exc})") from None
        if args.eval_images:
            x, y = x[: args.eval_images], y[: args.eval_images]
        if len(y) == 0:
            raise HarnessError(f"{args.test}: empty test split")
    result["inputs"] = "test split" if x is not None else "random"
    rss_before = proc_status_bytes("VmRSS")

    t0 = time.perf_counter()
    model_path, trt_opts = args.model, None
    if args.runtime == "tensorrt":
        from edgeopt.harness.tensorrt import timing

        if x is not None:
            chw = (int(x.shape[3]), int(x.shape[1]), int(x.shape[2]))
        elif args.input_shape and len(args.input_shape) == 4:
            chw = tuple(args.input_shape[1:])
        else:
            raise HarnessError("TensorRT without --test needs --input-shape N,C,H,W")
        model_path, result["engine_build"], trt_opts = build_trt_engine(args, chw, norm)
        result["build_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    runner = load_model(args.runtime, model_path, args.threads, args.providers)
    result["load_seconds"] = time.perf_counter() - t0
    result["runtime_info"] = runtime_info(runner, args.runtime)
    result["providers"] = result["runtime_info"].get("providers")
    result["providers_requested"] = args.providers
    result["rss_after_load_bytes"] = proc_status_bytes("VmRSS")
    shape = input_shape(args.input_shape, runner)
    result["input_shape"] = shape

    rng = np.random.default_rng(0)
    if x is not None:
        # accuracy: the device's own outputs over the test split
        t0 = time.perf_counter()
        step = args.eval_batch_size
        logits = [
            runner.predict(to_model_layout(preprocess(x[i : i + step], norm["mean"], norm["std"]), shape))
            for i in range(0, len(y), step)
        ]
        out = np.concatenate(logits)
        result["accuracy"] = float((out.argmax(1) == y).mean())
        result["eval_images"] = int(len(y))
        result["eval_seconds"] = time.perf_counter() - t0
    else:
        out = runner.predict(random_batch(shape, args.batch_sizes[0], rng))
        result["accuracy"] = None
        result["eval_images"] = 0
    result["outputs_finite"] = bool(np.isfinite(out).all())

    monitor, why = power.open_monitor(args.power, args.power_interval_ms / 1000.0)
    result["power_source"] = {
        "requested": args.power,
        "used": monitor.source if monitor else None,
        "detail": why,
    }
    board_before = jetson.state() if sysinfo.is_jetson() else None
    per_batch = []
    for b in args.batch_sizes:
        if x is not None:
            batch = to_model_layout(preprocess(x[np.arange(b) % len(y)], norm["mean"], norm["std"]), shape)
        else:
            batch = random_batch(shape, b, rng)
        for _ in range(args.warmup):
            runner.predict(batch)
        times = []
        if monitor:
            monitor.start()
        t_all = time.perf_counter()
        for _ in range(args.runs):
            t = time.perf_counter()
            runner.predict(batch)
            times.append(time.perf_counter() - t)
        wall = time.perf_counter() - t_all
        entry: dict[str, Any] = {"batch_size": b, "warmup": args.warmup, "runs": args.runs}
        entry["latency_ms"] = latency_stats(times, b)
        entry["throughput_ips"] = entry["latency_ms"].pop("throughput_ips")
        entry["wall_seconds"] = wall
        if trt_opts is not None:  # the same engine timed by trtexec alone: GPU compute time, no Python
            entry["latency_source"] = "host loop: end to end, host<->device copies included (TensorRTRunner)"
            if _trt_settings(args).get("trtexec_timing", True):
                entry["trtexec"] = timing.time_engine(model_path, b, trt_opts, _trt_settings(args), args.runs)
        if monitor:
            energy = monitor.stop()
            images = b * args.runs
            if energy.get("energy_j") is not None:
                energy["energy_per_image_mj"] = energy["energy_j"] / images * 1000.0
            entry["energy"] = energy
        else:
            entry["energy"] = None
        per_batch.append(entry)
    result["batches"] = per_batch
    result.update(jetson_record(board_before, per_batch))
    result["threads"] = args.threads
    result["peak_rss_bytes"] = peak_rss_bytes()
    result["rss_baseline_bytes"] = rss_before
    result["model_file_bytes"] = os.path.getsize(args.model)
    result["harness_seconds"] = time.perf_counter() - t_start
    result["python"] = platform.python_version()
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", required=True, help="runner registry name: onnxruntime, tflite, tensorrt")
    p.add_argument("--model", required=True, help="model file (TensorRT: the ONNX model to build from)")
    p.add_argument("--test", help="test split npz (x uint8 NHWC, y int64); without it: random inputs, no accuracy")
    p.add_argument("--norm", help='with --test: JSON {"mean": [...], "std": [...]} (0..1 scale)')
    p.add_argument("--input-shape", type=parse_shape, help="input shape N,C,H,W (default: the model's own)")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1])
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--eval-images", type=int, default=0, help="0: the whole split")
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--power", default="auto", choices=["auto", "none", "tegrastats", "hwmon", "rapl"])
    p.add_argument("--power-interval-ms", type=int, default=100)
    p.add_argument("--nvpmodel", type=int, default=None, help="Jetson power mode to select first")
    p.add_argument("--precision", default=None, help="TensorRT: fp32, fp16 or int8")
    p.add_argument("--calib", default=None, help="TensorRT int8: calibration split npz")
    p.add_argument("--cache-dir", default=None, help="TensorRT: where built engines are kept")
    p.add_argument("--trt-options", default=None, help="TensorRT: the convert.tensorrt section as JSON")
    p.add_argument(
        "--providers",
        type=lambda s: [v for v in s.split(",") if v],
        default=None,
        help="ONNX Runtime execution providers in order, e.g. TensorrtExecutionProvider,CUDAExecutionProvider",
    )
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def write_result(compute: Callable[[], dict[str, Any]], out: str, failing: str) -> int:
    """Run `compute` and write its result to `out` (temp file + rename); a problem becomes one last line on
    stderr, `edgeopt harness: ...` (exit 3 for a `HarnessError`, else 1 after the traceback)."""
    try:
        result = compute()
    except HarnessError as exc:
        print(f"edgeopt harness: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - report any runtime failure as one last line
        traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"edgeopt harness: {failing}: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    tmp = Path(out).with_name(Path(out).name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return write_result(lambda: run_benchmark(args), args.out, f"{args.runtime} failed on {args.model}")


if __name__ == "__main__":
    raise SystemExit(main())
