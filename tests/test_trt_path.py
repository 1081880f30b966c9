"""The Jetson / TensorRT path without a GPU: the symmetric QDQ model (real ORT quantization), planned jobs
(snakemake -n), trtexec timing command lines and parsing of its real output, ONNX Runtime providers on the
harness, engines copied back. Building and running engines needs TensorRT: see test_tensorrt.py's live test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_fixtures import TINY, parse_dry_run, run_snakemake

from edgeopt.harness import tensorrt as trt_h
from edgeopt.harness.tensorrt import timing

DATA = Path(__file__).parent / "data"


def _zero_points(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = {}
    for node in m.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            out[f"{node.op_type}:{node.input[0]}"] = inits[node.input[2]]
    return out


def test_trt_qdq_model_is_symmetric_int8(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    """quantize ptq-trt: int8 activations and weights, every zero point 0, biases left in float; the
    ort-int8 model of the same config is the asymmetric u8s8 one TensorRT must never get."""
    from edgeopt.quantize.ptq import quantize_ptq

    cfg = {"calib_batches": 1, "calib_batch_size": 32}
    side = quantize_ptq("trt-qdq", tiny_model, tiny_data, tmp_path / "trt-qdq.onnx", cfg, "resnet20", "baseline")
    zps = _zero_points(tmp_path / "trt-qdq.onnx")
    assert len(zps) > 20 and any(k.startswith("QuantizeLinear:") for k in zps)
    assert all(z.dtype == np.int8 and not z.any() for z in zps.values()), {k: (z.dtype, z) for k, z in zps.items()}
    assert side["settings"]["symmetric"] is True and side["settings"]["activation_type"] == "int8"
    assert trt_h.is_qdq(tmp_path / "trt-qdq.onnx") and side["format"] == "trt-qdq"
    assert side["parity"]["top1_agreement"] >= 0.7, side["parity"]  # the int8 model still tracks fp32
    quantize_ptq("ort-int8", tiny_model, tiny_data, tmp_path / "ort-int8.onnx", cfg, "resnet20", "baseline")
    ort = _zero_points(tmp_path / "ort-int8.onnx")
    assert any(z.dtype == np.uint8 for z in ort.values())  # u8s8: rejected by TensorRT


def _jetson_dry_run(tmp_path: Path, cifar_tar: Path, int8_source: str) -> list:
    tmp_path.mkdir()
    cfg = tmp_path / f"jetson-{int8_source}.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "dataset": {"path": str(cifar_tar)},
                "convert": {
                    "formats": ["ort-fp32", "ort-int8"],
                    "tensorrt": {"int8_source": int8_source},
                },
                "devices": {
                    "jetson": {
                        "host": "jetson-orin",
                        "runtimes": ["onnxruntime", "tensorrt"],
                        "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                    }
                },
                "bench": {"devices": ["jetson"], "tensorrt_formats": ["trt-fp16", "trt-int8"]},
                "prune": {"variants": []},
                "quantize": {"qat": {"enabled": False}},
                "retrain": {"devices": ["jetson"]},
            }
        )
    )
    proc = run_snakemake(tmp_path, "--configfile", str(TINY), str(cfg), "--dry-run", "--cores", "8", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _block(out: str, output: str) -> str:
    """The dry-run block of the job writing `output` (blocks start with a `[date]` line)."""
    return next(b for b in re.split(r"^\[[^\]\n]+\]$", out, flags=re.M) if f"output: {output}" in b)


def test_dry_run_plans_the_jetson_jobs(tmp_path: Path, cifar_tar: Path) -> None:
    """trt-int8 comes from one decision: `qdq` adds quantize_trt_qdq and feeds its model to the engine build;
    `calibrate` feeds model.onnx (calibrated on the board). Board jobs hold device_jetson=1, one thread."""
    out = _jetson_dry_run(tmp_path / "q", cifar_tar, "qdq")
    jobs = parse_dry_run(out)
    benches = {j.wildcards["format"]: j for j in jobs if j.rule == "bench_model"}
    assert set(benches) == {"ort-fp32", "ort-int8", "trt-fp16", "trt-int8"}
    assert [j.output for j in jobs if j.rule == "quantize_trt_qdq"] == [
        ["results/deploy/resnet20/baseline/trt-qdq.onnx", "results/deploy/resnet20/baseline/trt-qdq.onnx.json"]
    ]
    trt_int8 = _block(out, "results/bench/jetson/resnet20/baseline/trt-int8.json")
    assert "input: results/deploy/resnet20/baseline/trt-qdq.onnx," in trt_int8 and "ort-int8.onnx" not in trt_int8
    assert "device_jetson=1" in trt_int8 and "threads:" not in trt_int8  # 1 thread: not printed
    retrain = _block(out, "results/retrain/jetson/resnet20/pytorch-head.json")
    assert "device_jetson=1" in retrain and "threads:" not in retrain

    out = _jetson_dry_run(tmp_path / "c", cifar_tar, "calibrate")
    assert not [j for j in parse_dry_run(out) if j.rule == "quantize_trt_qdq"]
    trt_int8 = _block(out, "results/bench/jetson/resnet20/baseline/trt-int8.json")
    assert "input: results/deploy/resnet20/baseline/model.onnx," in trt_int8


def test_trtexec_timing_command_lines() -> None:
    opts = trt_h.BuildOptions(precision="fp16", input_shape=(3, 32, 32))
    cmd = timing.timing_command("e.engine", 8, opts, "/usr/src/tensorrt/bin/trtexec", True, True, 50, 200, 3)
    assert cmd == [
        "/usr/src/tensorrt/bin/trtexec", "--loadEngine=e.engine", "--shapes=input:8x3x32x32",
        "--iterations=50", "--warmUp=200", "--duration=3", "--useCudaGraph", "--noDataTransfers",
    ]  # fmt: skip
    static = trt_h.BuildOptions(dynamic_batch=False)
    assert not any(a.startswith("--shapes") for a in timing.timing_command("e", 1, static))


def test_trtexec_timing_of_an_engine_parses_gpu_compute_time(tmp_path: Path) -> None:
    """trtexec here is a stand-in that prints a real TensorRT 10.3 Orin log (no TensorRT on this machine)."""
    fake = tmp_path / "trtexec"
    args = tmp_path / "args.txt"
    fake.write_text(f'#!/bin/sh\necho "$@" > {args}\ncat {DATA / "trtexec-10.3-orin-int8.log"}\n')
    fake.chmod(0o755)
    opts = trt_h.BuildOptions(precision="int8")
    got = timing.time_engine(
        "e.engine", 8, opts, {"trtexec": str(fake), "use_cuda_graph": True, "no_data_transfers": True}, 20
    )
    assert got["gpu_compute_time_ms"]["p95"] == pytest.approx(0.443359)
    assert got["latency_ms"]["median"] == pytest.approx(0.470703)
    assert got["images_per_second"] == pytest.approx(8 * 2094.01) and got["tensorrt_version"] == "10.3.0"
    assert got["use_cuda_graph"] and got["no_data_transfers"]
    assert "--useCudaGraph --noDataTransfers" in args.read_text()
    failing = tmp_path / "failing"
    failing.write_text(f'#!/bin/sh\ncat {DATA / "trtexec-8.6-unsupported-op.log"}\nexit 1\n')
    failing.chmod(0o755)
    err = timing.time_engine("e.engine", 1, opts, {"trtexec": str(failing)})["error"]
    assert "\n" not in err and "Swizzle" in err
    assert "no trtexec" in timing.time_engine("e", 1, opts, {"trtexec": str(tmp_path / "none")})["error"]


def test_harness_records_onnxruntime_providers(tiny_onnx, tiny_data, tmp_path: Path) -> None:
    """`providers:` of a device reach ONNX Runtime on it and every result row (and the report table)."""
    from edgeopt.bench.run import bench_model
    from edgeopt.devices import device_from_json
    from edgeopt.errors import EdgeoptError
    from edgeopt.report.collect import _bench_rows

    params = {"batch_sizes": [1], "warmup": 1, "runs": 3, "threads": 1, "eval_batch_size": 50}
    dev = device_from_json("local", {"providers": ["CPUExecutionProvider"]})
    out = tmp_path / "bench" / "local" / "resnet20" / "baseline" / "ort-fp32.json"
    rec = bench_model(dev, params, "resnet20", "baseline", "ort-fp32", tiny_onnx, tiny_data, out)
    assert rec["providers"] == ["CPUExecutionProvider"] and rec["providers_requested"] == ["CPUExecutionProvider"]
    assert rec["power_mode"] is None and rec["throttled"] is None  # not a Jetson
    rows = _bench_rows(out, {})
    assert rows[0]["providers"] == "CPUExecutionProvider"
    jetson_like = device_from_json("local", {"providers": ["TensorrtExecutionProvider", "CPUExecutionProvider"]})
    with pytest.raises(EdgeoptError) as err:
        bench_model(jetson_like, params, "resnet20", "baseline", "ort-fp32", tiny_onnx, tiny_data, tmp_path / "x.json")
    assert "\n" not in str(err.value) and "has no TensorrtExecutionProvider" in str(err.value)


def test_built_engine_comes_back_with_its_versions(sshd_server, tmp_path: Path) -> None:
    """The engine the harness left in the board's cache is fetched over SSH into results/deploy/."""
    from edgeopt.bench.run import fetch_engine
    from edgeopt.devices import device_from_json

    board_engine = tmp_path / "board" / "engines" / "abc-fp16.engine"
    board_engine.parent.mkdir(parents=True)
    board_engine.write_bytes(b"serialized engine")
    result = {
        "engine_build": {"engine": str(board_engine), "builder": "trtexec", "precision": "FP32+FP16"},
        "runtime_info": {"version": "10.3.0"},
        "jetson": {"l4t": "36.4.0", "jetpack": "6.1+b123"},
        "system": {"gpu": [{"name": "Orin integrated GPU"}], "board": "NVIDIA Jetson Orin Nano"},
    }
    dev = device_from_json("board", sshd_server.device_settings())
    local = tmp_path / "results/deploy/resnet20/baseline/engines/board/trt-fp16.engine"
    info = fetch_engine(dev, result, local)
    assert local.read_bytes() == b"serialized engine"
    side = json.loads(Path(f"{local}.json").read_text())
    assert side == info and side["tensorrt_version"] == "10.3.0" and side["jetpack"] == "6.1+b123"
    assert side["l4t"] == "36.4.0" and side["build"]["builder"] == "trtexec" and "provenance" in side
    assert fetch_engine(dev, {}, tmp_path / "none.engine") is None
