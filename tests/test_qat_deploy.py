"""The 8-bit QAT model deployed: real QAT, real export, real ONNX Runtime and LiteRT runs, the planned DAG.

What is checked is what makes the exported file *the QAT model* rather than a recalibrated one: the
activation scales in the file are the ones the QAT fake-quant learned, the weights sit on the QAT grid,
and the runtime's predictions agree with the PyTorch QAT model within a stated tolerance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from quantize_fixtures import qdq_zero_points
from workflow_fixtures import TINY, parse_dry_run, run_snakemake

from edgeopt import plan
from edgeopt.config import check_config
from edgeopt.errors import EdgeoptError
from edgeopt.harness import tensorrt as trt_h
from edgeopt.quantize.fake_quant import fake_quant_weight
from edgeopt.quantize.qat import run_qat
from edgeopt.quantize.qat_export import export_qat, learned_scales, load_qat_model

QAT_CFG = {"epochs": 1, "lr": 0.01, "train_limit": 64, "batch_size": 32, "device": "cpu", "progress": False}
EXPORT_CFG = {"calib_batch_size": 32}
#: the stated tolerance: the int8 file predicts the PyTorch QAT model's class for at least this share of
#: test images. Not 1.0: tensors QAT does not fake-quantize (conv outputs, residual sums) are quantized
#: in the file with calibrated ranges, and the 1-epoch test model has near-tied logits.
MIN_AGREEMENT = 0.75
SIDECAR_KEYS = {"model", "variant", "format", "runtime", "precision", "accuracy", "fp32_accuracy", "accuracy_delta",
                "parity", "parity_reference", "deployable", "simulated", "method", "qat_state", "provenance"}  # fmt: skip


def _qat(tmp: Path, model: Path, data: Path, bw: int, ba: int) -> Path:
    state = tmp / f"qat-w{bw}a{ba}.pt"
    run_qat(model, data, tmp / f"qat-w{bw}a{ba}.json", bw, ba, QAT_CFG, {"eval_batch_size": 256},
            "resnet20", "baseline", state_out=state)  # fmt: skip
    return state


@pytest.fixture(scope="module")
def qat_state(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, tiny_data: Path) -> Path:
    """`tiny_model` fine-tuned with 8-bit fake quantization; its saved state."""
    return _qat(tmp_path_factory.mktemp("qat"), tiny_model, tiny_data, 8, 8)


def _check_sidecar(s: dict, fmt: str, runtime: str) -> None:
    assert SIDECAR_KEYS <= set(s), SIDECAR_KEYS - set(s)
    assert (s["format"], s["runtime"], s["precision"], s["method"]) == (fmt, runtime, "int8", "qat")
    assert s["deployable"] is True and s["simulated"] is False  # measured in the runtime, not simulated
    assert s["settings"]["qat_scales"] == 22  # 21 convs + fc of a ResNet-20
    assert s["parity"]["top1_agreement"] >= MIN_AGREEMENT, s["parity"]
    assert s["parity"]["images"] == s["images"] == 100
    assert s["provenance"]["git_commit"] is not None
    assert json.loads(Path(s["path"] + ".json").read_text())["accuracy"] == s["accuracy"]


def test_qat_state_rebuilds_the_trained_model(qat_state: Path, tiny_model: Path, tiny_data: Path) -> None:
    """The saved state (tensors only) rebuilds a model computing what the trained QAT model computed."""
    qmodel, meta, blob = load_qat_model(tiny_model, qat_state)
    assert (blob["bits_w"], blob["bits_a"]) == (8, 8)
    layers = learned_scales(qmodel, "test")
    assert len(layers) == 22 and all(s > 0 for _, _, s in layers)
    act = qmodel.get_submodule("layer1.0.conv1").act
    scale, zero, qmin, qmax = act.qparams()
    assert act.symmetric and int(zero) == 0 and (qmin, qmax) == (-128, 127)  # the int8 grid the runtimes run
    assert float(scale) == pytest.approx(float(torch.maximum(-act.lo, act.hi)) / 127)


def test_qat_qdq_onnx_is_symmetric_with_the_learned_scales(qat_state: Path, tiny_model: Path, tiny_data: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "qat-ort-int8.onnx"
    s = export_qat("qat-ort-int8", tiny_model, qat_state, tiny_data, out, EXPORT_CFG, "resnet20", "baseline")
    _check_sidecar(s, "qat-ort-int8", "onnxruntime")
    # symmetric int8 everywhere (what TensorRT takes), the way the trt-qdq path is checked
    zps = qdq_zero_points(out)
    assert len(zps) > 20 and all(z.dtype == np.int8 and not z.any() for z in zps.values())
    assert trt_h.is_qdq(out) and s["settings"]["symmetric"] is True
    # every Conv/Gemm input carries the scale its QAT fake-quant learned, its weights the QAT int8 values
    qmodel, _, _ = load_qat_model(tiny_model, qat_state)
    learned = learned_scales(qmodel, "test")
    m = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    layer_of: dict[str, tuple[str, float]] = {}  # Conv/Gemm node -> (QAT layer, learned scale)
    for node in (n for n in m.graph.node if n.op_type in ("Conv", "Gemm")):
        w_dq = producer[node.input[1]]
        q, q_scale = inits[w_dq.input[0]], inits[w_dq.input[1]]
        w = q.astype(np.float32) * q_scale.reshape(-1, *[1] * (q.ndim - 1))
        for name, weight, scale in learned:
            fq = fake_quant_weight(weight, 8).numpy()
            if fq.shape == w.shape and np.isclose(fq, w, rtol=0, atol=1e-6).mean() > 0.999:  # a tie may round apart
                layer_of[node.name] = (name, scale)
                break
    assert sorted(n for n, _ in layer_of.values()) == sorted(n for n, _, _ in learned)
    by_input: dict[str, list[float]] = {}  # a tensor feeding several layers takes the widest learned scale
    for node in (n for n in m.graph.node if n.name in layer_of):
        by_input.setdefault(node.input[0], []).append(layer_of[node.name][1])
    for tensor, scales in by_input.items():
        assert float(inits[producer[tensor].input[1]]) == pytest.approx(max(scales), rel=1e-6), tensor


def test_qat_litert_is_full_int8_with_the_learned_scales(qat_state: Path, tiny_model: Path, tiny_data: Path,
                                                         tmp_path: Path) -> None:  # fmt: skip
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "qat-tflite-int8.tflite"
    s = export_qat("qat-tflite-int8", tiny_model, qat_state, tiny_data, out, EXPORT_CFG, "resnet20", "baseline")
    _check_sidecar(s, "qat-tflite-int8", "tflite")
    interp = Interpreter(model_path=str(out))
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    tensors = interp.get_tensor_details()
    ops = [d for d in interp._get_ops_details() if d["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(ops) == 22
    qmodel, _, _ = load_qat_model(tiny_model, qat_state)
    learned = sorted({sc for _, _, sc in learned_scales(qmodel, "test")})
    for d in ops:
        act, w, b = (tensors[i] for i in d["inputs"][:3])
        assert (act["dtype"], w["dtype"], b["dtype"]) == (np.int8, np.int8, np.int32), d
        (scale,), (zero,) = act["quantization_parameters"]["scales"], act["quantization_parameters"]["zero_points"]
        assert zero == 0 and min(abs(scale - x) / x for x in learned) < 1e-6, (d["op_name"], scale)
    # every tensor the interpreter computes with is integer (no float op left in the graph)
    float_tensors = [t["name"] for t in tensors if t["dtype"] == np.float32]
    assert not float_tensors, float_tensors


# ---------------------------------------------------------------- bad input


def test_only_8bit_bn_folded_qat_models_export(tmp_path: Path, tiny_model: Path, tiny_data: Path) -> None:
    state = _qat(tmp_path, tiny_model, tiny_data, 4, 4)
    with pytest.raises(EdgeoptError, match=r"w4a4: only 8-bit QAT models deploy") as exc:
        export_qat("qat-ort-int8", tiny_model, state, tiny_data, tmp_path / "x.onnx", EXPORT_CFG)
    assert "\n" not in str(exc.value) and not (tmp_path / "x.onnx").exists()
    unfolded = tmp_path / "unfolded"
    unfolded.mkdir()
    run_qat(tiny_model, tiny_data, unfolded / "r.json", 8, 8, {**QAT_CFG, "fold_bn": False}, {}, state_out=unfolded / "s.pt")
    with pytest.raises(EdgeoptError, match=r"BatchNorm 'bn1' is not folded .*fold_bn: false") as exc:
        export_qat("qat-tflite-int8", tiny_model, unfolded / "s.pt", tiny_data, tmp_path / "x.tflite", EXPORT_CFG)
    assert "\n" not in str(exc.value) and not (tmp_path / "x.tflite").exists()


def test_bad_qat_export_input_is_one_line(qat_state: Path, tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    cases = [
        ("qat-ort-int8", tmp_path / "missing.pt", "QAT state file missing"),
        ("qat-ort-int8", tiny_model, "not an edgeopt QAT state file"),
        ("ort-int8", qat_state, "not a QAT deploy format"),
    ]
    blob = torch.load(qat_state, weights_only=True)
    blob["state_dict"].pop("fc.inner.weight")
    torch.save(blob, tmp_path / "partial.pt")
    cases.append(("qat-ort-int8", tmp_path / "partial.pt", "does not fit"))
    for fmt, state, msg in cases:
        with pytest.raises(EdgeoptError, match=msg) as exc:
            export_qat(fmt, tiny_model, state, tiny_data, out, EXPORT_CFG)
        assert "\n" not in str(exc.value)
    proc = subprocess.run(
        [sys.executable, "-m", "edgeopt", "quantize", "qat-export", "--format", "qat-tflite-int8", "--model-file",
         str(tiny_model), "--qat-state", str(tmp_path / "missing.pt"), "--data", str(tiny_data), "--params", "{}",
         "--out", str(out)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "missing.pt" in proc.stderr and not out.exists()


# ---------------------------------------------------------------- the DAG


def _config(**qat: object) -> dict:
    import yaml

    from edgeopt.config import deep_merge

    root = Path(__file__).resolve().parents[1]
    base = deep_merge(yaml.safe_load((root / "config.yaml").read_text()), yaml.safe_load(TINY.read_text()))
    return check_config(deep_merge(base, {"quantize": {"qat": qat}}))


def test_plan_exports_only_the_8bit_pair() -> None:
    cfg = _config()
    assert plan.qat_deploy_formats(cfg) == ["qat-ort-int8", "qat-tflite-int8"]
    assert set(plan.qat_deploy_targets(cfg)) == {
        "results/deploy/resnet20/baseline/qat-ort-int8.onnx", "results/deploy/resnet20/baseline/qat-ort-int8.onnx.json",
        "results/deploy/resnet20/baseline/qat-tflite-int8.tflite",
        "results/deploy/resnet20/baseline/qat-tflite-int8.tflite.json",
    }  # fmt: skip
    assert plan.format_runtime("qat-tflite-int8") == "tflite" and "qat-ort-int8" in plan.bench_formats(cfg, "local")
    assert not plan.qat_deploy_formats(_config(bits=[[4, 4], [6, 6]]))  # no 8-bit pair: all simulated
    assert not plan.qat_deploy_formats(_config(export=False))
    assert plan.qat_params_json(_config(export=False)) == plan.qat_params_json(cfg)  # a job switch: reruns nothing
    only_ort = check_config({**cfg, "convert": {**cfg["convert"], "formats": ["ort-fp32", "ort-int8"]}})
    assert plan.qat_deploy_formats(only_ort) == ["qat-ort-int8"]


def test_dry_run_plans_qat_export_and_benchmarks(tmp_path: Path) -> None:
    """The tiny preset: train_qat saves the w8a8 state, export_qat writes both QAT formats from it, and
    each is benchmarked on the device like every other format (the report collects those rows)."""
    proc = run_snakemake(tmp_path, "--configfile", str(TINY), "--dry-run", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = parse_dry_run(proc.stdout + proc.stderr)
    exports = {j.wildcards["qatformat"]: j for j in jobs if j.rule == "export_qat"}
    assert set(exports) == {"qat-ort-int8", "qat-tflite-int8"}
    assert exports["qat-ort-int8"].output == [
        "results/deploy/resnet20/baseline/qat-ort-int8.onnx", "results/deploy/resnet20/baseline/qat-ort-int8.onnx.json"
    ]  # fmt: skip
    train = {j.wildcards["pair"]: j for j in jobs if j.rule == "train_qat"}
    assert "results/quantize/resnet20/baseline/qat-w8a8.pt" in train["w8a8"].output
    benches = {(j.wildcards["variant"], j.wildcards["format"]) for j in jobs if j.rule == "bench_model"}
    assert {("baseline", "qat-ort-int8"), ("baseline", "qat-tflite-int8")} <= benches
    assert not {f for v, f in benches if v != "baseline" and f.startswith("qat-")}  # QAT starts from baseline only
    text = proc.stdout + proc.stderr
    assert "input: results/models/resnet20/baseline/model.pt, results/quantize/resnet20/baseline/qat-w8a8.pt" in text


def test_dry_run_builds_a_tensorrt_engine_from_the_qat_model(tmp_path: Path) -> None:
    """On a TensorRT device, qat-trt-int8 is an engine built there from qat-ort-int8.onnx (symmetric QDQ)."""
    import yaml

    cfg = tmp_path / "jetson.yaml"
    cfg.write_text(yaml.safe_dump({
        "convert": {"formats": ["ort-fp32", "ort-int8"]},
        "devices": {"jetson": {"host": "jetson-orin", "runtimes": ["onnxruntime", "tensorrt"]}},
        "bench": {"devices": ["jetson"], "tensorrt_formats": ["trt-int8"]},
        "prune": {"variants": []},
        "quantize": {"qat": {"bits": [[8, 8]]}},
        "retrain": {"enabled": False},
    }))  # fmt: skip
    proc = run_snakemake(tmp_path, "--configfile", str(TINY), str(cfg), "--dry-run", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    benches = {j.wildcards["format"] for j in parse_dry_run(out) if j.rule == "bench_model"}
    assert benches == {"ort-fp32", "ort-int8", "qat-ort-int8", "trt-int8", "qat-trt-int8"}
    assert not [j for j in parse_dry_run(out) if j.wildcards.get("qatformat") == "qat-tflite-int8"]
    block = next(b for b in out.split("\n\n") if "output: results/bench/jetson/resnet20/baseline/qat-trt-int8.json" in b)
    assert "input: results/deploy/resnet20/baseline/qat-ort-int8.onnx," in block
