"""What the workflow builds for a config: artifact paths and target lists.

The Snakefile and rule files ask this module for paths and targets so the `.smk` files
stay declarative and the planning is unit-tested like the rest of the code.
"""

from __future__ import annotations

import contextvars
import json
from typing import Any

RESULTS = "results"


def data_dir(config: dict[str, Any]) -> str:
    """Folder of the prepared dataset cache."""
    return f"{RESULTS}/data/{config['dataset']['name']}"


def model_names(config: dict[str, Any]) -> list[str]:
    """Results names of the `models:` entries (edgeopt.model_entries)."""
    from edgeopt.model_entries import model_specs

    return list(model_specs(config))


def model_options(config: dict[str, Any], model: str) -> dict[str, Any]:
    return dict(config.get("model_options", {}).get(model) or {})


# ---------------------------------------------------------------- models from outside the registry
def model_spec(config: dict[str, Any], model: str):  # type: ignore[no-untyped-def]
    from edgeopt.model_entries import model_specs

    return model_specs(config)[model]


def model_capabilities(config: dict[str, Any], model: str) -> dict[str, Any]:
    """What `model` can go through (structured/residual/width/torch), from edgeopt.model_capabilities'
    cache: torch is imported only when an entry is new or edited."""
    from edgeopt.model_capabilities import model_capabilities as caps

    ds = config.get("dataset") or {}
    return caps(model_spec(config, model), int(ds.get("image_size", 32)), int(ds.get("channels", 3)))


def has_torch_model(config: dict[str, Any], model: str) -> bool:
    """False for a deploy-only ONNX entry: the stages that need the PyTorch model skip it."""
    return not model_spec(config, model).deploy_only


def torch_model_names(config: dict[str, Any]) -> list[str]:
    return [m for m in model_names(config) if has_torch_model(config, m)]


def onnx_model_regex(config: dict[str, Any]) -> str:
    """Wildcard constraint matching the deploy-only ONNX entries' names (nothing when there are none)."""
    import re

    names = [m for m in model_names(config) if not has_torch_model(config, m)]
    return "|".join(re.escape(n) for n in names) or "(?!)"


#: formats built from an ONNX file alone (deploy-only entries get these and TensorRT, built on the device)
ONNX_ONLY_FORMATS = ("ort-fp32", "ort-int8")


def model_formats(config: dict[str, Any], model: str, formats: list[str]) -> list[str]:
    """`formats` this model can be built in: all, or for an ONNX entry those made from the ONNX file."""
    if has_torch_model(config, model):
        return formats
    return [f for f in formats if f in ONNX_ONLY_FORMATS]


def model_notes(config: dict[str, Any]) -> list[str]:
    """One line per variant or stage a model skips (printed by the Snakefile, shown in the report)."""
    return [n for m in model_names(config) for n in model_capabilities(config, m).get("notes", [])]


def model_params_json(config: dict[str, Any], model: str) -> str:
    """train_baseline's model params: `model_options` for a built-in model; for others also how to build it
    (arch, options) and the weights file it starts from."""
    spec = model_spec(config, model)
    params = model_options(config, model)
    if spec.kind != "builtin" or spec.weights:
        params = {**params, **spec.options, "arch": spec.arch}
        if spec.weights:
            from edgeopt.model_entries import resolve_path

            params["weights"] = str(resolve_path(spec.weights))
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def weights_input(config: dict[str, Any], model: str) -> list[str]:
    """The weights file a baseline starts from (a rule input, so a new file retrains), if any."""
    spec = model_spec(config, model)
    return [spec.weights] if spec.weights else []


def onnx_source(config: dict[str, Any], model: str) -> str:
    """The user's ONNX file of a deploy-only entry."""
    spec = model_spec(config, model)
    assert spec.onnx is not None
    return spec.onnx


def torch_model_input(config: dict[str, Any], model: str, variant: str) -> dict[str, str]:
    """{"model": model.pt} for a PyTorch model; nothing for an ONNX entry (its rules start from model.onnx)."""
    return {"model": f"{RESULTS}/models/{model}/{variant}/model.pt"} if has_torch_model(config, model) else {}


