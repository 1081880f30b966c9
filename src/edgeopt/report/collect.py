"""Gather every stage's metrics files into normalised tables (pandas), robust to missing stages.

The artifact layout (CONTRIBUTING.md) says where each stage writes; the exact key names inside a
benchmark or retraining JSON may differ between harness versions, so numbers are looked up by
known names first and by unit-aware key matching second. A stage that did not run leaves its
columns empty; it never breaks the report.

Tables (all written by `write_tables`):
- `results`: one row per variant x format x device x batch size (host-side rows have device "").
- `sensitivity`: model, layer, ratio, accuracy, ... from `sensitivity/<model>/sensitivity.csv`.
- `qat_sweep`: model, bits_w, bits_a, accuracy from `quantize/...` (QAT and PTQ results).
- `retrain`: device, model, framework, setting, images/s, epoch time, memory, accuracy, speedup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from edgeopt import atomic
from edgeopt.atomic import read_json

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

SENSITIVITY_COLUMNS = ["model", "layer", "ratio", "accuracy", "loss", "macs", "params"]
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


# ---------------------------------------------------------------- reading files


def discover(results: str | Path, inputs: Iterable[str | Path] | None = None) -> list[Path]:
    """Metrics files to read: all under `results` (inputs=None), or the closure of the given targets
    (each target, the `.json` sidecar of a non-JSON artifact, and the model metrics of each variant),
    so a report built by the workflow shows this config's results and not stale files of older runs."""
    root = Path(results)
    if inputs is None:
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".csv")]
        return sorted(p for p in files if _relative(p, root) and not _in_report(p, root))
    out: set[Path] = set()
    for raw in inputs:
        p = Path(raw)
        cands = [p] if p.suffix in (".json", ".csv") else [p.with_name(p.name + ".json")]
        for c in cands:
            if c.is_file() and not _in_report(c, root):
                out.add(c)
    # variants referenced by deploy/bench files: add their model metrics
    for p in list(out):
        rel = _relative(p, root)
        if rel and rel[0] in ("deploy", "bench"):
            m, v = (rel[1], rel[2]) if rel[0] == "deploy" else (rel[2:4] if len(rel) > 4 else (None, None))
            if m and v:
                metrics = root / "models" / m / v / "metrics.json"
                if metrics.is_file():
                    out.add(metrics)
            if rel[0] == "bench" and len(rel) == 5:  # bench/<device>/<m>/<v>/<fmt>.json -> deploy sidecar
                for side in (root / "deploy" / rel[2] / rel[3]).glob(Path(rel[4]).stem + ".*.json"):
                    out.add(side)
    return sorted(out)


def _relative(p: Path, root: Path) -> tuple[str, ...] | None:
    try:
        return p.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None


def _in_report(p: Path, root: Path) -> bool:
    rel = _relative(p, root)
    return bool(rel) and rel[0] == "report"


# ---------------------------------------------------------------- key lookup helpers


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists of scalars are kept as values, `provenance` is skipped."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("provenance", "history", "parity", "system", "env", "environment", "info"):
                continue
            out.update(flatten(v, f"{prefix}{k}."))
    elif not isinstance(obj, list):
        out[prefix[:-1]] = obj
    return out


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return None if (isinstance(v, float) and math.isnan(v)) else float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _tokens(key: str) -> list[str]:
    return [t for t in re.split(r"[._\-\s/]+", key.lower()) if t]


_TIME_UNITS = {
    "ms": 1.0,
    "msec": 1.0,
    "us": 1e-3,
    "usec": 1e-3,
    "ns": 1e-6,
    "s": 1e3,
    "sec": 1e3,
    "seconds": 1e3,
}
_MEM_UNITS = {
    "mb": 1.0,
    "mib": 1.0,
    "kb": 1 / 1024,
    "kib": 1 / 1024,
    "gb": 1024.0,
    "gib": 1024.0,
    "bytes": 2**-20,
    "b": 2**-20,
}
_STATS = {
    "mean": ("mean", "avg", "average"),
    "p50": ("p50", "median"),
    "p90": ("p90",),
    "p99": ("p99",),
}


def _unit(tokens: list[str], table: dict[str, float], default: float) -> float:
    for t in reversed(tokens):
        if t in table:
            return table[t]
    return default


def find_latency(flat: dict[str, Any]) -> dict[str, float]:
    """latency_{mean,p50,p90,p99}_ms from keys such as `latency_ms.p50`, `p50_ms`, `latency.mean_s`."""
    out: dict[str, float] = {}
    for key, val in flat.items():
        x = _num(val)
        if x is None:
            continue
        toks = _tokens(key)
        if any(t in ("warmup", "std", "stdev", "min", "max", "epoch", "build", "load") for t in toks):
            continue
        latencyish = any(t.startswith("lat") for t in toks) or any(t in ("time", "times") for t in toks)
        for stat, names in _STATS.items():
            if any(t in names for t in toks) and (latencyish or stat != "mean"):
                col = f"latency_{stat}_ms"
                out.setdefault(col, x * _unit(toks, _TIME_UNITS, 1.0))
    return out


