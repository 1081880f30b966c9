"""Your own model into the DAG: torchvision:/timm:/factory entries, weights trained elsewhere, deploy-only
ONNX entries, capabilities worked out from the model, and one-line errors for each kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from edgeopt import plan
from edgeopt.config import check_config
from edgeopt.errors import EdgeoptError
from edgeopt.model_capabilities import model_capabilities, onnx_input, probe
from edgeopt.model_entries import FACTORIES_ENV, factories_json, model_specs, parse_entry
from edgeopt.models import create_model, load_weights, register_factory
from edgeopt.models.external import import_factory, read_state_dict
from edgeopt.prune.groups import list_groups, unprunable_groups

ROOT = Path(__file__).resolve().parents[1]
FACTORY_FILE = ROOT / "tests" / "data" / "factory_net.py"
FACTORY = f"{FACTORY_FILE}:build"


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------- config entries
def test_entries_parse_to_names_archs_and_kinds() -> None:
    specs = model_specs({"models": [
        "resnet20",
        "torchvision:mobilenet_v3_small",
        {"name": "small", "model": "torchvision:shufflenet_v2_x0_5", "weights": "w.pt"},
        {"name": "mine", "factory": "tests/data/factory_net.py:build", "options": {"width": 8}},
        {"name": "exported", "onnx": "m.onnx"},
    ]})
    assert {n: (s.kind, s.arch) for n, s in specs.items()} == {
        "resnet20": ("builtin", "resnet20"),
        "torchvision-mobilenet_v3_small": ("torchvision", "torchvision:mobilenet_v3_small"),
        "small": ("torchvision", "torchvision:shufflenet_v2_x0_5"),
        "mine": ("factory", "mine"),
        "exported": ("onnx", ""),
    }
    assert specs["small"].weights == "w.pt" and specs["mine"].options == {"width": 8}
    assert specs["exported"].deploy_only and not specs["mine"].deploy_only


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("resnet99", "unknown model 'resnet99'"),
        ("keras:foo", "is not <torchvision|timm>:<constructor name>"),
        ({"name": "a/b", "model": "resnet20"}, "models[0].name: 'a/b' must match"),
        ({"name": "x", "model": "resnet20", "onnx": "m.onnx"}, "exactly one of model, factory, onnx"),
        ({"factory": "f.py:build"}, "models[0].name: a factory model needs a name"),
        ({"name": "x", "factory": "f.py"}, "is not 'package.module:function'"),
        ({"name": "x", "model": "resnet20", "colour": 1}, "models[0].colour: unknown key"),
        ({"name": "x", "onnx": "m.onnx", "weights": "w.pt"}, "an onnx entry takes no options or weights"),
        ({"name": "resnet20", "factory": "f.py:build"}, "is a built-in model"),
    ],
)
def test_bad_entries_fail_in_one_line_naming_the_entry(entry: object, words: str) -> None:
    with pytest.raises(EdgeoptError) as exc:
        parse_entry(entry, 0)
    assert words in one_line(exc) and "models[0]" in str(exc.value)


def test_config_check_rejects_a_duplicate_name() -> None:
    with pytest.raises(EdgeoptError, match=r"models\[1\]: name 'torchvision-resnet18' is used twice"):
        check_config({"models": ["torchvision:resnet18", {"name": "torchvision-resnet18", "model": "resnet18"}]})


# ---------------------------------------------------------------- building
def test_torchvision_model_gets_the_data_classes_and_a_one_channel_stem() -> None:
    model = create_model("torchvision:mobilenet_v3_small", num_classes=7, in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 32, 32))
    assert out.shape == (2, 7)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 1 and first.out_channels == 16 and first.stride == (2, 2)


def test_unknown_torchvision_name_is_one_line() -> None:
    with pytest.raises(EdgeoptError) as exc:
        create_model("torchvision:mobilenet_v9", 10, 3)
    assert "torchvision:mobilenet_v9: not a torchvision classification model" in one_line(exc)


def test_timm_model_or_the_extra_to_install() -> None:
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(EdgeoptError) as exc:
            create_model("timm:resnet10t", 10, 3)
        assert "pip install 'edgeopt[timm]'" in one_line(exc)
        pytest.skip("timm is not installed here (optional extra `timm`): only its one-line error was checked")
    model = create_model("timm:resnet10t", 10, 1).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    with pytest.raises(EdgeoptError, match="timm:not_a_model: not a timm model name"):
        create_model("timm:not_a_model", 10, 3)


def test_factory_from_a_file_with_options() -> None:
    register_factory("facnet-unit", FACTORY, {"width": 4})
    model = create_model("facnet-unit", 5, 3)
    assert model.fc.out_features == 5 and model.stem[0].out_channels == 4
    assert create_model("facnet-unit", 5, 3, width=6).stem[0].out_channels == 6  # call options override


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        (f"{FACTORY_FILE.parent / 'missing.py'}:build", "missing.py not found"),
        ("edgeopt_no_such_package.models:build", "import failed (ModuleNotFoundError"),
        (f"{FACTORY_FILE}:nope", "has no function 'nope'"),
        (f"{FACTORY_FILE}:not_a_module", "returned str, not a torch.nn.Module"),
    ],
)
def test_bad_factories_are_one_line(ref: str, words: str) -> None:
    register_factory("bad-factory", ref)
    with pytest.raises(EdgeoptError) as exc:
        create_model("bad-factory", 10, 3)
    assert words in one_line(exc) and "model bad-factory" in str(exc.value)


def test_factory_that_raises_on_import(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nraise RuntimeError('no GPU here')\n")
    register_factory("broken", f"{broken}:build")
    with pytest.raises(EdgeoptError) as exc:
        import_factory("broken")
    assert "import failed (RuntimeError: no GPU here)" in one_line(exc)


def test_factories_reach_jobs_through_the_environment(tmp_path: Path) -> None:
    """The workflow exports the config's factories; a fresh process builds the model by its config name."""
    cfg = {"models": [{"name": "envnet", "factory": "tests/data/factory_net.py:build", "options": {"width": 4}}]}
    env = {**os.environ, FACTORIES_ENV: factories_json(cfg, ROOT), "PYTHONPATH": str(ROOT / "src")}
    code = "from edgeopt.models import create_model; print(create_model('envnet', 3, 3).stem[0].out_channels)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4"