def section_json(config: dict[str, Any], *keys: str) -> str:
    """A config section as compact JSON: rules pass it as `params`, so editing it reruns the rule."""
    node: Any = config
    for k in keys:
        node = node[k]
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def data_targets(config: dict[str, Any]) -> list[str]:
    d = data_dir(config)
    return [f"{d}/{s}.npz" for s in ("train", "val", "test", "calib")] + [f"{d}/meta.json"]


def baseline_targets(config: dict[str, Any]) -> list[str]:
    """Trained baselines; for a deploy-only ONNX entry its imported model.onnx and sidecar."""
    out = []
    for m in model_names(config):
        if has_torch_model(config, m):
            out.append(f"{RESULTS}/models/{m}/baseline/metrics.json")
        else:
            out += [onnx_path(m, "baseline"), onnx_path(m, "baseline") + ".json"]
    return out


def all_targets(config: dict[str, Any]) -> list[str]:
    """Everything `rule all` asks for."""
    targets = data_targets(config) + baseline_targets(config)
    targets += prune_targets(config)
    targets += quantize_targets(config) + qat_targets(config)
    targets += convert_targets(config)
    targets += trt_qdq_targets(config)
    targets += bench_targets(config, planned=set(targets))
    targets += retrain_targets(config)
    if not _PLANNING_REPORT_INPUTS.get():
        targets += report_targets(config)
    return targets


# ---------------------------------------------------------------- variants and deployable formats
# Stages extend these: pruning and QAT add model variants, conversion/quantization add formats.

#: deployable formats: `<runtime>-<precision>` -> (file extension, harness runtime name)
FORMATS: dict[str, tuple[str, str]] = {
    "ort-fp32": ("onnx", "onnxruntime"),
    "ort-int8": ("onnx", "onnxruntime"),
    "tflite-fp32": ("tflite", "tflite"),
    "tflite-fp16": ("tflite", "tflite"),
    "tflite-int8": ("tflite", "tflite"),
}


def model_variants(config: dict[str, Any], model: str) -> list[str]:
    """Trained variants of `model` that go on to conversion and benchmarks."""
    variants = ["baseline"]
    variants += pruning_variants(config, model)
    return variants


def deploy_formats(config: dict[str, Any]) -> list[str]:
    """Formats every variant is converted to (`convert.formats`)."""
    return list(config.get("convert", {}).get("formats", list(FORMATS)))


def deploy_path(model: str, variant: str, fmt: str) -> str:
    """Where a deployable artifact lives; its metrics JSON sits beside it with `.json`."""
    return f"{RESULTS}/deploy/{model}/{variant}/{fmt}.{FORMATS[fmt][0]}"


# ---------------------------------------------------------------- sensitivity + pruning
# (this stage's planning functions go below this line)
#: pruned variants made from a recipe (results/recipes/<model>/<variant>.yaml)
RECIPE_VARIANTS = ("pruned", "zeropad", "sparse")


def prune_section(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("prune") or {})


def sensitivity_json(config: dict[str, Any]) -> str:
    """The sensitivity rule's params: its section plus the pruning settings it must share."""
    p = prune_section(config)
    cfg = {**(config.get("sensitivity") or {}), "round_to": p.get("round_to", 8),
           "importance": p.get("importance", "l2"), "ignore": p.get("ignore") or []}
    if cfg.get("bn_recalib"):  # recalibration augments like the training; off, a change there reruns nothing
        train = config.get("train") or {}
        cfg.update({k: train[k] for k in ("crop_padding", "flip") if k in train})
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def width_mult(config: dict[str, Any], model: str) -> float | None:
    """The width multiplier of the `width<mult>` variant: `prune.width.mult`, or computed to match the target."""
    p = prune_section(config)
    if "width" not in p.get("variants", []) or not model_capabilities(config, model)["width"]:
        return None
    explicit = (p.get("width") or {}).get("mult")
    if explicit:
        return float(explicit)
    target = p.get("target") or {}
    kind = target.get("kind", "macs")
    if kind in ("latency", "speedup"):
        from edgeopt.errors import EdgeoptError

        raise EdgeoptError(f"prune.width.mult: must be set when prune.target.kind is {kind}")
    from edgeopt.prune.width_cache import cached_match_width

    ds = config.get("dataset") or {}
    return cached_match_width(f"{RESULTS}/.cache/width_mult.json", model, float(target.get("value", 2.0)), kind,
                              int(ds.get("image_size", 32)), int(ds.get("channels", 3)))


