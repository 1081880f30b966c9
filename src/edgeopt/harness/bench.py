"""Device-side benchmark: accuracy on the device's own outputs, latency per batch size, memory, energy.

Runs on the device with Python 3 + numpy + one runtime (no torch, no edgeopt outside
`edgeopt.harness`). `python -m edgeopt.harness.bench --runtime onnxruntime --model m.onnx
--test test.npz --norm '{"mean": [...], "std": [...]}' --out result.json`. On an input or
runtime problem it prints one line `edgeopt harness: ...` last on stderr and exits 3.
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


def load_model(runtime: str, model: str, threads: int, providers: list[str] | None = None) -> Any:
    """Load through the runner registry (TensorRT: an engine built here first, see `build_trt_engine`)."""
    if runtime not in RUNTIMES:
        try:
            importlib.import_module(f"edgeopt.harness.{runtime}")
        except ImportError as exc:
            raise HarnessError(f"runtime {runtime!r} has no runner here ({exc})") from None
    options = {"providers": providers} if runtime == "onnxruntime" and providers else {}
    try:
        return load_runner(runtime, model, threads=threads, **options)
    except RuntimeUnavailable as exc:
        raise HarnessError(f"runtime {runtime!r} is not available on this device: {exc}") from None


def build_trt_engine(
    args: argparse.Namespace, image_shape: tuple[int, ...], norm: dict[str, Any]
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
    c, h, w = image_shape[2], image_shape[0], image_shape[1]
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
    norm = json.loads(args.norm)
    try:
        with np.load(args.test) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError) as exc:
        raise HarnessError(f"{args.test}: unreadable test split ({exc})") from None
    if args.eval_images:
        x, y = x[: args.eval_images], y[: args.eval_images]
    if len(y) == 0:
        raise HarnessError(f"{args.test}: empty test split")
    rss_before = proc_status_bytes("VmRSS")

    t0 = time.perf_counter()
    model_path, trt_opts = args.model, None
    if args.runtime == "tensorrt":
        from edgeopt.harness.tensorrt import timing

        model_path, result["engine_build"], trt_opts = build_trt_engine(args, tuple(x.shape[1:]), norm)
        result["build_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    runner = load_model(args.runtime, model_path, args.threads, args.providers)
    result["load_seconds"] = time.perf_counter() - t0
    result["runtime_info"] = runtime_info(runner, args.runtime)
    result["providers"] = result["runtime_info"].get("providers")
    result["providers_requested"] = args.providers
    result["rss_after_load_bytes"] = proc_status_bytes("VmRSS")

    # accuracy: the device's own outputs over the test split
    t0 = time.perf_counter()
    logits = [
        runner.predict(preprocess(x[i : i + args.eval_batch_size], norm["mean"], norm["std"]))
        for i in range(0, len(y), args.eval_batch_size)
    ]
    out = np.concatenate(logits)
    result["accuracy"] = float((out.argmax(1) == y).mean())
    result["eval_images"] = int(len(y))
    result["eval_seconds"] = time.perf_counter() - t0
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
        idx = np.arange(b) % len(y)
        batch = preprocess(x[idx], norm["mean"], norm["std"])
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
    p.add_argument("--test", required=True, help="test split npz (x uint8 NHWC, y int64)")
    p.add_argument("--norm", required=True, help='JSON {"mean": [...], "std": [...]} (0..1 scale)')
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run_benchmark(args)
    except HarnessError as exc:
        print(f"edgeopt harness: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - report any runtime failure as one last line
        traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"edgeopt harness: {args.runtime} failed on {args.model}: {type(exc).__name__}: {first}",
            file=sys.stderr,
        )
        return 1
    tmp = Path(args.out).with_name(Path(args.out).name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
