"""What a model can go through: the one answer the planner asks for (`model_capabilities`).

Built-in models are answered from what the registry declares (`edgeopt.models.registry`), never
probed. A model from outside the registry is worked out from the model itself:

Planning must not import torch (Snakemake plans on every start), so `model_capabilities` reads a small
JSON cache under `results/.cache/models/`, keyed by the entry, the dataset's image size and channels and
the size and modification time of the files it names. Only a miss (a new or edited entry) builds the
model, in this process, and checks it: it is also the config check of the entry, so a bad entry (an
unknown constructor, a factory that fails, weights that do not fit, an ONNX file without one image input)
stops the run before Snakemake builds the DAG, with nothing written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgeopt import layout
from edgeopt.atomic import write_json
from edgeopt.errors import EdgeoptError
from edgeopt.model_entries import ModelSpec, factory_ref, model_specs, resolve_path
from edgeopt.models.registry import BUILTIN_CAPABILITIES, declared_capabilities

CACHE_DIR = layout.MODEL_CAPABILITIES_CACHE
#: bump when the probe decides differently, so old cache entries are recomputed
PROBE_VERSION = 1

__all__ = [
    "BUILTIN_CAPABILITIES", "model_capabilities", "config_capabilities", "model_notes", "probe", "onnx_input",
    "input_matches",
]  # fmt: skip
#: what the deploy-only (ONNX) entries can do: none of the PyTorch stages
ONNX_CAPABILITIES = {"structured": False, "residual": False, "width": False, "torch": False}


def _file_stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def cache_key(spec: ModelSpec, image_size: int, in_channels: int, base: str | Path | None = None) -> str:
    files = [spec.weights, spec.onnx]
    if spec.factory:
        target = factory_ref(spec, base).rpartition(":")[0]
        files.append(target if target.endswith(".py") or "/" in target else None)
    stamps = [_file_stamp(resolve_path(f, base)) for f in files if f]
    blob = json.dumps([PROBE_VERSION, spec.as_dict(), image_size, in_channels, stamps], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_capabilities(
    spec: ModelSpec, image_size: int = 32, in_channels: int = 3, base: str | Path | None = None,
    cache_dir: str | Path = CACHE_DIR,
) -> dict[str, Any]:
    """structured / residual / width / torch flags (and notes) of one `models:` entry, cached on disk."""
    if spec.kind == "builtin" and not spec.weights:
        return _builtin(spec)
    key = cache_key(spec, image_size, in_channels, base)
    path = resolve_path(str(Path(cache_dir) / f"{spec.name}.json"), base)
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["capabilities"]
    except (OSError, ValueError, AttributeError):
        pass
    caps = probe(spec, image_size, in_channels, base)  # raises EdgeoptError on a bad entry
    try:
        write_json(path, {"key": key, "model": spec.name, "capabilities": caps})
    except OSError:
        pass
    return caps


def config_capabilities(config: dict[str, Any], model: str) -> dict[str, Any]:
    """`model_capabilities` of the `models:` entry named `model`, on the config's dataset (what the planner asks)."""
    ds = config["dataset"]
    return model_capabilities(model_specs(config)[model], int(ds["image_size"]), int(ds["channels"]))


def model_notes(config: dict[str, Any]) -> list[str]:
    """One line per variant or stage a model of the config skips (printed by the Snakefile and
    `edgeopt check-config`, shown in the report); builds and checks every new entry from outside the registry."""
    return [n for m in model_specs(config) for n in config_capabilities(config, m).get("notes", [])]


def _builtin(spec: ModelSpec) -> dict[str, Any]:
    """A registered model: DepGraph-prunable, and what the registry declares (residual blocks, width)."""
    declared = declared_capabilities(spec.arch)
    return {"structured": True, "residual": declared.residual, "width": declared.width, "torch": True, "notes": []}