def find_first(flat: dict[str, Any], names: Iterable[str]) -> float | None:
    """The value of the first key (exact last component or full path) among `names`."""
    names = list(names)
    for n in names:
        if n in flat and _num(flat[n]) is not None:
            return _num(flat[n])
    for n in names:
        for key, val in flat.items():
            if key.split(".")[-1] == n and _num(val) is not None:
                return _num(val)
    return None


def find_throughput(flat: dict[str, Any]) -> float | None:
    for key, val in flat.items():
        toks = _tokens(key)
        if (
            "throughput" in toks or "fps" in toks or "ips" in toks or ("images" in toks and "per" in toks)
        ) and (_num(val) is not None):
            if "epoch" in toks:
                continue
            return _num(val)
    return None


def find_memory(flat: dict[str, Any]) -> float | None:
    """Peak resident memory in MB (keys such as `peak_rss_mb`, `memory.peak_rss_bytes`, `rss_kb`)."""
    found: list[tuple[bool, float]] = []
    for key, val in flat.items():
        toks = _tokens(key)
        x = _num(val)
        if x is None or not any(t in ("rss", "memory", "mem") or t.startswith("maxrss") for t in toks):
            continue
        found.append(
            (
                any(t in ("peak", "max") or t.startswith("maxrss") for t in toks),
                x * _unit(toks, _MEM_UNITS, 1.0),
            )
        )
    if not found:
        return None
    peaks = [mb for is_peak, mb in found if is_peak]
    return peaks[0] if peaks else found[0][1]


def find_energy(flat: dict[str, Any]) -> tuple[float | None, float | None]:
    """(energy per inference in mJ, mean power in W) where the board reported them.

    Only per-image/per-inference energy counts (`energy.energy_per_image_mj`, `energy_mj`); a total
    over a timed loop (`energy_j`) says nothing about one inference and is ignored."""
    energy = power = None
    for key, val in flat.items():
        toks = _tokens(key)
        x = _num(val)
        if x is None or "rails" in toks:
            continue
        last = key.split(".")[-1].lower()
        if (
            "energy" in toks
            and energy is None
            and ("per" in toks or last in ("energy_mj", "energy_per_inference_mj"))
        ):
            energy = x * _unit(toks, {"mj": 1.0, "j": 1e3, "uj": 1e-3}, 1.0)
        elif "power" in toks and power is None and not {"mode", "source", "requested"} & set(toks):
            power = x * _unit(toks, {"w": 1.0, "mw": 1e-3}, 1.0)
    return energy, power


# ---------------------------------------------------------------- per-kind normalisers


def _model_row(path: Path, m: dict[str, Any], rel: tuple[str, ...]) -> dict[str, Any]:
    model = m.get("model") or (rel[1] if len(rel) > 2 else None)
    variant = m.get("variant") or (rel[2] if len(rel) > 3 else None)
    size = _num(m.get("size_bytes"))
    pt = path.with_name("model.pt")
    if size is None and pt.is_file():
        size = float(pt.stat().st_size)
    bits_w, bits_a = _num(m.get("bits_w")), _num(m.get("bits_a"))
    return {
        "model": model,
        "variant": variant,
        "format": "pytorch",
        "runtime": "pytorch",
        "precision": m.get("precision") or ("fp32" if bits_w is None else f"w{bits_w:g}a{(bits_a or 32):g}"),
        "device": "",
        "simulated": bool(m.get("simulated", False)),
        "deployable": m.get("deployable"),
        "accuracy": _num(m.get("accuracy")),
        "macs": _num(m.get("macs")),
        "params": _num(m.get("params")),
        "nonzero_params": _num(m.get("nonzero_params")),
        "weight_sparsity": _num(m.get("weight_sparsity")),
        "size_bytes": size,
        "bits_w": bits_w,
        "bits_a": bits_a,
        "source": str(path),
    }


def _deploy_row(path: Path, m: dict[str, Any], rel: tuple[str, ...]) -> dict[str, Any]:
    fmt = m.get("format") or Path(rel[-1]).name.split(".")[0]
    bits = _bits_from_precision(m.get("precision") or fmt.split("-")[-1])
    return {
        "model": m.get("model") or rel[1],
        "variant": m.get("variant") or rel[2],
        "format": fmt,
        "runtime": m.get("runtime"),
        "precision": m.get("precision") or fmt.split("-")[-1],
        "device": "",
        "simulated": bool(m.get("simulated", False)),
        "deployable": m.get("deployable"),
        "accuracy": _num(m.get("accuracy")),
        "size_bytes": _num(m.get("size_bytes")),
        "bits_w": _num(m.get("bits_w")) or bits,
        "bits_a": _num(m.get("bits_a")) or bits,
        "source": str(path),
    }


