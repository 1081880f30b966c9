"""Conversion: real ONNX export, ONNX Runtime and LiteRT on tiny trained, pruned and zero-padded models,
each checked against PyTorch; missing operators and failed parity give one clear line."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeopt import plan
from edgeopt.config import check_config
from edgeopt.convert.cli import convert_artifact
from edgeopt.convert.verify import load_artifact_runner, sidecar_path, verify_artifact
from edgeopt.errors import EdgeoptError
from edgeopt.models import load_model, save_model

SIDECAR_KEYS = {
    "model",
    "variant",
    "format",
    "runtime",
    "precision",
    "path",
    "size_bytes",
    "accuracy",
    "parity",
    "deployable",
    "simulated",
    "provenance",
}


@pytest.fixture(scope="module")
def settings() -> dict:
    return check_config({})["convert"]


def _variant(tmp: Path, model: nn.Module, meta: dict, variant: str) -> Path:
    path = tmp / "models" / "resnet20" / variant / "model.pt"
    save_model(path, model, {**meta, "variant": variant})
    return path


@pytest.fixture(scope="module")
def baseline(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, tiny_data: Path, settings: dict
) -> dict:
    """Every conversion-owned format of the tiny trained ResNet-20, with sidecars."""
    out = tmp_path_factory.mktemp("deploy") / "resnet20" / "baseline"
    recs = {"onnx": convert_artifact("onnx", tiny_model, tiny_data, settings, out / "model.onnx")}
    recs["ort-fp32"] = convert_artifact(
        "ort-fp32", tiny_model, tiny_data, settings, out / "ort-fp32.onnx", onnx=out / "model.onnx"
    )
    for fmt in ("tflite-fp32", "tflite-fp16"):
        recs[fmt] = convert_artifact(fmt, tiny_model, tiny_data, settings, out / f"{fmt}.tflite")
    return recs


@pytest.mark.slow
def test_every_format_matches_pytorch_and_writes_its_sidecar(baseline: dict) -> None:
    for fmt, rec in baseline.items():
        assert SIDECAR_KEYS <= set(rec), fmt
        on_disk = json.loads(sidecar_path(rec["path"]).read_text())
        assert on_disk["accuracy"] == rec["accuracy"] and on_disk["provenance"]["packages"]["onnx"]
        assert rec["images"] == 100 and rec["parity"]["images"] == 100  # the whole tiny test split
        assert rec["deployable"] and not rec["simulated"]
        assert rec["model"] == "resnet20" and rec["variant"] == "baseline"
    for fmt in ("onnx", "ort-fp32", "tflite-fp32"):
        p = baseline[fmt]["parity"]
        assert p["max_abs_diff"] < 1e-4 and p["top1_agreement"] == 1.0, (fmt, p)
        assert baseline[fmt]["accuracy"] == p["reference_accuracy"]
    fp16 = baseline["tflite-fp16"]
    assert 0 < fp16["parity"]["max_abs_diff"] < 0.1 and fp16["precision"] == "fp16"
    assert fp16["size_bytes"] < 0.6 * baseline["tflite-fp32"]["size_bytes"]  # fp16 weights
    assert baseline["tflite-fp32"]["tflite"]["fixed_batch"] == 1  # evaluated in chunks of 1
    assert baseline["tflite-fp16"]["tflite"]["op_counts"]["DEQUANTIZE"] > 0


@pytest.mark.slow
def test_onnx_is_simplified_with_a_dynamic_batch(baseline: dict) -> None:
    rec = baseline["onnx"]
    stats = rec["onnx"]
    assert stats["inputs"] == {"input": ["batch", 3, 32, 32]} and stats["opset"]["ai.onnx"] == 18
    assert "Identity" not in stats["op_counts"] and stats["op_counts"]["Conv"] == 21
    assert stats["nodes"] == sum(stats["op_counts"].values())
    runner = load_artifact_runner("onnxruntime", rec["path"])
    for n in (1, 7):
        assert runner.predict(np.zeros((n, 3, 32, 32), np.float32)).shape == (n, 10)
    ort = baseline["ort-fp32"]
    assert ort["optimization_level"] == "extended" and ort["onnx"]["nodes"] < stats["nodes"]  # fused


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The tiny ResNet-20 with half of every prunable group's channels removed by torch-pruning."""
    import torch_pruning as tp

    model, meta = load_model(tiny_model)
    model = model.to(memory_format=torch.contiguous_format)
    example = torch.randn(1, 3, 32, 32)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pruner = tp.pruner.BasePruner(
        model,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=0.5,
        ignored_layers=head,
    )
    pruner.step()
    return _variant(tmp_path_factory.mktemp("pruned"), model, meta, "pruned")