def pruning_variants(config: dict[str, Any], model: str) -> list[str]:
    """Variants pruning adds for `model`, each only when listed in `prune.variants`."""
    wanted = prune_section(config).get("variants", [])
    caps = model_capabilities(config, model)
    can = {"pruned": caps["structured"], "zeropad": caps["residual"], "sparse": caps["torch"]}
    out = [v for v in RECIPE_VARIANTS if v in wanted and can[v]]
    mult = width_mult(config, model)
    if mult is not None:
        from edgeopt.prune.width_cache import variant_name

        out.append(variant_name(mult))
    return out


def sensitivity_paths(model: str) -> list[str]:
    return [f"{RESULTS}/sensitivity/{model}/sensitivity.csv", f"{RESULTS}/sensitivity/{model}/sensitivity.png"]


def recipe_path(model: str, variant: str) -> str:
    return f"{RESULTS}/recipes/{model}/{variant}.yaml"


def bench_baseline_path(config: dict[str, Any], model: str) -> str | None:
    """The baseline benchmark a latency target reads (the benchmark stage's results layout)."""
    t = prune_section(config).get("target") or {}
    if t.get("kind") != "latency" or latency_table_target(config):
        return None
    return f"{RESULTS}/bench/{t.get('device', 'local')}/{model}/baseline/{t.get('format', 'ort-fp32')}.json"


#: the `prune` keys each recipe variant's plan reads (editing others does not replan it)
PLAN_KEYS = {
    "pruned": ("importance", "round_to", "ignore", "max_ratio", "order", "target", "schedule", "regularize", "finetune"),
    "zeropad": ("importance", "round_to", "ignore", "zeropad", "finetune"),
    "sparse": ("sparse", "finetune"),
}


def prune_plan_json(config: dict[str, Any], variant: str) -> str:
    """plan_pruning's params for one variant: only the `prune` keys that variant's recipe uses (a target planned
    from a latency table adds how candidates are timed and the target device's settings)."""
    p = prune_section(config)
    cfg = {k: p[k] for k in PLAN_KEYS[variant] if k in p}
    if variant == "pruned" and latency_table_target(config):
        cfg["latency_table"] = latency_table_settings(config)
        cfg["device_settings"] = device_settings(config)[target_device(config)]
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def plan_times_latency(config: dict[str, Any], variant: str) -> bool:
    """Whether plan_pruning times candidate plans on this machine (a measured latency target, or a table-planned
    target on `local`): it then gets the machine alone."""
    t = prune_section(config).get("target") or {}
    if variant == "pruned" and latency_table_target(config):
        return bench_is_local(config, target_device(config))
    return variant == "pruned" and t.get("kind") == "latency" and t.get("latency_model", "measured") == "measured"


def latency_table_target(config: dict[str, Any]) -> bool:
    """Whether the `pruned` plan's target is planned from a latency table measured on its device."""
    from edgeopt.prune.latency_table import plans_from_latency_table

    return plans_from_latency_table(prune_section(config).get("target") or {})


def target_device(config: dict[str, Any]) -> str:
    return str((prune_section(config).get("target") or {}).get("device", "local"))


def target_format(config: dict[str, Any]) -> str:
    return str((prune_section(config).get("target") or {}).get("format", "ort-fp32"))


