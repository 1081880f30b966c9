"""The report's figures (matplotlib, Agg backend), each drawn from the normalised tables.

A registry maps figure name -> drawing function; a figure whose data are absent says so on the
canvas instead of failing, so the report always builds from whatever stages ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from edgeopt import atomic  # noqa: E402
from edgeopt.errors import EdgeoptError  # noqa: E402
from edgeopt.report import catalog  # noqa: E402
from edgeopt.report.pareto import pareto_mask  # noqa: E402

Tables = dict[str, pd.DataFrame]
DrawFn = Callable[[Tables, dict[str, Any]], plt.Figure]
FIGURES: dict[str, DrawFn] = {}

AXIS_LABELS = {
    "latency_mean_ms": "mean latency (ms)",
    "latency_p50_ms": "median latency p50 (ms)",
    "latency_p90_ms": "p90 latency (ms)",
    "latency_p99_ms": "p99 latency (ms)",
    "size_bytes": "model size (bytes)",
    "macs": "MACs",
    "params": "parameters",
    "energy_mj": "energy per inference (mJ)",
    "accuracy": "test accuracy",
}


def register(name: str) -> Callable[[DrawFn], DrawFn]:
    """Register the drawing function of figure `name`, which `edgeopt.report.catalog.FIGURES` must list
    (the catalog is what the planner and the plot_figure rule know)."""
    if name not in catalog.FIGURES:
        raise ValueError(f"figure {name!r} is not in edgeopt.report.catalog.FIGURES")

    def deco(fn: DrawFn) -> DrawFn:
        FIGURES[name] = fn
        return fn

    return deco


def _empty(title: str, why: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True, fontsize=10, color="0.35")
    return fig


def _label(row: pd.Series) -> str:
    return f"{row['model']}/{row['variant']}/{row['format']}"


def _pick_batch(df: pd.DataFrame, batch_size: int | None) -> pd.DataFrame:
    """Rows of the configured batch size per device (or the smallest measured one)."""
    parts = []
    for _, g in df.groupby("device"):
        sizes = g["batch_size"].dropna()
        if batch_size is not None and (sizes == batch_size).any():
            parts.append(g[g["batch_size"] == batch_size])
        elif not sizes.empty:
            parts.append(g[g["batch_size"] == sizes.min()])
        else:
            parts.append(g)
    return pd.concat(parts) if parts else df


def _scatter_with_front(ax: plt.Axes, df: pd.DataFrame, x: str, y: str) -> None:
    """Points coloured by format, the Pareto front (cheapest for its accuracy) ringed and joined."""
    for fmt, g in df.groupby("format"):
        ax.scatter(g[x], g[y], label=str(fmt), s=36, alpha=0.85)
    mask = pareto_mask(df[x].astype(float).tolist(), df[y].astype(float).tolist())
    front = df[mask].sort_values(x)
    if not front.empty:
        ax.step(front[x], front[y], where="post", color="black", lw=1, ls="--", label="Pareto front")
        ax.scatter(front[x], front[y], s=140, facecolors="none", edgecolors="black", lw=1.5)
        several_models = df["model"].nunique() > 1
        for _, r in front.iterrows():
            ax.annotate(
                (f"{r['model']}/" if several_models else "") + f"{r['variant']} {r['format']}",
                (r[x], r[y]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS.get(y, y))
    ax.grid(alpha=0.3)


@register("accuracy_latency")
def accuracy_latency(tables: Tables, cfg: dict[str, Any]) -> plt.Figure:
    """Accuracy vs the Pareto cost axis, one panel per device; simulated models are left out."""
    x = cfg.get("pareto", {}).get("x", "latency_p50_ms")
    y = cfg.get("pareto", {}).get("y", "accuracy")
    df = tables["results"]
    df = df[(df["device"].fillna("") != "") & ~df["simulated"].fillna(False).astype(bool)]
    df = _pick_batch(df, cfg.get("batch_size", 1))
    df = df[df[x].notna() & df[y].notna()]
    if df.empty:
        return _empty("accuracy vs latency", "no device benchmarks with accuracy and latency yet")
    devices = sorted(df["device"].unique())
    fig, axes = plt.subplots(1, len(devices), figsize=(5.5 * len(devices), 4.2), squeeze=False)
    for ax, dev in zip(axes[0], devices, strict=True):
        g = df[df["device"] == dev]
        _scatter_with_front(ax, g, x, y)
        bs = g["batch_size"].dropna().unique()
        ax.set_title(f"device {dev}" + (f" (batch {int(bs[0])})" if len(bs) == 1 else ""))
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle("accuracy vs latency: ringed points form the Pareto front")
    fig.tight_layout()
    return fig


@register("accuracy_size")
def accuracy_size(tables: Tables, cfg: dict[str, Any]) -> plt.Figure:
    """Accuracy vs on-disk size of every variant x format (host-side accuracy of each artifact)."""
    df = tables["results"]
    df = df[(df["device"].fillna("") == "") & df["size_bytes"].notna() & df["accuracy"].notna()].copy()
    if df.empty:
        return _empty("accuracy vs model size", "no model metrics with accuracy and size yet")
    df["size_mb"] = df["size_bytes"] / 2**20
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _scatter_with_front(ax, df, "size_mb", "accuracy")
    ax.set_xlabel("model size (MiB)")
    ax.set_xscale("log")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("accuracy vs model size")
    fig.tight_layout()
    return fig


@register("sensitivity")
def sensitivity(tables: Tables, cfg: dict[str, Any]) -> plt.Figure:
    """Validation accuracy when one layer alone is pruned at each ratio, one line per layer."""
    df = tables["sensitivity"]
    if df.empty or not {"layer", "ratio", "accuracy"} <= set(df.columns):
        return _empty("pruning sensitivity", "no sensitivity analysis in this run")
    models = sorted(df["model"].astype(str).unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        g = df[df["model"].astype(str) == model]
        layers = list(dict.fromkeys(g["layer"].astype(str)))
        for layer in layers:
            lg = g[g["layer"].astype(str) == layer].sort_values("ratio")
            ax.plot(lg["ratio"], lg["accuracy"], marker=".", lw=1, label=layer)
        ax.set_xlabel("pruning ratio of the layer")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{model}: per-layer sensitivity")
        ax.grid(alpha=0.3)
        if len(layers) <= 14:
            ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


@register("qat_sweep")
def qat_sweep(tables: Tables, cfg: dict[str, Any]) -> plt.Figure:
    """Accuracy vs weight bit width, one line per activation bit width (sub-8-bit = simulated)."""
    df = tables["qat_sweep"]
    df = df[df["bits_w"].notna() & df["accuracy"].notna()] if not df.empty else df
    if df.empty:
        return _empty("quantization bit-width sweep", "no quantization-aware training sweep in this run")
    models = sorted(df["model"].astype(str).unique())
    res = tables["results"]
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        g = df[df["model"].astype(str) == model]
        if (g["bits_a"] == g["bits_w"]).all():  # a diagonal sweep: one line, W = A
            for method, lg in g.groupby("method"):
                lg = lg.sort_values("bits_w")
                ax.plot(lg["bits_w"], lg["accuracy"], marker="o", label=f"{method}: weights = activations")
        else:
            for ba, lg in g.groupby(g["bits_a"].fillna(32)):
                lg = lg.sort_values("bits_w")
                ax.plot(lg["bits_w"], lg["accuracy"], marker="o", label=f"activations {ba:g}-bit")
        base = res[(res["model"] == model) & (res["variant"] == "baseline") & (res["format"] == "pytorch")]
        if not base.empty and not math.isnan(base["accuracy"].iloc[0]):
            ax.axhline(base["accuracy"].iloc[0], color="black", ls="--", lw=1, label="fp32 baseline")
        ax.axvspan(ax.get_xlim()[0], 7.5, color="0.9", zorder=0, label="simulated (< 8 bit)")
        ax.set_xlabel("weight bits")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{model}: bit-width sweep")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@register("retrain_speedup")
def retrain_speedup(tables: Tables, cfg: dict[str, Any]) -> plt.Figure:
    """On-device retraining images/s relative to plain fp32 training of the same model and framework."""
    df = tables["retrain"]
    df = df[df["speedup"].notna()] if not df.empty else df
    if df.empty:
        return _empty("retraining speedup", "no on-device retraining measurements in this run")
    df = df.sort_values(["device", "model", "framework", "speedup"])
    labels = [f"{r.device}/{r.model}/{r.framework}-{r.setting}" for r in df.itertuples()]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(df) + 1.5))
    bars = ax.barh(labels, df["speedup"], color="tab:blue")
    for bar, r in zip(bars, df.itertuples(), strict=True):
        note = f" {r.images_per_s:.0f} img/s" + ("" if r.setting == r.reference else f" (vs {r.reference})")
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ax.set_xlabel("images/s relative to the reference setting (fp32, nothing frozen; else the slowest)")
    ax.set_title("on-device retraining speed")
    fig.tight_layout()
    return fig


def draw(name: str, tables: Tables, cfg: dict[str, Any], out: str | Path) -> Path:
    """Draw figure `name` into the PNG `out` (atomically)."""
    if name not in FIGURES:
        raise EdgeoptError(f"report figure {name!r} is unknown (known: {', '.join(FIGURES)})")
    fig = FIGURES[name](tables, cfg)
    try:
        with atomic.atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return Path(out)
