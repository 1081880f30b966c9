"""Quantization stage: real calibration, real ONNX Runtime and LiteRT runs, real fake-quant QAT."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeopt import formats, plan
from edgeopt.config import check_config
from edgeopt.errors import EdgeoptError
from edgeopt.quantize.fake_quant import apply_fake_quant, fake_quant_weight, set_observe
from edgeopt.quantize.ptq import quantize_ptq
from edgeopt.quantize.qat import parse_pair, run_qat, write_sweep

SIDECAR_KEYS = {
    "model", "variant", "format", "runtime", "precision", "path", "size_bytes", "accuracy",
    "parity", "deployable", "simulated", "provenance", "fp32_accuracy", "accuracy_delta",
}  # fmt: skip
PTQ_CFG = {"calib_batch_size": 32, "per_channel": True, "activation_type": "uint8", "weight_type": "int8"}
QAT_CFG = {"epochs": 1, "lr": 0.01, "train_limit": 64, "batch_size": 32, "device": "cpu", "progress": False}


def _check_sidecar(s: dict, fmt: str, runtime: str) -> None:
    assert SIDECAR_KEYS <= set(s), SIDECAR_KEYS - set(s)
    assert (s["format"], s["runtime"], s["precision"]) == (fmt, runtime, "int8")
    assert s["deployable"] is True and s["simulated"] is False
    assert s["size_bytes"] == Path(s["path"]).stat().st_size
    assert s["provenance"]["git_commit"] is not None
    assert s["accuracy_delta"] == pytest.approx(s["accuracy"] - s["fp32_accuracy"])
    # a calibrated int8 model predicts like its fp32 original (a broken scale would not)
    assert s["parity"]["top1_agreement"] >= 0.85, s["parity"]


def test_ort_qdq_is_uint8_act_int8_per_channel(tmp_path: Path, tiny_model: Path, tiny_data: Path) -> None:
    out = tmp_path / "ort-int8.onnx"
    s = quantize_ptq("ort-int8", tiny_model, tiny_data, out, PTQ_CFG, "resnet20", "baseline")
    _check_sidecar(s, "ort-int8", "onnxruntime")
    assert json.loads(Path(f"{out}.json").read_text())["accuracy"] == s["accuracy"]
    assert s["calibration_images"] == 64
    g = onnx.load(out).graph
    inits = {i.name: i for i in g.initializer}
    ops = [n.op_type for n in g.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    conv_w = [n.input[1] for n in g.node if n.op_type == "Conv"]
    dq = {n.output[0]: n for n in g.node if n.op_type == "DequantizeLinear"}
    # every conv weight comes from an int8 tensor with one scale per output channel
    for name in conv_w:
        node = dq[name]
        w, scale = inits[node.input[0]], inits[node.input[1]]
        assert w.data_type == onnx.TensorProto.INT8
        assert scale.dims == [w.dims[0]]
    act_zero = [inits[n.input[2]] for n in g.node if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert act_zero and all(z.data_type == onnx.TensorProto.UINT8 for z in act_zero)
    # reduce_range (7-bit weights) follows this CPU under `auto`, and the sidecar says which and why
    from edgeopt.quantize.ort_qdq import u8s8_saturates

    assert s["settings"]["reduce_range"] is u8s8_saturates()
    assert s["settings"]["reduce_range_reason"].startswith("auto: ")
    if s["settings"]["reduce_range"]:
        assert all(abs(onnx.numpy_helper.to_array(inits[dq[n].input[0]])).max() <= 64 for n in conv_w)


def test_reduce_range_follows_the_cpu_unless_set() -> None:
    from edgeopt.quantize.ort_qdq import resolve_reduce_range, u8s8_saturates

    assert u8s8_saturates("x86_64", {"avx2", "fma"})  # AVX2 only: saturating int16 pair sums
    assert not u8s8_saturates("x86_64", {"avx2", "avx512f", "avx512_vnni"})
    assert not u8s8_saturates("x86_64", {"avx2", "avx_vnni"})
    assert not u8s8_saturates("aarch64", set())
    from edgeopt.harness.sysinfo import cpu_flags

    assert cpu_flags("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n") == {"fpu", "avx2", "avx512_vnni"}
    assert cpu_flags("Features\t: fp asimd asimddp\n") == {"fp", "asimd", "asimddp"}
    assert resolve_reduce_range({"reduce_range": False}, "uint8", "int8") == (False, "set in the config")
    assert resolve_reduce_range({"reduce_range": True}, "int8", "int8")[0] is True
    off, why = resolve_reduce_range({}, "int8", "int8")  # all-int8 never uses the u8s8 kernels
    assert off is False and "do not use the u8s8 kernels" in why
    with pytest.raises(EdgeoptError, match="quantize.reduce_range: must be auto, true or false, got 'maybe'"):
        resolve_reduce_range({"reduce_range": "maybe"}, "uint8", "int8")
    with pytest.raises(EdgeoptError, match="quantize.reduce_range"):
        check_config({"quantize": {"reduce_range": "maybe"}})
    assert check_config({})["quantize"]["reduce_range"] == "auto"


@pytest.mark.slow
def test_litert_full_integer(tmp_path: Path, tiny_model: Path, tiny_data: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.models import load_model

    model, _ = load_model(tiny_model)
    out = tmp_path / "tflite-int8.tflite"
    s = quantize_ptq("tflite-int8", tiny_model, tiny_data, out, PTQ_CFG, "resnet20", "baseline")
    _check_sidecar(s, "tflite-int8", "tflite")
    interp = Interpreter(model_path=str(out))
    # full integer: int8 in and out, every conv runs int8 x int8 (+ int32 bias)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    tensors = interp.get_tensor_details()
    convs = [d for d in interp._get_ops_details() if d["op_name"] == "CONV_2D"]
    assert len(convs) == 21  # 19 in the residual path + 2 projection shortcuts
    for d in convs:
        act, w, b = (tensors[i] for i in d["inputs"])
        assert (act["dtype"], w["dtype"], b["dtype"]) == (np.int8, np.int8, np.int32)
        assert len(w["quantization_parameters"]["scales"]) == w["shape"][0]  # per output channel
    assert s["accuracy"] >= s["fp32_accuracy"] - 0.1


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pruned", "zeropad"])
def test_quantize_pruned_models(
    variant: str, request: pytest.FixtureRequest, tmp_path: Path, tiny_model: Path, tiny_data: Path
) -> None:
    from edgeopt.models import load_model, model_stats

    path = request.getfixturevalue(f"{variant}_model")
    pruned, meta = load_model(path)
    base, _ = load_model(tiny_model)
    assert model_stats(pruned, 32)["params"] < 0.8 * model_stats(base, 32)["params"]
    for fmt in ("ort-int8", "tflite-int8"):
        ext = formats.get(fmt).ext
        s = quantize_ptq(fmt, path, tiny_data, tmp_path / f"{fmt}.{ext}", PTQ_CFG, "resnet20", variant)
        _check_sidecar(s, fmt, formats.get(fmt).runtime)
        assert s["variant"] == variant
    r = run_qat(path, tiny_data, tmp_path / "qat.json", 5, 5, QAT_CFG, QAT_CFG, "resnet20", variant)
    assert r["bn_folded"] and r["simulated"] and not r["deployable"]
    if variant == "zeropad":  # the scattered blocks stay fake-quantized through the zero channels
        assert r["test_images"] == 100 and 0 <= r["accuracy"] <= 1


def test_fake_quant_levels_and_overrides(tiny_model: Path, tiny_data: Path) -> None:
    from edgeopt.models import load_model
    from edgeopt.quantize.data import load_calibration, make_contiguous
    from edgeopt.quantize.fake_quant import ActivationFakeQuant, FakeQuantLayer

    model, meta = load_model(tiny_model)
    model = make_contiguous(model)
    q, report = apply_fake_quant(
        model, 3, 4, {"@first": {"bits_w": 8, "bits_a": 8}, "layer3.*": {"bits_a": 6}}
    )
    layers = report["layers"]
    assert report["bn_folded"] and not any(isinstance(m, nn.BatchNorm2d) for m in q.modules())
    assert layers["conv1"] == {"bits_w": 8, "bits_a": 8}
    assert layers["layer3.2.conv2"] == {"bits_w": 3, "bits_a": 6}
    assert layers["layer1.0.conv1"] == {"bits_w": 3, "bits_a": 4} and layers["fc"] == {
        "bits_w": 3,
        "bits_a": 4,
    }
    # a 3-bit symmetric weight has at most 7 levels per output channel
    w = q.get_submodule("layer1.0.conv1").inner.weight
    wq = fake_quant_weight(w, 3)
    assert max(len(torch.unique(wq[c])) for c in range(wq.shape[0])) <= 7
    # 4-bit activations: at most 16 distinct values after calibration
    calib = torch.from_numpy(load_calibration(tiny_data, meta))
    set_observe(q, True)
    q.eval()
    q(calib)
    set_observe(q, False)
    seen = {}
    layer = q.get_submodule("layer1.0.conv1")
    assert isinstance(layer, FakeQuantLayer) and isinstance(layer.act, ActivationFakeQuant)
    h = layer.act.register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    q(calib[:8])
    h.remove()
    assert len(torch.unique(seen["x"])) <= 16
    # fake-quant at 8/8 stays close to fp32
    q8, _ = apply_fake_quant(model, 8, 8)
    set_observe(q8, True)
    q8(calib)
    set_observe(q8, False)
    with torch.no_grad():
        ref, out = model(calib), q8(calib)
    assert (ref.argmax(1) == out.argmax(1)).float().mean() >= 0.9


def test_qat_sweep_table(tmp_path: Path, tiny_model: Path, tiny_data: Path) -> None:
    paths = []
    for bw, ba in [(8, 8), (4, 4)]:
        p = tmp_path / f"qat-w{bw}a{ba}.json"
        r = run_qat(
            tiny_model, tiny_data, p, bw, ba, QAT_CFG, {"eval_batch_size": 256}, "resnet20", "baseline"
        )
        assert r["history"] and r["train_images"] == 64 and r["epochs"] == 1
        assert r["provenance"]["config"]["quantize.qat"]["train_limit"] == 64
        paths.append(p)
    rows = write_sweep(paths[::-1], tmp_path / "qat_sweep.csv")
    table = list(csv.DictReader((tmp_path / "qat_sweep.csv").open()))
    assert [(r["bits_w"], r["bits_a"]) for r in table] == [("8", "8"), ("4", "4")]
    assert {"bits_w", "bits_a", "accuracy", "delta", "deployable", "simulated"} <= set(table[0])
    assert (table[0]["deployable"], table[1]["deployable"]) == ("True", "False")
    assert all(r["simulated"] == "True" for r in table)
    assert rows[1]["delta"] == pytest.approx(rows[1]["accuracy"] - rows[1]["fp32_accuracy"])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bits", [1, 9, 0, "5", 4.5])
def test_bits_out_of_range(bits, tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgeoptError, match="2..8"):
        run_qat(tiny_model, tiny_data, tmp_path / "x.json", bits, 8, QAT_CFG, {})
    with pytest.raises(EdgeoptError, match="bits"):
        apply_fake_quant(nn.Sequential(nn.Conv2d(3, 4, 3)), 8, bits)


def test_bad_pairs_overrides_and_config() -> None:
    with pytest.raises(EdgeoptError, match="w<bits>a<bits>"):
        parse_pair("5/5")
    with pytest.raises(EdgeoptError, match="2..8"):
        parse_pair("w9a5")
    with pytest.raises(EdgeoptError, match="nosuch"):
        apply_fake_quant(nn.Sequential(nn.Conv2d(3, 4, 3)), 8, 8, {"nosuch*": {"bits_w": 4}})
    with pytest.raises(EdgeoptError, match="quantize.qat.bits"):
        check_config({"quantize": {"qat": {"bits": [[9, 8]]}}})
    with pytest.raises(EdgeoptError, match="quantize.activation_type"):
        check_config({"quantize": {"activation_type": "int4"}})


def test_unsupported_layer() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LSTM(4, 4))
    with pytest.raises(EdgeoptError, match=r"unsupported layer '2' \(LSTM\)"):
        apply_fake_quant(model, 8, 8)


def test_missing_calibration_data(tmp_path: Path, tiny_model: Path, tiny_data: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "calib.npz").unlink()
    for fmt in ("ort-int8", "tflite-int8"):
        with pytest.raises(EdgeoptError, match=r"calib\.npz: calibration data missing"):
            quantize_ptq(fmt, tiny_model, data, tmp_path / "x.onnx", PTQ_CFG)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_one_line_errors(tmp_path: Path, tiny_model: Path, tiny_data: Path) -> None:
    base = [sys.executable, "-m", "edgeopt", "quantize"]
    cases = [
        (["qat", "--bits", "w8a1"], "2..8"),
        (["ptq-ort"], "model file missing"),
    ]
    for extra, msg in cases:
        model = str(tmp_path / "nope.pt") if extra[0] == "ptq-ort" else str(tiny_model)
        args = [
            *extra,
            "--model-file",
            model,
            "--data",
            str(tiny_data),
            "--params",
            "{}",
            "--out",
            str(tmp_path / "o"),
        ]
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeopt quantize: error:")]
        assert len(lines) == 1 and msg in lines[0], proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr


def test_plan_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # planning the width variant caches its multiplier under results/.cache/
    cfg = check_config({"models": ["resnet20"], "quantize": {"qat": {"bits": [[8, 8], [5, 5]]}}})
    t = plan.all_targets(cfg)
    assert "results/deploy/resnet20/baseline/ort-int8.onnx.json" in t
    assert "results/deploy/resnet20/baseline/tflite-int8.tflite" in t
    assert "results/quantize/resnet20/baseline/qat_sweep.csv" in t
    assert plan.qat_pairs(cfg) == ["w8a8", "w5a5"]
    # QAT results are not model variants, and adding a bit pair does not change the per-pair params
    assert not any(v.startswith("qat") for v in plan.model_variants(cfg, "resnet20"))
    cfg2 = check_config({"models": ["resnet20"], "quantize": {"qat": {"bits": [[8, 8]]}}})
    assert plan.qat_params_json(cfg) == plan.qat_params_json(cfg2)
    assert "qat" not in json.loads(plan.ptq_params_json(cfg))
    off = check_config({"models": ["resnet20"], "quantize": {"qat": {"enabled": False}}})
    assert plan.qat_targets(off) == []