# ---------------------------------------------------------------- weights trained elsewhere
def test_weights_load_from_a_state_dict_or_a_checkpoint(tmp_path: Path) -> None:
    src = create_model("torchvision:shufflenet_v2_x0_5", 10, 3)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "c.pt")
    dst = load_weights(create_model("torchvision:shufflenet_v2_x0_5", 10, 3), tmp_path / "c.pt")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True))


def test_weights_that_do_not_fit_name_the_file_and_first_key(tmp_path: Path) -> None:
    torch.save(create_model("resnet20", 10, 3).state_dict(), tmp_path / "r20.pt")
    with pytest.raises(EdgeoptError) as exc:
        load_weights(create_model("resnet56", 10, 3), tmp_path / "r20.pt")
    assert str(tmp_path / "r20.pt") in one_line(exc) and "key 'layer1.3.conv1.weight' missing" in str(exc.value)
    with pytest.raises(EdgeoptError, match=r"key 'fc.weight' has shape \(10, 64\), the model \(100, 64\)"):
        load_weights(create_model("resnet20", 100, 3), tmp_path / "r20.pt")


def test_weights_never_unpickle_code(tmp_path: Path) -> None:
    torch.save(create_model("resnet20", 10, 3), tmp_path / "module.pt")  # a pickled module, not a state dict
    with pytest.raises(EdgeoptError) as exc:
        read_state_dict(tmp_path / "module.pt")
    assert "not a plain tensor state dict (loaded with weights_only=True" in one_line(exc)


