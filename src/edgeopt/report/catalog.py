"""The report's figures and tables by name, with what each needs and its caption: light (no pandas, no
matplotlib), so the planner can decide which figures a run draws without importing the drawing code.
The captions are package data (here), read by both the HTML report and Snakemake's `--report`
(workflow/report/figure.rst renders the plot_figure rule's `caption` param).

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
    caption: str  # reStructuredText: what the figure shows and how to read it


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure(
            "accuracy_latency", ("bench_result",), "Accuracy vs latency",
            (
                'Accuracy vs latency on each device (one panel per device, batch size from ``report.batch_size``). '
                'Every point is one model variant in one deployable format, measured on that device; the accuracy is the '
                "device's own top-1 on the test split. Ringed points joined by the dashed step line form the Pareto front: "
                'for each of them, no other variant is both faster and at least as accurate. Pick the cheapest front point '
                'that meets your accuracy requirement. Simulated (sub-8-bit fake-quantized) models are never drawn here.'
            ),
        ),
        Figure(
            "accuracy_size", (), "Accuracy vs model size",
            (
                'Accuracy vs on-disk model size (log scale) of every variant and format: PyTorch checkpoints and each '
                "converted artifact, with the accuracy measured in that format's own runtime on the host. Ringed points "
                'are the Pareto front: the smallest model for its accuracy.'
            ),
        ),
        Figure(
            "sensitivity", ("sensitivity_table",), "Pruning sensitivity",
            (
                'Pruning sensitivity: validation accuracy when a single layer (or dependency group) is pruned alone at each '
                'ratio, without fine-tuning. Flat lines are layers that can be pruned hard; steep ones should be kept. '
                'The automatic pruner uses this table to choose per-layer ratios.'
            ),
        ),
        Figure(
            "qat_sweep", ("qat_sweep", "qat_result"), "Quantization",
            (
                'Quantization bit-width sweep: test accuracy after quantization-aware training at each weight bit width, '
                'one line per activation bit width; the dashed line is the fp32 baseline. Below 8 bits (grey band) the '
                'models are simulated with fake quantization: their accuracy is real, but no runtime executes them at that '
                'precision, so no latency is reported for them.'
            ),
        ),
        Figure(
            "retrain_speedup", ("retrain_result",), "On-device retraining",
            (
                'On-device retraining speed: training images per second of each setting (frozen layers, reduced '
                'precision) relative to plain fp32 training of the same model, framework and device (1.0 = dashed line).'
            ),
        ),
    )
}

#: normalised tables the collector writes (the figures are drawn from these); `results` also as Parquet
TABLES = ("results", "sensitivity", "qat_sweep", "retrain")
