"""Build a latency table on a device, and time pruning candidates against the baseline there.

The host (torch) builds the files to time in the format being optimised (ort-fp32, tflite-int8, ...);
the device only times them, through the torch-free `edgeopt.harness.timeset` and the same transport
and device lock as the benchmarks (`local` runs it here, an SSH board over SSH). Every file of a table
is timed in one device run, side by side, so load on a shared board hits them alike.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeopt.atomic import write_json, write_text
from edgeopt.cli import json_arg
from edgeopt.devices import Device, File, Output, device_from_json
from edgeopt.errors import EdgeoptError
from edgeopt.formats import FORMATS, runtime
from edgeopt.provenance import device_side, provenance
from edgeopt.prune.common import load_for_pruning
from edgeopt.prune.groups import kept_channels, list_groups, prune_structured
from edgeopt.prune.latency_table import BASELINE_ROW, TABLE_FORMATS, TABLE_METHODS, table_rows_csv


def build_artifact(model: nn.Module, meta: dict[str, Any], fmt: str, out: Path, quantize: dict[str, Any]) -> Path:
    """`model` as a batch-1 file in `fmt` at `out` (int8: calibrated on seeded random inputs, which
    changes the scales but not the latency)."""
    size, ch = int(meta["image_size"]), int(meta.get("in_channels", 3))
    if fmt not in TABLE_FORMATS:
        raise EdgeoptError(f"prune.target.format: {fmt!r} cannot be timed for a latency table "
                           f"(known: {', '.join(TABLE_FORMATS)}; TensorRT engines build on the device)")
    model = model.eval()
    if fmt == "ort-fp32":
        from edgeopt.convert.onnx_export import export_onnx
        from edgeopt.convert.ort import optimize_ort

        raw = out.with_name(out.stem + ".raw.onnx")
        export_onnx(model, raw, size, ch, dynamic_batch=False, batch=1)
        optimize_ort(raw, out, "extended")
        raw.unlink()
    elif fmt in ("tflite-fp32", "tflite-fp16"):
        from edgeopt.convert.tflite import convert_tflite

        convert_tflite(model, out, fmt.split("-")[1], size, ch, 1)
    else:
        from edgeopt.quantize.registry import quantizer_for_format

        calib = np.random.default_rng(0).standard_normal((8, ch, size, size)).astype(np.float32)
        quantizer_for_format(fmt).quantize(model, {**meta, "image_size": size, "in_channels": ch}, calib, out,
                                           {**quantize, "calib_batch_size": 8})
    return out


def time_files(device: Device, fmt: str, files: list[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """Time `files` side by side on `device` (holding its benchmark lock): the harness's JSON."""
    from edgeopt.bench.run import check_runtime, device_lock

    check_runtime(device, runtime(fmt), f"format {fmt}")
    threads = device.config.threads if device.config.threads is not None else int(settings.get("threads") or 0)
    args: list[Any] = [
        "--runtime", runtime(fmt), "--threads", str(threads),
        "--warmup", str(settings.get("warmup", 3)), "--rounds", str(settings.get("rounds", 10)),
        "--runs", str(settings.get("runs", 3)), "--out", Output("times.json"), *[File(f) for f in files],
    ]  # fmt: skip
    timeout = float(device.config.timeout or settings.get("timeout", 1800))
    with device_lock(device.name), tempfile.TemporaryDirectory(prefix="edgeopt-latency-") as tmp:
        res = device.run_module("edgeopt.harness.timeset", args, fetch_to=tmp, timeout=timeout)
        if "times.json" not in res.outputs:
            raise EdgeoptError(f"device {device.name}: the timing harness wrote no result ({res.stderr.strip()[-200:]})")
        return json.loads(res.outputs["times.json"].read_text())


def sweep_widths(channels: int, ratios: list[float]) -> list[int]:
    """Kept widths a table measures for a group of `channels`: one per ratio, exact (no rounding), widest first."""
    kept = {kept_channels(channels, float(r), 1) for r in ratios}
    return sorted((w for w in kept if 1 <= w < channels), reverse=True)


def cut_to(model: nn.Module, meta: dict[str, Any], widths: dict[str, int], channels: dict[str, int],
           ignore: list[str] | None = None) -> nn.Module:
    """A copy of `model` with each named group cut to exactly its kept width."""
    m = copy.deepcopy(model)
    ratios = {g: (channels[g] - w) / channels[g] for g, w in widths.items() if w < channels[g]}
    if ratios:
        prune_structured(m, ratios, meta["image_size"], meta["in_channels"], meta.get("num_classes"), 1, "l2", ignore)
    return m