def test_epochs_zero_evaluates_the_weights_and_carries_them_on(tmp_path: Path, tiny_data: Path,
                                                               tiny_train_cfg: dict) -> None:
    from edgeopt.models import load_model
    from edgeopt.train.baseline import train_baseline

    src = create_model("torchvision:shufflenet_v2_x0_5", 10, 3)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    params = {"arch": "torchvision:shufflenet_v2_x0_5", "weights": str(tmp_path / "w.pt")}
    m = train_baseline("shuffle", tiny_data, tmp_path / "model.pt", tmp_path / "metrics.json",
                       {**tiny_train_cfg, "epochs": 0}, params)
    model, meta = load_model(tmp_path / "model.pt")
    assert meta["arch"] == "torchvision:shufflenet_v2_x0_5" and meta["weights"] == str(tmp_path / "w.pt")
    assert m["epochs"] == 0 and 0.0 <= m["accuracy"] <= 1.0
    assert all(torch.equal(a, b.float()) for a, b in zip(src.state_dict().values(), model.state_dict().values(),
                                                          strict=True))


# ---------------------------------------------------------------- capabilities from the model
def test_mobilenet_v3_small_is_residual_and_its_se_groups_stay_unpruned() -> None:
    caps = probe(parse_entry("torchvision:mobilenet_v3_small", 0), 32, 3)
    assert caps["structured"] and caps["residual"] and caps["torch"]
    model = create_model("torchvision:mobilenet_v3_small", 10, 3)
    unsafe = unprunable_groups(model, 32, 3, 10)
    safe = {g.name for g in list_groups(model, 32, 3, 10)}
    assert unsafe and set(unsafe.values()) == {"channel-wise multiply (squeeze-excitation gate)"}
    assert safe and not safe & set(unsafe)


def test_channel_shuffle_model_is_not_structurally_pruned() -> None:
    caps = probe(parse_entry("torchvision:shufflenet_v2_x0_5", 0), 32, 3)
    assert not caps["structured"] and not caps["residual"] and caps["torch"]
    assert any("DepGraph cannot trace" in n for n in caps["notes"])


def test_concat_groups_of_a_factory_model_are_left_unpruned() -> None:
    register_factory("facnet-caps", FACTORY, {"width": 8})
    model = create_model("facnet-caps", 10, 3)
    assert unprunable_groups(model, 32, 3, 10) == {"left.0": "concat"}


def test_grouped_convolution_groups_are_left_unpruned() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    assert unprunable_groups(model, 16, 3, 10) == {"0": "grouped convolution", "3": "grouped convolution"}
    assert [g.name for g in list_groups(model, 16, 3, 10)] == ["6"]


