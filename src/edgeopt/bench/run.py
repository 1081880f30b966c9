"""`edgeopt bench`: the bench_model rule's command — one (model variant, format, device) measurement.

Host side, torch-free: sends the artifact and the test split to the device (content-hashed),
runs `edgeopt.harness.bench` there, fetches its JSON and adds what the host knows (model,
variant, format, the artifact's own accuracy from conversion, transfer cost, provenance).
Jobs on one device are serialised with a lock so they never time each other.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeopt import formats, plan
from edgeopt.cli import json_arg
from edgeopt.devices import Device, File, Output, device_from_json
from edgeopt.errors import EdgeoptError
from edgeopt.plan.bench import MEASURE_KEYS  # noqa: F401  (the `bench` keys this command reads)
from edgeopt.private import open_lock_file, private_dir
from edgeopt.provenance import device_side, provenance
from edgeopt.records import BenchResult, EngineInfo, write_record


@contextlib.contextmanager
def device_lock(name: str) -> Iterator[float]:
    """Hold `<private state>/locks/<device>.lock` so two benchmarks never share a device; yield seconds waited."""
    fd = open_lock_file(private_dir("locks") / f"{name}.lock")
    t0 = time.perf_counter()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.perf_counter() - t0
    finally:
        os.close(fd)  # closing releases the lock


def read_sidecar(artifact: Path) -> dict[str, Any]:
    """The conversion stage's `<artifact>.json` (accuracy in that runtime, parity, ...), if present."""
    side = artifact.with_name(artifact.name + ".json")
    if not side.exists():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError:
        raise EdgeoptError(f"{side}: not valid JSON") from None


def harness_args(
    params: dict[str, Any],
    dev: Device,
    runtime: str,
    model_file: Path,
    data: Path | None,
    trt_precision: str | None = None,
    input_shape: list[int] | None = None,
) -> list[Any]:
    """The device-side harness command line (files as `File`, the result as `Output`); without `data`
    the harness times random inputs of the model's shape (or `input_shape`) and measures no accuracy."""
    threads = dev.config.threads if dev.config.threads is not None else int(params.get("threads", 0))
    args: list[Any] = ["--runtime", runtime, "--model", File(model_file)]
    if data is not None:
        meta = json.loads((data / "meta.json").read_text())
        args += ["--test", File(data / "test.npz"), "--norm", json.dumps({"mean": meta["mean"], "std": meta["std"]})]
    if input_shape:
        args += ["--input-shape", ",".join(map(str, input_shape))]
    args += [
        "--batch-sizes", ",".join(str(b) for b in params.get("batch_sizes", [1])),
        "--warmup", str(params.get("warmup", 10)),
        "--runs", str(params.get("runs", 100)),
        "--threads", str(threads),
        "--eval-images", str(params.get("eval_images") or 0),
        "--eval-batch-size", str(params.get("eval_batch_size", 32)),
        "--power", dev.config.power,
        "--power-interval-ms", str(params.get("power_interval_ms", 100)),
        "--out", Output("result.json"),
    ]  # fmt: skip
    if dev.config.nvpmodel is not None:
        args += ["--nvpmodel", str(dev.config.nvpmodel)]
    if runtime == "onnxruntime" and dev.config.providers:
        args += ["--providers", ",".join(dev.config.providers)]
    if runtime == "tensorrt":
        engines = f"{dev.config.workdir}/engines"
        if dev.config.is_local:  # the local harness runs in a temp folder: anchor at the home folder
            engines = str(
                Path(os.path.expanduser("~")) / Path(os.path.expanduser(dev.config.workdir)) / "engines"
            )
        args += ["--precision", trt_precision or "fp32", "--cache-dir", engines]
        args += ["--trt-options", json.dumps(params.get("tensorrt") or {})]
        calibrate = not plan.trt_int8_from_qdq(params.get("tensorrt"))
        if trt_precision == "int8" and data is not None and calibrate:  # a QDQ model carries its scales
            args += ["--calib", File(data / "calib.npz")]
    return args


def fetch_engine(device: Device, result: dict[str, Any], local: str | Path) -> dict[str, Any] | None:
    """Copy the engine the harness built (or reused) on `device` to `local`, with a sidecar naming the
    TensorRT, L4T and JetPack versions and GPU it only runs with. None when no engine was built."""
    build = result.get("engine_build") or {}
    if not build.get("engine"):
        return None
    local = Path(local)
    device.fetch(build["engine"], local)
    board = result.get("jetson") or {}
    info = EngineInfo(
        device=device.name,
        engine=str(local),
        engine_bytes=local.stat().st_size,
        tensorrt_version=(result.get("runtime_info") or {}).get("version") or build.get("tensorrt_version"),
        l4t=board.get("l4t"),
        jetpack=board.get("jetpack"),
        gpu=(result.get("system") or {}).get("gpu"),
        board=(result.get("system") or {}).get("board"),
        build={k: v for k, v in build.items() if k in ("builder", "precision", "options", "build_seconds", "command")},
        extra={"note": "a TensorRT engine runs only with the TensorRT version and GPU it was built with"},
        provenance=provenance({"device": device.config.to_dict()}),
    )
    return write_record(f"{local}.json", info)


