"""Latency tables measured on a device (local, and a real loopback SSH board) and targets planned from them.

Real parts only: torch-pruning cuts, ONNX export, ONNX Runtime timing through the device harness and
transport. No timing assertions: latencies here are noisy; the tests check shapes, records and bounds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from edgeopt.config import check_config
from edgeopt.devices import device_from_json
from edgeopt.errors import EdgeoptError
from edgeopt.prune.common import load_for_pruning
from edgeopt.prune.groups import list_groups
from edgeopt.prune.latency_sweep import sweep_widths, write_table
from edgeopt.prune.latency_table import BASELINE_ROW, COLUMNS, read_table, table_rows_csv
from edgeopt.prune.latency_target import accuracy_drops, drop_at, table_moves

SETTINGS = {"method": "whole", "ratios": [0.25, 0.5], "warmup": 1, "rounds": 2, "runs": 2, "threads": 1}


@pytest.fixture(scope="module")
def sensitivity_csv(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, tiny_data: Path) -> Path:
    from edgeopt.prune.sensitivity import analyze_sensitivity

    d = tmp_path_factory.mktemp("sens")
    analyze_sensitivity(tiny_model, tiny_data, d / "sensitivity.csv", d / "sensitivity.png",
                        {"ratios": [0.5], "val_limit": 40, "device": "cpu", "round_to": 8})
    return d / "sensitivity.csv"


@pytest.fixture(scope="module")
def local_table(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    out = tmp_path_factory.mktemp("latency") / "local" / "resnet20" / "ort-fp32.csv"
    write_table(tiny_model, "resnet20", device_from_json("local", {}), "ort-fp32", SETTINGS, out)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def test_table_on_local_has_every_group_at_every_width(local_table: Path, tiny_model: Path) -> None:
    model, meta = load_for_pruning(str(tiny_model))
    groups = list_groups(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"))
    rows = _rows(local_table)
    assert list(rows[0]) == list(COLUMNS) and rows[0]["group"] == BASELINE_ROW
    for g in groups:
        kept = sorted(int(r["kept"]) for r in rows if r["group"] == g.name)
        assert kept == sorted([g.channels, *sweep_widths(g.channels, SETTINGS["ratios"])]), g.name
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    table = read_table(local_table)
    assert set(table.channels) == {g.name for g in groups} and table.baseline_ms == float(rows[0]["latency_ms"])
    for g in groups:  # a group's full-width row is the baseline itself (whole method): it saves nothing
        assert [float(r["saved_ms"]) for r in rows if r["group"] == g.name and int(r["kept"]) == g.channels] == [0.0]
    info = json.loads(Path(f"{local_table}.json").read_text())
    assert info["device"] == "local" and info["format"] == "ort-fp32" and info["method"] == "whole"
    assert info["files_timed"] == 1 + len(rows) - 1 - len(groups)  # the baseline + one whole model per cut
    assert info["provenance"]["config"]["latency_table"]["ratios"] == [0.25, 0.5]
    assert info["provenance"]["device_side"]


def test_layers_method_times_each_layer_shape_once(tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "layers.csv"
    rows = write_table(tiny_model, "resnet20", device_from_json("local", {}), "ort-fp32",
                       {**SETTINGS, "method": "layers", "ratios": [0.5]}, out)
    info = json.loads(Path(f"{out}.json").read_text())
    assert info["method"] == "layers" and info["files_timed"] > 1
    full = {r["group"]: r["latency_ms"] for r in rows if r["group"] != BASELINE_ROW and r["ratio"] == 0.0}
    assert all(v > 0 for v in full.values())
    # blocks 1 and 2 of a stage have the same layer shapes: one file timed for both, so equal rows
    same = [[(r["kept"], r["latency_ms"]) for r in rows if r["group"] == g] for g in ("layer1.1.conv1", "layer1.2.conv1")]
    assert same[0] == same[1] and len(same[0]) == 2


def test_table_over_the_loopback_ssh_board(ssh_device_settings: dict, tiny_model: Path, tmp_path: Path) -> None:
    """The board has numpy + runtimes and no torch: the host builds the files, the board only times them."""
    board = device_from_json("board", ssh_device_settings)
    out = tmp_path / "board.csv"
    rows = write_table(tiny_model, "resnet20", board, "ort-fp32", {**SETTINGS, "method": "layers", "ratios": [0.5]}, out)
    info = json.loads(Path(f"{out}.json").read_text())
    assert info["device"] == "board" and rows[0]["latency_ms"] > 0
    assert info["provenance"]["device_side"] and info["system"]


def test_fast_widths_snap_and_predictions_add_up(tmp_path: Path) -> None:
    rows = [{"group": BASELINE_ROW, "latency_ms": 10.0},
            *({"group": "a", "channels": 32, "kept": k, "latency_ms": 10 - s, "saved_ms": s}
              for k, s in ((32, 0.0), (28, 0.1), (24, 0.05), (16, 2.0), (8, 2.0))),
            *({"group": "b", "channels": 16, "kept": k, "latency_ms": 10 - s, "saved_ms": s}
              for k, s in ((16, 0.0), (8, 1.0)))]
    path = tmp_path / "t.csv"
    path.write_text(table_rows_csv(rows))
    t = read_table(path)
    assert t.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # 24 is no faster than 28, 8 no faster than 16: cutting there loses channels for nothing
    assert t.fast_widths("a") == [16, 28] and t.fast_widths("b") == [8]
    assert t.predict_ms({"a": 16, "b": 8}) == pytest.approx(7.0)
    assert t.saved_at("b", 12) == pytest.approx(0.5)  # linear between measured widths
    assert t.predict_ms({"a": 16, "b": 8, "c": 1}) == pytest.approx(7.0)  # groups the table lacks save nothing
    drops = {"a": [(0.0, 0.0), (0.5, 0.02)], "b": [(0.0, 0.0), (0.5, 0.04)]}
    moves = table_moves(t, drops, 0.8)
    assert set(moves) == {("a", 28), ("a", 16), ("b", 8)}
    assert moves.index(("a", 16)) < moves.index(("b", 8))  # 0.02 per 2 ms beats 0.04 per 1 ms
    # without a sensitivity table a cut costs the share of channels it removes: 0.5/2 ms, 0.5/1 ms, 0.125/0.1 ms
    assert table_moves(t, None, 0.8) == [("a", 16), ("b", 8), ("a", 28)]
    assert table_moves(t, None, 0.4) == [("a", 28)]  # max_ratio still bounds every cut
    t.saved["b"][8] = 50.0  # noise summed over many groups can exceed the baseline: predictions stay positive
    assert t.predict_ms({"a": 16, "b": 8}) == pytest.approx(10.0 / 100)
    with pytest.raises(EdgeoptError, match="not a latency table"):
        (tmp_path / "bad.csv").write_text("layer,ratio\nx,0.5\n")
        read_table(tmp_path / "bad.csv")


def test_sensitivity_is_read_at_the_widths_it_really_measured() -> None:
    """A sensitivity table rounded to 8 channels kept 8 of 16 at ratio 0.75: that says nothing about 4 channels."""
    rows = [{"layer": "a", "ratio": r, "channels": 16, "kept": k, "accuracy": acc}
            for r, k, acc in ((0.0, 16, 0.9), (0.25, 16, 0.9), (0.5, 8, 0.88), (0.75, 8, 0.89))]
    points = accuracy_drops(rows)["a"]
    assert points == [(0.0, 0.0), (0.5, pytest.approx(0.02))]
    assert drop_at(points, 0.25) == pytest.approx(0.01) and drop_at(points, 0.75) is None


def _plan(tiny_model: Path, sens: Path | None, table: Path, out: Path, target: dict) -> dict:
    from edgeopt.prune.planner import plan_pruning

    cfg = {"target": {"device": "local", "format": "ort-fp32", **target}, "max_ratio": 0.8, "round_to": 8,
           "latency_table": SETTINGS, "device_settings": {}, "order": "loss" if sens else "global"}
    return plan_pruning("pruned", tiny_model, out, cfg, sens, model_name="resnet20", latency_table=table)


def test_speedup_target_snaps_to_table_widths_and_records_the_check(
    tiny_model: Path, sensitivity_csv: Path, local_table: Path, tmp_path: Path
) -> None:
    from edgeopt.prune.apply import apply_recipe
    from edgeopt.prune.recipe import load_recipe

    table = read_table(local_table)
    recipe = _plan(tiny_model, sensitivity_csv, local_table, tmp_path / "r.yaml", {"kind": "speedup", "value": 1.1,
                                                                                   "rounds": 2})
    pl = recipe["planned"]
    assert recipe["round_to"] == 1 and pl["latency_table"] == str(local_table)
    assert pl["latency_table_sha256"] == table.sha256 and pl["max_rounds"] == 2
    assert 1 <= len(pl["rounds"]) <= 2 and pl["predicted_speedup"] >= 1.1 and pl["measured_speedup"] > 0
    assert pl["met"] == (pl["measured_speedup"] >= 1.1)
    assert pl["met"] or pl["stopped_short"]
    assert all(r["measured_speedup"] < 1.1 for r in pl["rounds"][:-1])  # stops at the first that meets it
    for g, w in pl["widths"].items():
        assert w in table.fast_widths(g), (g, w)  # snapped to widths the device showed fast
    model, meta = load_for_pruning(str(tiny_model))
    apply_recipe(model, load_recipe(tmp_path / "r.yaml"), meta)
    after = {g.name: g.channels for g in list_groups(model, 32, 3, 10)}
    assert {g: after[g] for g in pl["widths"]} == pl["widths"]  # replayed exactly (round_to 1)


def test_speedup_loop_is_bounded_and_latency_budget_uses_the_table(
    tiny_model: Path, sensitivity_csv: Path, local_table: Path, tmp_path: Path
) -> None:
    table = read_table(local_table)
    one = _plan(tiny_model, sensitivity_csv, local_table, tmp_path / "one.yaml",
                {"kind": "speedup", "value": 1.1, "rounds": 1})["planned"]
    assert len(one["rounds"]) == 1 and one["max_rounds"] == 1
    if not one["met"]:
        assert one["stopped_short"] in ("target.rounds (1) used up", "every move taken")
    budget = table.baseline_ms / 1.1
    lat = _plan(tiny_model, sensitivity_csv, local_table, tmp_path / "lat.yaml",
                {"kind": "latency", "latency_model": "table", "value": budget})["planned"]
    assert lat["required_reduction"] == pytest.approx(1.1, rel=1e-3) and lat["latency_budget_ms"] == budget
    with pytest.raises(EdgeoptError, match=r"prune.target: a 1e\+03x speed-up is out of reach by .*ort-fp32.csv"):
        _plan(tiny_model, sensitivity_csv, local_table, tmp_path / "x.yaml", {"kind": "speedup", "value": 1000})
    # sensitivity analysis off (order global): each cut costs the share of channels it removes
    blind = _plan(tiny_model, None, local_table, tmp_path / "blind.yaml",
                  {"kind": "speedup", "value": 1.1, "rounds": 1})["planned"]
    assert blind["order"] == "share_per_ms" and one["order"] == "loss_per_ms"
    assert blind["predicted_speedup"] >= 1.1 and len(blind["rounds"]) == 1


@pytest.mark.parametrize(
    ("target", "devices", "message"),
    [
        ({"kind": "speedup", "value": 1.0}, {}, "config: prune.target.value: a speedup must be > 1, got 1.0"),
        ({"kind": "speedup", "value": 1.5, "device": "nano"}, {}, "config: prune.target.device: 'nano' is not an enabled device"),
        ({"kind": "speedup", "value": 1.5, "format": "trt-fp16"}, {}, "config: prune.target.format: 'trt-fp16' is not a format timed for a latency table on local"),
        ({"kind": "speedup", "value": 1.5, "format": "tflite-int8"}, {"local": {"runtimes": ["onnxruntime"]}},
         "config: prune.target.format: 'tflite-int8' is not a format timed"),
        ({"kind": "speedup", "value": 1.5, "wrong": 1}, {}, "prune.target"),
    ],
)
def test_bad_speedup_targets_are_one_line_errors(target: dict, devices: dict, message: str) -> None:
    cfg = {"models": ["resnet20"], "prune": {"variants": ["pruned"], "target": target}, "devices": devices}
    with pytest.raises(EdgeoptError, match=re.escape(message)) as err:
        check_config(cfg)
    assert "\n" not in str(err.value)


def test_dag_builds_the_table_the_speedup_plan_reads(tmp_path: Path, cifar_tar: Path) -> None:
    """Dry run of the tiny preset: the pruned plan waits for the latency table built on `local`."""
    import subprocess
    import sys

    from workflow_fixtures import jpeg_dataset

    root = Path(__file__).resolve().parents[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": jpeg_dataset(cifar_tar)}))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory",
                           str(tmp_path), "-n", "-p", "--configfile", str(root / "config" / "tiny.yaml"), str(cfg)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert re.search(r"build_latency_table\s+1\b", out), out[-2000:]
    assert "results/latency/local/resnet20/ort-fp32.csv" in out
    assert re.search(r"--latency-table\s+results/latency/local/resnet20/ort-fp32.csv", out), out[-3000:]
