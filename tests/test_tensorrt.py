"""TensorRT device-side module: trtexec command lines, parsing of trtexec's real output format, a live
build where TensorRT exists (it needs an NVIDIA GPU: absent on CI and on the GPU test machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt.harness import tensorrt as trt_h
from edgeopt.harness.runtimes import RUNTIMES, RuntimeUnavailable, load_runner

DATA = Path(__file__).parent / "data"
SRC = Path(__file__).resolve().parents[1] / "src"
HAVE_TRT = bool(trt_h.find_trtexec() or trt_h.tensorrt_python_available())
NO_TRT = (
    "TensorRT absent: no trtexec and no `tensorrt` Python package (needs an NVIDIA GPU + JetPack/TensorRT)"
)


def log(name: str) -> str:
    return (DATA / name).read_text()


# ---------------------------------------------------------------- command construction


def test_fp16_dynamic_batch_command() -> None:
    opts = trt_h.BuildOptions(
        precision="fp16", min_batch=1, opt_batch=8, max_batch=64, timing_cache="t.cache"
    )
    cmd = trt_h.trtexec_command("m.onnx", "e.engine", opts, trtexec="/usr/src/tensorrt/bin/trtexec")
    assert cmd == [
        "/usr/src/tensorrt/bin/trtexec",
        "--onnx=m.onnx",
        "--saveEngine=e.engine",
        "--fp16",
        "--minShapes=input:1x3x32x32",
        "--optShapes=input:8x3x32x32",
        "--maxShapes=input:64x3x32x32",
        "--shapes=input:8x3x32x32",
        "--memPoolSize=workspace:1024",
        "--timingCacheFile=t.cache",
    ]


def test_int8_calibration_command_on_old_tensorrt_uses_its_flags() -> None:
    opts = trt_h.BuildOptions(
        precision="int8",
        input_shape=(1, 28, 28),
        calibration_cache="calib.cache",
        workspace_mib=512,
        builder_optimization_level=5,
        benchmark=False,
        extra_flags=["--useCudaGraph"],
    )
    old = trt_h.trtexec_command("m.onnx", "e.engine", opts, version=(8, 2, 1))
    assert "--int8" in old and "--calib=calib.cache" in old
    assert "--workspace=512" in old and not any(a.startswith("--memPoolSize") for a in old)
    assert "--buildOnly" in old and not any(a.startswith("--builderOptimizationLevel") for a in old)
    assert "--minShapes=input:1x1x28x28" in old and not any(a.startswith("--shapes=") for a in old)
    assert old[-1] == "--useCudaGraph"
    new = trt_h.trtexec_command("m.onnx", "e.engine", opts, version=(10, 3, 0))
    assert "--memPoolSize=workspace:512" in new and "--skipInference" in new
    assert "--builderOptimizationLevel=5" in new


def test_best_precision_static_model_has_no_shape_flags() -> None:
    opts = trt_h.BuildOptions(precision="best", dynamic_batch=False, workspace_mib=None)
    cmd = trt_h.trtexec_command("m.onnx", "e.engine", opts)
    assert cmd == ["trtexec", "--onnx=m.onnx", "--saveEngine=e.engine", "--best"]


def test_fp32_has_no_precision_flag_and_calib_is_ignored() -> None:
    cmd = trt_h.trtexec_command("m.onnx", "e", trt_h.BuildOptions(precision="fp32", calibration_cache="c"))
    assert not {"--fp16", "--int8", "--best"} & set(cmd) and not any(a.startswith("--calib") for a in cmd)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="precision"):
        trt_h.BuildOptions(precision="int4")
    with pytest.raises(ValueError, match="min <= opt <= max"):
        trt_h.BuildOptions(min_batch=8, opt_batch=4)


def test_options_from_the_config_section() -> None:
    from edgeopt.config import check_config

    section = check_config({"convert": {"tensorrt": {"max_batch": 32, "int8_calibration": "c.cache"}}})
    opts = trt_h.options_from_config(section["convert"]["tensorrt"], "int8", (3, 32, 32))
    assert (opts.min_batch, opts.opt_batch, opts.max_batch, opts.workspace_mib) == (1, 1, 32, 1024)
    assert opts.calibration_cache == "c.cache"
    assert (
        trt_h.options_from_config(section["convert"]["tensorrt"], "fp16", (3, 32, 32)).calibration_cache
        is None
    )


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --help", (8, 2, 1)),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec", (8, 6, 1)),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b17] # trtexec", (10, 3, 0)),
        ("[I] TensorRT version: 10.9.0", (10, 9, 0)),
        ("8.6.1.6", (8, 6, 1)),
        ("no version here", None),
    ],
)
def test_version_parsing(text: str, version: tuple[int, int, int] | None) -> None:
    assert trt_h.parse_version(text) == version


# ---------------------------------------------------------------- parsing trtexec output


def test_parse_tensorrt_8_2_jetson_nano_fp16_log() -> None:
    r = trt_h.parse_trtexec_log(log("trtexec-8.2-jetson-nano-fp16.log"))
    assert r["status"] == "PASSED" and r["errors"] == []
    assert r["tensorrt_version"] == "8.2.1" and r["tensorrt_banner"] == "v8201"
    assert r["precision"] == "FP32+FP16" and r["workspace"] == "1024 MiB"
    assert r["device"] == "NVIDIA Tegra X1" and r["compute_capability"] == "5.3"
    assert r["build_seconds"] == pytest.approx(53.9262)
    assert r["throughput_qps"] == pytest.approx(704.439)
    assert r["latency_ms"] == pytest.approx(
        {"min": 1.35034, "max": 2.71655, "mean": 1.40128, "median": 1.39307, "p99": 1.58496}
    )
    assert r["gpu_compute_time_ms"]["mean"] == pytest.approx(1.36658)
    assert r["end_to_end_host_latency_ms"]["median"] == pytest.approx(1.40088)
    assert set(r) >= {"enqueue_time_ms", "h2d_latency_ms", "d2h_latency_ms"}
    assert r["total_host_walltime_s"] == pytest.approx(3.00097)
    assert r["total_gpu_compute_time_s"] == pytest.approx(2.88895)
    assert r["input_name"] == "input" and r["input_dims"] == [1, 3, 32, 32]
    assert r["images_per_second"] == pytest.approx(704.439)
    assert r["command"].endswith("--workspace=1024") and r["warnings"] == 1


def test_parse_tensorrt_10_3_orin_int8_log_with_percentiles() -> None:
    r = trt_h.parse_trtexec_log(log("trtexec-10.3-orin-int8.log"))
    assert r["status"] == "PASSED" and r["tensorrt_version"] == "10.3.0"
    assert r["precision"] == "FP32+INT8" and r["device"] == "Orin"
    assert r["latency_ms"] == pytest.approx(
        {
            "min": 0.461426,
            "max": 1.31055,
            "mean": 0.474364,
            "median": 0.470703,
            "p90": 0.479492,
            "p95": 0.486572,
            "p99": 0.561035,
        }
    )
    assert r["gpu_compute_time_ms"]["p95"] == pytest.approx(0.443359)
    assert "end_to_end_host_latency_ms" not in r  # TensorRT 10 no longer prints it
    assert r["engine_size_mib"] == pytest.approx(0.642578) and r["build_seconds"] == pytest.approx(24.9918)
    assert r["batch"] == 8 and r["images_per_second"] == pytest.approx(8 * 2094.01)


@pytest.mark.parametrize("name", ["trtexec-8.2-jetson-nano-fp16.log", "trtexec-10.3-orin-int8.log"])
def test_fixture_logs_are_self_consistent(name: str) -> None:
    """trtexec computes throughput as queries / walltime: the fixtures keep that relation."""
    r = trt_h.parse_trtexec_log(log(name))
    assert r["queries"] / r["total_host_walltime_s"] == pytest.approx(r["throughput_qps"], rel=1e-3)
    lat = r["latency_ms"]
    assert lat["min"] <= lat["median"] <= lat["max"] and lat["min"] <= lat["mean"] <= lat["max"]


def test_real_trtexec_summary_of_an_agx_xavier_implicit_batch() -> None:
    """A real run (OE4T/meta-tegra, Jetson AGX Xavier, TensorRT 8.4): an implicit-batch engine timed with
    --batch=16, so each of the 41087.7 queries/s is 16 images."""
    r = trt_h.parse_trtexec_log(log("trtexec-8.4-agx-xavier-summary-real.log"))
    assert r["status"] == "PASSED" and r["tensorrt_version"] == "8.4.0" and r["errors"] == []
    assert r["throughput_qps"] == 41087.7 and r["batch"] == 16
    assert r["images_per_second"] == pytest.approx(41087.7 * 16)
    assert r["gpu_compute_time_ms"] == {
        "min": 0.375977, "max": 0.403564, "mean": 0.388221, "median": 0.388443, "p99": 0.393188,
    }  # fmt: skip
    assert r["total_gpu_compute_time_s"] == 2.99202 and r["total_host_walltime_s"] == 3.00119


def test_failed_build_names_the_unsupported_op_in_one_line() -> None:
    text = log("trtexec-8.6-unsupported-op.log")
    r = trt_h.parse_trtexec_log(text)
    assert r["status"] == "FAILED" and "Engine set up failed" in r["errors"]
    msg = trt_h.failure_message(text, "custom.onnx")
    assert msg == "custom.onnx: tensorrt does not support op 'Swizzle' (no importer or plugin)"
    assert "\n" not in msg


def test_failure_without_an_op_reports_the_first_error() -> None:
    text = "&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec\n[E] Error opening engine file: x\n"
    assert (
        trt_h.failure_message(text, "m.onnx")
        == "m.onnx: TensorRT engine build failed (Error opening engine file: x)"
    )


def test_parse_cli_prints_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edgeopt.harness.tensorrt", "parse", str(DATA / "trtexec-10.3-orin-int8.log")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    )
    assert json.loads(out.stdout)["throughput_qps"] == pytest.approx(2094.01)


def test_harness_needs_no_torch_or_onnx() -> None:
    """Devices run this module with numpy alone: importing it must not pull torch, onnx or edgeopt.* outside harness."""
    code = (
        "import sys, edgeopt.harness.tensorrt, edgeopt.harness.runtimes;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('torch','onnx','onnxruntime','tensorrt','litert_torch')"
        " or (m.startswith('edgeopt.') and not m.startswith('edgeopt.harness'))];print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- building and running (TensorRT absent here)


def test_tensorrt_is_a_registered_runtime() -> None:
    assert "tensorrt" in RUNTIMES


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT present: the absent-TensorRT path is not reachable")
def test_absent_tensorrt_gives_one_clear_error(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not needed: TensorRT is looked for first")
    with pytest.raises(trt_h.TensorRTUnavailable, match="TensorRT is not installed"):
        trt_h.build_engine(onnx, tmp_path / "e.engine", trt_h.BuildOptions())
    with pytest.raises(RuntimeUnavailable, match="TensorRT is not installed"):
        load_runner("tensorrt", str(tmp_path / "e.engine"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeopt.harness.tensorrt",
            "build",
            "--onnx",
            str(onnx),
            "--engine",
            "e.engine",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
    )
    assert (
        proc.returncode == 2 and proc.stderr.count("\n") == 1 and "TensorRT is not installed" in proc.stderr
    )


def test_missing_onnx_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(trt_h.TensorRTBuildError, match="ONNX model missing"):
        trt_h.build_engine(tmp_path / "none.onnx", tmp_path / "e.engine", trt_h.BuildOptions())


@pytest.mark.skipif(not HAVE_TRT, reason=NO_TRT)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_live_engine_build_and_run_matches_onnxruntime(tmp_path: Path, precision: str) -> None:
    """Only on a machine with TensorRT (a Jetson): build a real engine and compare it with ORT."""
    import torch

    from edgeopt.convert.onnx_export import export_onnx
    from edgeopt.models import create_model

    model = create_model("resnet20", 10, 3, 1.0).eval()
    onnx = export_onnx(model, tmp_path / "model.onnx", 32, 3)
    res = trt_h.build_engine(
        onnx, tmp_path / "e.engine", trt_h.BuildOptions(precision=precision, max_batch=16)
    )
    assert Path(res["engine"]).stat().st_size > 0
    runner = load_runner("tensorrt", res["engine"])
    x = np.random.default_rng(0).standard_normal((20, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(runner.predict(x) - ref).max() < (1e-3 if precision == "fp32" else 5e-2)


def test_timing_cache_and_int8_source_planning() -> None:
    from edgeopt import plan
    from edgeopt.config import check_config

    config = check_config({"convert": {"tensorrt": {"int8_source": "qdq"}}})
    section = config["convert"]["tensorrt"]
    assert (
        trt_h.options_from_config(section, "fp16", (3, 32, 32), timing_cache_path="d.cache").timing_cache
        == "d.cache"
    )
    off = {**section, "timing_cache": False}
    assert (
        trt_h.options_from_config(off, "fp16", (3, 32, 32), timing_cache_path="d.cache").timing_cache is None
    )
    assert plan.bench_source("m", "v", "trt-int8", config) == "results/deploy/m/v/trt-qdq.onnx"
    assert plan.bench_source("m", "v", "trt-fp16", config) == "results/deploy/m/v/model.onnx"
    default = check_config({})
    assert plan.bench_source("m", "v", "trt-int8", default) == "results/deploy/m/v/model.onnx"
    # whatever ort-int8's settings, TensorRT never gets the asymmetric u8s8 ort-int8.onnx
    assert not hasattr(plan, "trt_onnx_source")


def test_calibration_images_are_preprocessed_like_training(tmp_path: Path) -> None:
    from edgeopt.harness.runtimes import preprocess

    x = np.random.default_rng(0).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "calib.npz", x=x, y=np.zeros(6, np.int64))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    got = trt_h.load_calibration(tmp_path / "calib.npz", mean, std, limit=4)
    assert got.shape == (4, 3, 4, 4) and got.dtype == np.float32
    assert np.array_equal(got, preprocess(x[:4], mean, std))
    with pytest.raises(ValueError, match="mean and std"):
        trt_h.load_calibration(tmp_path / "calib.npz")


def test_int8_without_calibration_or_qdq_is_refused(tmp_path: Path) -> None:
    """Refused before TensorRT is even looked for: an int8 engine with placeholder scales is useless."""
    from onnx import TensorProto, helper, save

    def model(op: str) -> Path:
        inputs = ["input"] if op == "Relu" else ["input", "scale", "zero_point"]
        node = helper.make_node(op, inputs, ["logits"])
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        )
        path = tmp_path / f"{op}.onnx"
        save(helper.make_model(graph), str(path))
        return path

    plain = model("Relu")
    assert not trt_h.is_qdq(plain) and trt_h.is_qdq(model("DequantizeLinear"))
    with pytest.raises(trt_h.TensorRTBuildError, match="int8 needs calibration images"):
        trt_h.build_engine(plain, tmp_path / "e.engine", trt_h.BuildOptions(precision="int8"))