def test_capabilities_are_cached_until_the_entry_or_its_files_change(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    torch.save(create_model("torchvision:squeezenet1_1", 10, 3).state_dict(), weights)
    spec = parse_entry({"name": "sq", "model": "torchvision:squeezenet1_1", "weights": str(weights)}, 0)
    caps = model_capabilities(spec, 32, 3, tmp_path, cache_dir="cache")
    cache = tmp_path / "cache" / "sq.json"
    stored = json.loads(cache.read_text())
    assert stored["capabilities"] == caps
    cache.write_text(json.dumps({**stored, "capabilities": {**caps, "marker": 1}}))
    assert model_capabilities(spec, 32, 3, tmp_path, cache_dir="cache")["marker"] == 1  # read, not rebuilt
    torch.save(create_model("torchvision:squeezenet1_1", 10, 3).state_dict(), weights)
    os.utime(weights, ns=(1, 1))
    assert "marker" not in model_capabilities(spec, 32, 3, tmp_path, cache_dir="cache")  # new file: probed


def test_planning_imports_no_torch_for_built_in_models() -> None:
    code = ("import sys, yaml; from edgeopt import plan; from edgeopt.config import check_config;"
            "cfg = check_config(yaml.safe_load(open('config/tiny.yaml'))); plan.all_targets(cfg);"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- deploy-only ONNX entries
def export(model: nn.Module, path: Path, inputs: list[str], shape: tuple[int, ...]) -> Path:
    torch.onnx.export(model.eval(), tuple(torch.zeros(shape) for _ in inputs), str(path), input_names=inputs,
                      dynamic_axes={n: {0: "batch"} for n in inputs}, dynamo=False, opset_version=17)
    return path


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fc(a + b)


def test_onnx_input_is_read_from_the_file(tmp_path: Path) -> None:
    path = export(create_model("resnet20", 10, 3), tmp_path / "r.onnx", ["images"], (1, 3, 32, 32))
    assert onnx_input(path, "x") == {"name": "images", "shape": ["batch", 3, 32, 32]}


@pytest.mark.parametrize(
    ("model", "inputs", "shape", "words"),
    [
        (TwoInputs(), ["a", "b"], (1, 4), "needs exactly one input (an image batch), has 2"),
        (nn.Linear(4, 2), ["x"], (1, 4), "input 'x' is not a float32 image batch (N, C, H, W)"),
    ],
)
def test_onnx_without_one_image_input_is_one_line(tmp_path: Path, model: nn.Module, inputs: list[str],
                                                  shape: tuple[int, ...], words: str) -> None:
    path = export(model, tmp_path / "m.onnx", inputs, shape)
    with pytest.raises(EdgeoptError) as exc:
        probe(parse_entry({"name": "m", "onnx": str(path)}, 0), 32, 3)
    assert words in one_line(exc) and str(path) in str(exc.value)


def test_onnx_entries_plan_only_the_deploy_stages(tmp_path: Path) -> None:
    path = export(create_model("resnet20", 10, 3), tmp_path / "r.onnx", ["images"], (1, 3, 32, 32))
    cfg = check_config(yaml.safe_load((ROOT / "config.yaml").read_text()) | {
        "models": [{"name": "exported", "onnx": str(path)}],
        "convert": {"formats": ["ort-fp32", "ort-int8", "tflite-fp32", "tflite-int8", "trt-fp16"]},
    })
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        targets = plan.all_targets(cfg)
    finally:
        os.chdir(cwd)
    mine = sorted(t for t in targets if "/exported/" in t)
    assert "results/deploy/exported/baseline/model.onnx" in mine
    assert {"results/deploy/exported/baseline/ort-fp32.onnx", "results/deploy/exported/baseline/ort-int8.onnx",
            "results/bench/local/exported/baseline/ort-int8.json"} <= set(mine)
    assert not [t for t in mine if "tflite" in t or "/models/" in t or "/quantize/" in t or "/retrain/" in t]


# ---------------------------------------------------------------- the whole tiny DAG
def your_models_config(tmp: Path) -> Path:
    """Three PyTorch models outside the registry (depthwise + squeeze-excitation, channel shuffle, the user's
    own factory with a concat) and a deploy-only ONNX file, on the tiny preset trimmed to what proves each stage."""
    onnx = export(create_model("resnet20", 10, 3), tmp / "exported.onnx", ["images"], (1, 3, 32, 32))
    cfg = {
        "dataset": {"max_train_per_class": 40, "max_test_per_class": 10},  # the tiny preset's shipped sample
        "train": {"epochs": 1},
        "models": [
            "torchvision:mobilenet_v3_small",
            "torchvision:shufflenet_v2_x0_5",
            {"name": "facnet", "factory": "factory_net.py:build", "options": {"width": 8}},
            {"name": "exported", "onnx": "exported.onnx"},
        ],
        # a MACs target: a width-8 net's batch-1 latency is mostly runtime overhead, no cut makes it 1.2x faster
        "prune": {"target": {"kind": "macs", "value": 1.5}},
        "quantize": {"qat": {"bits": [[8, 8]]}},
        "convert": {"formats": ["ort-int8", "tflite-int8"]},
        "bench": {"formats": ["ort-int8"], "batch_sizes": [1], "runs": 5},
    }
    (tmp / "factory_net.py").write_text(FACTORY_FILE.read_text())  # relative to the working directory
    assert onnx.exists()
    path = tmp / "models.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_your_models_through_the_whole_tiny_dag(tmp_path: Path) -> None:
    from workflow_fixtures import TINY, run_snakemake

    proc = run_snakemake(tmp_path, "--configfile", str(TINY), str(your_models_config(tmp_path)),
                         timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = tmp_path / "results"
    mnv3, shuffle = "torchvision-mobilenet_v3_small", "torchvision-shufflenet_v2_x0_5"
    # what each model could take, said once in the log
    assert f"edgeopt: {shuffle}: pruned/zeropad skipped" in proc.stderr
    assert "edgeopt: facnet: no residual blocks zero-padding can prune: zeropad skipped" in proc.stderr
    for m, variants in {mnv3: ["baseline", "pruned", "zeropad"], shuffle: ["baseline"],
                        "facnet": ["baseline", "pruned"]}.items():
        assert sorted(p.name for p in (r / "models" / m).iterdir()) == sorted(variants), m
        for v in variants:
            for f in ("model.onnx", "ort-int8.onnx", "tflite-int8.tflite"):
                side = json.loads((r / "deploy" / m / v / f"{f}.json").read_text())
                assert side["model"] == m and "provenance" in side
            bench = json.loads((r / "bench" / "local" / m / v / "ort-int8.json").read_text())
            assert bench["accuracy"] is not None
        assert (r / "quantize" / m / "baseline" / "qat_sweep.csv").exists()
        assert list((r / "retrain" / "local" / m).glob("pytorch-*.json"))
    # unsafe groups stay unpruned and are listed in the recipe
    recipe = yaml.safe_load((r / "recipes" / mnv3 / "pruned.yaml").read_text())
    assert recipe["unpruned"] and not set(recipe["unpruned"]) & set(recipe["ratios"])
    assert yaml.safe_load((r / "recipes" / "facnet" / "pruned.yaml").read_text())["unpruned"] == {"left.0": "concat"}
    assert (r / "sensitivity" / mnv3 / "sensitivity.csv").exists() and not (r / "sensitivity" / shuffle).exists()
    # the ONNX entry: imported, int8 calibrated on the data, benchmarked; nothing that needs PyTorch
    side = json.loads((r / "deploy" / "exported" / "baseline" / "ort-int8.onnx.json").read_text())
    assert side["input"]["name"] == "images" and side["calibration_images"] == 64
    assert (r / "bench" / "local" / "exported" / "baseline" / "ort-int8.json").exists()
    assert not (r / "models" / "exported").exists() and not (r / "retrain" / "local" / "exported").exists()
    assert not list((r / "deploy" / "exported").rglob("*.tflite"))
    html = (r / "report" / "index.html").read_text()
    assert "Notes on the models" in html and "deploy-only ONNX model" in html
    results = (r / "report" / "results.csv").read_text()
    assert all(m in results for m in (mnv3, shuffle, "facnet", "exported"))


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("torchvision:mobilenet_v9", "torchvision:mobilenet_v9: not a torchvision classification model"),
        ({"name": "mine", "factory": "factory_net.py:not_a_module"}, "returned str, not a torch.nn.Module"),
        ({"name": "mine", "factory": "no_such_file.py:build"}, "no_such_file.py not found"),
        ({"name": "r", "model": "resnet56", "weights": "r20.pt"}, "r20.pt: does not fit the model: key"),
        ({"name": "two", "onnx": "two.onnx"}, "needs exactly one input (an image batch), has 2"),
    ],
)
def test_bad_models_stop_the_workflow_before_the_dag(tmp_path: Path, entry: object, words: str) -> None:
    from workflow_fixtures import TINY, run_snakemake

    (tmp_path / "factory_net.py").write_text(FACTORY_FILE.read_text())
    torch.save(create_model("resnet20", 10, 3).state_dict(), tmp_path / "r20.pt")
    export(TwoInputs(), tmp_path / "two.onnx", ["a", "b"], (1, 4))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    proc = run_snakemake(tmp_path, "--configfile", str(TINY), str(tmp_path / "bad.yaml"), "--dry-run", timeout=300)
    assert proc.returncode != 0
    line = [x for x in proc.stderr.splitlines() if x.startswith("edgeopt:")]
    assert len(line) == 1 and words in line[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()
