"""`edgeopt bench FILE`: a model file the user brings, measured with the workflow's harness and devices.

Real ONNX and TFLite files (the tiny trained ResNet-20 exported), run on the local device and over the
real loopback sshd on the runtime-only board venv; bad input stops with one line and writes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_bench import host_accuracy

from edgeopt.bench.file import bench_file
from edgeopt.bench.run import harness_args
from edgeopt.devices import get_device

BENCH = {"warmup": 1, "runs": 5, "threads": 1, "eval_batch_size": 50, "timeout": 300}


def write_config(folder: Path, devices: dict) -> Path:
    path = folder / "devices.yaml"
    path.write_text(yaml.safe_dump({"devices": devices, "bench": BENCH}))
    return path


def edgeopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", "bench", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The tiny trained ResNet-20 as an fp32 .tflite (fixed [1, 3, 32, 32] input)."""
    from edgeopt.convert.tflite import convert_tflite
    from edgeopt.models import load_model

    model, meta = load_model(tiny_model)
    return convert_tflite(model, tmp_path_factory.mktemp("tflite") / "model.tflite", image_size=meta["image_size"])


def tflite_host_accuracy(path: Path, data: Path) -> float:
    from edgeopt.harness.runtimes import evaluate, load_runner

    meta = json.loads((data / "meta.json").read_text())
    with np.load(data / "test.npz") as z:
        runner = load_runner("tflite", str(path), threads=1)
        return evaluate(runner, z["x"], z["y"], meta["mean"], meta["std"])["accuracy"]


def check_latency(rec: dict, batch_sizes: list[int]) -> None:
    assert [b["batch_size"] for b in rec["batches"]] == batch_sizes
    for b in rec["batches"]:
        lat = b["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and b["runs"] == 5
        assert b["throughput_ips"] == pytest.approx(b["batch_size"] * 1000 / lat["mean"])
    assert rec["peak_rss_bytes"] > 0 and rec["provenance"]["git_commit"] is not None


def test_onnx_on_local_random_inputs_prints_percentiles(tiny_onnx: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"local": {}})
    proc = edgeopt(str(tiny_onnx), "--device", "local", "--config", str(cfg), "--batch-sizes", "1,4", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(proc.stdout)
    assert rec["inputs"] == "random" and rec["accuracy"] is None and rec["eval_images"] == 0
    assert rec["input_shape"] == [1, 3, 32, 32] and rec["runtime"] == "onnxruntime" and rec["outputs_finite"]
    check_latency(rec, [1, 4])
    text = edgeopt(str(tiny_onnx), "--config", str(cfg), "--input-shape", "2,3,32,32")
    assert text.returncode == 0, text.stderr[-2000:]
    assert "batch 2: p50" in text.stdout and "images/s" in text.stdout and "peak memory" in text.stdout


def test_onnx_over_ssh_with_data_matches_host_accuracy(
    ssh_device_settings: dict, tiny_onnx: Path, tiny_data: Path, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, {"board": ssh_device_settings})
    rec = bench_file(tiny_onnx, "board", cfg, data=tiny_data, overrides={"batch_sizes": [1, 8]})
    assert rec["device"] == "board" and rec["inputs"] == "test split" and rec["eval_images"] == 100
    assert rec["accuracy"] == pytest.approx(host_accuracy(tiny_onnx, tiny_data))
    assert rec["device_settings"]["host"] == "127.0.0.1"
    check_latency(rec, [1, 8])


def test_tflite_on_local_and_over_ssh(
    ssh_device_settings: dict, tiny_tflite: Path, tiny_data: Path, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, {"local": {}, "board": ssh_device_settings})
    expected = tflite_host_accuracy(tiny_tflite, tiny_data)
    for device in ("local", "board"):
        rec = bench_file(tiny_tflite, device, cfg, data=tiny_data)
        assert rec["runtime"] == "tflite" and rec["input_shape"] == [1, 3, 32, 32]
        assert rec["accuracy"] == pytest.approx(expected) and rec["eval_images"] == 100
        check_latency(rec, [1])
    out = tmp_path / "r.json"
    proc = edgeopt(str(tiny_tflite), "--device", "board", "--config", str(cfg), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads(out.read_text())
    assert saved["inputs"] == "random" and saved["accuracy"] is None and saved["device"] == "board"


def two_input_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 8, 8])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", [a, b], [out])
    onnx.save(helper.make_model(graph), str(path))
    return path


def vector_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Relu", ["features"], ["y"])], "vec", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "{dir}/nope.onnx: not found"),
        ("suffix", "{dir}/model.pt: unknown model format '.pt' (bench knows .onnx, .tflite)"),
        ("two-inputs", "{dir}/two.onnx: has 2 inputs (a, b); bench needs exactly one image input"),
        ("vector", "{dir}/vec.onnx: input 'features' is not an image"),
        ("not-onnx", "{dir}/junk.onnx: not an ONNX model"),
        ("not-tflite", "{dir}/junk.tflite: not a TFLite model (no TFL3 file identifier)"),
        ("device", "config: devices.jetson: no such (enabled) device (known: local)"),
        ("data", "--data: {dir}: not a prepared data cache (no test.npz)"),
        ("shape", "--input-shape: 1,3,64,64 does not fit"),
        ("trt-tflite", "--format: trt-fp16 runs .onnx files, not ok.tflite"),
        ("trt-runtime", "device local: model.onnx needs tensorrt, not in devices.local.runtimes"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    case: str, expected: str, tiny_onnx: Path, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, {"local": {}})
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(tiny_onnx.read_bytes())
    (tmp_path / "ok.tflite").write_bytes(b"\0\0\0\0TFL3" + b"\0" * 32)
    args = {
        "missing": [str(tmp_path / "nope.onnx")],
        "suffix": [str(tmp_path / "model.pt")],
        "two-inputs": [str(two_input_onnx(tmp_path / "two.onnx"))],
        "vector": [str(vector_onnx(tmp_path / "vec.onnx"))],
        "not-onnx": [str(tmp_path / "junk.onnx")],
        "not-tflite": [str(tmp_path / "junk.tflite")],
        "device": [str(onnx_file), "--device", "jetson"],
        "data": [str(onnx_file), "--data", str(tmp_path)],
        "shape": [str(onnx_file), "--input-shape", "1,3,64,64"],
        "trt-tflite": [str(tmp_path / "ok.tflite"), "--format", "trt-fp16"],
        "trt-runtime": [str(onnx_file), "--format", "trt-fp16"],
    }[case]
    (tmp_path / "model.pt").write_bytes(b"not a model")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage that is not protobuf \xff\xff")
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer at all")
    out = tmp_path / "out.json"
    proc = edgeopt(*args, "--config", str(cfg), "--out", str(out))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("edgeopt bench: error: " + expected.format(dir=tmp_path)), lines
    assert not out.exists() and proc.stdout == ""


def test_tensorrt_from_onnx_sends_precision_and_shape(tiny_onnx: Path) -> None:
    """What a board with TensorRT gets for `--format trt-int8` without data: the ONNX file, the precision,
    the input shape for the engine's profile, no calibration split (the board has TensorRT; this machine not)."""
    dev = get_device({"devices": {"jetson": {"host": "j", "runtimes": ["tensorrt"]}}}, "jetson")
    args = harness_args({"batch_sizes": [1]}, dev, "tensorrt", tiny_onnx, None, "int8", [1, 3, 32, 32])
    text = [str(a) for a in args]
    assert text[text.index("--precision") + 1] == "int8" and text[text.index("--input-shape") + 1] == "1,3,32,32"
    assert "--test" not in text and "--calib" not in text and "--cache-dir" in text
