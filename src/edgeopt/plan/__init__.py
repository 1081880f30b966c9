"""What the workflow builds for a config: target lists and the rules' inputs and params, by stage.

The Snakefile and rule files ask this package for targets so the `.smk` files stay declarative and
the planning is unit-tested like the rest of the code. Each stage plans in its own module; this one
composes them (`all_targets`). Paths come from `edgeopt.layout`, formats from `edgeopt.formats`, what
a model supports from `edgeopt.model_capabilities` (through `plan.models`). Planning never imports
torch for built-in models (Snakemake plans the DAG on every start, a no-op rerun included).
"""

from __future__ import annotations

from typing import Any

from edgeopt.plan import report as _report
from edgeopt.plan.bench import (
    MEASURE_KEYS,
    bench_devices,
    bench_formats,
    bench_is_local,
    bench_params_json,
    bench_path,
    bench_source,
    bench_targets,
    device_job_threads,
    device_json,
    device_resource,
    device_resource_limits,
    device_resources,
    device_runtimes,
    device_settings,
    engine_path,
    format_runtime,
    trt_int8_from_qdq,
    trt_qdq_path,
    trt_qdq_targets,
)
from edgeopt.plan.common import (
    RESULTS,
    compact_json,
    data_dir,
    data_files,
    data_targets,
    model_file,
    model_metrics,
    section_json,
)
from edgeopt.plan.convert import (
    convert_params_json,
    convert_targets,
    device_built_formats,
    tflite_convert_precisions,
)
from edgeopt.plan.models import (
    baseline_targets,
    has_torch_model,
    model_capabilities,
    model_formats,
    model_names,
    model_notes,
    model_options,
    model_params_json,
    model_spec,
    onnx_model_regex,
    onnx_source,
    torch_model_names,
    weights_input,
)
from edgeopt.plan.prune import (
    bench_baseline_path,
    latency_table_json,
    latency_table_settings,
    latency_table_target,
    plan_pruning_inputs,
    plan_times_latency,
    plans_from_table,
    prune_plan_json,
    prune_section,
    prune_targets,
    pruning_variants,
    recipe_path,
    sensitivity_json,
    sensitivity_paths,
    train_width_inputs,
    width_mult,
)
from edgeopt.plan.quantize import (
    QAT_DEPLOY_PAIR,
    ptq_params_json,
    qat_deploy_formats,
    qat_deploy_targets,
    qat_pairs,
    qat_params_json,
    qat_result_path,
    qat_state_path,
    qat_sweep_path,
    qat_targets,
    qat_variants,
    quantize_formats,
    quantize_section,
    quantize_targets,
)
from edgeopt.plan.report import REPORT_DIR, report_figure_path, report_plot_json, report_table_path
from edgeopt.plan.retrain import retrain_jobs, retrain_model_path, retrain_path, retrain_targets
from edgeopt.plan.variants import deploy_formats, deploy_path, deploy_pattern, model_variants, onnx_path
from edgeopt.prune import PLAN_KEYS, RECIPE_VARIANTS


def stage_targets(config: dict[str, Any]) -> list[str]:
    """Every stage's targets but the report's, in DAG order."""
    targets = data_targets(config) + baseline_targets(config)
    targets += prune_targets(config)
    targets += quantize_targets(config) + qat_targets(config) + qat_deploy_targets(config)
    targets += convert_targets(config)
    targets += trt_qdq_targets(config)
    targets += bench_targets(config, planned=set(targets))
    targets += retrain_targets(config)
    return targets


def report_inputs(config: dict[str, Any]) -> list[str]:
    """What the report is made from: every other stage's targets."""
    return sorted(set(stage_targets(config)))


def report_figures(config: dict[str, Any]) -> list[str]:
    """Figures this run draws: enabled in `report.plots` and fed by targets of this config."""
    return _report.report_figures(config, stage_targets(config))


def report_targets(config: dict[str, Any]) -> list[str]:
    """The report's own outputs: tables, figures and the HTML page."""
    return _report.report_targets(config, stage_targets(config))


def report_params_json(config: dict[str, Any]) -> str:
    """make_report's params: the `report` section, plus the notes on what models skipped (when any)."""
    return _report.report_params_json(config, model_notes(config))


def all_targets(config: dict[str, Any]) -> list[str]:
    """Everything `rule all` asks for."""
    targets = stage_targets(config)
    return targets + _report.report_targets(config, targets)


__all__ = [
    "MEASURE_KEYS",
    "PLAN_KEYS",
    "RECIPE_VARIANTS",
    "REPORT_DIR",
    "RESULTS",
    "all_targets",
    "baseline_targets",
    "bench_baseline_path",
    "latency_table_json",
    "latency_table_settings",
    "latency_table_target",
    "bench_devices",
    "bench_formats",
    "bench_is_local",
    "bench_params_json",
    "bench_path",
    "bench_source",
    "bench_targets",
    "compact_json",
    "convert_params_json",
    "convert_targets",
    "data_dir",
    "data_files",
    "data_targets",
    "deploy_formats",
    "deploy_path",
    "deploy_pattern",
    "device_built_formats",
    "device_job_threads",
    "device_json",
    "device_resource",
    "device_resource_limits",
    "device_resources",
    "device_runtimes",
    "device_settings",
    "engine_path",
    "format_runtime",
    "has_torch_model",
    "model_capabilities",
    "model_file",
    "model_formats",
    "model_metrics",
    "model_names",
    "model_notes",
    "model_options",
    "model_params_json",
    "model_spec",
    "model_variants",
    "onnx_model_regex",
    "onnx_path",
    "onnx_source",
    "plan_pruning_inputs",
    "plan_times_latency",
    "plans_from_table",
    "prune_plan_json",
    "prune_section",
    "prune_targets",
    "pruning_variants",
    "QAT_DEPLOY_PAIR",
    "ptq_params_json",
    "qat_deploy_formats",
    "qat_deploy_targets",
    "qat_pairs",
    "qat_params_json",
    "qat_result_path",
    "qat_state_path",
    "qat_sweep_path",
    "qat_targets",
    "qat_variants",
    "quantize_formats",
    "quantize_section",
    "quantize_targets",
    "recipe_path",
    "report_figure_path",
    "report_figures",
    "report_inputs",
    "report_params_json",
    "report_plot_json",
    "report_table_path",
    "report_targets",
    "retrain_jobs",
    "retrain_model_path",
    "retrain_path",
    "retrain_targets",
    "section_json",
    "sensitivity_json",
    "sensitivity_paths",
    "stage_targets",
    "tflite_convert_precisions",
    "torch_model_names",
    "train_width_inputs",
    "trt_int8_from_qdq",
    "trt_qdq_path",
    "trt_qdq_targets",
    "weights_input",
    "width_mult",
]
