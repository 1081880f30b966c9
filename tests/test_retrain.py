"""On-device retraining: settings, freezing, and real fine-tuning runs with PyTorch and ORT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from edgeopt import plan
from edgeopt.config import check_config, deep_merge
from edgeopt.errors import EdgeoptError
from edgeopt.harness.sysinfo import cpu_info
from edgeopt.models import create_model, load_model
from edgeopt.retrain import ort_env
from edgeopt.retrain.jobs import fx_module
from edgeopt.retrain.layers import freeze_plan
from edgeopt.retrain.settings import TENSORRT_MESSAGE, RetrainSetting, settings_of

ROOT = Path(__file__).resolve().parents[1]


def full_config(**retrain) -> dict:
    cfg = deep_merge(
        yaml.safe_load((ROOT / "config.yaml").read_text()),
        yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text()),
    )
    cfg["retrain"] = deep_merge(cfg["retrain"], retrain)
    return check_config(cfg)


def tiny_section(**over) -> dict:
    sec = {
        "epochs": 1,
        "subset_size": 64,
        "eval_limit": 40,
        "lr": 0.01,
        "threads": 1,  # 2 threads spin against each other on a busy 2-core machine
        "verify_freeze": True,
        "settings": [
            {"name": "fp32", "freeze": 0, "precision": "fp32", "batch_size": 32},
            {"name": "f4", "freeze": 4, "precision": "fp32", "batch_size": 32},
            {"name": "head-bf16", "freeze": "all_but_classifier", "precision": "bf16", "batch_size": 32},
        ],
    }
    sec.update(over)
    return sec


# ---------------------------------------------------------------- config, plan, freezing (fast)


def test_default_config_plans_every_supported_pair() -> None:
    cfg = check_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
    jobs = plan.retrain_jobs(cfg)
    settings = settings_of(cfg["retrain"])
    n_fp32 = sum(s.precision == "fp32" for s in settings.values())
    assert len(jobs) == len(cfg["models"]) * (len(settings) + n_fp32)
    # onnxruntime trains fp32 only here: its fp16/bf16 pairs are not planned
    assert ("local", "resnet20", "onnxruntime", "bf16") not in jobs
    assert ("local", "resnet20", "pytorch", "bf16") in jobs
    assert plan.retrain_path("local", "resnet20", "pytorch", "bf16") in plan.all_targets(cfg)


def test_tiny_preset_is_one_cheap_local_job() -> None:
    assert plan.retrain_jobs(full_config()) == [("local", "resnet20", "pytorch", "head")]
    assert plan.retrain_jobs(full_config(enabled=False)) == []


def test_tensorrt_is_a_one_line_config_error() -> None:
    with pytest.raises(EdgeoptError, match="tensorrt cannot train") as exc:
        plan.retrain_jobs(full_config(frameworks=["pytorch", "tensorrt"]))
    assert str(exc.value) == TENSORRT_MESSAGE and "\n" not in str(exc.value)


def test_tensorrt_stops_snakemake_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "trt.yaml"
    bad.write_text("retrain:\n  frameworks: [tensorrt]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "--directory", str(tmp_path),
         "--configfile", str(ROOT / "config" / "tiny.yaml"), str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "edgeopt: retrain.frameworks: tensorrt cannot train" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "retrain, match",
    [
        ({"devices": ["jetson"]}, "retrain.devices: 'jetson'"),
        ({"frameworks": ["caffe"]}, "unknown framework 'caffe'"),
        ({"settings": [{"name": "a"}, {"name": "a"}]}, "duplicate name 'a'"),
    ],
)
def test_bad_retrain_config_names_the_key(retrain: dict, match: str) -> None:
    with pytest.raises(EdgeoptError, match=match):
        plan.retrain_jobs(full_config(**retrain))


def test_schema_rejects_bad_settings() -> None:
    with pytest.raises(EdgeoptError, match="retrain.settings.0"):
        full_config(settings=[{"name": "x", "precision": "int8"}])
    with pytest.raises(EdgeoptError, match="retrain"):
        full_config(settings=[{"name": "x", "freeze": "half"}])
    with pytest.raises(EdgeoptError, match="freeze"):
        RetrainSetting.from_config({"name": "x", "freeze": -1})


def test_freeze_plan_on_resnet20() -> None:
    model = create_model("resnet20")
    names = [n for n, _ in model.named_parameters()]
    none = freeze_plan(model, 0)
    assert none.frozen_params == [] and none.trainable_params == names
    k4 = freeze_plan(model, 4)
    assert k4.frozen_layers == 4 and k4.frozen_params[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "bn1" in k4.frozen_modules and len(k4.frozen_modules) == 4
    assert set(k4.frozen_params) | set(k4.trainable_params) == set(names)
    head = freeze_plan(model, "all_but_classifier")
    assert head.trainable_params == ["fc.weight", "fc.bias"]
    with pytest.raises(EdgeoptError, match="nothing would train"):
        freeze_plan(model, head.total_layers)


def test_every_registry_model_ships_as_fx_graph(tmp_path: Path) -> None:
    """A device gets a GraphModule that loads with torch alone and keeps parameter names."""
    archs = ["resnet20", "mobilenetv2"]  # a CIFAR ResNet and a torchvision model (vgg16, resnet18: same path)
    sizes = {}
    for arch in archs:
        model = create_model(arch).eval()
        gm = fx_module(model)
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(gm(x), model(x), atol=1e-5), arch
        torch.save(gm, tmp_path / f"{arch}.pt")
        sizes[arch] = sum(p.numel() for p in model.parameters())
    code = (
        "import sys, torch\n"
        f"for a in {archs!r}:\n"
        f"    m = torch.load({str(tmp_path)!r} + '/' + a + '.pt', weights_only=False)\n"
        "    print(a, sum(p.numel() for p in m.parameters()))\n"
        "bad = [k for k in sys.modules if k.startswith(('edgeopt', 'torchvision'))]\n"
        "assert not bad, bad\n"
    )
    # no src/ on the path: the device has torch and nothing of edgeopt
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": "", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert dict(line.split() for line in out.stdout.splitlines()) == {a: str(n) for a, n in sizes.items()}


# ---------------------------------------------------------------- real retraining on the local device


def torch_accuracy(model_file: Path, data: Path, n: int) -> float:
    """Reference: the model's fp32 accuracy on the first `n` test images, computed here in PyTorch."""
    import numpy as np

    from edgeopt.data import load_meta, load_split

    model = load_model(model_file)[0]
    meta, test = load_meta(data), load_split(data, "test")
    x = torch.from_numpy(test.x[:n]).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, -1, 1, 1)) / torch.tensor(meta["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    return float(np.mean(pred == test.y[:n]))


def check_metrics(m: dict, framework: str, setting: str, device: str = "local") -> None:
    assert m["framework"] == framework and m["setting"] == setting and m["device"] == device
    assert m["provenance"]["git_commit"] and m["provenance"]["config"]["epochs"] == 1
    assert m["provenance"]["device_side"]["python"]
    cpu = cpu_info()["model"]  # the device side reads its CPU model with the shipped sysinfo
    assert cpu and m["provenance"]["device_side"]["processor"] == cpu == m["provenance"]["device"]["processor"]
    assert 0 <= m["accuracy_before"] <= 1 and 0 <= m["accuracy_after"] <= 1
    assert m["accuracy"] == m["accuracy_after"] and m["test_images"] == 40 and m["train_images"] == 64
    assert m["epochs_run"] == 1 and m["seconds_per_epoch"] > 0 and m["images_per_second"] > 0
    assert m["epochs"][0]["images"] == 64
    assert m["peak_rss_bytes"] > 50 * 2**20 and m["rss_before_training_bytes"] > 0
    assert m["gpu_max_allocated_bytes"] is None  # no CUDA on this machine
    assert m["trainable_params"] > 0


@pytest.mark.slow
def test_pytorch_retrain_local_freezes_what_it_says(
    tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from edgeopt.retrain.run import retrain

    out = tmp_path / "results/retrain/local/resnet20/pytorch-f4.json"
    m = retrain(tiny_model, tiny_data, "pytorch", "f4", tiny_section(), out=out, model="resnet20")
    assert json.loads(out.read_text())["setting"] == "f4"
    assert not out.with_suffix(".job").exists()  # job folder removed unless keep_job
    check_metrics(m, "pytorch", "f4")
    assert m["accuracy_before"] == pytest.approx(torch_accuracy(tiny_model, tiny_data, 40))
    assert m["frozen_layers"] == 4 and m["frozen_params"] > 0
    assert m["param_change"]["frozen_max_abs_change"] == 0.0
    assert m["param_change"]["trainable_max_abs_change"] > 0.0


@pytest.mark.slow
def test_pytorch_retrain_bf16_head_only(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    from edgeopt.retrain.run import retrain

    m = retrain(tiny_model, tiny_data, "pytorch", "head-bf16", tiny_section(), out=tmp_path / "m.json")
    check_metrics(m, "pytorch", "head-bf16")
    assert m["amp"] is True and m["trainable_params"] == 64 * 10 + 10  # ResNet-20's fc only
    assert m["param_change"]["frozen_max_abs_change"] == 0.0


ort_ready = pytest.mark.skipif(
    not ort_env.venv_python().exists(),
    reason=f"no ORT training env at {ort_env.venv_dir()} (run `python -m edgeopt setup-ort-training`; .ci/run does)",
)


@ort_ready
@pytest.mark.slow
def test_ort_retrain_local_freezes_what_it_says(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Artifacts from generate_artifacts, trained with the api in the ORT env (no torch there)."""
    from edgeopt.retrain.run import retrain

    sec = tiny_section(keep_job=True)
    out = tmp_path / "ort.json"
    m = retrain(tiny_model, tiny_data, "onnxruntime", "f4", sec, out=out, model="resnet20")
    check_metrics(m, "onnxruntime", "f4")
    assert m["runtime_version"] == "1.19.2" and m["precision"] == "fp32"
    # the exported eval graph is the trained model: same accuracy as PyTorch on the same images
    assert m["accuracy_before"] == pytest.approx(torch_accuracy(tiny_model, tiny_data, 40))
    assert m["param_change"]["frozen_max_abs_change"] == 0.0
    assert m["param_change"]["trainable_max_abs_change"] > 0.0
    job = out.with_suffix(".job")
    assert {"training_model.onnx", "eval_model.onnx", "optimizer_model.onnx", "checkpoint"} <= {
        p.name for p in job.iterdir()
    }
    # the same number of trainable parameters as PyTorch would train in this setting
    model = load_model(tiny_model)[0]
    plan4 = freeze_plan(model, 4)
    params = dict(model.named_parameters())
    assert m["trainable_params"] == sum(params[n].numel() for n in plan4.trainable_params)
    no_torch = subprocess.run(
        [ort_env.venv_python(), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert no_torch.stdout.strip() == "True"  # the device side really ran without torch


@ort_ready
def test_ort_rejects_reduced_precision(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    from edgeopt.retrain.run import retrain

    with pytest.raises(EdgeoptError, match="head-bf16.precision: onnxruntime cannot train in bf16"):
        retrain(tiny_model, tiny_data, "onnxruntime", "head-bf16", tiny_section(), out=tmp_path / "x.json")


def test_cli_errors_are_one_line(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    base = [
        sys.executable,
        "-m",
        "edgeopt",
        "retrain",
        "--model-file",
        str(tiny_model),
        "--data",
        str(tiny_data),
    ]
    for extra, msg in [
        (["--framework", "tensorrt", "--setting", "fp32"], "tensorrt cannot train"),
        (["--framework", "pytorch", "--setting", "nope"], "no setting named 'nope'"),
    ]:
        proc = subprocess.run(
            [*base, *extra, "--params", json.dumps(tiny_section()), "--out", str(tmp_path / "m.json")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert msg in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- over SSH (a real sshd on loopback)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["pytorch", "onnxruntime"])
def test_retrain_over_ssh(
    framework: str, sshd_server, tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """The job's files and the device package travel through the devices transport and run over ssh.

    The board's python is the ORT training env (onnxruntime-training + numpy, no torch) for
    onnxruntime, and a python with torch for pytorch; nothing of edgeopt but the shipped package.
    """
    from edgeopt.retrain.run import retrain

    if framework == "onnxruntime" and not ort_env.venv_python().exists():
        pytest.skip(f"no ORT training env at {ort_env.venv_dir()} (python -m edgeopt setup-ort-training)")
    board = sshd_server.device_settings()
    python = str(ort_env.venv_python()) if framework == "onnxruntime" else sys.executable
    sec = tiny_section(device_python={"board": {framework: python}})
    m = retrain(tiny_model, tiny_data, framework, "f4", sec, device="board", out=tmp_path / "r.json",
                device_cfg=board, log=tmp_path / "r.log")  # fmt: skip
    check_metrics(m, framework, "f4", device="board")
    assert m["param_change"]["frozen_max_abs_change"] == 0.0
    assert m["param_change"]["trainable_max_abs_change"] > 0.0
    log = (tmp_path / "r.log").read_text()
    assert f"[board] {python} -m edgeopt.retrain.device." in log
    # the files went into the board's content-hashed store, not used in place
    store = Path(board["workdir"]) / "store"
    assert store.is_dir() and any(store.iterdir())


def test_unreachable_board_is_one_line(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    from edgeopt.retrain.run import retrain

    board = {
        "host": "127.0.0.1",
        "port": 9,
        "connect_timeout": 2,
        "retries": 0,
        "known_hosts": str(tmp_path / "kh"),
    }
    (tmp_path / "kh").write_text("")
    with pytest.raises(EdgeoptError) as exc:
        retrain(tiny_model, tiny_data, "pytorch", "f4", tiny_section(), device="board", out=tmp_path / "r.json",
                device_cfg=board)  # fmt: skip
    assert "board" in str(exc.value) and "\n" not in str(exc.value)
