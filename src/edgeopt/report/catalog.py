"""The report's figures and tables by name, with what each needs: light (no pandas, no matplotlib),
so the planner can decide which figures a run draws without importing the drawing code.

`edgeopt.report.figures` registers one drawing function per name here (a test checks they match).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A report figure: the artifacts (`edgeopt.layout` names) whose presence among the report's
    inputs means its data exist (empty: drawn whenever the report runs), and its report category."""

    name: str
    needs: tuple[str, ...]
    category: str


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure("accuracy_latency", ("bench_result",), "Accuracy vs latency"),
        Figure("accuracy_size", (), "Accuracy vs model size"),
        Figure("sensitivity", ("sensitivity_table",), "Pruning sensitivity"),
        Figure("qat_sweep", ("qat_sweep", "qat_result"), "Quantization"),
        Figure("retrain_speedup", ("retrain_result",), "On-device retraining"),
    )
}

#: normalised tables the collector writes (the figures are drawn from these); `results` also as Parquet
TABLES = ("results", "sensitivity", "qat_sweep", "retrain")
