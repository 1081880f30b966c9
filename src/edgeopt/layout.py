"""The artifact layout: where every stage writes, defined once.

Each artifact is a path pattern under `results/` with Snakemake-style `{wildcards}`. Rules use the
patterns as their outputs/inputs (`layout.MODEL_FILE`, or `layout.fill(...)` to fix some wildcards),
the planner fills them (`fill`) to name targets, and the report reads them back (`parse`) to know
what a metrics file is. CONTRIBUTING.md's artifact table is generated from `ARTIFACTS`
(`python -m edgeopt.layout`), and a test checks that it matches. Torch-free: planning imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edgeopt.formats import TRT_QDQ_SOURCE

RESULTS = "results"
_WILDCARD = re.compile(r"\{(\w+)\}")
#: what a wildcard may match when a path is parsed (default: any run of characters without `/`)
WILDCARD_REGEX = {"ext": r"[A-Za-z0-9]+", "format": r"[A-Za-z0-9_-]+", "split": r"[A-Za-z0-9_-]+"}


@dataclass(frozen=True)
class Artifact:
    """One kind of file: its pattern (with `{wildcards}`) and what it holds (for the docs table)."""

    name: str
    pattern: str
    what: str

    @property
    def wildcards(self) -> tuple[str, ...]:
        return tuple(_WILDCARD.findall(self.pattern))

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The pattern as a regex over paths relative to `results/`: each wildcard is one path segment
        part (no `/`), matched shortest-first so `{framework}-{setting}` splits at the first dash."""
        rel = self.pattern.removeprefix(RESULTS + "/")
        out, pos = "", 0
        for m in _WILDCARD.finditer(rel):
            out += re.escape(rel[pos : m.start()]) + f"(?P<{m.group(1)}>{WILDCARD_REGEX.get(m.group(1), '[^/]+?')})"
            pos = m.end()
        return re.compile(out + re.escape(rel[pos:]) + r"\Z")


def fill(pattern: str, **wildcards: object) -> str:
    """Fill the named wildcards of `pattern`, leaving the others (so a rule can fix part of a pattern)."""
    return _WILDCARD.sub(lambda m: str(wildcards[m.group(1)]) if m.group(1) in wildcards else m.group(0), pattern)


def path(pattern: str, **wildcards: object) -> str:
    """Fill every wildcard of `pattern`; a missing one is a programming error (KeyError)."""
    return pattern.format(**{k: str(v) for k, v in wildcards.items()})


# ---------------------------------------------------------------- the artifacts, in DAG order
#: every artifact, in the order of the docs table; `parse` tries them in this order (a fixed name
#: before a pattern that would also match it: model.onnx and trt-qdq.onnx before {format}.{ext}, index.html
#: before {table}.{ext})
ARTIFACTS: list[Artifact] = []


def _artifact(name: str, pattern: str, what: str) -> str:
    """Declare an artifact (its name is how `parse` reports it) and return its pattern."""
    ARTIFACTS.append(Artifact(name, f"{RESULTS}/{pattern}", what))
    return ARTIFACTS[-1].pattern


