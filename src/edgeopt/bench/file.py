"""`edgeopt bench FILE --device NAME`: measure a model file the user brings (ONNX or TFLite).

The same harness, transport and device definitions as the workflow's bench_model jobs: the file
goes to the device, `edgeopt.harness.bench` times it there on seeded random inputs of the model's
input shape (or on a prepared data cache's test split with `--data`, which also gives accuracy),
and the record comes back. TensorRT engines are built on the device from an `.onnx` file
(`--format trt-fp16`). Everything is checked before anything is sent, and nothing is written
unless `--out` is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgeopt import formats
from edgeopt.bench.run import check_runtime, harness_args, measure
from edgeopt.config import CHECKOUT, load_config
from edgeopt.devices import get_device
from edgeopt.errors import EdgeoptError
from edgeopt.harness.bench import parse_shape
from edgeopt.plan.bench import MEASURE_KEYS
from edgeopt.records import FileBenchResult, write_record

#: file suffix -> runtime that runs it as it is
SUFFIX_RUNTIMES = {".onnx": "onnxruntime", ".tflite": "tflite"}
#: `--format` values: the runtime as is, or a TensorRT engine built on the device from an ONNX file
FILE_FORMATS = {
    "onnxruntime": (".onnx",), "tflite": (".tflite",), **{f: (".onnx",) for f in formats.names(built_on="device")},
}  # fmt: skip
#: ONNX TensorProto element type of float32
ONNX_FLOAT = 1


def onnx_image_input(path: Path) -> tuple[str, list[int | None]]:
    """Name and shape (None: dynamic) of the ONNX model's one image input (rank 4, float32).

    Reads the protobuf only (no external data, nothing executed)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a bad file
        raise EdgeoptError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise EdgeoptError(f"{path}: has {len(inputs)} inputs ({names}); bench needs exactly one image input")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim]
    if len(dims) != 4 or tensor.elem_type != ONNX_FLOAT:
        raise EdgeoptError(
            f"{path}: input {inputs[0].name!r} is not an image (shape {dims}, element type "
            f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}); bench needs one float32 N,C,H,W input"
        )
    return inputs[0].name, dims


