"""Benchmarks end to end: the harness on the sshd stand-in board, errors, and the bench_model rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeopt import plan
from edgeopt.bench.run import MEASURE_KEYS, bench_model
from edgeopt.config import check_config
from edgeopt.devices import device_from_json, get_device
from edgeopt.errors import EdgeoptError

ROOT = Path(__file__).resolve().parents[1]
#: what the rule passes: the validated `bench` section's measurement keys (defaults from the schema)
PARAMS = {
    **{k: v for k, v in check_config({})["bench"].items() if k in MEASURE_KEYS},
    **{"batch_sizes": [1, 4], "warmup": 1, "runs": 5, "threads": 1, "eval_batch_size": 50, "timeout": 300},
}


def host_accuracy(onnx: Path, data: Path) -> float:
    from edgeopt.harness.runtimes import evaluate, load_runner

    meta = json.loads((data / "meta.json").read_text())
    with np.load(data / "test.npz") as z:
        return evaluate(
            load_runner("onnxruntime", str(onnx), threads=1), z["x"], z["y"], meta["mean"], meta["std"]
        )["accuracy"]


def test_bench_over_ssh_on_runtime_only_board(
    ssh_device_settings, tiny_onnx, tiny_data, tmp_path: Path
) -> None:
    dev = device_from_json("board", ssh_device_settings)
    out = tmp_path / "bench" / "board.json"
    rec = bench_model(dev, PARAMS, "resnet20", "baseline", "ort-fp32", tiny_onnx, tiny_data, out)
    saved = json.loads(out.read_text())
    assert saved["accuracy"] == rec["accuracy"] == pytest.approx(host_accuracy(tiny_onnx, tiny_data))
    assert saved["eval_images"] == 100 and saved["device"] == "board" and saved["runtime"] == "onnxruntime"
    assert [b["batch_size"] for b in saved["batches"]] == [1, 4]
    for b in saved["batches"]:
        lat = b["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and b["runs"] == 5
        assert b["throughput_ips"] == pytest.approx(b["batch_size"] * 1000 / lat["mean"])
    assert saved["peak_rss_bytes"] > saved["rss_baseline_bytes"] > 0
    assert saved["runtime_info"]["version"] and saved["system"]["cpu"]["model"]
    assert saved["system"]["python"] and saved["provenance"]["config"]["device"]["host"] == "127.0.0.1"
    assert "energy" in saved["batches"][0] and saved["power_source"]["detail"]
    # provenance names the machine the harness ran on, as the board reported it
    side = saved["provenance"]["device_side"]
    assert side["device"] == "board" and side["machine"] == saved["system"]["os"]["machine"]
    assert side["processor"] == saved["system"]["cpu"]["model"] and side["python"] == saved["system"]["python"]
    # the board's interpreter really is the runtime-only venv (no torch there)
    assert "edgeopt-device-venv" in ssh_device_settings["python"]
    # same model and data again: nothing re-sent
    rec2 = bench_model(dev, PARAMS, "resnet20", "baseline", "ort-fp32", tiny_onnx, tiny_data, out)
    assert rec["transfer"]["sent_bytes"] > 0 and rec2["transfer"]["sent_files"] == []


def test_missing_runtime_on_device_is_one_line(
    ssh_device_settings, tiny_onnx, tiny_data, tmp_path: Path
) -> None:
    settings = dict(ssh_device_settings, runtimes=["onnxruntime", "tensorrt"])
    dev = device_from_json("board", settings)
    with pytest.raises(EdgeoptError) as err:
        bench_model(
            dev, PARAMS, "resnet20", "baseline", "trt-fp16", tiny_onnx, tiny_data, tmp_path / "x.json"
        )
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("device board (") and "tensorrt" in msg
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(
        EdgeoptError, match=r"format tflite-fp32 needs tflite, not in devices\.board\.runtimes"
    ):
        bench_model(
            dev, PARAMS, "resnet20", "baseline", "tflite-fp32", tiny_onnx, tiny_data, tmp_path / "y.json"
        )


def test_bench_on_local_device(tiny_onnx, tiny_data, tmp_path: Path) -> None:
    rec = bench_model(
        get_device({}, "local"),
        PARAMS,
        "resnet20",
        "baseline",
        "ort-fp32",
        tiny_onnx,
        tiny_data,
        tmp_path / "l.json",
    )
    assert (
        rec["accuracy"] == pytest.approx(host_accuracy(tiny_onnx, tiny_data))
        and rec["transfer"]["sent_files"] == []
    )


def test_plan_filters_formats_by_device_runtimes() -> None:
    raw = {
        "models": ["resnet20"],
        "prune": {"variants": []},
        "sensitivity": {"enabled": False},
        "convert": {"formats": ["ort-fp32", "tflite-int8"]},
        "devices": {
            "local": {},
            "jetson": {"host": "j", "runtimes": ["onnxruntime", "tensorrt"]},
            "off": {"host": "o", "enabled": False},
        },
        "bench": {"devices": None, "tensorrt_formats": ["trt-fp16"]},
    }
    config = check_config(raw)
    targets = plan.bench_targets(config)
    assert targets == [
        "results/bench/local/resnet20/baseline/ort-fp32.json",
        "results/bench/local/resnet20/baseline/tflite-int8.json",
        "results/bench/local/resnet20/baseline/qat-tflite-int8.json",  # the 8-bit QAT twin of a benched int8 format
        "results/bench/jetson/resnet20/baseline/ort-fp32.json",
        "results/bench/jetson/resnet20/baseline/trt-fp16.json",
    ]
    assert (
        plan.bench_source("resnet20", "baseline", "trt-fp16") == "results/deploy/resnet20/baseline/model.onnx"
    )
    only_trt = check_config(dict(raw, bench={"devices": ["jetson"], "formats": ["trt-fp16"]}))
    assert plan.bench_targets(only_trt) == [targets[-1]]
    with pytest.raises(EdgeoptError, match=r"bench\.devices: 'off'"):
        plan.bench_targets(check_config(dict(raw, bench={"devices": ["off"]})))


@pytest.mark.slow
def test_rule_runs_per_device_and_a_down_device_fails_only_its_jobs(
    sshd_server, ssh_device_settings, tiny_onnx, tiny_data, tmp_path: Path
) -> None:
    """Real snakemake: local + SSH board succeed, a board whose port is closed fails alone with one line."""
    from device_fixtures import free_port
    from workflow_fixtures import bench_workdir

    work = bench_workdir(tmp_path / "wf", tiny_data, tiny_onnx)
    cfg = {
        "dataset": {"name": "cifar10-tiny"},
        "models": ["resnet20"],
        "devices": {
            "local": {},
            "board": ssh_device_settings,
            "down": sshd_server.device_settings(port=free_port(), python=ssh_device_settings["python"]),
        },
        "bench": {
            "batch_sizes": [1],
            "warmup": 1,
            "runs": 3,
            "threads": 1,
            "retries": 0,
            "eval_batch_size": 50,
        },
    }
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    targets = [plan.bench_path(d, "resnet20", "baseline", "ort-fp32") for d in ("local", "board", "down")]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2", *targets,
         "--configfile", str(ROOT / "config" / "tiny.yaml"), str(work / "cfg.yaml"), "--keep-going",
         "--allowed-rules", "bench_model"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0
    assert (work / targets[0]).exists() and (work / targets[1]).exists(), proc.stderr[-3000:]
    assert not (work / targets[2]).exists()
    down_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeopt bench-model: error: device down")]
    # one line (Snakemake may echo the failed job's log, which repeats the same line)
    assert len(set(down_lines)) == 1 and "unreachable" in down_lines[0] and "Connection refused" in down_lines[0]
    board = json.loads((work / targets[1]).read_text())
    assert board["device"] == "board" and board["accuracy"] >= 0
    log = work / "results/logs/bench_model/down/resnet20/baseline/ort-fp32.log"
    assert log.read_text().strip().splitlines()[-1] == down_lines[0]


def test_tensorrt_engine_is_built_on_the_device_and_cached(tiny_onnx, tiny_data, tmp_path: Path) -> None:
    """trt-fp16 wiring: the harness builds the engine with trtexec on the device (here a stand-in trtexec that
    replays a real TensorRT 8.2 log, since no TensorRT exists on this machine), caches it by model hash,
    and then fails with one line because the `tensorrt` Python package needed to run it is absent."""
    log = ROOT / "tests" / "data" / "trtexec-8.2-jetson-nano-fp16.log"
    calls = tmp_path / "calls.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "trtexec"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'if [ "$1" = --help ]; then echo "&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --help"; exit 0; fi\n'
        'for a; do case "$a" in --saveEngine=*) printf engine > "${a#--saveEngine=}";; esac; done\n'
        f"grep -v '^#' {log}\n"
    )
    fake.chmod(0o755)
    import os

    settings = {
        "runtimes": ["onnxruntime", "tensorrt"],
        "workdir": str(tmp_path / "wd"),
        "extra_env": {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    }
    dev = device_from_json("local", settings)
    params = dict(PARAMS, tensorrt={"max_batch": 16, "workspace_mib": 512})
    for _attempt in range(2):
        with pytest.raises(EdgeoptError) as err:
            bench_model(
                dev, params, "resnet20", "baseline", "trt-fp16", tiny_onnx, tiny_data, tmp_path / "t.json"
            )
        assert "runtime 'tensorrt' is not available on this device" in str(err.value) and "\n" not in str(
            err.value
        )
    engines = list((tmp_path / "wd" / "engines").glob("*-fp16-*.engine"))
    assert len(engines) == 1 and engines[0].read_bytes() == b"engine"
    builds = [ln for ln in calls.read_text().splitlines() if "--onnx=" in ln]
    assert len(builds) == 1  # the second job reused the cached engine
    assert (
        "--fp16" in builds[0] and "--maxShapes=input:50x3x32x32" in builds[0]
    )  # max(batch sizes, eval batch 50, max_batch 16)
    assert "--workspace=512" in builds[0]  # TensorRT 8.2 flag spelling, from the version banner
