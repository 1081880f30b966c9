"""One self-contained HTML page (figures embedded as data URIs, inline CSS) that opens from disk.

Figure captions come from the figure catalog (`edgeopt.report.catalog.FIGURES`, package data, so an
installed edgeopt has them), the same text Snakemake's `--report` shows, so both reports say the same.
"""

from __future__ import annotations

import base64
import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from edgeopt import atomic
from edgeopt.provenance import git_commit
from edgeopt.report.catalog import FIGURES

TITLES = {
    "accuracy_latency": "Accuracy vs latency per device (Pareto front)",
    "accuracy_size": "Accuracy vs model size",
    "sensitivity": "Pruning sensitivity",
    "qat_sweep": "Quantization bit-width sweep",
    "retrain_speedup": "On-device retraining speedups",
}
#: (column, header, formatter) of the HTML results table
SHOWN = [
    ("model", "model", str),
    ("variant", "variant", str),
    ("format", "format", str),
    ("device", "device", str),
    ("batch_size", "batch", lambda v: f"{v:.0f}"),
    ("accuracy", "accuracy", lambda v: f"{v:.4f}"),
    ("macs", "MMACs", lambda v: f"{v / 1e6:.1f}"),
    ("params", "params (k)", lambda v: f"{v / 1e3:.1f}"),
    ("weight_sparsity", "sparsity", lambda v: f"{v:.2f}"),
    ("size_bytes", "size (KiB)", lambda v: f"{v / 1024:.0f}"),
    ("bits_w", "bits W/A", None),
    ("latency_p50_ms", "p50 (ms)", lambda v: f"{v:.3f}"),
    ("latency_p99_ms", "p99 (ms)", lambda v: f"{v:.3f}"),
    ("throughput_ips", "img/s", lambda v: f"{v:.0f}"),
    ("peak_rss_mb", "peak RSS (MB)", lambda v: f"{v:.0f}"),
    ("energy_mj", "energy (mJ)", lambda v: f"{v:.2f}"),
]

CSS = """
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}.meta{color:#666;font-size:.85rem}
figure{margin:1.5rem 0;padding:1rem;border:1px solid #ddd;border-radius:6px;background:#fff}
figure img{max-width:100%;height:auto}figcaption{font-size:.9rem;color:#444;margin-top:.5rem}
table{border-collapse:collapse;font-size:.8rem;width:100%}th,td{border-bottom:1px solid #e3e3e3;padding:.25rem .4rem;text-align:right}
th{background:#f4f4f4;position:sticky;top:0}td.s,th.s{text-align:left}tr.sim{background:#fff6e0}
.badge{background:#e8a317;color:#fff;border-radius:3px;padding:0 .3rem;font-size:.7rem}
nav a{margin-right:1rem}
"""

# Marks <body> with how many figures the browser decoded (the headless-browser test reads it back).
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure img');
  var ok = Array.prototype.filter.call(imgs, function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-figures-rendered', ok.length + '/' + imgs.length);
});
"""


def caption(figure: str) -> str:
    """The figure's caption from the figure catalog (package data; plain rst, double backticks dropped)."""
    fig = FIGURES.get(figure)
    return "" if fig is None else " ".join(fig.caption.split()).replace("``", "")


def _cell(value: Any, fmt: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    try:
        return html.escape(fmt(value) if fmt else str(value))
    except (TypeError, ValueError):
        return html.escape(str(value))


def results_table_html(df: pd.DataFrame) -> str:
    head = (
        "".join(f'<th class="{"s" if fmt is str else ""}">{html.escape(h)}</th>' for _, h, fmt in SHOWN)
        + '<th class="s">note</th>'
    )
    body = []
    for rec in df.to_dict("records"):
        sim = bool(rec.get("simulated")) if rec.get("simulated") is not pd.NA else False
        cells = []
        for col, _, fmt in SHOWN:
            if col == "bits_w":
                bw, ba = rec.get("bits_w"), rec.get("bits_a")
                text = (
                    ""
                    if bw is None or pd.isna(bw)
                    else f"{bw:.0f}/{'' if ba is None or pd.isna(ba) else f'{ba:.0f}'}"
                )
                cells.append(f"<td>{html.escape(text)}</td>")
            elif sim and col in ("latency_p50_ms", "latency_p99_ms", "throughput_ips", "energy_mj"):
                cells.append("<td>—</td>")
            else:
                cells.append(f'<td class="{"s" if fmt is str else ""}">{_cell(rec.get(col), fmt)}</td>')
        note = rec.get("latency_note")
        note_html = '<span class="badge">simulated</span> ' if sim else ""
        note_html += html.escape("" if note is None or note is pd.NA else str(note))
        cells.append(f'<td class="s">{note_html}</td>')
        body.append(f'<tr class="{"sim" if sim else ""}">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render(
    tables: dict[str, pd.DataFrame],
    figures: dict[str, Path],
    cfg: dict[str, Any],
    csv_name: str = "results.csv",
) -> str:
    """The whole page as a string."""
    title = html.escape(cfg.get("title", "edgeopt results"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{CSS}</style><script>{SCRIPT}</script></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="meta">generated {datetime.now(timezone.utc).isoformat(timespec="seconds")}'
        f" · commit {html.escape(str(git_commit()))} · {len(tables['results'])} result rows"
        f' · data: <a href="{csv_name}">{csv_name}</a>, <a href="results.parquet">results.parquet</a></p>',
        "<nav>"
        + "".join(f'<a href="#{n}">{html.escape(TITLES.get(n, n))}</a>' for n in figures)
        + '<a href="#table">Results table</a></nav>',
    ]
    for name, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(
            f'<figure id="{name}"><h2>{html.escape(TITLES.get(name, name))}</h2>'
            f'<img alt="{html.escape(TITLES.get(name, name))}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption(name))}</figcaption></figure>"
        )
    if cfg.get("notes"):  # what models skipped (a variant or stage they cannot take), said by the planner
        parts.append('<h2 id="notes">Notes on the models</h2><ul class="meta">'
                     + "".join(f"<li>{html.escape(str(n))}</li>" for n in cfg["notes"]) + "</ul>")
    parts.append('<h2 id="table">Results table</h2>')
    parts.append(
        '<p class="meta">One row per model variant × format × device × batch size; rows without a device are '
        "host-side measurements (accuracy in each format's runtime, size). "
        '<span class="badge">simulated</span> rows are fake-quantized below 8 bits: their accuracy is real, '
        "their latency is not reported because no real low-bit kernel ran.</p>"
    )
    parts.append(results_table_html(tables["results"]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write(
    tables: dict[str, pd.DataFrame], figures: dict[str, Path], cfg: dict[str, Any], out: str | Path
) -> Path:
    atomic.write_text(out, render(tables, figures, cfg))
    return Path(out)
