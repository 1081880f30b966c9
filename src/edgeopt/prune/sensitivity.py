"""Sensitivity analysis: prune each group alone at a sweep of ratios and measure validation accuracy.

No fine-tuning: the accuracy drop of one group pruned in isolation ranks how much the network
relies on it; the planner prunes the least sensitive groups hardest. The pass can take hours on a
CPU or an embedded board, so the rows measured so far are saved after every group
(`sensitivity.csv.partial.json`) and a rerun on the same model, data and settings resumes there.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import torch

from edgeopt.atomic import atomic_path, write_json, write_text
from edgeopt.cli import json_arg
from edgeopt.errors import EdgeoptError
from edgeopt.prune.common import count, load_for_pruning
from edgeopt.prune.groups import kept_channels, list_groups, prune_structured
from edgeopt.records import SENSITIVITY_COLUMNS
from edgeopt.train.baseline import load_device_splits
from edgeopt.train.loop import TrainSettings, evaluate, recalibrate_bn, resolve_device

COLUMNS = list(SENSITIVITY_COLUMNS)  # defined with the other metrics files in edgeopt.records


def analyze_sensitivity(
    model_path: str | Path,
    data_dir: str | Path,
    out_csv: str | Path,
    out_png: str | Path | None,
    cfg: dict[str, Any],
) -> list[dict[str, Any]]:
    """Write `sensitivity.csv` (one row per group and ratio, ratio 0 = unpruned) and the plot."""
    ratios = [float(r) for r in cfg.get("ratios", [0.1, 0.3, 0.5, 0.7, 0.9])]
    if not ratios or any(not 0 < r < 1 for r in ratios):
        raise EdgeoptError(f"sensitivity.ratios: each ratio must be in (0, 1), got {ratios}")
    round_to = cfg.get("round_to", 8)
    device = resolve_device(cfg.get("device", "auto"))
    model, meta = load_for_pruning(str(model_path), str(device))
    recalib = int(cfg.get("bn_recalib") or 0)
    augment = {"crop_padding": int(cfg.get("crop_padding", TrainSettings.crop_padding)),
               "flip": bool(cfg.get("flip", TrainSettings.flip))}
    _, splits = load_device_splits(data_dir, device, False, names=("val", "train") if recalib else ("val",))
    val = splits["val"]
    limit, bs = cfg.get("val_limit"), int(cfg.get("batch_size", 1024))
    base = evaluate(model, val, bs, limit=limit)
    base_macs, base_params = count(model, meta)
    groups = list_groups(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"), cfg.get("ignore"))
    partial, key = progress_path(out_csv), progress_key(model_path, data_dir, cfg)
    rows = _resumed_rows(partial, key, [g.name for g in groups])
    finished = {r["layer"] for r in rows}
    t0 = time.perf_counter()
    for g in groups:
        if g.name in finished:
            continue
        row0 = {"layer": g.name, "ratio": 0.0, "channels": g.channels, "kept": g.channels,
                "accuracy": base["accuracy"], "loss": base["loss"], "macs": base_macs, "params": base_params,
                "members": " ".join(g.members)}
        rows.append(row0)
        done: dict[int, dict[str, Any]] = {g.channels: row0}
        for r in sorted(ratios):
            keep = kept_channels(g.channels, r, round_to)
            if keep not in done:
                m = copy.deepcopy(model)
                prune_structured(m, {g.name: r}, meta["image_size"], meta["in_channels"],
                                 meta.get("num_classes"), round_to, cfg.get("importance", "l2"), cfg.get("ignore"))
                if recalib:
                    recalibrate_bn(m, splits["train"], recalib, **augment)
                ev = evaluate(m, val, bs, limit=limit)
                macs, params = count(m, meta)
                done[keep] = {"accuracy": ev["accuracy"], "loss": ev["loss"], "macs": macs, "params": params}
            rows.append({**row0, **{k: done[keep][k] for k in ("accuracy", "loss", "macs", "params")},
                         "ratio": r, "kept": keep})
        write_json(partial, {"key": key, "rows": rows})
    order = {g.name: i for i, g in enumerate(groups)}
    rows.sort(key=lambda r: order[r["layer"]])  # stable: each group's rows stay in ratio order
    print(f"sensitivity: {len(groups)} groups x {len(ratios)} ratios on {base['images']} val images "
          f"in {time.perf_counter() - t0:.1f}s (baseline val accuracy {base['accuracy']:.4f})")
    write_csv(out_csv, rows)
    if out_png:
        plot_sensitivity(rows, out_png, f"{meta.get('arch', Path(str(model_path)).parent.parent.name)} ({base['images']} val images)")
    partial.unlink(missing_ok=True)
    return rows


def progress_path(out_csv: str | Path) -> Path:
    """Where the rows of an unfinished pass are kept, next to the table they will become."""
    out_csv = Path(out_csv)
    return out_csv.with_name(out_csv.name + ".partial.json")


def progress_key(model_path: str | Path, data_dir: str | Path, cfg: dict[str, Any]) -> str:
    """Fingerprint of what the rows depend on: a retrained model, other data or other ratios start afresh."""
    h = hashlib.sha256(Path(model_path).read_bytes())
    meta = Path(data_dir) / "meta.json"
    h.update(meta.read_bytes() if meta.exists() else str(Path(data_dir).resolve()).encode())
    knobs = {k: cfg.get(k) for k in ("round_to", "importance", "ignore", "val_limit", "bn_recalib", "crop_padding", "flip")}
    knobs["ratios"] = sorted(float(r) for r in cfg.get("ratios", [0.1, 0.3, 0.5, 0.7, 0.9]))
    h.update(json.dumps(knobs, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _resumed_rows(partial: Path, key: str, groups: list[str]) -> list[dict[str, Any]]:
    """Rows of whole groups saved by an interrupted pass with the same key; none otherwise."""
    if not partial.exists():
        return []
    try:
        saved = json.loads(partial.read_text())
        rows = [r for r in saved["rows"] if r["layer"] in groups] if saved.get("key") == key else []
    except (ValueError, KeyError, TypeError):
        rows = []
    if rows:
        print(f"sensitivity: resuming from {partial}: {len({r['layer'] for r in rows})} of {len(groups)} groups "
              "already measured")
    else:
        print(f"sensitivity: ignoring {partial} (another model, data set or settings); starting afresh")
    return rows


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a sensitivity table with numbers parsed; a missing column is a one-line error."""
    path = Path(path)
    if not path.exists():
        raise EdgeoptError(f"{path}: sensitivity table missing; run the analyze_sensitivity rule first")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    need = {"layer", "ratio", "accuracy", "macs", "params"}
    if not rows or not need <= set(rows[0]):
        raise EdgeoptError(f"{path}: not a sensitivity table (needs columns {sorted(need)})")
    out = []
    for r in rows:
        out.append({**r, "ratio": float(r["ratio"]), "accuracy": float(r["accuracy"]),
                    "macs": int(float(r["macs"])), "params": int(float(r["params"]))})
    return out


def plot_sensitivity(rows: list[dict[str, Any]], path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    cmap = plt.get_cmap("tab20")
    for i, layer in enumerate(layers):
        pts = sorted((r["ratio"], r["accuracy"]) for r in rows if r["layer"] == layer)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1, color=cmap(i % 20), label=layer)
    ax.set_xlabel("pruning ratio (this group alone, no fine-tuning)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"pruning sensitivity: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2 if len(layers) > 12 else 1, loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="trained model.pt (results/models/<m>/baseline/model.pt)")
    p.add_argument("--data", required=True, help="dataset cache folder")
    p.add_argument("--params", type=json_arg, required=True, help="the `sensitivity` section (+ round_to) as JSON")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-png")
    p.add_argument("--threads", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    analyze_sensitivity(args.model, args.data, args.out_csv, args.out_png, args.params)
    return 0