def latency_table_path(device: str, model: str, fmt: str) -> str:
    """A model's latency table on one device in one format (beside it `.json`: how it was measured)."""
    return f"{RESULTS}/latency/{device}/{model}/{fmt}.csv"


def latency_table_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What a latency table's numbers depend on (its rule's params: editing one of these rebuilds it): the
    `prune.latency_table` keys `TABLE_KEYS` names (threads: else `bench.threads`), the groups `prune.ignore`
    leaves out, and for an int8 format the `quantize` settings."""
    from edgeopt.prune.latency_table import TABLE_KEYS

    t = dict(prune_section(config).get("latency_table") or {})
    s = {k: t[k] for k in TABLE_KEYS if k in t}
    if s.get("threads") is None:
        s["threads"] = int((config.get("bench") or {}).get("threads") or 0)
    s["ignore"] = list(prune_section(config).get("ignore") or [])
    if target_format(config) in QUANT_FORMATS:
        s["quantize"] = {k: v for k, v in quantize_section(config).items() if k != "qat"}
    return s


def latency_table_json(config: dict[str, Any]) -> str:
    return json.dumps(latency_table_settings(config), sort_keys=True, separators=(",", ":"))


def plans_from_table(config: dict[str, Any]) -> bool:
    """Whether the `pruned` plan reads the sensitivity table: every order but `global` (DepGraph's ranking of
    channel magnitudes) does, so with `global` the table is made only when `sensitivity.enabled` asks for it."""
    return prune_section(config).get("order", "loss") != "global"


def plan_pruning_inputs(config: dict[str, Any], model: str, variant: str) -> dict[str, str]:
    """Inputs of plan_pruning: the baseline, plus the sensitivity table (and benchmark) for `pruned`."""
    inputs = {"model": f"{RESULTS}/models/{model}/baseline/model.pt"}
    if variant == "pruned":
        if plans_from_table(config):
            inputs["sensitivity"] = f"{RESULTS}/sensitivity/{model}/sensitivity.csv"
        bench = bench_baseline_path(config, model)
        if bench:
            inputs["bench"] = bench
        if latency_table_target(config):
            inputs["latency_table"] = latency_table_path(target_device(config), model, target_format(config))
    return inputs


def train_width_inputs(config: dict[str, Any], model: str) -> dict[str, str]:
    """Inputs of train_width: the data cache, plus the pruned model's metrics it is matched with."""
    d = data_dir(config)
    inputs = {s: f"{d}/{s}.npz" for s in ("train", "val", "test")} | {"meta": f"{d}/meta.json"}
    if "pruned" in pruning_variants(config, model):
        inputs["pruned"] = f"{RESULTS}/models/{model}/pruned/metrics.json"
    return inputs


def prune_targets(config: dict[str, Any]) -> list[str]:
    """Sensitivity tables (when the pruned variant is on), recipes and pruned/thinner models."""
    out: list[str] = []
    for m in model_names(config):
        variants = pruning_variants(config, m)
        if not model_capabilities(config, m)["structured"]:
            pass  # no group to measure: no sensitivity table
        elif ("pruned" in variants and plans_from_table(config)) or (config.get("sensitivity") or {}).get("enabled", True):
            out += sensitivity_paths(m)
        for v in variants:
            if v in RECIPE_VARIANTS:
                out.append(recipe_path(m, v))
            out.append(f"{RESULTS}/models/{m}/{v}/metrics.json")
    return out


# ---------------------------------------------------------------- quantization
# (this stage's planning functions go below this line)
#: deploy formats the quantize stage owns (the rest belong to conversion)
QUANT_FORMATS = ("ort-int8", "tflite-int8")


def quantize_section(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("quantize") or {})


def quantize_formats(config: dict[str, Any]) -> list[str]:
    """The int8 formats to build: those of `convert.formats` that quantization owns."""
    return [f for f in deploy_formats(config) if f in QUANT_FORMATS]


