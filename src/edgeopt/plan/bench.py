"""Planning of benchmarks: which (device, model, variant, format) jobs run, and their rules' params."""

from __future__ import annotations

from typing import Any

from edgeopt import formats, layout
from edgeopt.devices.config import device_runtimes, device_settings
from edgeopt.plan.common import compact_json, subset
from edgeopt.plan.models import model_names
from edgeopt.plan.variants import deploy_formats, deploy_path, model_variants, onnx_path

#: the `bench` keys that change measurements (the others only choose jobs): a rule passes only these,
#: so choosing devices or formats reruns nothing
MEASURE_KEYS = (
    "batch_sizes", "warmup", "runs", "threads", "eval_images", "eval_batch_size", "power_interval_ms", "timeout",
)  # fmt: skip


def format_runtime(fmt: str) -> str:
    """Runtime a format runs in: onnxruntime, tflite or tensorrt."""
    return formats.runtime(fmt)


def trt_int8_from_qdq(tensorrt: dict[str, Any] | None) -> bool:
    """Whether trt-int8 engines take their scales from a symmetric QDQ model (`convert.tensorrt.int8_source:
    qdq`, made by the quantization stage) rather than calibrating on the device (`calibrate`)."""
    return (tensorrt or {}).get("int8_source") == "qdq"


def trt_qdq_path(model: str, variant: str) -> str:
    """The symmetric int8 QDQ ONNX the quantization stage makes for TensorRT (`int8_source: qdq`)."""
    return layout.path(layout.TRT_QDQ, model=model, variant=variant)


def bench_source(model: str, variant: str, fmt: str, config: dict[str, Any] | None = None) -> str:
    """What a benchmark job sends to the device: the artifact; for a format built on the device
    (TensorRT) the ONNX model the engine is built from there: model.onnx, or for trt-int8 with
    `convert.tensorrt.int8_source: qdq` the symmetric QDQ model (`calibrate`: model.onnx, calibrated on
    the device or from `int8_calibration`)."""
    if not formats.get(fmt, "bench.formats").on_device:
        return deploy_path(model, variant, fmt)
    if fmt == "trt-int8" and config is not None and trt_int8_from_qdq(config["convert"]["tensorrt"]):
        return trt_qdq_path(model, variant)
    return onnx_path(model, variant)


def trt_qdq_targets(config: dict[str, Any]) -> list[str]:
    """The TensorRT QDQ models (and sidecars) a trt-int8 benchmark with `int8_source: qdq` needs."""
    if not trt_int8_from_qdq(config["convert"]["tensorrt"]):
        return []
    if not any("trt-int8" in bench_formats(config, d) for d in bench_devices(config)):
        return []
    return [
        layout.path(p, model=m, variant=v)
        for m in model_names(config)
        for v in model_variants(config, m)
        for p in (layout.TRT_QDQ, layout.TRT_QDQ_SIDECAR)
    ]


def engine_path(device: str, model: str, variant: str, fmt: str) -> str:
    """Where a TensorRT engine built on `device` is copied back (beside it `.json`: versions it needs)."""
    return layout.path(layout.ENGINE, device=device, model=model, variant=variant, format=fmt)


def bench_devices(config: dict[str, Any]) -> list[str]:
    """Devices to benchmark on: `bench.devices`, or every enabled device."""
    from edgeopt.errors import EdgeoptError

    devices = device_settings(config)
    chosen = config["bench"]["devices"]
    if chosen is None:
        return list(devices)
    unknown = [d for d in chosen if d not in devices]
    if unknown:
        raise EdgeoptError(f"config: bench.devices: {unknown[0]!r} is not an enabled device in `devices`")
    return list(chosen)


def bench_formats(config: dict[str, Any], device: str) -> list[str]:
    """Formats measured on `device`: `bench.formats` (or conversion's + TensorRT's), by the device's runtimes."""
    bench = config["bench"]
    fmts = bench["formats"]
    if fmts is None:
        fmts = list(dict.fromkeys(deploy_formats(config) + list(bench["tensorrt_formats"])))
    runtimes = device_runtimes(config, device)
    return [f for f in fmts if format_runtime(f) in runtimes]


def bench_path(device: str, model: str, variant: str, fmt: str) -> str:
    return layout.path(layout.BENCH_RESULT, device=device, model=model, variant=variant, format=fmt)


def bench_targets(config: dict[str, Any], planned: set[str] | None = None) -> list[str]:
    """One result per (device, model, variant, format the device can run); with `planned` (the other
    stages' targets), only formats whose artifact the workflow actually builds."""
    return [
        bench_path(d, m, v, f)
        for d in bench_devices(config)
        for m in model_names(config)
        for v in model_variants(config, m)
        for f in bench_formats(config, d)
        if planned is None or bench_source(m, v, f, config) in planned
    ]


def device_json(config: dict[str, Any], device: str) -> str:
    """One device's settings as JSON (a rule param: editing a device reruns only its jobs)."""
    return compact_json(device_settings(config)[device])


def bench_params_json(config: dict[str, Any], fmt: str | None = None) -> str:
    """The measurement settings of `bench` as JSON (choosing devices/formats reruns nothing); formats
    built on the device also get `convert.tensorrt` (the engine build options)."""
    params = subset(config["bench"], MEASURE_KEYS)
    if fmt is not None and formats.get(fmt, "bench.formats").on_device:
        params["tensorrt"] = config["convert"]["tensorrt"] or {}
    return compact_json(params)


def bench_is_local(config: dict[str, Any], device: str) -> bool:
    return not device_settings(config).get(device, {}).get("host")


def device_resource(device: str) -> str:
    """The Snakemake resource a job on `device` holds (one unit per job)."""
    return f"device_{device}"


def device_resources(config: dict[str, Any]) -> dict[str, Any]:
    """Per-device job slots for rules with a `{device}` wildcard (benchmarks, retraining):
    `resources: **plan.device_resources(config)` makes each job take one `device_<name>` unit of its
    own device; `device_resource_limits` gives every enabled device a limit of 1 (common.smk)."""
    return {
        device_resource(n): (lambda wildcards, n=n: int(wildcards.get("device") == n))
        for n in device_settings(config)
    }


def device_resource_limits(config: dict[str, Any]) -> dict[str, int]:
    """One job per board at a time: the limit of every enabled device's resource (a resource Snakemake
    is given no limit for is unlimited, so the workflow declares these itself; `--resources` wins)."""
    return {device_resource(n): 1 for n in device_settings(config)}


def device_job_threads(config: dict[str, Any], device: str, cores: int) -> int:
    """Host threads a benchmark or retraining job takes: all cores when it runs here, one when the
    work happens on a board (the host only waits on SSH)."""
    return cores if bench_is_local(config, device) else 1
