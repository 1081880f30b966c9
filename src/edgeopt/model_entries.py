"""The `models:` entries of a config, parsed without torch (planning reads them on every Snakemake start).

An entry is a built-in registry name (`resnet20`), a prefixed name (`torchvision:mobilenet_v3_small`,
`timm:resnet10t`), or a mapping:

- `{name, model: <any of the above>, options, weights}`
- `{name, factory: "pkg.module:fn" | "path/to/file.py:fn", options, weights}`: the user's own code
- `{name, onnx: path/to/model.onnx}`: a model trained and exported elsewhere (deploy stages only)

`name` is the results folder of the model (`results/models/<name>/...`); a prefixed name without one
gets `<prefix>-<name>` (`torchvision-mobilenet_v3_small`). Relative paths (`factory` files, `weights`,
`onnx`) resolve against the working directory Snakemake runs in (`--directory`, default: where it is
started), the same folder `dataset.path` is read from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.models.builtins import BUILTIN_CAPABILITIES

#: built-in registry names: those the (torch-free) registry declares capabilities for
BUILTIN_MODELS = tuple(BUILTIN_CAPABILITIES)
#: prefixed architecture names: `<prefix>:<constructor>`
PREFIXES = ("torchvision", "timm")
#: a model name is a path component under results/
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
ENTRY_KEYS = {"name", "model", "factory", "onnx", "options", "weights"}
#: the environment variable naming the config's factories to every `python -m edgeopt` a rule runs
FACTORIES_ENV = "EDGEOPT_MODEL_FACTORIES"


@dataclass(frozen=True)
class ModelSpec:
    """One `models:` entry: its results name, how it is built, its options and starting weights."""

    name: str
    kind: str  # builtin | torchvision | timm | factory | onnx
    arch: str  # what `create_model` is called with ("" for onnx)
    factory: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    onnx: str | None = None

    @property
    def deploy_only(self) -> bool:
        """An ONNX file: no PyTorch model, so training, pruning, QAT, TFLite and retraining skip it."""
        return self.kind == "onnx"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {})}


def _arch_kind(arch: str, where: str) -> str:
    if ":" in arch:
        prefix, _, ctor = arch.partition(":")
        if prefix not in PREFIXES or not ctor or not re.match(r"^[A-Za-z0-9_.]+$", ctor):
            raise EdgeoptError(f"{where}: {arch!r} is not <{'|'.join(PREFIXES)}>:<constructor name>")
        return prefix
    if arch not in BUILTIN_MODELS:
        raise EdgeoptError(
            f"{where}: unknown model {arch!r} (built-in: {', '.join(BUILTIN_MODELS)}; or torchvision:<name>, "
            "timm:<name>, {name, factory}, {name, onnx})"
        )
    return "builtin"


def _default_name(arch: str) -> str:
    return arch.replace(":", "-")


def parse_entry(entry: Any, index: int) -> ModelSpec:
    """One `models:` list item -> ModelSpec; a bad entry raises a one-line error naming `models[i]`."""
    where = f"config: models[{index}]"
    if isinstance(entry, str):
        kind = _arch_kind(entry, where)
        return ModelSpec(_default_name(entry), kind, entry)
    if not isinstance(entry, dict):
        raise EdgeoptError(f"{where}: must be a model name or a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise EdgeoptError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(ENTRY_KEYS))})")
    ways = [k for k in ("model", "factory", "onnx") if entry.get(k) is not None]
    if len(ways) != 1:
        raise EdgeoptError(f"{where}: give exactly one of model, factory, onnx (got {', '.join(ways) or 'none'})")
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise EdgeoptError(f"{where}.options: must be a mapping of constructor arguments")
    weights = entry.get("weights")
    if weights is not None and not isinstance(weights, str):
        raise EdgeoptError(f"{where}.weights: must be a file path")
    name = entry.get("name")
    if ways == ["model"]:
        arch = str(entry["model"])
        kind = _arch_kind(arch, f"{where}.model")
        spec = ModelSpec(str(name or _default_name(arch)), kind, arch, None, dict(options), weights)
    elif ways == ["factory"]:
        ref = str(entry["factory"])
        if ref.count(":") != 1 or not all(ref.split(":")):
            raise EdgeoptError(f"{where}.factory: {ref!r} is not 'package.module:function' or 'file.py:function'")
        if not name:
            raise EdgeoptError(f"{where}.name: a factory model needs a name (its results folder)")
        spec = ModelSpec(str(name), "factory", str(name), ref, dict(options), weights)
    else:
        if options or weights:
            raise EdgeoptError(f"{where}: an onnx entry takes no options or weights (the file is the model)")
        if not name:
            raise EdgeoptError(f"{where}.name: an onnx model needs a name (its results folder)")
        spec = ModelSpec(str(name), "onnx", "", onnx=str(entry["onnx"]))
    if not NAME_RE.match(spec.name):
        raise EdgeoptError(f"{where}.name: {spec.name!r} must match [A-Za-z0-9_.-]+ (it names a results folder)")
    if spec.kind == "factory" and spec.name in BUILTIN_MODELS:
        raise EdgeoptError(f"{where}.name: {spec.name!r} is a built-in model; name your factory model otherwise")
    return spec


def model_specs(config: dict[str, Any]) -> dict[str, ModelSpec]:
    """Every `models:` entry by its results name (duplicate names are an error)."""
    out: dict[str, ModelSpec] = {}
    for i, entry in enumerate(config.get("models") or []):
        spec = parse_entry(entry, i)
        if spec.name in out:
            raise EdgeoptError(f"config: models[{i}]: name {spec.name!r} is used twice")
        out[spec.name] = spec
    return out


def resolve_path(path: str, base: str | Path | None = None) -> Path:
    """A config path: absolute, or relative to `base` (the working directory)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base or Path.cwd()) / p


def factory_ref(spec: ModelSpec, base: str | Path | None = None) -> str:
    """`file.py:fn` with the file made absolute (so every job imports the same file); modules unchanged."""
    assert spec.factory is not None
    target, _, fn = spec.factory.rpartition(":")
    if target.endswith(".py") or "/" in target:
        target = str(resolve_path(target, base).resolve())
    return f"{target}:{fn}"


def factories_json(config: dict[str, Any], base: str | Path | None = None) -> str:
    """The config's factory models as JSON for `FACTORIES_ENV`: name -> {factory, options}."""
    table = {
        s.name: {"factory": factory_ref(s, base), "options": s.options}
        for s in model_specs(config).values()
        if s.kind == "factory"
    }
    return json.dumps(table, sort_keys=True, separators=(",", ":"))