def quantize_targets(config: dict[str, Any]) -> list[str]:
    """Every int8 artifact and its sidecar JSON, for every model variant."""
    out = []
    for m in model_names(config):
        for v in model_variants(config, m):
            for f in model_formats(config, m, quantize_formats(config)):
                out += [deploy_path(m, v, f), deploy_path(m, v, f) + ".json"]
    return out


def ptq_params_json(config: dict[str, Any]) -> str:
    """The `quantize` section without `qat` (so QAT edits do not rerun post-training quantization)."""
    section = {k: v for k, v in quantize_section(config).items() if k != "qat"}
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def qat_params_json(config: dict[str, Any]) -> str:
    """`quantize.qat` without the job list keys (adding a bit pair does not rerun the others)."""
    qat = quantize_section(config).get("qat") or {}
    section = {k: v for k, v in qat.items() if k not in ("bits", "variants", "enabled")}
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def qat_pairs(config: dict[str, Any]) -> list[str]:
    """QAT bit pairs as `w<bits>a<bits>` names."""
    qat = quantize_section(config).get("qat") or {}
    return [f"w{int(w)}a{int(a)}" for w, a in qat.get("bits", [])]


def qat_variants(config: dict[str, Any], model: str) -> list[str]:
    """Variants QAT starts from (`quantize.qat.variants` that exist for this model)."""
    qat = quantize_section(config).get("qat") or {}
    if not qat.get("enabled", True) or not has_torch_model(config, model):
        return []
    return [v for v in qat.get("variants", ["baseline"]) if v in model_variants(config, model)]


def qat_result_path(model: str, variant: str, pair: str) -> str:
    return f"{RESULTS}/quantize/{model}/{variant}/qat-{pair}.json"


def qat_sweep_path(model: str, variant: str) -> str:
    return f"{RESULTS}/quantize/{model}/{variant}/qat_sweep.csv"


def qat_targets(config: dict[str, Any]) -> list[str]:
    """The QAT sweep table of every (model, QAT variant); the per-pair JSONs come with it."""
    if not qat_pairs(config):
        return []
    return [qat_sweep_path(m, v) for m in model_names(config) for v in qat_variants(config, m)]
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- conversion
# (this stage's planning functions go below this line)

#: TensorRT engines: device-specific, built on the target by the benchmark stage from
#: `model.onnx` with `edgeopt.harness.tensorrt`; listed here so `convert.formats` can name them.
FORMATS.update(
    {
        "trt-fp32": ("engine", "tensorrt"),
        "trt-fp16": ("engine", "tensorrt"),
        "trt-int8": ("engine", "tensorrt"),
    }
)

#: formats whose artifacts the conversion rules build on the host (int8 ones belong to quantization)
CONVERT_FORMATS = ("ort-fp32", "tflite-fp32", "tflite-fp16")


def onnx_path(model: str, variant: str) -> str:
    """The fp32 ONNX export every ONNX-based artifact (ORT, TensorRT, int8 QDQ) starts from."""
    return f"{RESULTS}/deploy/{model}/{variant}/model.onnx"


def device_built_formats(config: dict[str, Any]) -> list[str]:
    """Chosen formats that are built on the device itself (TensorRT engines), not on the host."""
    return [f for f in deploy_formats(config) if FORMATS[f][1] == "tensorrt"]


def convert_targets(config: dict[str, Any]) -> list[str]:
    """model.onnx for every variant, plus the conversion-owned formats chosen in `convert.formats`,
    each with its sidecar JSON."""
    owned = [f for f in deploy_formats(config) if f in CONVERT_FORMATS]
    out: list[str] = []
    for model in model_names(config):
        for variant in model_variants(config, model):
            fmts = model_formats(config, model, owned)
            paths = [onnx_path(model, variant)] + [deploy_path(model, variant, f) for f in fmts]
            out += [p for path in paths for p in (path, path + ".json")]
    return out