DATA_SPLIT = _artifact("data_split", "data/{dataset}/{split}.npz", "`x` uint8 NHWC, `y` int64 (numpy-only readable); split: train, val, test, calib")
DATA_META = _artifact("data_meta", "data/{dataset}/meta.json", "classes, num_classes, image_size, channels, mean, std (0..1 scale)")
MODEL_FILE = _artifact("model_file", "models/{model}/{variant}/model.pt", "`edgeopt.models.save_model`/`load_model`: the whole module + meta (arch, num_classes, in_channels, image_size, mean, std, ...)")
MODEL_METRICS = _artifact("model_metrics", "models/{model}/{variant}/metrics.json", "`edgeopt.records.ModelMetrics`: accuracy (test split), loss, macs, params, nonzero_params, weight_sparsity, ..., provenance")
SENSITIVITY_TABLE = _artifact("sensitivity_table", "sensitivity/{model}/sensitivity.csv", "per-layer pruning sensitivity (`edgeopt.records.SENSITIVITY_COLUMNS`)")
SENSITIVITY_PLOT = _artifact("sensitivity_plot", "sensitivity/{model}/sensitivity.png", "the same, drawn")
LATENCY_TABLE = _artifact("latency_table", "latency/{device}/{model}/{format}.csv", "batch-1 latency of each prunable group at a sweep of kept widths, measured on `device` in `format` (`edgeopt.prune.latency_table`); beside it `.csv.json`: how, provenance")
RECIPE = _artifact("recipe", "recipes/{model}/{variant}.yaml", "declarative compression recipe (editable, replayable)")
ONNX_EXPORT = _artifact("onnx_export", "deploy/{model}/{variant}/model.onnx", "fp32 ONNX export (dynamic batch)")
ONNX_EXPORT_SIDECAR = _artifact("onnx_export_sidecar", "deploy/{model}/{variant}/model.onnx.json", "`edgeopt.records.DeployMetrics` of the export")
TRT_QDQ = _artifact("trt_qdq", "deploy/{model}/{variant}/" + TRT_QDQ_SOURCE + ".onnx", "symmetric int8 QDQ ONNX a TensorRT int8 engine is built from (`convert.tensorrt.int8_source: qdq`)")
TRT_QDQ_SIDECAR = _artifact("trt_qdq_sidecar", "deploy/{model}/{variant}/" + TRT_QDQ_SOURCE + ".onnx.json", "`edgeopt.records.DeployMetrics` of that QDQ model")
ENGINE = _artifact("engine", "deploy/{model}/{variant}/engines/{device}/{format}.engine", "a TensorRT engine built on `device`, copied back")
ENGINE_SIDECAR = _artifact("engine_sidecar", "deploy/{model}/{variant}/engines/{device}/{format}.engine.json", "`edgeopt.records.EngineInfo`: the TensorRT version, L4T/JetPack and GPU the engine only runs with")
DEPLOY_FILE = _artifact("deploy_file", "deploy/{model}/{variant}/{format}.{ext}", "a deployable artifact; format and extension from `edgeopt.formats.FORMATS` (e.g. `ort-int8.onnx`, `tflite-fp16.tflite`)")
DEPLOY_SIDECAR = _artifact("deploy_sidecar", "deploy/{model}/{variant}/{format}.{ext}.json", "`edgeopt.records.DeployMetrics`: runtime, precision, size_bytes, accuracy in that runtime, parity vs PyTorch, deployable, provenance")
QAT_RESULT = _artifact("qat_result", "quantize/{model}/{variant}/qat-{pair}.json", "`edgeopt.records.QatResult`: one QAT bit pair (pair: `w<bits>a<bits>`)")
QAT_STATE = _artifact("qat_state", "quantize/{model}/{variant}/qat-{pair}.pt", "the trained QAT model's state (tensors and plain data only): what `export_qat` deploys for the w8a8 pair")
QAT_SWEEP = _artifact("qat_sweep", "quantize/{model}/{variant}/qat_sweep.csv", "every QAT bit pair of a variant (`edgeopt.records.QAT_SWEEP_COLUMNS`)")
BENCH_RESULT = _artifact("bench_result", "bench/{device}/{model}/{variant}/{format}.json", "`edgeopt.records.BenchResult`: device-side measurements, one entry per batch size")
RETRAIN_RESULT = _artifact("retrain_result", "retrain/{device}/{model}/{framework}-{setting}.json", "`edgeopt.records.RetrainResult`: on-device retraining cost")
REPORT_HTML = _artifact("report_html", "report/index.html", "the HTML report")
REPORT_TABLE = _artifact("report_table", "report/{table}.{ext}", "results table (CSV, Parquet) and the sensitivity, qat_sweep, retrain tables")
REPORT_FIGURE = _artifact("report_figure", "report/figures/{figure}.png", "one figure of `edgeopt.report.catalog.FIGURES`")
REPORT_DIR = REPORT_HTML.rsplit("/", 1)[0]
#: planning-time cache of computed width multipliers (not an artifact a user reads)
WIDTH_CACHE = f"{RESULTS}/.cache/width_mult.json"
#: planning-time cache of what each model from outside the registry supports (edgeopt.model_capabilities)
MODEL_CAPABILITIES_CACHE = f"{RESULTS}/.cache/models"


def parse(file: str | Path, root: str | Path = RESULTS) -> tuple[str, dict[str, str]] | None:
    """(artifact name, wildcards) of a file under `root` (the results folder), or None if it is no artifact."""
    file, root = Path(file), Path(root)
    try:
        rel = (file.relative_to(root) if file.is_absolute() == root.is_absolute() else
               file.resolve().relative_to(root.resolve())).as_posix()  # fmt: skip
    except ValueError:
        return None
    for art in ARTIFACTS:
        m = art.regex.match(rel)
        if m:
            return art.name, m.groupdict()
    return None


# ---------------------------------------------------------------- logs and benchmarks of rules
def log(rule: str, key: str | None = None) -> str:
    """A rule's log file: `results/logs/<rule>/<key>.log` (`<rule>.log` for a rule run once)."""
    return f"{RESULTS}/logs/{rule}/{key}.log" if key else f"{RESULTS}/logs/{rule}.log"


def benchmark(rule: str, key: str | None = None) -> str:
    """A rule's Snakemake benchmark TSV, beside the logs in `results/benchmarks/`."""
    return f"{RESULTS}/benchmarks/{rule}/{key}.tsv" if key else f"{RESULTS}/benchmarks/{rule}.tsv"


# ---------------------------------------------------------------- helpers the rules share
DATA_SPLITS = ("train", "val", "test", "calib")


def data_files(dataset: str) -> dict[str, str]:
    """The prepared dataset cache: split name (and `meta`) -> file."""
    return {s: path(DATA_SPLIT, dataset=dataset, split=s) for s in DATA_SPLITS} | {
        "meta": path(DATA_META, dataset=dataset)
    }


def markdown_table() -> str:
    """CONTRIBUTING.md's artifact table (paths relative to `results/`)."""
    rows = ["| path | what |", "| --- | --- |"]
    rows += [f"| `{a.pattern.removeprefix(RESULTS + '/')}` | {a.what} |" for a in ARTIFACTS]
    rows.append("| `logs/<rule>/...`, `benchmarks/<rule>/...` | every rule's log and Snakemake benchmark (`layout.log`, `layout.benchmark`) |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
