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

from edgeopt import formats
from edgeopt.cli import json_arg
from edgeopt.devices import Device, File, Output, device_from_json
from edgeopt.errors import EdgeoptError
from edgeopt.provenance import provenance
from edgeopt.records import BenchResult, write_record

#: the `bench` keys this command reads (validated, defaults filled): editing one of them reruns the
#: measurements; the other `bench` keys only choose jobs
MEASURE_KEYS = (
    "batch_sizes", "warmup", "runs", "threads", "eval_images", "eval_batch_size", "power_interval_ms", "timeout",
)  # fmt: skip


@contextlib.contextmanager
def device_lock(name: str) -> Iterator[float]:
    """Hold `<tmp>/edgeopt-locks/<device>.lock` so two benchmarks never share a device; yield seconds waited."""
    folder = Path(
        os.environ.get("EDGEOPT_LOCK_DIR") or Path(tempfile.gettempdir()) / f"edgeopt-locks-{os.getuid()}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(folder / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    params: dict[str, Any], dev: Device, fmt: str, model_file: Path, data: Path, meta: dict[str, Any]
) -> list[Any]:
    """The device-side harness command line (files as `File`, the result as `Output`)."""
    runtime = formats.runtime(fmt)
    threads = dev.config.threads if dev.config.threads is not None else int(params["threads"])
    args: list[Any] = [
        "--runtime", runtime,
        "--model", File(model_file),
        "--test", File(data / "test.npz"),
        "--norm", json.dumps({"mean": meta["mean"], "std": meta["std"]}),
        "--batch-sizes", ",".join(str(b) for b in params["batch_sizes"]),
        "--warmup", str(params["warmup"]),
        "--runs", str(params["runs"]),
        "--threads", str(threads),
        "--eval-images", str(params["eval_images"] or 0),
        "--eval-batch-size", str(params["eval_batch_size"]),
        "--power", dev.config.power,
        "--power-interval-ms", str(params["power_interval_ms"]),
        "--out", Output("result.json"),
    ]  # fmt: skip
    if dev.config.nvpmodel is not None:
        args += ["--nvpmodel", str(dev.config.nvpmodel)]
    if runtime == "tensorrt":
        engines = f"{dev.config.workdir}/engines"
        if dev.config.is_local:  # the local harness runs in a temp folder: anchor at the home folder
            engines = str(
                Path(os.path.expanduser("~")) / Path(os.path.expanduser(dev.config.workdir)) / "engines"
            )
        args += ["--precision", formats.get(fmt).precision, "--cache-dir", engines]
        args += ["--trt-options", json.dumps(params.get("tensorrt") or {})]
        if formats.get(fmt).precision == "int8":
            args += ["--calib", File(data / "calib.npz")]
    return args


def bench_model(
    device: Device,
    params: dict[str, Any],
    model: str,
    variant: str,
    fmt: str,
    model_file: str | Path,
    data: str | Path,
    out: str | Path,
) -> dict[str, Any]:
    """Measure one artifact on one device and write `out` (results/bench/<device>/<model>/<variant>/<fmt>.json)."""
    model_file, data = Path(model_file), Path(data)
    runtime = formats.runtime(fmt)
    if runtime not in device.config.runtimes:
        raise EdgeoptError(
            f"device {device.name}: format {fmt} needs {runtime}, not in devices.{device.name}.runtimes"
        )
    for f in (model_file, data / "test.npz", data / "meta.json"):
        if not f.exists():
            raise EdgeoptError(f"{f}: missing")
    meta = json.loads((data / "meta.json").read_text())
    timeout = float(device.config.timeout or params["timeout"])
    with device_lock(device.name) as waited, tempfile.TemporaryDirectory(prefix="edgeopt-bench-") as tmp:
        res = device.run_module(
            "edgeopt.harness.bench",
            harness_args(params, device, fmt, model_file, data, meta),
            fetch_to=tmp,
            timeout=timeout,
        )
        if "result.json" not in res.outputs:
            raise EdgeoptError(
                f"device {device.name}: the harness wrote no result ({res.stderr.strip()[-200:]})"
            )
        result = json.loads(res.outputs["result.json"].read_text())
    side = read_sidecar(model_file)
    host_acc = side.get("accuracy")
    # the harness runs on the device without edgeopt.records: its reply is checked here, as a record
    record = {
        "device": device.name,
        "model": model,
        "variant": variant,
        "format": fmt,
        "runtime": runtime,
        "precision": formats.get(fmt).precision,
        "artifact": str(model_file),
        "size_bytes": model_file.stat().st_size,
        "accuracy": result["accuracy"],
        "accuracy_host": host_acc,
        "accuracy_delta": (result["accuracy"] - host_acc) if isinstance(host_acc, (int, float)) else None,
        **{k: v for k, v in result.items() if k not in ("accuracy", "runtime")},
        "transfer": {
            "sent_files": [os.path.basename(s) for s in res.sent],
            "sent_bytes": sum(os.path.getsize(s) for s in res.sent),
            "job_seconds": res.seconds,
            "lock_wait_seconds": waited,
        },
        "device_settings": device.config.to_dict(),
        "provenance": provenance({"bench": params, "device": device.config.to_dict()}),
    }
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