@pytest.mark.slow
def test_pruned_model_converts_and_matches(
    pruned: Path, tiny_data: Path, baseline: dict, settings: dict
) -> None:
    out = pruned.parents[3] / "deploy" / "resnet20" / "pruned"
    rec = convert_artifact("onnx", pruned, tiny_data, settings, out / "model.onnx")
    assert rec["variant"] == "pruned" and rec["parity"]["max_abs_diff"] < 1e-4
    assert rec["onnx"]["initializer_elements"] < 0.4 * baseline["onnx"]["onnx"]["initializer_elements"]
    tfl = convert_artifact("tflite-fp32", pruned, tiny_data, settings, out / "tflite-fp32.tflite")
    assert (
        tfl["parity"]["top1_agreement"] == 1.0 and tfl["size_bytes"] < baseline["tflite-fp32"]["size_bytes"]
    )


class ZeroPad(nn.Module):
    """A pruned block whose output is scattered back into zeros of the original width, so the rest of
    the network keeps its shapes (the pruning stage builds the real one)."""

    def __init__(self, block: nn.Module, keep: list[int], width: int) -> None:
        super().__init__()
        self.block, self.width = block, width
        self.register_buffer("keep", torch.as_tensor(keep, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        out = y.new_zeros(y.shape[0], self.width, y.shape[2], y.shape[3])
        return out.index_copy(1, self.keep, y)


def test_model_file_with_a_module_edgeopt_cannot_build_is_refused(
    tmp_path: Path, tiny_model: Path, tiny_data: Path, settings: dict
) -> None:
    """A model file is rebuilt through the registry and torch.nn only: a module class defined elsewhere
    (here in this test) is refused with one line before conversion, never imported or unpickled.
    The pruning stage's own zero-padding converts: test_pruning_stages_zeropad_variant_converts_and_matches."""
    model, meta = load_model(tiny_model)
    block = model.layer2[0]  # stride-2 block, 16 -> 32 channels
    width = block.conv2.out_channels
    keep = list(range(0, width, 2))
    narrow = nn.Sequential(
        nn.Conv2d(block.conv1.in_channels, len(keep), 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(len(keep)),
        nn.ReLU(),
    )
    model.layer2[0] = ZeroPad(narrow, keep, width)
    path = _variant(tmp_path, model.eval(), meta, "zeropad")
    with pytest.raises(EdgeoptError, match=r"layer2\.0.*ZeroPad.*cannot construct") as err:
        convert_artifact("onnx", path, tiny_data, settings, tmp_path / "deploy" / "model.onnx")
    assert "\n" not in str(err.value) and not (tmp_path / "deploy" / "model.onnx").exists()


# ---------------------------------------------------------------- failures: parity and missing ops


@pytest.mark.slow
def test_failed_parity_fails_the_conversion_by_how_much(
    baseline: dict,
    tiny_model: Path,
    tiny_data: Path,
    settings: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    from edgeopt.cli import main

    strict = {
        **settings,
        "parity": {**settings["parity"], "fp16": {"max_abs_diff": 1e-7, "min_top1_agreement": 1}},
    }
    out = tmp_path / "tflite-fp16.tflite"
    src = Path(baseline["tflite-fp16"]["path"])
    out.write_bytes(src.read_bytes())
    torch_model, _ = load_model(tiny_model)
    kw = dict(model="resnet20", variant="baseline", fmt="tflite-fp16", runtime="tflite", precision="fp16")
    with pytest.raises(EdgeoptError, match=r"parity check failed: max \|logit diff\| .* > 1e-07 \(by "):
        verify_artifact(out, torch_model=torch_model, data_dir=tiny_data, settings=strict, **kw)
    assert not sidecar_path(out).exists()
    # Through the CLI: exit 2, one line, and no unverified artifact left behind.
    strict32 = {**settings, "parity": {"fp32": {"max_abs_diff": 1e-12, "min_top1_agreement": 1}}}
    target = tmp_path / "ort-fp32.onnx"
    args = ["convert", "--format", "ort-fp32", "--model-file", str(tiny_model), "--data", str(tiny_data)]
    args += ["--onnx", baseline["onnx"]["path"], "--params", json.dumps(strict32), "--out", str(target)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "parity check failed" in err and "(by " in err
    assert not target.exists()


def _custom_op_onnx(path: Path) -> Path:
    """A real ONNX model: Conv, then an op from a custom domain no runtime implements."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv"),
        helper.make_node("Swizzle", ["c"], ["logits"], name="swizzle", domain="edgeopt.custom"),
    ]
    graph = helper.make_graph(
        nodes,
        "custom",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        initializer=[w],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("edgeopt.custom", 1)]
    )
    onnx.save(model, str(path))
    return path


def test_onnxruntime_names_the_op_it_lacks(tmp_path: Path) -> None:
    from edgeopt.convert.ort import optimize_ort

    path = _custom_op_onnx(tmp_path / "custom.onnx")
    want = f"{path}: onnxruntime does not support op 'edgeopt.custom:Swizzle' (not a registered op)"
    with pytest.raises(EdgeoptError) as exc:
        load_artifact_runner("onnxruntime", path)
    assert str(exc.value) == want
    with pytest.raises(EdgeoptError) as exc:
        optimize_ort(path, tmp_path / "ort.onnx")
    assert str(exc.value) == want and not (tmp_path / "ort.onnx").exists()


@torch.library.custom_op("edgeopt_test::swizzle", mutates_args=())
def swizzle(x: torch.Tensor) -> torch.Tensor:
    return x.flip(1).clone()


@swizzle.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class CustomOpNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swizzle(self.conv(x)).mean((2, 3))


def test_litert_names_the_op_it_cannot_convert(tmp_path: Path) -> None:
    from edgeopt.convert.tflite import convert_tflite

    out = tmp_path / "m.tflite"
    with pytest.raises(EdgeoptError) as exc:
        convert_tflite(CustomOpNet().eval(), out, "fp32", image_size=8)
    assert str(exc.value) == (
        f"{out}: TFLite conversion: litert-torch does not support op 'edgeopt_test.swizzle.default' (no lowering to TFLite)"
    )
    assert not out.exists()


def test_onnx_export_names_the_op_it_cannot_export(tmp_path: Path) -> None:
    from edgeopt.convert.onnx_export import export_onnx

    with pytest.raises(
        EdgeoptError, match=r"onnx-exporter does not support op 'edgeopt_test::swizzle'"
    ) as exc:
        export_onnx(CustomOpNet().eval(), tmp_path / "m.onnx", 8)
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------- TFLite runner: fixed batch, old package


def test_fixed_batch_tflite_evaluates_any_number_of_images(tmp_path: Path) -> None:
    from edgeopt.convert.tflite import convert_tflite
    from edgeopt.harness.runtimes import load_runner

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)
    ).eval()
    model = model.to(memory_format=torch.channels_last)  # as trained models are saved
    path = convert_tflite(model, tmp_path / "b4.tflite", "fp32", image_size=8, batch=4)
    runner = load_runner("tflite", str(path))
    assert runner.batch == 4 and runner.fixed_batch
    x = np.random.default_rng(0).standard_normal((10, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    out = runner.predict(x)
    assert out.shape == (10, 5) and np.abs(out - ref).max() < 1e-5


def test_tflite_runtime_package_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Devices with only the frozen `tflite_runtime` package: the runner picks it when ai_edge_litert is absent.
    Here the fallback module is backed by LiteRT's own interpreter (tflite-runtime needs numpy<2)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.harness import runtimes

    pkg = types.ModuleType("tflite_runtime")
    sub = types.ModuleType("tflite_runtime.interpreter")
    sub.Interpreter = Interpreter  # type: ignore[attr-defined]
    pkg.interpreter = sub  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import now fails
    monkeypatch.setitem(sys.modules, "tflite_runtime", pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", sub)
    cls, package = runtimes._tflite_interpreter_class()
    assert package == "tflite-runtime" and cls is Interpreter
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(runtimes.RuntimeUnavailable, match="no TFLite interpreter"):
        runtimes._tflite_interpreter_class()


# ---------------------------------------------------------------- planning and CLI input errors


def test_plan_lists_every_variant_and_owned_format() -> None:
    config = check_config(
        {"models": ["resnet20"], "convert": {"formats": ["ort-fp32", "ort-int8", "trt-fp16"]}}
    )
    targets = plan.convert_targets(config)
    variants = plan.model_variants(config, "resnet20")
    assert variants[0] == "baseline"
    assert targets == [
        f"results/deploy/resnet20/{v}/{name}"
        for v in variants
        for name in ("model.onnx", "model.onnx.json", "ort-fp32.onnx", "ort-fp32.onnx.json")
    ]
    assert set(targets) <= set(plan.all_targets(config))
    assert plan.device_built_formats(config) == ["trt-fp16"]
    assert plan.deploy_path("m", "v", "trt-int8") == "results/deploy/m/v/trt-int8.engine"
    assert json.loads(plan.convert_params_json(config, "ort")) == {"ort": config["convert"]["ort"]}


def test_bad_format_and_missing_onnx_are_one_line_errors(
    tiny_model: Path, tiny_data: Path, settings: dict, tmp_path: Path
) -> None:
    with pytest.raises(EdgeoptError, match="--format 'tflite-int4' unknown"):
        convert_artifact("tflite-int4", tiny_model, tiny_data, settings, tmp_path / "x.tflite")
    with pytest.raises(EdgeoptError, match="--onnx is required"):
        convert_artifact("ort-fp32", tiny_model, tiny_data, settings, tmp_path / "x.onnx")
    with pytest.raises(EdgeoptError, match="model file missing"):
        convert_artifact("onnx", tmp_path / "none.pt", tiny_data, settings, tmp_path / "x.onnx")


def test_fixed_batch_onnx_is_evaluated_at_its_batch(
    tiny_model: Path, tiny_data: Path, settings: dict, tmp_path: Path
) -> None:
    fixed = {**settings, "onnx": {**settings["onnx"], "dynamic_batch": False}}
    rec = convert_artifact("onnx", tiny_model, tiny_data, fixed, tmp_path / "model.onnx")
    assert rec["onnx"]["inputs"] == {"input": [1, 3, 32, 32]} and rec["images"] == 100
    assert rec["parity"]["top1_agreement"] == 1.0


@pytest.mark.slow
def test_pruning_stages_zeropad_variant_converts_and_matches(
    tmp_path: Path, tiny_model: Path, tiny_data: Path, settings: dict
) -> None:
    """The pruning stage's own zero-padding (ZeroPadScatter: concat + gather) through ORT and LiteRT."""
    zeropad = pytest.importorskip("edgeopt.prune.zeropad", reason="pruning stage (branch prune) not merged")
    model, meta = load_model(tiny_model)
    model = model.to(memory_format=torch.contiguous_format)
    report = zeropad.prune_zeropad(model, {"layer1.0": 0.5, "layer2.1": 0.5, "layer3.2": 0.5}, None)
    assert all(r["after"] < r["before"] for r in report.values())
    path = _variant(tmp_path, model.eval(), meta, "zeropad")
    out = tmp_path / "deploy"
    rec = convert_artifact("onnx", path, tiny_data, settings, out / "model.onnx")
    assert rec["parity"]["max_abs_diff"] < 1e-4 and rec["onnx"]["op_counts"]["Gather"] >= 3
    tfl = convert_artifact("tflite-fp32", path, tiny_data, settings, out / "tflite-fp32.tflite")
    assert tfl["parity"]["max_abs_diff"] < 1e-4 and tfl["parity"]["top1_agreement"] == 1.0
