"""The seams every stage shares: the artifact layout, the formats table, the figure catalog and the
model capabilities. Each is defined once; these tests hold the places that derive from them to it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt import formats, layout, plan
from edgeopt.config import check_config

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = {"dataset": "cifar10-tiny", "split": "calib", "model": "resnet20", "variant": "width0.5",
          "format": "tflite-int8", "ext": "tflite", "pair": "w4a8", "device": "jetson-nano",
          "framework": "onnxruntime", "setting": "freeze10-bf16", "table": "results", "figure": "qat_sweep"}  # fmt: skip


def test_contributing_lists_exactly_the_layout() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    table = re.search(r"<!-- layout-table:start -->\n(.*?)\n<!-- layout-table:end -->", text, re.S)
    assert table, "CONTRIBUTING.md lost its layout-table markers"
    assert table.group(1) == layout.markdown_table(), "regenerate it with `python -m edgeopt.layout`"


@pytest.mark.parametrize("art", layout.ARTIFACTS, ids=lambda a: a.name)
def test_every_artifact_parses_back_to_its_wildcards(art: layout.Artifact, tmp_path: Path) -> None:
    wildcards = {w: SAMPLE[w] for w in art.wildcards}
    path = layout.path(art.pattern, **wildcards)
    assert layout.parse(path) == (art.name, wildcards)
    # under another results folder (the report's --results), absolute or relative
    moved = tmp_path / path.removeprefix(layout.RESULTS + "/")
    assert layout.parse(moved, tmp_path) == (art.name, wildcards)


def test_parse_rejects_files_outside_the_layout(tmp_path: Path) -> None:
    assert layout.parse("results/notes.txt") is None
    assert layout.parse("elsewhere/models/m/v/metrics.json") is None
    assert layout.parse(tmp_path / "models/m/v/metrics.json", tmp_path / "other") is None


def test_fill_keeps_the_wildcards_it_is_not_given() -> None:
    assert layout.fill(layout.MODEL_FILE, variant="baseline") == "results/models/{model}/baseline/model.pt"
    assert plan.deploy_pattern("tflite-{precision}") == "results/deploy/{model}/{variant}/tflite-{precision}.tflite"
    with pytest.raises(ValueError):
        plan.deploy_pattern("{runtime}-int8")  # ort-int8.onnx and tflite-int8.tflite: no single extension


def test_rules_name_no_results_paths() -> None:
    """Every path of a rule comes from edgeopt.layout or edgeopt.plan, none is written in a rule file."""
    for f in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        hits = [ln for ln in f.read_text().splitlines() if "results/" in ln and not ln.lstrip().startswith("#")]
        assert not hits, f"{f.name}: {hits}"


def test_formats_table_is_what_the_builders_register() -> None:
    """A format built on the host has a builder in its stage's registry; the runtime is a harness runtime."""
    from edgeopt.convert.formats import CONVERTERS
    from edgeopt.harness.runtimes import RUNTIMES
    from edgeopt.quantize import litert_pt2e, ort_qdq  # noqa: F401  (register the int8 quantizers)
    from edgeopt.quantize.registry import QUANTIZERS

    assert set(formats.names(stage="convert")) == set(CONVERTERS) - {"onnx"}
    made = {q.fmt for q in QUANTIZERS.values() if q.fmt}
    assert set(formats.names(stage="quantize")) | {formats.TRT_QDQ_SOURCE} == made
    assert {f.runtime for f in formats.FORMATS.values()} <= set(RUNTIMES)
    assert formats.names(built_on="device") == ["trt-fp32", "trt-fp16", "trt-int8"]
    for f in formats.FORMATS.values():
        assert f.name.endswith("-" + f.precision) and f.on_device == (f.stage == "bench")


def test_unknown_format_is_one_line_naming_the_key() -> None:
    from edgeopt.errors import EdgeoptError

    with pytest.raises(EdgeoptError, match=r"^config: convert.formats: unknown format 'onnx-int4' \(known: "):
        plan.deploy_formats(check_config({"convert": {"formats": ["ort-fp32"]}}) | {"convert": {"formats": ["onnx-int4"]}})


def test_figure_catalog_matches_the_drawings_and_the_schema() -> None:
    from edgeopt.config import load_schema
    from edgeopt.report.catalog import FIGURES
    from edgeopt.report.figures import FIGURES as DRAWN

    assert list(DRAWN) == list(FIGURES)
    plots = load_schema()["properties"]["report"]["properties"]["plots"]
    assert plots["items"]["enum"] == plots["default"] == list(FIGURES)
    needs = {n for f in FIGURES.values() for n in f.needs}
    assert needs <= {a.name for a in layout.ARTIFACTS}


def test_planning_imports_neither_torch_nor_pandas() -> None:
    """Snakemake plans on every start (a no-op rerun too): the planner must stay light."""
    code = (
        "import sys, yaml\n"
        "from edgeopt import plan\n"
        "from edgeopt.config import check_config, deep_merge\n"
        f"cfg = deep_merge(yaml.safe_load(open({str(ROOT / 'config.yaml')!r})), yaml.safe_load(open({str(ROOT / 'config/tiny.yaml')!r})))\n"
        "targets = plan.all_targets(check_config(cfg))\n"
        "heavy = [m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "assert targets and not heavy, heavy\n"
    )  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_builtin_capabilities_match_the_models() -> None:
    """What the registry declares (so planning needs no torch) is what the real models do."""
    import torch

    from edgeopt.errors import EdgeoptError
    from edgeopt.model_capabilities import model_capabilities
    from edgeopt.model_entries import parse_entry
    from edgeopt.models import create_model
    from edgeopt.models.registry import BUILTIN_CAPABILITIES, declared_capabilities
    from edgeopt.prune.zeropad import residual_blocks

    def size(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    for name, caps in BUILTIN_CAPABILITIES.items():
        full = create_model(name)
        assert caps.residual == bool(residual_blocks(full)), name
        if caps.width:
            assert size(create_model(name, width_mult=0.5)) < size(full), name
        else:
            with pytest.raises(EdgeoptError, match=rf"^model {name}: width_mult is not supported"):
                create_model(name, width_mult=0.5)
        assert declared_capabilities(name) == caps
        # the one answer the planner asks for: a built-in model's is the registry's declaration, not probed
        answer = model_capabilities(parse_entry(name, 0), cache_dir="/nonexistent")
        assert (answer["residual"], answer["width"], answer["structured"], answer["torch"]) == (
            caps.residual, caps.width, True, True)  # fmt: skip
    assert declared_capabilities("no-such-model") == type(caps)()
