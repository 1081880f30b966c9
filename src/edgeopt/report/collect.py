"""Gather every stage's metrics files into normalised tables (pandas), robust to missing stages.

What a file is comes from its path (`edgeopt.layout.parse`); what it holds from its record type
(`edgeopt.records`), read by field name: a file that lacks a declared key is a one-line error naming
it, never a silently empty column. A stage that did not run leaves its columns empty.

Tables (all written by `write_tables`):
- `results`: one row per variant x format x device x batch size (host-side rows have device "").
- `sensitivity`: model, layer, ratio, accuracy, ... from `sensitivity/<model>/sensitivity.csv`.
- `qat_sweep`: model, variant, bits_w, bits_a, accuracy, ... of every QAT bit pair.
- `retrain`: device, model, framework, setting, images/s, epoch time, memory, accuracy, speedup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from edgeopt import atomic, layout, records
from edgeopt.errors import EdgeoptError
from edgeopt.formats import FORMATS
from edgeopt.records import BenchResult, DeployMetrics, ModelMetrics, QatResult, RetrainResult, read_record

#: columns of the results table, in order (units in the names)
RESULT_COLUMNS = [
    "model",
    "variant",
    "format",
    "runtime",
    "precision",
    "device",
    "providers",
    "batch_size",
    "simulated",
    "deployable",
    "accuracy",
    "accuracy_host",
    "macs",
    "params",
    "nonzero_params",
    "weight_sparsity",
    "size_bytes",
    "bits_w",
    "bits_a",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "throughput_ips",
    "peak_rss_mb",
    "energy_mj",
    "power_w",
    "latency_note",
    "source",
]
LATENCY_COLUMNS = [
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "throughput_ips",
    "energy_mj",
    "power_w",
]
STRING_COLUMNS = {
    "model", "variant", "format", "runtime", "precision", "device", "providers", "latency_note", "source",
}  # fmt: skip
BOOL_COLUMNS = {"simulated", "deployable"}
SIMULATED_NOTE = "simulated (fake-quantized): no real low-bit kernel ran, latency not reported"

SENSITIVITY_COLUMNS = ["model", *records.SENSITIVITY_COLUMNS]
QAT_COLUMNS = ["model", "variant", "method", "bits_w", "bits_a", "accuracy", "simulated", "source"]
RETRAIN_COLUMNS = [
    "device",
    "model",
    "framework",
    "setting",
    "precision",
    "frozen",
    "batch_size",
    "images_per_s",
    "epoch_time_s",
    "peak_mem_mb",
    "accuracy_before",
    "accuracy_after",
    "speedup",
    "reference",
    "source",
]


# ---------------------------------------------------------------- which files


def discover(results: str | Path, inputs: Iterable[str | Path] | None = None) -> list[Path]:
    """Metrics files to read: all under `results` (inputs=None), or the closure of the given targets
    (each target, the `.json` sidecar of a non-JSON artifact, the model metrics of each variant and the
    sidecar of each benchmarked artifact), so a report built by the workflow shows this config's
    results and not stale files of older runs."""
    root = Path(results)
    if inputs is None:
        found = [p for p in root.rglob("*") if p.is_file() and _kind(p, root) in READERS]
        return sorted(found)
    out: set[Path] = set()
    for raw in inputs:
        p = Path(raw)
        for c in (p, p.with_name(p.name + ".json")):
            if c.is_file() and _kind(c, root) in READERS:
                out.add(c)
    for p in list(out):  # the model metrics and deploy sidecar a deploy/bench file refers to
        parsed = layout.parse(p, root)
        if not parsed or parsed[0] not in ("deploy_sidecar", "bench_result"):
            continue
        wc = parsed[1]
        related = [_under(root, layout.path(layout.MODEL_METRICS, model=wc["model"], variant=wc["variant"]))]
        if parsed[0] == "bench_result" and wc["format"] in FORMATS:
            related.append(_under(root, layout.path(layout.DEPLOY_SIDECAR, **wc, ext=FORMATS[wc["format"]].ext)))
        out.update(r for r in related if r.is_file())
    return sorted(out)


def _under(root: Path, pattern_path: str) -> Path:
    """A layout path (`results/...`) under another results folder `root`."""
    return root / pattern_path.removeprefix(layout.RESULTS + "/")


def _kind(p: Path, root: Path) -> str | None:
    parsed = layout.parse(p, root)
    return parsed[0] if parsed else None


# ---------------------------------------------------------------- one reader per artifact kind


def _model_row(path: Path, wc: dict[str, str]) -> dict[str, Any]:
    m = read_record(path, ModelMetrics)
    pt = path.with_name("model.pt")
    size = m.size_bytes if m.size_bytes is not None else (pt.stat().st_size if pt.is_file() else None)
    return {
        "model": m.model, "variant": m.variant, "format": "pytorch", "runtime": "pytorch", "precision": "fp32",
        "device": "", "simulated": False, "deployable": None, "accuracy": m.accuracy, "macs": m.macs,
        "params": m.params, "nonzero_params": m.nonzero_params, "weight_sparsity": m.weight_sparsity,
        "size_bytes": size, "source": str(path),
    }  # fmt: skip


def _deploy_row(path: Path, wc: dict[str, str]) -> dict[str, Any]:
    d = read_record(path, DeployMetrics)
    bits = FORMATS[d.format].bits if d.format in FORMATS else None
    return {
        "model": d.model, "variant": d.variant, "format": d.format, "runtime": d.runtime,
        "precision": d.precision, "device": "", "simulated": d.simulated, "deployable": d.deployable,
        "accuracy": d.accuracy, "size_bytes": d.size_bytes, "bits_w": d.bits_w if d.bits_w is not None else bits,
        "bits_a": d.bits_a if d.bits_a is not None else bits, "source": str(path),
    }  # fmt: skip


def _bench_rows(path: Path, wc: dict[str, str]) -> list[dict[str, Any]]:
    """One row per batch size of a benchmark result."""
    b = read_record(path, BenchResult)
    rss = None if b.peak_rss_bytes is None else b.peak_rss_bytes / 2**20
    rows = []
    for e in b.batches:
        lat = e.latency_ms
        rows.append({
            "model": b.model, "variant": b.variant, "format": b.format, "runtime": b.runtime,
            "precision": b.precision, "device": b.device,
            "providers": "+".join(b.providers) if b.providers else None, "batch_size": e.batch_size, "accuracy": b.accuracy,
            "accuracy_host": b.accuracy_host, "size_bytes": b.size_bytes,
            **{f"latency_{stat}_ms": lat.get(stat) for stat in ("mean", "p50", "p90", "p99")},
            "throughput_ips": e.throughput_ips, "peak_rss_mb": rss, "energy_mj": e.energy_per_image_mj,
            "power_w": e.mean_power_w, "source": str(path),
        })  # fmt: skip
    return rows


def _retrain_row(path: Path, wc: dict[str, str]) -> dict[str, Any]:
    r = read_record(path, RetrainResult)
    return {
        "device": r.device, "model": r.model, "framework": r.framework, "setting": r.setting,
        "precision": r.precision, "frozen": str(r.frozen_layers), "batch_size": r.batch_size,
        "images_per_s": r.images_per_second, "epoch_time_s": r.seconds_per_epoch,
        "peak_mem_mb": None if r.peak_rss_bytes is None else r.peak_rss_bytes / 2**20,
        "accuracy_before": r.accuracy_before, "accuracy_after": r.accuracy_after, "source": str(path),
    }  # fmt: skip


def _qat_row(source: Path, wc: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": wc["model"], "variant": wc["variant"], "method": "qat", "bits_w": values["bits_w"],
        "bits_a": values["bits_a"], "accuracy": values["accuracy"], "simulated": values["simulated"],
        "source": str(source),
    }  # fmt: skip


def _qat_result_row(path: Path, wc: dict[str, str]) -> dict[str, Any]:
    q = read_record(path, QatResult)
    return _qat_row(path, wc, {c: getattr(q, c) for c in records.QAT_SWEEP_COLUMNS})


def _qat_sweep_rows(path: Path, wc: dict[str, str]) -> list[dict[str, Any]]:
    df = _read_csv(path, records.QAT_SWEEP_COLUMNS)
    return [_qat_row(path, wc, rec) for rec in df.to_dict("records")]


def _sensitivity_rows(path: Path, wc: dict[str, str]) -> pd.DataFrame:
    df = _read_csv(path, records.SENSITIVITY_COLUMNS)
    df.insert(0, "model", wc["model"])
    return df


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise EdgeoptError(f"{path}: not a readable table ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise EdgeoptError(f"{path}: column {missing[0]!r} missing (expected: {', '.join(columns)})")
    return df


#: artifact kind (`layout.ARTIFACTS` name) -> its reader
READERS = {
    "model_metrics": _model_row,
    "deploy_sidecar": _deploy_row,
    "bench_result": _bench_rows,
    "retrain_result": _retrain_row,
    "qat_result": _qat_result_row,
    "qat_sweep": _qat_sweep_rows,
    "sensitivity_table": _sensitivity_rows,
}


# ---------------------------------------------------------------- tables


def collect(results: str | Path, inputs: Iterable[str | Path] | None = None) -> dict[str, pd.DataFrame]:
    """Read every metrics file (see `discover`) into the four normalised tables."""
    root = Path(results)
    models: dict[tuple[str, str], dict[str, Any]] = {}
    deploy: dict[tuple[str, str, str], dict[str, Any]] = {}
    bench: list[dict[str, Any]] = []
    sens: list[pd.DataFrame] = []
    qat: list[dict[str, Any]] = []
    retrain: list[dict[str, Any]] = []
    for path in discover(root, inputs):
        kind, wc = layout.parse(path, root) or ("", {})
        got = READERS[kind](path, wc)
        if kind == "model_metrics":
            models[(got["model"], got["variant"])] = got
        elif kind == "deploy_sidecar":
            deploy[(got["model"], got["variant"], got["format"])] = got
        elif kind == "bench_result":
            bench += got
        elif kind == "retrain_result":
            retrain.append(got)
        elif kind == "qat_result":
            qat.append(got)
        elif kind == "qat_sweep":
            qat += got
        elif kind == "sensitivity_table":
            sens.append(got)
    rows: list[dict[str, Any]] = list(models.values()) + list(deploy.values()) + _qat_result_rows(qat)
    for b in bench:  # a benchmark row keeps the host-side facts of its artifact (deployable, bits, ...)
        side = deploy.get((b["model"], b["variant"], b["format"]), {})
        merged = {**{k: v for k, v in side.items() if k not in ("accuracy", "source")}, **b}
        merged["simulated"] = side.get("simulated", False)
        if side:  # the sidecar of this run's artifact (the record keeps the one the device was sent)
            merged["accuracy_host"] = side["accuracy"]
        rows.append(merged)
    for r in rows:  # model-level numbers apply to every format and device of the variant
        mrow = models.get((r["model"], r["variant"]), {})
        for col in ("macs", "params", "nonzero_params", "weight_sparsity"):
            if r.get(col) is None:
                r[col] = mrow.get(col)
    results_df = mark_simulated(_frame(rows, RESULT_COLUMNS))
    results_df = results_df.sort_values(
        ["model", "variant", "format", "device", "batch_size"], na_position="first", kind="stable"
    ).reset_index(drop=True)
    sens_df = pd.concat(sens, ignore_index=True) if sens else pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    return {
        "results": results_df,
        "sensitivity": sens_df,
        "qat_sweep": _frame(qat, QAT_COLUMNS).drop_duplicates(
            subset=["model", "variant", "method", "bits_w", "bits_a"]
        ),
        "retrain": add_speedups(_frame(retrain, RETRAIN_COLUMNS)),
    }


def _qat_result_rows(qat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """QAT results as results-table rows (PyTorch fake-quant: simulated, accuracy only)."""
    seen, rows = set(), []
    for q in qat:
        key = (q["model"], q["variant"], q["method"], q["bits_w"], q["bits_a"])
        if key in seen or q["bits_w"] is None:
            continue
        seen.add(key)
        tag = f"w{q['bits_w']:g}a{(q['bits_a'] if q['bits_a'] is not None else 32):g}"
        rows.append(
            {
                "model": q["model"],
                "variant": q["variant"] or "baseline",
                "format": f"{q['method']}-{tag}",
                "runtime": "pytorch-fakequant",
                "precision": tag,
                "device": "",
                "simulated": q["simulated"],
                "accuracy": q["accuracy"],
                "bits_w": q["bits_w"],
                "bits_a": q["bits_a"],
                "source": q["source"],
            }
        )
    return rows


def mark_simulated(df: pd.DataFrame) -> pd.DataFrame:
    """A simulated (sub-8-bit fake-quant) model's timing is not a real low-bit kernel's: blank it."""
    df = df.copy()
    sim = df["simulated"].fillna(False).astype(bool)
    has_timing = df[LATENCY_COLUMNS].notna().any(axis=1)
    df.loc[sim, LATENCY_COLUMNS] = math.nan
    df.loc[sim & has_timing, "latency_note"] = SIMULATED_NOTE
    df.loc[sim & ~has_timing, "latency_note"] = "simulated (fake-quantized)"
    return df


def add_speedups(df: pd.DataFrame) -> pd.DataFrame:
    """images/s relative to the plain setting (fp32, nothing frozen) of the same device/model/framework;
    where no such setting exists, relative to the slowest one."""
    df = df.copy()
    df["speedup"] = math.nan
    df["reference"] = pd.Series(pd.NA, index=df.index, dtype="string")
    for _, g in df.groupby(["device", "model", "framework"], dropna=False):
        g = g[g["images_per_s"].notna()]
        if g.empty:
            continue
        plain = g[
            g["precision"].fillna("fp32").astype(str).str.lower().isin(["fp32", "float32"])
            & g["frozen"].fillna("0").astype(str).str.lower().isin(["0", "none", "false", "[]", ""])
        ]
        ref_row = plain.iloc[0] if not plain.empty else g.loc[g["images_per_s"].idxmin()]
        df.loc[g.index, "speedup"] = g["images_per_s"] / ref_row["images_per_s"]
        df.loc[g.index, "reference"] = str(ref_row["setting"])
    return df


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c in STRING_COLUMNS or c in ("layer", "framework", "setting", "frozen", "method", "reference"):
            df[c] = df[c].astype("string")
        elif c in BOOL_COLUMNS:
            df[c] = df[c].astype("boolean")
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """CSV for every table, Parquet for the results table; each written atomically."""
    out = Path(out_dir)
    written = []
    for name, df in tables.items():
        with atomic.atomic_path(out / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        written.append(out / f"{name}.csv")
    with atomic.atomic_path(out / "results.parquet") as tmp:
        tables["results"].to_parquet(tmp, index=False)
    written.append(out / "results.parquet")
    return written


def read_tables(out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read back what `write_tables` wrote (missing tables come back empty)."""
    out = Path(out_dir)
    cols = {
        "results": RESULT_COLUMNS,
        "sensitivity": SENSITIVITY_COLUMNS,
        "qat_sweep": QAT_COLUMNS,
        "retrain": RETRAIN_COLUMNS,
    }
    tables = {}
    for name, columns in cols.items():
        pq, csv = out / f"{name}.parquet", out / f"{name}.csv"
        if pq.is_file():
            tables[name] = pd.read_parquet(pq)
        elif csv.is_file():
            try:
                tables[name] = pd.read_csv(csv)
            except pd.errors.EmptyDataError:
                tables[name] = pd.DataFrame(columns=columns)
        else:
            tables[name] = pd.DataFrame(columns=columns)
    return tables
