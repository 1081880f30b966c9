"""Report stage: collecting metrics files of any subset of stages, figures, the HTML page in a browser.

The metrics trees built here are written through the producers' own records (`edgeopt.records`, the
classes every stage writes with) at the layout's paths (`edgeopt.layout`), the QAT sweep by the QAT
stage's `write_sweep`; `test_real_producer_output_lands_in_the_tables` feeds files the real stages wrote.
They go to the real collector, real matplotlib and a real headless Chromium.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from edgeopt import layout
from edgeopt.bench.run import MEASURE_KEYS
from edgeopt.errors import EdgeoptError
from edgeopt.prune.sensitivity import write_csv as write_sensitivity
from edgeopt.quantize.qat import write_sweep
from edgeopt.records import (
    BenchBatch,
    BenchResult,
    DeployMetrics,
    ModelMetrics,
    QatResult,
    Record,
    RetrainResult,
    write_record,
)
from edgeopt.report import html
from edgeopt.report.collect import SIMULATED_NOTE, collect, discover, read_tables, write_tables
from edgeopt.report.figures import FIGURES, draw
from edgeopt.report.pareto import pareto_mask

CFG = {
    "title": "test report",
    "plots": list(FIGURES),
    "pareto": {"x": "latency_p50_ms", "y": "accuracy"},
    "batch_size": 1,
}
PROV = {"created": "2026-12-01T00:00:00+00:00", "git_commit": "abc", "config": {}}


def _at(root: Path, pattern: str, **wildcards: object) -> Path:
    """A layout path under the test's results folder."""
    return root / layout.path(pattern, **wildcards).removeprefix(layout.RESULTS + "/")


def _write(root: Path, pattern: str, record: Record, **wildcards: object) -> Path:
    path = _at(root, pattern, **wildcards)
    record.provenance = PROV
    write_record(path, record)
    return path


def model_metrics(root: Path) -> None:
    for variant, acc, macs, params, nz, sp in [
        ("baseline", 0.912, 41.4e6, 272474, 272474, 0.0),
        ("pruned", 0.905, 16.2e6, 101234, 101234, 0.0),
        ("sparse", 0.899, 41.4e6, 272474, 81742, 0.7),
    ]:
        rec = ModelMetrics(model="resnet20", variant=variant, stage="train", accuracy=acc, loss=0.3, macs=int(macs),
                           params=params, nonzero_params=nz, weight_sparsity=sp)  # fmt: skip
        path = _write(root, layout.MODEL_METRICS, rec, model="resnet20", variant=variant)
        path.with_name("model.pt").write_bytes(b"\0" * int(params * 4 / 100))


def _deploy(variant: str, fmt: str, runtime: str, size: float, acc: float, **kw: object) -> DeployMetrics:
    return DeployMetrics(
        model="resnet20", variant=variant, format=fmt, runtime=runtime, precision=fmt.split("-")[1],
        path=f"results/deploy/resnet20/{variant}/{fmt}", size_bytes=int(size), accuracy=acc, images=100,
        parity={"max_abs_diff": 1e-5, "top1_agreement": 1.0}, **kw,
    )  # fmt: skip


def deploy_sidecars(root: Path) -> None:
    for variant in ("baseline", "pruned"):
        for fmt, runtime, ext, acc in [
            ("ort-fp32", "onnxruntime", "onnx", 0.912),
            ("ort-int8", "onnxruntime", "onnx", 0.909),
            ("tflite-int8", "tflite", "tflite", 0.908),
        ]:
            rec = _deploy(variant, fmt, runtime, SIZES[fmt] * (0.4 if variant == "pruned" else 1),
                          acc - (variant == "pruned") * 0.007, deployable=True, simulated=False)  # fmt: skip
            _write(root, layout.DEPLOY_SIDECAR, rec, model="resnet20", variant=variant, format=fmt, ext=ext)
    # a 4-bit QAT model exported for measurement: simulated, its latency must never be shown as real
    rec = _deploy("qat-w4a4", "ort-fp32", "onnxruntime", 1_090_000, 0.89, deployable=False, simulated=True,
                  bits_w=4, bits_a=4)  # fmt: skip
    _write(root, layout.DEPLOY_SIDECAR, rec, model="resnet20", variant="qat-w4a4", format="ort-fp32", ext="onnx")


#: artifact sizes as the deploy sidecars record them (a pruned model's are 0.4 of these)
SIZES = {"ort-fp32": 1_090_000, "ort-int8": 310_000, "tflite-int8": 300_000}