def convert_params_json(config: dict[str, Any], *keys: str) -> str:
    """Only the `convert` sub-sections a rule uses, as compact JSON (so editing, say, the TensorRT
    options does not rerun the TFLite conversions)."""
    section = config.get("convert", {})
    return json.dumps({k: section.get(k) for k in keys}, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- devices + benchmarks
# (this stage's planning functions go below this line)
#: TensorRT formats: engines built on the device from `model.onnx` -> precision
TRT_FORMATS: dict[str, str] = {"trt-fp32": "fp32", "trt-fp16": "fp16", "trt-int8": "int8"}
#: bench-section keys that change measurements (the others only choose jobs)
BENCH_MEASURE_KEYS = (
    "batch_sizes", "warmup", "runs", "threads", "eval_images", "eval_batch_size", "power_interval_ms", "timeout",
)  # fmt: skip


def format_runtime(fmt: str) -> str:
    """Runtime a format runs in: onnxruntime, tflite or tensorrt."""
    from edgeopt.errors import EdgeoptError

    if fmt in TRT_FORMATS:
        return "tensorrt"
    if fmt in FORMATS:
        return FORMATS[fmt][1]
    raise EdgeoptError(f"config: bench.formats: unknown format {fmt!r} (known: {', '.join([*FORMATS, *TRT_FORMATS])})")


def trt_qdq_path(model: str, variant: str) -> str:
    """The symmetric int8 QDQ ONNX the quantization stage makes for TensorRT (`int8_source: qdq`)."""
    return f"{RESULTS}/deploy/{model}/{variant}/trt-qdq.onnx"


def trt_int8_source(config: dict[str, Any] | None) -> str:
    """How trt-int8 engines get their scales: `qdq` (trt_qdq_path) or `calibrate` (on the device)."""
    return str((((config or {}).get("convert") or {}).get("tensorrt") or {}).get("int8_source", "calibrate"))


def bench_source(model: str, variant: str, fmt: str, config: dict[str, Any] | None = None) -> str:
    """What a benchmark job sends to the device: the artifact; for TensorRT the ONNX model the engine
    is built from there: model.onnx, or for trt-int8 with `convert.tensorrt.int8_source: qdq` the
    symmetric QDQ model (`calibrate`: model.onnx, calibrated on the device or from `int8_calibration`)."""
    if fmt not in TRT_FORMATS:
        return deploy_path(model, variant, fmt)
    if fmt == "trt-int8" and trt_int8_source(config) == "qdq":
        return trt_qdq_path(model, variant)
    return onnx_path(model, variant)


def trt_qdq_targets(config: dict[str, Any]) -> list[str]:
    """The TensorRT QDQ models (and sidecars) a trt-int8 benchmark with `int8_source: qdq` needs."""
    if trt_int8_source(config) != "qdq" or not any("trt-int8" in bench_formats(config, d) for d in bench_devices(config)):
        return []
    paths = [trt_qdq_path(m, v) for m in model_names(config) for v in model_variants(config, m)]
    return [p for path in paths for p in (path, path + ".json")]


def engine_path(device: str, model: str, variant: str, fmt: str) -> str:
    """Where a TensorRT engine built on `device` is copied back (beside it `.json`: versions it needs)."""
    return f"{RESULTS}/deploy/{model}/{variant}/engines/{device}/{fmt}.engine"


def device_settings(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Enabled devices -> their settings (`local` always present)."""
    devices = {k: dict(v or {}) for k, v in (config.get("devices") or {}).items()}
    devices.setdefault("local", {})
    return {k: v for k, v in devices.items() if v.get("enabled", True)}


def bench_devices(config: dict[str, Any]) -> list[str]:
    """Devices to benchmark on: `bench.devices`, or every enabled device."""
    from edgeopt.errors import EdgeoptError

    devices = device_settings(config)
    chosen = (config.get("bench") or {}).get("devices")
    if chosen is None:
        return list(devices)
    unknown = [d for d in chosen if d not in devices]
    if unknown:
        raise EdgeoptError(f"config: bench.devices: {unknown[0]!r} is not an enabled device in `devices`")
    return list(chosen)


def device_runtimes(config: dict[str, Any], device: str) -> list[str]:
    return list(device_settings(config)[device].get("runtimes") or ["onnxruntime", "tflite"])


def bench_formats(config: dict[str, Any], device: str) -> list[str]:
    """Formats measured on `device`: `bench.formats` (or conversion's + TensorRT's), by the device's runtimes."""
    bench = config.get("bench") or {}
    fmts = bench.get("formats")
    if fmts is None:
        fmts = deploy_formats(config) + list(bench.get("tensorrt_formats", list(TRT_FORMATS)))
        fmts = list(dict.fromkeys(fmts))
    runtimes = device_runtimes(config, device)
    return [f for f in fmts if format_runtime(f) in runtimes]


def bench_path(device: str, model: str, variant: str, fmt: str) -> str:
    return f"{RESULTS}/bench/{device}/{model}/{variant}/{fmt}.json"


def bench_targets(config: dict[str, Any], planned: set[str] | None = None) -> list[str]:
    """One result per (device, model, variant, format the device can run); with `planned` (the other
    stages' targets), only formats whose artifact the workflow actually builds."""
    return [
        bench_path(d, m, v, f)
        for d in bench_devices(config)
        for m in model_names(config)
        for v in model_variants(config, m)
        for f in bench_formats(config, d)
        if planned is None or bench_source(m, v, f, config) in planned
    ]


def device_json(config: dict[str, Any], device: str) -> str:
    """One device's settings as JSON (a rule param: editing a device reruns only its jobs)."""
    return json.dumps(device_settings(config)[device], sort_keys=True, separators=(",", ":"))


def bench_params_json(config: dict[str, Any], fmt: str | None = None) -> str:
    """The measurement settings of `bench` as JSON (choosing devices/formats reruns nothing); TensorRT
    jobs also get `convert.tensorrt` (the engine build options)."""
    bench = config.get("bench") or {}
    params = {k: bench[k] for k in BENCH_MEASURE_KEYS if k in bench}
    if fmt in TRT_FORMATS:
        params["tensorrt"] = ((config.get("convert") or {}).get("tensorrt")) or {}
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def bench_is_local(config: dict[str, Any], device: str) -> bool:
    return not device_settings(config).get(device, {}).get("host")


# ---------------------------------------------------------------- on-device retraining
# (this stage's planning functions go below this line)


def retrain_jobs(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(device, model, framework, setting) for every retraining job the config asks for.

    Pairs a framework cannot train (onnxruntime in fp16/bf16) are left out; an unknown or
    non-training framework (tensorrt), device or duplicate setting raises a one-line EdgeoptError.
    """
    from edgeopt.errors import EdgeoptError
    from edgeopt.retrain.settings import check_framework, settings_of, supports

    sec = config.get("retrain") or {}
    if not sec.get("enabled", True):
        return []
    known = set(device_settings(config))
    for dev in sec.get("devices", ["local"]):
        if dev not in known:
            raise EdgeoptError(f"retrain.devices: {dev!r} is not `local` nor a `devices:` entry")
    frameworks = sec.get("frameworks", ["pytorch", "onnxruntime"])
    for fw in frameworks:
        check_framework(fw)
    settings = settings_of(sec)
    return [
        (dev, m, fw, s.name)
        for dev in sec.get("devices", ["local"])
        for m in torch_model_names(config)
        for fw in frameworks
        for s in settings.values()
        if supports(fw, s)
    ]


def retrain_path(device: str, model: str, framework: str, setting: str) -> str:
    return f"{RESULTS}/retrain/{device}/{model}/{framework}-{setting}.json"


def retrain_targets(config: dict[str, Any]) -> list[str]:
    return [retrain_path(*job) for job in retrain_jobs(config)]


def retrain_model_path(config: dict[str, Any], model: str) -> str:
    """The model file retraining starts from (`retrain.variant`)."""
    variant = (config.get("retrain") or {}).get("variant", "baseline")
    return f"{RESULTS}/models/{model}/{variant}/model.pt"



# ---------------------------------------------------------------- reports
# (this stage's planning functions go below this line)
REPORT_DIR = f"{RESULTS}/report"

#: report figure -> results/ folder whose presence among the report's inputs means its data exist
#: (None: drawn whenever the report runs, from the model metrics every run has)
REPORT_FIGURES: dict[str, str | None] = {
    "accuracy_latency": f"{RESULTS}/bench/",
    "accuracy_size": None,
    "sensitivity": f"{RESULTS}/sensitivity/",
    "qat_sweep": f"{RESULTS}/quantize/",
    "retrain_speedup": f"{RESULTS}/retrain/",
}

#: normalised tables the collector writes (the figures are drawn from these)
REPORT_TABLES = ("results", "sensitivity", "qat_sweep", "retrain")

_PLANNING_REPORT_INPUTS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "planning_report_inputs", default=False
)


def report_inputs(config: dict[str, Any]) -> list[str]:
    """Every other stage's targets: what the report is made from (the report's own paths excluded)."""
    token = _PLANNING_REPORT_INPUTS.set(True)
    try:
        targets = all_targets(config)
    finally:
        _PLANNING_REPORT_INPUTS.reset(token)
    return sorted({t for t in targets if not t.startswith(REPORT_DIR + "/")})


def report_figures(config: dict[str, Any]) -> list[str]:
    """Figures this run draws: enabled in `report.plots` and fed by targets of this config."""
    wanted = config.get("report", {}).get("plots", list(REPORT_FIGURES))
    inputs = report_inputs(config)
    out = []
    for fig in wanted:
        prefix = REPORT_FIGURES[fig]
        if prefix is None or any(t.startswith(prefix) for t in inputs):
            out.append(fig)
    return out


def report_params_json(config: dict[str, Any]) -> str:
    """make_report's params: the `report` section, plus the notes on what models skipped (when any)."""
    section = dict(config.get("report") or {})
    notes = model_notes(config)
    if notes:
        section["notes"] = notes
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def report_table_path(name: str, ext: str = "csv") -> str:
    return f"{REPORT_DIR}/{name}.{ext}"


def report_figure_path(figure: str) -> str:
    return f"{REPORT_DIR}/figures/{figure}.png"


def report_plot_json(config: dict[str, Any]) -> str:
    """The part of `report` the figures depend on (the title does not redraw them)."""
    section = config.get("report", {})
    return json.dumps(
        {k: section.get(k) for k in ("pareto", "batch_size")}, sort_keys=True, separators=(",", ":")
    )


def report_targets(config: dict[str, Any]) -> list[str]:
    """The report's own outputs: tables, figures and the HTML page."""
    tables = [report_table_path(t) for t in REPORT_TABLES] + [report_table_path("results", "parquet")]
    figures = [report_figure_path(f) for f in report_figures(config)]
    return tables + figures + [f"{REPORT_DIR}/index.html"]


def device_resource(device: str) -> str:
    """The Snakemake resource a job on `device` holds (one unit per job)."""
    return f"device_{device}"


def device_resources(config: dict[str, Any]) -> dict[str, Any]:
    """Per-device job slots for rules with a `{device}` wildcard (benchmarks, retraining):
    `resources: **plan.device_resources(config)` makes each job take one `device_<name>` unit of its
    own device; `device_resource_limits` gives every enabled device a limit of 1 (common.smk)."""
    return {
        device_resource(n): (lambda wildcards, n=n: int(wildcards.get("device") == n))
        for n in device_settings(config)
    }


def device_resource_limits(config: dict[str, Any]) -> dict[str, int]:
    """One job per board at a time: the limit of every enabled device's resource (a resource Snakemake
    is given no limit for is unlimited, so the workflow declares these itself; `--resources` wins)."""
    return {device_resource(n): 1 for n in device_settings(config)}


def device_job_threads(config: dict[str, Any], device: str, cores: int) -> int:
    """Host threads a benchmark or retraining job takes: all cores when it runs here, one when the
    work happens on a board (the host only waits on SSH)."""
    return cores if bench_is_local(config, device) else 1
