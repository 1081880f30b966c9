"""Planning of the report: its tables, the figures this run's data can feed, the HTML page."""

from __future__ import annotations

from typing import Any

from edgeopt import layout
from edgeopt.plan.common import compact_json
from edgeopt.report.catalog import FIGURES, TABLES

REPORT_DIR = layout.REPORT_DIR


def report_figures(config: dict[str, Any], inputs: list[str]) -> list[str]:
    """Figures this run draws: enabled in `report.plots` and fed by `inputs` (the other stages' targets)."""
    kinds = {parsed[0] for parsed in map(layout.parse, inputs) if parsed}
    return [f for f in config["report"]["plots"] if not FIGURES[f].needs or kinds & set(FIGURES[f].needs)]


def report_table_path(name: str, ext: str = "csv") -> str:
    return layout.path(layout.REPORT_TABLE, table=name, ext=ext)


def report_figure_path(figure: str) -> str:
    return layout.path(layout.REPORT_FIGURE, figure=figure)


def report_plot_json(config: dict[str, Any]) -> str:
    """The part of `report` the figures depend on (the title does not redraw them)."""
    section = config["report"]
    return compact_json({k: section.get(k) for k in ("pareto", "batch_size")})


def report_targets(config: dict[str, Any], inputs: list[str]) -> list[str]:
    """The report's own outputs: tables, figures and the HTML page."""
    tables = [report_table_path(t) for t in TABLES] + [report_table_path("results", "parquet")]
    figures = [report_figure_path(f) for f in report_figures(config, inputs)]
    return tables + figures + [layout.REPORT_HTML]


def report_params_json(config: dict[str, Any], notes: list[str]) -> str:
    """make_report's params: the `report` section, plus the notes on what models skipped (when any)."""
    section = dict(config["report"])
    if notes:
        section["notes"] = notes
    return compact_json(section)