def _compute_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _input_sizes(model: nn.Module, meta: dict[str, Any]) -> dict[str, int]:
    """Spatial input size of every convolution (channel pruning does not change it)."""
    sizes: dict[str, int] = {}
    hooks = []
    for name, mod in _compute_layers(model).items():
        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], _out: Any, name: str = name) -> None:
            shape = inp[0].shape
            if len(shape) == 4 and shape[2] != shape[3]:
                raise EdgeoptError(f"prune.latency_table.method: layers needs square feature maps ({name} gets "
                                   f"{tuple(shape)}); use method whole")
            sizes[name] = int(shape[2]) if len(shape) == 4 else 1
        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, meta["in_channels"], meta["image_size"], meta["image_size"]))
    finally:
        for h in hooks:
            h.remove()
    return sizes


def _layer_alone(mod: nn.Module, size: int) -> tuple[tuple[Any, ...], nn.Module, dict[str, Any]]:
    """(signature, a fresh module of the same shape taking an NCHW input, its meta) for timing one layer."""
    if isinstance(mod, nn.Conv2d):
        sig = ("conv", mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
               mod.groups, mod.bias is not None, size)
        fresh: nn.Module = nn.Conv2d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                                     mod.dilation, mod.groups, mod.bias is not None)
        return sig, fresh, {"image_size": size, "in_channels": mod.in_channels}
    assert isinstance(mod, nn.Linear)
    sig = ("linear", mod.in_features, mod.out_features, mod.bias is not None)
    fresh = nn.Sequential(nn.Flatten(), nn.Linear(mod.in_features, mod.out_features, mod.bias is not None))
    return sig, fresh, {"image_size": 1, "in_channels": mod.in_features}