def _bench(device: str, variant: str, fmt: str, acc: float, batches: list[BenchBatch], rss_mb: float) -> BenchResult:
    return BenchResult(
        device=device, model="resnet20", variant=variant, format=fmt,
        runtime="onnxruntime" if fmt.startswith("ort") else "tflite", precision=fmt.split("-")[1],
        artifact=f"results/deploy/resnet20/{variant}/{fmt}", size_bytes=int(SIZES[fmt] * (0.4 if variant == "pruned" else 1)),
        accuracy=acc, accuracy_host=None,
        batches=batches, peak_rss_bytes=int(rss_mb * 2**20),
    )  # fmt: skip


def _latency(p50: float, mean: float, p90: float, p99: float) -> dict[str, float]:
    return {"mean": mean, "std": 0.01, "min": p50 * 0.9, "p50": p50, "p90": p90, "p99": p99, "max": p99 * 1.1}


def bench_results(root: Path) -> None:
    for variant, fmt, p50 in [
        ("baseline", "ort-fp32", 2.0),
        ("baseline", "ort-int8", 0.6),
        ("pruned", "ort-fp32", 0.9),
        ("pruned", "tflite-int8", 0.8),
        ("qat-w4a4", "ort-fp32", 0.1),
    ]:
        batches = [
            BenchBatch(batch_size=1, latency_ms=_latency(p50, p50 * 1.05, p50 * 1.2, p50 * 1.5),
                       throughput_ips=1000 / p50,
                       energy={"source": "rapl", "duration_s": 0.5, "energy_j": 4.0, "mean_power_w": 8.0,
                               "energy_per_image_mj": 40 * p50, "rails_mean_w": {"package-0": 8.0}}),
            BenchBatch(batch_size=8, latency_ms=_latency(p50 * 4.8, p50 * 5, p50 * 5.5, p50 * 6),
                       throughput_ips=8000 / (p50 * 4.8)),
        ]  # fmt: skip
        rec = _bench("local", variant, fmt, 0.91 - 0.005 * (variant != "baseline"), batches, 150.0)
        _write(root, layout.BENCH_RESULT, rec, device="local", model="resnet20", variant=variant, format=fmt)
    # a board with a power sensor, one batch size
    batch = BenchBatch(batch_size=1, latency_ms=_latency(5.0, 5.2, 5.5, 7.0), throughput_ips=200.0,
                       energy={"source": "ina3221", "mean_power_w": 2.5, "energy_per_image_mj": 12.5})  # fmt: skip
    rec = _bench("jetson", "baseline", "ort-fp32", 0.912, [batch], 210.0)
    _write(root, layout.BENCH_RESULT, rec, device="jetson", model="resnet20", variant="baseline", format="ort-fp32")


def other_stages(root: Path) -> None:
    rows = [
        {"layer": layer, "ratio": r, "channels": 16, "kept": 16 - int(16 * r), "accuracy": round(0.91 - slope * r * r, 4),
         "loss": 0.4, "macs": int(41e6 * (1 - r / 10)), "params": 270000, "members": layer}
        for layer, slope in [("layer1.0.conv1", 0.05), ("layer3.2.conv2", 0.6)]
        for r in (0.1, 0.3, 0.5, 0.7, 0.9)
    ]  # fmt: skip
    write_sensitivity(_at(root, layout.SENSITIVITY_TABLE, model="resnet20"), rows)
    pairs = []
    for b in (2, 3, 4, 5, 6, 8):
        acc = 0.91 - max(0, 5 - b) * 0.08
        rec = QatResult(model="resnet20", variant="baseline", stage="qat", quantizer="fake-quant", bits_w=b, bits_a=b,
                        accuracy=acc, fp32_accuracy=0.91, delta=acc - 0.91, accuracy_before_finetune=acc - 0.05,
                        deployable=b == 8, simulated=True, epochs=1, train_images=360, test_images=100)  # fmt: skip
        pairs.append(_write(root, layout.QAT_RESULT, rec, model="resnet20", variant="baseline", pair=f"w{b}a{b}"))
    write_sweep(pairs, _at(root, layout.QAT_SWEEP, model="resnet20", variant="baseline"))
    for setting, ips, prec, frozen in [
        ("fp32-full", 400.0, "fp32", 0),
        ("bf16-full", 900.0, "bf16", 0),
        ("fp32-freeze10", 1100.0, "fp32", 10),
    ]:
        rec = RetrainResult(device="local", model="resnet20", variant="baseline", framework="pytorch", setting=setting,
                            freeze=frozen, precision=prec, batch_size=64, frozen_layers=frozen, accuracy=0.6,
                            accuracy_before=0.5, accuracy_after=0.6, images_per_second=ips, seconds_per_epoch=360 / ips,
                            peak_rss_bytes=800 * 2**20)  # fmt: skip
        _write(root, layout.RETRAIN_RESULT, rec, device="local", model="resnet20", framework="pytorch", setting=setting)