def probe(spec: ModelSpec, image_size: int, in_channels: int, base: str | Path | None = None) -> dict[str, Any]:
    """Build (or read) the model and find what it supports; bad input raises a one-line EdgeoptError."""
    if spec.kind == "onnx":
        assert spec.onnx is not None
        info = onnx_input(resolve_path(spec.onnx, base), f"config: models: {spec.name}: onnx")
        notes = [f"{spec.name}: deploy-only ONNX model: training, pruning, QAT, TFLite and retraining are skipped"]
        if not input_matches(info, image_size, in_channels):
            notes.append(f"{spec.name}: input {info['shape']} does not match the data "
                         f"({in_channels}x{image_size}x{image_size}): no accuracy on the test split")
        return {**ONNX_CAPABILITIES, "input": info, "notes": notes}
    return probe_torch(spec, image_size, in_channels, base)


def probe_torch(spec: ModelSpec, image_size: int, in_channels: int, base: str | Path | None = None) -> dict[str, Any]:
    import torch

    from edgeopt.models.external import load_weights, register_factory
    from edgeopt.models.registry import create_model
    from edgeopt.prune.groups import build_graph, list_groups, unprunable_groups
    from edgeopt.prune.zeropad import residual_blocks

    if spec.kind == "factory":
        register_factory(spec.name, factory_ref(spec, base), spec.options)
    options = {} if spec.kind == "factory" else dict(spec.options)
    if spec.kind == "builtin":  # described statically; only its weights file is checked
        model = create_model(spec.arch, 10, in_channels, **options)
        load_weights(model, resolve_path(str(spec.weights), base), shapes=False)
        return _builtin(spec)
    classes = 10  # the data's class count is not known before preparation; shapes are checked in training
    model = create_model(spec.arch, classes, in_channels, **options).eval()
    if spec.weights:
        load_weights(model, resolve_path(spec.weights, base), shapes=False)
    where = f"config: models: {spec.name}"
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, in_channels, image_size, image_size))
    except Exception as exc:  # noqa: BLE001 - user models fail in many ways
        raise EdgeoptError(f"{where}: does not run on {in_channels}x{image_size}x{image_size} images "
                           f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, classes):
        raise EdgeoptError(f"{where}: output is not a (batch, num_classes) tensor of logits")
    notes: list[str] = []
    try:
        build_graph(model, image_size, in_channels)
        groups = list_groups(model, image_size, in_channels, classes)
        unsafe = unprunable_groups(model, image_size, in_channels, classes)
        structured = bool(groups)
        if unsafe:
            notes.append(f"{spec.name}: {len(unsafe)} channel group(s) left unpruned "
                         f"({', '.join(sorted(set(unsafe.values())))}; listed in the recipes)")
        if not structured:
            notes.append(f"{spec.name}: no channel group DepGraph can prune safely: pruned/zeropad skipped")
    except EdgeoptError as exc:
        structured = False
        notes.append(f"{spec.name}: pruned/zeropad skipped: {exc}")
    residual = structured and bool(residual_blocks(model))
    if structured and not residual:
        notes.append(f"{spec.name}: no residual blocks zero-padding can prune: zeropad skipped")
    return {"structured": structured, "residual": residual, "width": False, "torch": True, "notes": notes}


# ---------------------------------------------------------------- deploy-only ONNX entries
def onnx_input(path: Path, where: str) -> dict[str, Any]:
    """Name and shape of the single float image input (N, C, H, W) of an ONNX file (read, never run)."""
    import onnx

    if not path.is_file():
        raise EdgeoptError(f"{where}: {path}: file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf errors
        raise EdgeoptError(f"{where}: {path}: not an ONNX model ({type(exc).__name__})") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EdgeoptError(f"{where}: {path}: needs exactly one input (an image batch), has {len(inputs)}")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    if tensor.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4:
        raise EdgeoptError(f"{where}: {path}: input {inputs[0].name!r} is not a float32 image batch "
                           f"(N, C, H, W); it has shape {dims}")
    if dims[1] not in (1, 3):
        raise EdgeoptError(f"{where}: {path}: input {inputs[0].name!r} has {dims[1]} channels at dim 1; "
                           "expected an NCHW image batch with 1 or 3 channels")
    return {"name": inputs[0].name, "shape": dims}


def input_matches(info: dict[str, Any], image_size: int, in_channels: int) -> bool:
    """Whether the test split (in_channels x image_size x image_size) can be fed to this input."""
    _, c, h, w = info["shape"]
    return c == in_channels and all(not isinstance(d, int) or d == image_size for d in (h, w))