def check_tflite(path: Path) -> None:
    """A TFLite flatbuffer carries the file identifier `TFL3` at bytes 4..8."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[4:8] != b"TFL3":
        raise EdgeoptError(f"{path}: not a TFLite model (no TFL3 file identifier)")


def fit_shape(path: Path, declared: list[int | None], given: list[int] | None) -> list[int | None]:
    """The shape to feed: `--input-shape` (checked against the model's fixed dimensions) or the model's own."""
    if given is None:
        return declared
    if len(given) != len(declared) or any(d is not None and d != g for d, g in zip(declared, given, strict=False)):
        raise EdgeoptError(f"--input-shape: {','.join(map(str, given))} does not fit {path}'s input {declared}")
    return list(given)


def batch_sizes(shape: list[int | None] | None, given: list[int] | None, path: Path) -> list[int]:
    """`--batch-sizes`, else the input shape's batch (1 when dynamic); a fixed batch allows only itself."""
    fixed = shape[0] if shape else None
    if given is None:
        return [fixed or 1]
    if fixed is not None and any(b != fixed for b in given):
        raise EdgeoptError(f"--batch-sizes: {path} has a fixed batch of {fixed}")
    return given


def check_data(data: Path, shape: list[int | None] | None) -> dict[str, Any]:
    """A prepared cache (`results/data/<name>`) whose images fit the model's input."""
    for name in ("test.npz", "meta.json"):
        if not (data / name).is_file():
            raise EdgeoptError(f"--data: {data}: not a prepared data cache (no {name})")
    try:
        meta = json.loads((data / "meta.json").read_text())
        image = [meta["channels"], meta["image_size"], meta["image_size"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EdgeoptError(f"--data: {data / 'meta.json'}: not a data cache's meta.json ({exc})") from None
    if shape and len(shape) == 4:
        fits = [shape[1:] == image or None in shape[1:], shape[1:] == [*image[1:], image[0]]]
        if not any(fits):
            raise EdgeoptError(f"--data: {data} holds {'x'.join(map(str, image))} (CxHxW) images; the model takes {shape}")
    return meta


def default_config() -> Path:
    """`config.yaml` in the working directory, else the checkout's."""
    here = Path("config.yaml")
    return here if here.exists() else CHECKOUT / "config.yaml"


def bench_file(
    path: str | Path,
    device_name: str,
    config_path: str | Path | None = None,
    fmt: str | None = None,
    input_shape: list[int] | None = None,
    data: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure `path` on `device_name` (a key of the config's `devices`); return the whole record."""
    path = Path(path)
    if not path.is_file():
        raise EdgeoptError(f"{path}: not found")
    runtime_of_file = SUFFIX_RUNTIMES.get(path.suffix.lower())
    if runtime_of_file is None:
        raise EdgeoptError(f"{path}: unknown model format {path.suffix or '(no suffix)'!r} (bench knows .onnx, .tflite)")
    fmt = fmt or runtime_of_file
    if fmt not in FILE_FORMATS:
        raise EdgeoptError(f"--format: {fmt!r} is not known (known: {', '.join(FILE_FORMATS)})")
    if path.suffix.lower() not in FILE_FORMATS[fmt]:
        raise EdgeoptError(f"--format: {fmt} runs {'/'.join(FILE_FORMATS[fmt])} files, not {path.name}")
    engine = formats.FORMATS[fmt] if fmt in formats.FORMATS else None  # built on the device from the file
    runtime = engine.runtime if engine else fmt
    config = load_config(config_path or default_config())
    device = get_device(config, device_name)
    check_runtime(device, runtime, f"{path.name}")
    shape: list[int | None] | None = None
    if path.suffix.lower() == ".onnx":
        _, declared = onnx_image_input(path)
        shape = fit_shape(path, declared, input_shape)
    else:
        check_tflite(path)
        shape = list(input_shape) if input_shape else None
    if data is not None:
        data = Path(data)
        check_data(data, shape)
    elif shape is not None and None in shape[1:]:
        raise EdgeoptError(f"{path}: input shape {shape} has dynamic dimensions; pass --input-shape or --data")
    overrides = dict(overrides or {})
    params = {k: config["bench"][k] for k in MEASURE_KEYS if k in config["bench"]}
    params.update({k: v for k, v in overrides.items() if v is not None and k != "batch_sizes"})
    params["batch_sizes"] = batch_sizes(shape, overrides.get("batch_sizes"), path)
    if shape and shape[0] is not None:
        params["eval_batch_size"] = shape[0]  # a fixed batch takes exactly that many images
    if runtime == "tensorrt":
        params["tensorrt"] = (config.get("convert") or {}).get("tensorrt") or {}
    sent_shape = [params["batch_sizes"][0], *shape[1:]] if shape and None not in shape[1:] else input_shape
    harness = harness_args(params, device, runtime, path, data, engine.precision if engine else None, sent_shape)
    measured = measure(device, params, harness, path)
    record = {
        "file": str(path),
        "format": fmt,
        "runtime": runtime,
        "precision": engine.precision if engine else None,
        "data": str(data) if data is not None else None,
        **{k: v for k, v in measured.items() if k != "runtime"},
    }
    return FileBenchResult.from_json(record, f"device {device.name}: harness result").to_json()


def summary(rec: dict[str, Any]) -> str:
    """Latency percentiles, throughput and peak memory per batch size, as a few lines."""
    lines = [f"{rec['file']} on {rec['device']} ({rec['runtime']}, input {rec.get('input_shape')}, {rec['inputs']} inputs)"]
    for b in rec["batches"]:
        lat = b["latency_ms"]
        lines.append(
            f"  batch {b['batch_size']}: p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms, p99 {lat['p99']:.3f} ms, "
            f"{b['throughput_ips']:.1f} images/s ({b['runs']} runs)"
        )
    lines.append(f"  peak memory (RSS) {rec['peak_rss_bytes'] / 2**20:.1f} MiB, file {rec['size_bytes'] / 2**20:.2f} MiB")
    if rec.get("accuracy") is not None:
        lines.append(f"  accuracy {rec['accuracy']:.4f} on {rec['eval_images']} test images of {rec['data']}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="model file: .onnx or .tflite")
    p.add_argument("--device", default="local", help="device name, a key of `devices` in the config (default: local)")
    p.add_argument("--config", help="config file with the `devices` and `bench` sections (default: config.yaml)")
    p.add_argument(
        "--format", choices=list(FILE_FORMATS),
        help="how to run it: onnxruntime or tflite (from the suffix, the default), or trt-fp32/fp16/int8 "
        "(a TensorRT engine built on the device from the .onnx file)",
    )  # fmt: skip
    p.add_argument("--input-shape", type=parse_shape, help="N,C,H,W of the random inputs (default: the model's)")
    p.add_argument("--data", help="a prepared data cache (results/data/<name>): accuracy on its test split")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], help="e.g. 1,8")
    p.add_argument("--warmup", type=int, help="untimed runs per batch size (default: bench.warmup)")
    p.add_argument("--runs", type=int, help="timed runs per batch size (default: bench.runs)")
    p.add_argument("--threads", type=int, help="runtime threads, 0: the runtime's choice (default: bench.threads)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.add_argument("--out", help="also write the record to this JSON file")


def run(args: argparse.Namespace) -> int:
    overrides = {"batch_sizes": args.batch_sizes, "warmup": args.warmup, "runs": args.runs, "threads": args.threads}
    rec = bench_file(args.file, args.device, args.config, args.format, args.input_shape, args.data, overrides)
    if args.out:
        write_record(args.out, FileBenchResult.from_json(rec, args.out))
    print(json.dumps(rec, indent=2) if args.json else summary(rec))
    return 0