def _bits_from_precision(p: Any) -> float | None:
    m = re.search(r"(\d+)", str(p or ""))
    return float(m.group(1)) if m else None


def _bench_rows(path: Path, m: dict[str, Any], rel: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per batch size of a bench/<device>/<model>/<variant>/<format>.json."""
    device = m.get("device") if isinstance(m.get("device"), str) else (rel[1] if len(rel) > 1 else None)
    base = {
        "model": m.get("model") or (rel[2] if len(rel) > 2 else None),
        "variant": m.get("variant") or (rel[3] if len(rel) > 3 else None),
        "format": m.get("format") or Path(rel[-1]).stem,
        "runtime": m.get("runtime") if isinstance(m.get("runtime"), str) else None,
        "precision": m.get("precision"),
        "device": device,
        "providers": "+".join(m["providers"]) if isinstance(m.get("providers"), list) else None,
        "simulated": m.get("simulated"),
        "accuracy": _num(m.get("accuracy")),
        "size_bytes": _num(m.get("size_bytes")),
        "source": str(path),
    }
    if base["runtime"] is None and isinstance(m.get("runtime"), dict):
        base["runtime"] = m["runtime"].get("name")
    top = {k: v for k, v in m.items() if not _is_per_batch(v)}
    top_flat = flatten(top)
    if base["accuracy"] is None:
        base["accuracy"] = find_first(top_flat, ["accuracy", "top1", "top1_accuracy"])
    energy_top, power_top = find_energy(top_flat)
    rss_top = find_memory(top_flat)
    entries = _per_batch_entries(m)
    rows = []
    for bs, entry in entries or [(find_first(top_flat, ["batch_size", "batch"]), top)]:
        flat = flatten(entry)
        energy, power = find_energy(flat)
        row = dict(base)
        row["batch_size"] = bs
        row.update(find_latency(flat))
        row["throughput_ips"] = find_throughput(flat)
        row["peak_rss_mb"] = find_memory(flat) or rss_top
        row["energy_mj"] = energy if energy is not None else energy_top
        row["power_w"] = power if power is not None else power_top
        acc = find_first(flat, ["accuracy", "top1"])
        if acc is not None:
            row["accuracy"] = acc
        if row.get("throughput_ips") is None and row.get("latency_mean_ms") and bs:
            row["throughput_ips"] = bs * 1000.0 / row["latency_mean_ms"]
        rows.append(row)
    return rows


_BATCH_KEYS = ("batches", "batch_sizes", "results", "runs", "measurements", "per_batch", "by_batch")


def _is_per_batch(v: Any) -> bool:
    if isinstance(v, list) and v and all(isinstance(e, dict) for e in v):
        return any(("batch_size" in e or "batch" in e) for e in v)
    if (
        isinstance(v, dict)
        and v
        and all(str(k).isdigit() for k in v)
        and all(isinstance(e, dict) for e in v.values())
    ):
        return True
    return False


def _per_batch_entries(m: dict[str, Any]) -> list[tuple[float | None, dict[str, Any]]]:
    for key in (*_BATCH_KEYS, *m.keys()):
        v = m.get(key)
        if not _is_per_batch(v):
            continue
        if isinstance(v, list):
            return [(_num(e.get("batch_size", e.get("batch"))), e) for e in v]
        return [(float(k), e) for k, e in v.items()]
    return []


def _retrain_row(path: Path, m: dict[str, Any], rel: tuple[str, ...]) -> dict[str, Any]:
    stem = Path(rel[-1]).stem
    fw, _, setting = stem.partition("-")
    flat = flatten(m)
    frozen = next((m[k] for k in ("frozen_layers", "frozen", "freeze") if m.get(k) is not None), None)
    return {
        "device": m.get("device") if isinstance(m.get("device"), str) else (rel[1] if len(rel) > 1 else None),
        "model": m.get("model") or (rel[2] if len(rel) > 2 else None),
        "framework": m.get("framework") or fw,
        "setting": m.get("setting") if isinstance(m.get("setting"), str) else setting,
        "precision": m.get("precision"),
        "frozen": None if frozen is None else str(frozen),
        "batch_size": _num(m.get("batch_size")),
        "images_per_s": find_first(
            flat, ["images_per_second", "images_per_s", "img_per_s", "throughput", "train_images_per_second"]
        ),
        "epoch_time_s": find_first(
            flat, ["time_per_epoch_s", "epoch_time_s", "seconds_per_epoch", "epoch_seconds"]
        ),
        "peak_mem_mb": find_memory(flat),
        "accuracy_before": find_first(flat, ["accuracy_before", "before_accuracy"]),
        "accuracy_after": find_first(flat, ["accuracy_after", "after_accuracy", "accuracy"]),
        "source": str(path),
    }


def _qat_rows_from_json(path: Path, m: dict[str, Any], rel: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for entry in m.get("sweep") or m.get("results") or [m]:
        if not isinstance(entry, dict):
            continue
        bw, ba = _num(entry.get("bits_w")), _num(entry.get("bits_a"))
        acc = _num(entry.get("accuracy"))
        if bw is None or acc is None:
            continue
        rows.append(
            {
                "model": entry.get("model") or m.get("model") or (rel[1] if len(rel) > 2 else None),
                "variant": entry.get("variant") or m.get("variant") or (rel[2] if len(rel) > 3 else None),
                "method": entry.get("method") or m.get("method") or ("qat" if "qat" in str(path) else "ptq"),
                "bits_w": bw,
                "bits_a": ba,
                "accuracy": acc,
                "simulated": bool(
                    entry.get("simulated", m.get("simulated", bw < 8 or (ba is not None and ba < 8)))
                ),
                "source": str(path),
            }
        )
    return rows


def _qat_rows_from_csv(path: Path, rel: tuple[str, ...]) -> list[dict[str, Any]]:
    df = pd.read_csv(path)
    cols = {c.lower(): c for c in df.columns}
    if not {"bits_w", "accuracy"} <= set(cols):
        return []
    rows = []
    for rec in df.to_dict("records"):
        rec = {k.lower(): v for k, v in rec.items()}
        bw, ba = _num(rec.get("bits_w")), _num(rec.get("bits_a"))
        rows.append(
            {
                "model": rec.get("model") or (rel[1] if len(rel) > 2 else None),
                "variant": rec.get("variant") or (rel[2] if len(rel) > 3 else None),
                "method": rec.get("method") or "qat",
                "bits_w": bw,
                "bits_a": ba,
                "accuracy": _num(rec.get("accuracy")),
                "simulated": bool(rec.get("simulated", (bw or 32) < 8 or (ba or 32) < 8)),
                "source": str(path),
            }
        )
    return rows


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
        rel = _relative(path, root) or path.parts
        kind = rel[0]
        if path.suffix == ".csv":
            if kind == "sensitivity":
                df = pd.read_csv(path)
                df.insert(0, "model", df["model"] if "model" in df else rel[1])
                sens.append(df)
            elif kind == "quantize":
                qat += _qat_rows_from_csv(path, rel)
            continue
        m = read_json(path)
        if kind == "models" and path.name == "metrics.json":
            row = _model_row(path, m, rel)
            models[(row["model"], row["variant"])] = row
        elif kind == "deploy" and not path.name.startswith("model."):  # model.onnx: the export, not a format
            row = _deploy_row(path, m, rel)
            deploy[(row["model"], row["variant"], row["format"])] = row
        elif kind == "bench":
            bench += _bench_rows(path, m, rel)
        elif kind == "retrain":
            retrain.append(_retrain_row(path, m, rel))
        elif kind == "quantize":
            qat += _qat_rows_from_json(path, m, rel)
    rows: list[dict[str, Any]] = list(models.values()) + list(deploy.values()) + _qat_result_rows(qat)
    for b in bench:
        side = deploy.get((b["model"], b["variant"], b["format"]), {})
        merged = {
            **{k: v for k, v in side.items() if k not in ("accuracy", "source")},
            **{k: v for k, v in b.items() if v is not None},
        }
        merged["accuracy_host"] = side.get("accuracy")
        if merged.get("simulated") is None:
            merged["simulated"] = side.get("simulated", False)
        rows.append(merged)
    for r in rows:  # model-level numbers apply to every format and device of the variant
        mrow = models.get((r["model"], r["variant"]), {})
        for col in ("macs", "params", "nonzero_params", "weight_sparsity"):
            if r.get(col) is None:
                r[col] = mrow.get(col)
        if r.get("bits_w") is None and mrow.get("bits_w") is not None:
            r["bits_w"], r["bits_a"] = mrow.get("bits_w"), mrow.get("bits_a")
    results_df = _frame(rows, RESULT_COLUMNS)
    results_df = mark_simulated(results_df)
    results_df = results_df.sort_values(
        ["model", "variant", "format", "device", "batch_size"], na_position="first", kind="stable"
    ).reset_index(drop=True)
    sens_df = pd.concat(sens, ignore_index=True) if sens else pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    return {
        "results": results_df,
        "sensitivity": sens_df,
        "qat_sweep": _frame(qat, QAT_COLUMNS).drop_duplicates(
            subset=["model", "method", "bits_w", "bits_a", "accuracy"]
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