def build_table(
    model: nn.Module, meta: dict[str, Any], device: Device, fmt: str, settings: dict[str, Any], work: Path,
    ignore: list[str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of the latency table of `model` on `device` in `fmt` (see `edgeopt.prune.latency_table`), and
    what the device reported about itself."""
    method = settings.get("method", "layers")
    if method not in TABLE_METHODS:
        raise EdgeoptError(f"prune.latency_table.method: must be one of {TABLE_METHODS}, got {method!r}")
    ext = FORMATS[fmt].ext
    quantize = dict(settings.get("quantize") or {})
    groups = list_groups(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"), ignore)
    channels = {g.name: g.channels for g in groups}
    sweep = [(g.name, w) for g in groups for w in sweep_widths(g.channels, settings.get("ratios", [0.25, 0.5, 0.75]))]
    files = [build_artifact(model, meta, fmt, work / f"baseline.{ext}", quantize)]
    if method == "whole":
        for i, (g, w) in enumerate(sweep):
            files.append(build_artifact(cut_to(model, meta, {g: w}, channels, ignore), meta, fmt, work / f"c{i}.{ext}",
                                        quantize))
    else:
        sizes, base_layers = _input_sizes(model, meta), _compute_layers(model)
        sig_file: dict[tuple[Any, ...], int] = {}

        def layer_file(mod: nn.Module, name: str) -> int:
            sig, fresh, m = _layer_alone(mod, sizes[name])
            if sig not in sig_file:
                sig_file[sig] = len(files)
                files.append(build_artifact(fresh, m, fmt, work / f"l{len(files)}.{ext}", quantize))
            return sig_file[sig]

        parts: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
        for g, w in sweep:
            cut = _compute_layers(cut_to(model, meta, {g: w}, channels, ignore))
            touched = [n for n, mod in cut.items() if mod.weight.shape != base_layers[n].weight.shape]
            parts[(g, w)] = ([layer_file(base_layers[n], n) for n in touched], [layer_file(cut[n], n) for n in touched])
    t0 = time.perf_counter()
    timed = time_files(device, fmt, files, settings)
    ms = [m["latency_ms"] for m in timed["models"]]
    rows = [{"group": BASELINE_ROW, "channels": "", "kept": "", "ratio": 0.0, "latency_ms": round(ms[0], 5),
             "saved_ms": 0.0}]
    for i, (g, w) in enumerate(sweep):
        if method == "whole":
            lat, full = ms[i + 1], ms[0]
        else:
            full_idx, cut_idx = parts[(g, w)]
            full, lat = sum(ms[k] for k in full_idx), sum(ms[k] for k in cut_idx)
        if not any(r["group"] == g for r in rows):
            rows.append({"group": g, "channels": channels[g], "kept": channels[g], "ratio": 0.0,
                         "latency_ms": round(full, 5), "saved_ms": 0.0})
        rows.append({"group": g, "channels": channels[g], "kept": w, "ratio": round(1 - w / channels[g], 5),
                     "latency_ms": round(lat, 5), "saved_ms": round(full - lat, 5)})
    info = {"files_timed": len(files), "timing_seconds": round(time.perf_counter() - t0, 2),
            "system": timed.get("system"), "threads": timed.get("threads"), "rounds": timed.get("rounds"),
            "runs": timed.get("runs")}
    return rows, info


def write_table(
    model_path: str | Path, model_name: str, device: Device, fmt: str, settings: dict[str, Any], out: str | Path,
    ignore: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Build and write `out` (CSV) and `out.json` (how it was measured, provenance)."""
    model, meta = load_for_pruning(str(model_path), "cpu")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeopt-latency-table-") as tmp:
        rows, info = build_table(model, meta, device, fmt, settings, Path(tmp), ignore)
    out = Path(out)
    write_text(out, table_rows_csv(rows))
    prov = provenance({"latency_table": settings, "device": device.config.to_dict()})
    if isinstance(info.get("system"), dict):
        prov["device_side"] = device_side(info["system"], device.name)
    write_json(f"{out}.json", {
        "model": model_name, "device": device.name, "format": fmt, "method": settings.get("method", "layers"),
        "baseline_latency_ms": rows[0]["latency_ms"], "groups": len({r["group"] for r in rows}) - 1,
        "rows": len(rows), **info, "seconds": round(time.perf_counter() - t0, 2), "provenance": prov,
    })
    return rows


class DeviceTimer:
    """Batch-1 speed-up of pruning candidates over the baseline, both timed side by side on the device."""

    def __init__(self, baseline: nn.Module, meta: dict[str, Any], device: Device, fmt: str,
                 settings: dict[str, Any]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="edgeopt-latency-check-")
        self.meta, self.device, self.fmt, self.settings = meta, device, fmt, settings
        self.ext = FORMATS[fmt].ext
        self.base = build_artifact(baseline, meta, fmt, Path(self._dir.name) / f"baseline.{self.ext}",
                                   dict(settings.get("quantize") or {}))
        self.timed = 0

    def measure(self, candidate: nn.Module) -> dict[str, float]:
        """{baseline_ms, candidate_ms, speedup} of `candidate` against the baseline on the device."""
        self.timed += 1
        path = build_artifact(candidate, self.meta, self.fmt, Path(self._dir.name) / f"cand{self.timed}.{self.ext}",
                              dict(self.settings.get("quantize") or {}))
        ms = [m["latency_ms"] for m in time_files(self.device, self.fmt, [self.base, path], self.settings)["models"]]
        return {"baseline_ms": round(ms[0], 5), "candidate_ms": round(ms[1], 5), "speedup": round(ms[0] / ms[1], 4)}

    def close(self) -> None:
        self._dir.cleanup()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="baseline model.pt")
    p.add_argument("--model-name", required=True)
    p.add_argument("--device", required=True, help="device name (a key of `devices`)")
    p.add_argument("--device-params", type=json_arg, required=True, help="that device's settings as JSON")
    p.add_argument("--format", required=True, help=f"one of {', '.join(TABLE_FORMATS)}")
    p.add_argument("--params", type=json_arg, required=True,
                   help="the `prune.latency_table` settings (+ `ignore`, `quantize`) as JSON")
    p.add_argument("--out", required=True, help="table CSV to write (beside it: <out>.json)")


def run(args: argparse.Namespace) -> int:
    device = device_from_json(args.device, args.device_params)
    rows = write_table(args.model, args.model_name, device, args.format, args.params, args.out,
                       args.params.get("ignore") or [])
    print(f"{args.out}: {len({r['group'] for r in rows}) - 1} groups, {len(rows) - 1} rows, baseline "
          f"{rows[0]['latency_ms']:.3f} ms on {args.device} ({args.format})")
    return 0