def check_runtime(device: Device, runtime: str, what: str) -> None:
    if runtime not in device.config.runtimes:
        raise EdgeoptError(f"device {device.name}: {what} needs {runtime}, not in devices.{device.name}.runtimes")


def measure(device: Device, params: dict[str, Any], harness: list[Any], model_file: Path) -> dict[str, Any]:
    """Run the harness on `device` (holding its lock) and return its result with what the host knows:
    transfer cost, the device's settings and provenance."""
    timeout = float(device.config.timeout or params.get("timeout", 1800))
    with device_lock(device.name) as waited, tempfile.TemporaryDirectory(prefix="edgeopt-bench-") as tmp:
        res = device.run_module("edgeopt.harness.bench", harness, fetch_to=tmp, timeout=timeout)
        if "result.json" not in res.outputs:
            raise EdgeoptError(
                f"device {device.name}: the harness wrote no result ({res.stderr.strip()[-200:]})"
            )
        result = json.loads(res.outputs["result.json"].read_text())
    rec = {
        "device": device.name,
        "artifact": str(model_file),
        "size_bytes": model_file.stat().st_size,
        **result,
        "transfer": {
            "sent_files": [os.path.basename(s) for s in res.sent],
            "sent_bytes": sum(os.path.getsize(s) for s in res.sent),
            "job_seconds": res.seconds,
            "lock_wait_seconds": waited,
        },
        "device_settings": device.config.to_dict(),
        "provenance": provenance({"bench": params, "device": device.config.to_dict()}),
    }
    if isinstance(result.get("system"), dict):  # the harness's view of the machine it ran on
        rec["provenance"]["device_side"] = device_side(result["system"], device.name)
    return rec


def bench_model(
    device: Device,
    params: dict[str, Any],
    model: str,
    variant: str,
    fmt: str,
    model_file: str | Path,
    data: str | Path,
    out: str | Path,
    engine_out: str | Path | None = None,
) -> dict[str, Any]:
    """Measure one artifact on one device and write `out` (results/bench/<device>/<model>/<variant>/<fmt>.json)."""
    model_file, data = Path(model_file), Path(data)
    spec = formats.get(fmt, "bench.formats")
    runtime = spec.runtime
    check_runtime(device, runtime, f"format {fmt}")
    for f in (model_file, data / "test.npz", data / "meta.json"):
        if not f.exists():
            raise EdgeoptError(f"{f}: missing")
    harness = harness_args(params, device, runtime, model_file, data, spec.precision if spec.on_device else None)
    measured = measure(device, params, harness, model_file)
    host_acc = read_sidecar(model_file).get("accuracy")
    accuracy = measured["accuracy"]
    engine = fetch_engine(device, measured, engine_out or plan.engine_path(device.name, model, variant, fmt))
    record: dict[str, Any] = {
        "device": device.name,
        "model": model,
        "variant": variant,
        "format": fmt,
        "runtime": runtime,
        "precision": spec.precision,
        "artifact": str(model_file),
        "size_bytes": model_file.stat().st_size,
        "accuracy": accuracy,
        "accuracy_host": host_acc,
        "accuracy_delta": (accuracy - host_acc) if isinstance(host_acc, (int, float)) else None,
        **{k: v for k, v in measured.items() if k not in ("accuracy", "runtime")},
        "engine": engine,
    }
    # the harness runs on the device without edgeopt.records: its reply is checked here, as a record
    return write_record(out, BenchResult.from_json(record, f"device {device.name}: harness result"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", required=True, help="device name (a key of `devices`)")
    p.add_argument("--device-params", type=json_arg, required=True, help="that device's settings as JSON")
    p.add_argument("--params", type=json_arg, required=True, help="the `bench` measurement settings as JSON")
    p.add_argument("--model", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--format", required=True, help="e.g. ort-fp32, tflite-int8, trt-fp16")
    p.add_argument("--model-file", required=True, help="the deployable artifact (model.onnx for TensorRT)")
    p.add_argument("--data", required=True, help="dataset cache folder (test.npz, calib.npz, meta.json)")
    p.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    device = device_from_json(args.device, args.device_params)
    rec = bench_model(
        device, args.params, args.model, args.variant, args.format, args.model_file, args.data, args.out
    )
    b = rec["batches"][0]
    print(
        f"{args.device} {args.model}/{args.variant} {args.format}: accuracy {rec['accuracy']:.4f}, "
        f"batch {b['batch_size']} p50 {b['latency_ms']['p50']:.3f} ms, peak RSS {rec['peak_rss_bytes'] / 2**20:.1f} MiB"
    )
    return 0