@pytest.fixture()
def full_tree(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    model_metrics(root)
    deploy_sidecars(root)
    bench_results(root)
    other_stages(root)
    return root


# ---------------------------------------------------------------- collecting


def test_every_stage_lands_in_the_tables(full_tree: Path) -> None:
    t = collect(full_tree)
    res = t["results"]
    # 3 pytorch rows + 7 deploy rows + 6 QAT (fake-quant) rows + (5 x 2 batch sizes) local + 1 jetson bench rows
    assert len(res) == 3 + 7 + 6 + 10 + 1
    qat = res[res.runtime == "pytorch-fakequant"]
    assert qat.simulated.all()  # measured in PyTorch fake-quant at every width, as the QAT stage records
    assert sorted(qat.format) == sorted(f"qat-w{b}a{b}" for b in (2, 3, 4, 5, 6, 8))
    assert (qat.variant == "baseline").all() and qat.macs.eq(41.4e6).all()
    row = res[
        (res.device == "local")
        & (res.variant == "pruned")
        & (res.format == "ort-fp32")
        & (res.batch_size == 1)
    ]
    assert len(row) == 1
    r = row.iloc[0]
    assert r.latency_p50_ms == pytest.approx(0.9) and r.latency_p99_ms == pytest.approx(1.35)
    assert r.macs == 16.2e6 and r.params == 101234  # from the variant's model metrics
    assert r.size_bytes == pytest.approx(436_000) and r.accuracy_host == pytest.approx(
        0.905
    )  # from the sidecar
    assert r.peak_rss_mb == pytest.approx(150.0) and r.runtime == "onnxruntime"
    assert r.energy_mj == pytest.approx(36.0) and r.power_w == 8.0  # per image, not the loop's 4 J
    jet = res[res.device == "jetson"].iloc[0]
    assert jet.latency_p50_ms == pytest.approx(5.0) and jet.latency_mean_ms == pytest.approx(5.2)
    assert jet.energy_mj == 12.5 and jet.power_w == 2.5 and jet.batch_size == 1
    sparse = res[(res.variant == "sparse")].iloc[0]
    assert sparse.weight_sparsity == 0.7 and sparse.nonzero_params == 81742
    assert sorted(t["sensitivity"].layer.unique()) == ["layer1.0.conv1", "layer3.2.conv2"]
    assert (t["sensitivity"].model == "resnet20").all()
    assert len(t["qat_sweep"]) == 6 and t["qat_sweep"][t["qat_sweep"].bits_w == 4].simulated.all()
    sp = t["retrain"].set_index("setting")["speedup"]
    assert sp["fp32-full"] == 1.0 and sp["bf16-full"] == pytest.approx(2.25) and sp["fp32-freeze10"] == 2.75


def test_simulated_latency_is_never_reported_as_real(full_tree: Path) -> None:
    res = collect(full_tree)["results"]
    sim = res[res.variant == "qat-w4a4"]
    assert len(sim) == 3 and sim.simulated.all()
    benched = sim[sim.device == "local"]
    assert (
        benched[["latency_mean_ms", "latency_p50_ms", "latency_p99_ms", "throughput_ips"]].isna().all().all()
    )
    assert (benched.latency_note == SIMULATED_NOTE).all()
    assert benched.bits_w.eq(4).all()
    # and the real ones keep theirs
    assert res[(res.device == "local") & ~res.simulated.astype(bool)].latency_p50_ms.notna().all()


@pytest.mark.parametrize(
    "stages",
    [(), ("models",), ("models", "deploy"), ("bench",), ("models", "other"), ("deploy", "bench", "other")],
)
def test_any_subset_of_stages_builds_every_table_and_figure(tmp_path: Path, stages: tuple[str, ...]) -> None:
    root = tmp_path / "results"
    root.mkdir()
    makers = {
        "models": model_metrics,
        "deploy": deploy_sidecars,
        "bench": bench_results,
        "other": other_stages,
    }
    for s in stages:
        makers[s](root)
    tables = collect(root)
    out = tmp_path / "report"
    write_tables(tables, out)
    back = read_tables(out)
    assert list(back["results"].columns) == list(tables["results"].columns)
    figs = {name: draw(name, back, CFG, out / "figures" / f"{name}.png") for name in FIGURES}
    for p in figs.values():
        assert Image.open(p).size[0] > 100
    page = html.render(back, figs, CFG)
    assert page.count("data:image/png;base64,") == len(FIGURES)


def test_parquet_and_csv_hold_the_same_table(full_tree: Path, tmp_path: Path) -> None:
    tables = collect(full_tree)
    write_tables(tables, tmp_path)
    pq = pd.read_parquet(tmp_path / "results.parquet")
    csv = pd.read_csv(tmp_path / "results.csv")
    assert len(pq) == len(csv) == len(tables["results"])
    assert pq["simulated"].dtype == "boolean" and pq["latency_p50_ms"].dtype == "float64"
    assert math.isclose(pq["accuracy"].sum(), csv["accuracy"].sum())


def test_workflow_inputs_exclude_stale_files_of_older_runs(full_tree: Path) -> None:
    # the config now only benchmarks the pruned ORT model on `local`: the jetson file is from an older run
    inputs = [
        full_tree / "models/resnet20/baseline/metrics.json",
        full_tree / "deploy/resnet20/pruned/ort-fp32.onnx",  # an artifact: its sidecar is read
        full_tree / "bench/local/resnet20/pruned/ort-fp32.json",
        full_tree / "data/cifar10/train.npz",  # not a metrics file: ignored
    ]
    files = {p.relative_to(full_tree).as_posix() for p in discover(full_tree, inputs)}
    assert files == {
        "models/resnet20/baseline/metrics.json",
        "models/resnet20/pruned/metrics.json",  # the benchmarked variant's model numbers
        "deploy/resnet20/pruned/ort-fp32.onnx.json",
        "bench/local/resnet20/pruned/ort-fp32.json",
    }
    res = collect(full_tree, inputs)["results"]
    assert set(res.device.fillna("")) == {"", "local"}


def test_corrupt_metrics_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = _at(tmp_path / "results", layout.BENCH_RESULT, device="local", model="resnet20", variant="baseline",
               format="ort-fp32")  # fmt: skip
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(EdgeoptError, match=r"ort-fp32.json: not a readable metrics JSON"):
        collect(tmp_path / "results")


def test_a_renamed_key_is_a_one_line_error_not_an_empty_column(full_tree: Path) -> None:
    """Before the records, a key a stage renamed became a silent NaN column of the results table."""
    path = _at(full_tree, layout.BENCH_RESULT, device="jetson", model="resnet20", variant="baseline", format="ort-fp32")
    obj = json.loads(path.read_text())
    obj["batches"][0]["latency"] = obj["batches"][0].pop("latency_ms")
    path.write_text(json.dumps(obj))
    with pytest.raises(EdgeoptError, match=r"ort-fp32.json: BenchBatch lacks key 'latency_ms'$"):
        collect(full_tree)
    sweep = _at(full_tree, layout.QAT_SWEEP, model="resnet20", variant="baseline")
    sweep.write_text(sweep.read_text().replace("bits_w", "weight_bits", 1))
    with pytest.raises(EdgeoptError, match=r"qat_sweep.csv: column 'bits_w' missing"):
        collect(full_tree, [sweep])


def test_real_producer_output_lands_in_the_tables(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Files written by the real stages (training, conversion, a benchmark on the local device) at the
    layout's paths, collected the way the workflow's report rule does (from the planned targets)."""
    from edgeopt.bench.run import bench_model
    from edgeopt.config import check_config
    from edgeopt.convert.cli import convert_artifact
    from edgeopt.devices import device_from_json

    cfg = check_config({"bench": {"batch_sizes": [1, 2], "warmup": 1, "runs": 3}})
    root = tmp_path / "results"
    model_dir = _at(root, layout.MODEL_FILE, model="resnet20", variant="baseline").parent
    model_dir.mkdir(parents=True)
    shutil.copy(tiny_model, model_dir / "model.pt")
    shutil.copy(tiny_model.with_name("metrics.json"), model_dir / "metrics.json")  # as train_baseline wrote it
    onnx = _at(root, layout.ONNX_EXPORT, model="resnet20", variant="baseline")
    ort = _at(root, layout.DEPLOY_FILE, model="resnet20", variant="baseline", format="ort-fp32", ext="onnx")
    convert_artifact("onnx", model_dir / "model.pt", tiny_data, cfg["convert"], onnx)
    convert_artifact("ort-fp32", model_dir / "model.pt", tiny_data, cfg["convert"], ort, onnx=onnx)
    bench = _at(root, layout.BENCH_RESULT, device="local", model="resnet20", variant="baseline", format="ort-fp32")
    device = device_from_json("local", cfg["devices"]["local"])
    params = {k: v for k, v in cfg["bench"].items() if k in MEASURE_KEYS}
    bench_model(device, params, "resnet20", "baseline", "ort-fp32", ort, tiny_data, bench)

    res = collect(root, [model_dir / "metrics.json", onnx, ort, bench])["results"]
    assert sorted(zip(res.format, res.device.fillna(""), res.batch_size.fillna(0), strict=True)) == [
        ("ort-fp32", "", 0), ("ort-fp32", "local", 1), ("ort-fp32", "local", 2), ("pytorch", "", 0),
    ]  # fmt: skip
    measured = res[res.device == "local"]
    assert measured.latency_p50_ms.gt(0).all() and measured.throughput_ips.gt(0).all()
    assert measured.peak_rss_mb.gt(10).all() and measured.macs.gt(0).all() and measured.deployable.all()
    host = res[(res.format == "ort-fp32") & (res.device == "")].iloc[0]
    assert measured.accuracy_host.eq(host.accuracy).all() and host.size_bytes == ort.stat().st_size
    assert res.model.eq("resnet20").all() and res.variant.eq("baseline").all()


# ---------------------------------------------------------------- pareto + figures


def test_pareto_front() -> None:
    cost = [1.0, 2.0, 3.0, 2.0, 4.0, float("nan")]
    acc = [0.80, 0.90, 0.85, 0.70, 0.95, 0.99]
    assert pareto_mask(cost, acc) == [True, True, False, False, True, False]
    assert pareto_mask([], []) == []
    with pytest.raises(ValueError):
        pareto_mask([1.0], [])


def test_accuracy_latency_has_one_panel_per_device_and_no_simulated_points(full_tree: Path) -> None:
    tables = collect(full_tree)
    fig = FIGURES["accuracy_latency"](tables, CFG)
    axes = [ax for ax in fig.axes if ax.get_title().startswith("device")]
    assert sorted(ax.get_title() for ax in axes) == ["device jetson (batch 1)", "device local (batch 1)"]
    local = next(ax for ax in axes if "local" in ax.get_title())
    xs = sorted(float(x) for c in local.collections for x, _ in c.get_offsets() if c.get_facecolor().size)
    assert 0.1 not in xs and min(xs) == pytest.approx(0.6)  # the simulated 0.1 ms point is absent


def test_unknown_figure_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeoptError, match="report figure 'pie' is unknown"):
        draw("pie", {}, CFG, tmp_path / "x.png")


def test_cli_all_in_one_and_missing_table_exit_2(full_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    cmd = [sys.executable, "-m", "edgeopt", "report", "--all", "--results", str(full_tree)]
    proc = subprocess.run([*cmd, "--tables", str(out), "--out", str(out / "index.html"), "--params", json.dumps(CFG)], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.parquet").is_file() and len(list((out / "figures").glob("*.png"))) == len(FIGURES)
    proc = subprocess.run(
        [sys.executable, "-m", "edgeopt", "report", "--tables", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"edgeopt report: error: {tmp_path / 'none' / 'results.parquet'}: results table not found "
        "(run `edgeopt report-table` first, or pass --all)"
    ]


# ---------------------------------------------------------------- the HTML page in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian package `chromium`; .ci/run installs it)")
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_html_report_renders_in_headless_chromium(full_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    tables = collect(full_tree)
    write_tables(tables, out)
    figs = {n: draw(n, tables, CFG, out / "figures" / f"{n}.png") for n in FIGURES}
    page = html.write(read_tables(out), figs, CFG, out / "index.html")
    shutil.rmtree(out / "figures")  # self-contained: the page must not need the PNG files
    dom = chromium(page, tmp_path, "--dump-dom", "--virtual-time-budget=5000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-figures-rendered="{len(FIGURES)}/{len(FIGURES)}"' in dom.stdout
    assert (
        "<h1>test report</h1>" in dom.stdout and dom.stdout.count('class="sim"') == 3 + 6
    )  # qat-w4a4 x3, every QAT (fake-quant) pair x6
    shot = tmp_path / "shot.png"
    proc = chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert img.size == (1200, 2400) and hi - lo > 100  # drawn content, not a blank page
