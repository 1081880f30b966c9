"""The model file format shared by all stages: state dict + plain structure + metadata, never code.

A file holds `{"format", "meta", "modules", "state_dict"}`: tensors and plain data only, so it is
read with `torch.load(weights_only=True)` and loading cannot run anything from the file. The model
is rebuilt by `create_model(meta["arch"], ...)` (the registry: nothing named in the file is imported),
then made to match the recorded structure, which covers what the compression stages change:

* torch-pruning (DepGraph) shrinks layers in place: each module's plain attributes (`out_channels`,
  `groups`, `num_features`, ...) are recorded and restored, and parameters take the saved shapes;
* zero-padding replaces a block's BatchNorm by `Sequential(BatchNorm, ZeroPadScatter)`: a module whose
  type differs from the registry's is constructed from `torch.nn` or `edgeopt.models.layers.REBUILD`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError
from edgeopt.models.layers import REBUILD, type_name
from edgeopt.models.registry import create_model
from edgeopt.safe_load import load_plain

#: the `format` entry of a model file; files without it are refused (re-run the stage that wrote them)
MODEL_FORMAT = "edgeopt-model-2"
#: module attributes never copied between models (runtime state, not structure)
_SKIPPED_ATTRS = {"training"}


def _plain(value: Any) -> bool:
    """Whether `value` is plain data (what a weights-only load reads back unchanged in meaning)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _plain_copy(value: Any, where: str) -> Any:
    """`value` as plain data (tuples kept, numpy scalars unwrapped); raise on anything else."""
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if isinstance(value, (tuple, list)):
        items = [_plain_copy(v, where) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {str(k): _plain_copy(v, f"{where}.{k}") for k, v in value.items()}
    if not _plain(value):
        raise TypeError(f"save_model: {where} is a {type(value).__name__}, not plain data")
    return value


def describe(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every module (pre-order, by name): its type name and its plain attributes."""
    out = {}
    for name, mod in model.named_modules():
        attrs = {k: _plain_copy(v, k) for k, v in vars(mod).items()
                 if not k.startswith("_") and k not in _SKIPPED_ATTRS and _plain(v)}
        out[name] = {"type": type_name(type(mod)), "attrs": attrs}
    return out


def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Atomically save the model's weights, structure and `meta` (arch, num_classes, in_channels,
    image_size, mean, std, model_options, ...); `meta["arch"]` must be a `create_model` name."""
    if not isinstance(meta.get("arch"), str):
        raise TypeError("save_model: meta['arch'] (the create_model name) is required")
    model = model.to("cpu").eval()
    blob = {
        "format": MODEL_FORMAT,
        "meta": _plain_copy(meta, "meta"),
        "modules": describe(model),
        "state_dict": {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def model_options(meta: dict[str, Any]) -> dict[str, Any]:
    """The `create_model` options a file was made with (older metadata recorded only `width_mult`)."""
    if isinstance(meta.get("model_options"), dict):
        return dict(meta["model_options"])
    return {"width_mult": float(meta["width_mult"])} if "width_mult" in meta else {}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a model saved by `save_model` (eval mode, on `device`) and its metadata."""
    path = Path(path)
    from edgeopt.models.external import register_env_factories

    register_env_factories()  # factory models named in the config: registered before the rebuild
    blob = load_plain(path, "model file")
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise EdgeoptError(f"{path}: not an edgeopt model file (format {MODEL_FORMAT}); re-run the stage that makes it")
    meta, modules, state = blob.get("meta"), blob.get("modules"), blob.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(modules, dict) or not isinstance(state, dict):
        raise EdgeoptError(f"{path}: incomplete edgeopt model file (meta, modules, state_dict)")
    model = rebuild(meta, modules, state, str(path))
    return model.to(device).eval(), meta


def rebuild(meta: dict[str, Any], modules: dict[str, Any], state: dict[str, torch.Tensor], origin: str) -> nn.Module:
    """`create_model(meta["arch"], ...)` made to match the recorded `modules` and loaded with `state`."""
    arch = meta.get("arch")
    try:
        model = create_model(str(arch), num_classes=int(meta.get("num_classes", 10)),
                             in_channels=int(meta.get("in_channels", 3)), **model_options(meta))
    except EdgeoptError as exc:
        raise EdgeoptError(f"{origin}: cannot rebuild the model ({exc})") from None
    except TypeError as exc:
        raise EdgeoptError(f"{origin}: cannot rebuild {arch!r} with its recorded options ({exc})") from None
    for name, desc in modules.items():
        if not isinstance(desc, dict) or not isinstance(desc.get("type"), str) or not isinstance(desc.get("attrs"), dict):
            raise EdgeoptError(f"{origin}: module {name!r}: malformed structure entry")
        current = _get(model, name)
        if current is None or type_name(type(current)) != desc["type"]:
            if name == "":
                raise EdgeoptError(f"{origin}: made as a {desc['type']}, but create_model({arch!r}) builds a "
                                   f"{type_name(type(model))}")
            current = _construct(name, desc, state, origin)
            _set(model, name, current)
        for k, v in desc["attrs"].items():
            if k in vars(current) and not k.startswith("_") and k not in _SKIPPED_ATTRS and _plain(v):
                setattr(current, k, v)
    extra = [n for n, _ in model.named_modules() if n not in modules]
    for name in sorted(extra, key=len, reverse=True):
        parent, _, leaf = name.rpartition(".")
        holder = _get(model, parent)
        if holder is not None:
            holder._modules.pop(leaf, None)
    _reshape(model, state, origin)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise EdgeoptError(f"{origin}: weights do not fit {arch!r} ({first[-1].strip() if first else exc})") from None
    return model


def _get(model: nn.Module, name: str) -> nn.Module | None:
    mod: nn.Module | None = model
    for part in name.split(".") if name else []:
        mod = mod._modules.get(part) if mod is not None else None
    return mod


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    holder = _get(model, parent)
    if holder is None:
        raise EdgeoptError(f"module {name!r} has no parent")
    holder._modules[leaf] = module


def _construct(name: str, desc: dict[str, Any], state: dict[str, torch.Tensor], origin: str) -> nn.Module:
    """A module the registry's model lacks: an edgeopt layer (`REBUILD`) or a `torch.nn` layer built from its
    recorded attributes (its exact shapes are set afterwards from the state dict)."""
    t, attrs = desc["type"], desc["attrs"]
    if t in REBUILD:
        return REBUILD[t](attrs)
    cls = getattr(nn, t.rpartition(".")[2], None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module) and type_name(cls) == t):
        raise EdgeoptError(f"{origin}: module {name!r} is a {t}, which create_model does not build and "
                           "edgeopt cannot construct")
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in attrs.items() if k in params and k != "self"}
    if "bias" in params:
        kwargs["bias"] = f"{name}.bias" in state
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise EdgeoptError(f"{origin}: module {name!r} ({t}): cannot construct it ({exc})") from None


def _reshape(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Give parameters and buffers the saved shapes (pruned layers), so `load_state_dict` fills them."""
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise EdgeoptError(f"{origin}: state_dict[{key!r}] is not a tensor")
        owner, _, leaf = key.rpartition(".")
        mod = _get(model, owner)
        if mod is None:
            continue  # reported by load_state_dict as an unexpected key
        if leaf in mod._parameters and mod._parameters[leaf] is not None:
            old = mod._parameters[leaf]
            if old.shape != tensor.shape:
                mod._parameters[leaf] = nn.Parameter(torch.empty(tensor.shape, dtype=old.dtype),
                                                     requires_grad=old.requires_grad)
        elif leaf in mod._buffers and mod._buffers[leaf] is not None:
            old_buf = mod._buffers[leaf]
            if old_buf.shape != tensor.shape:
                mod._buffers[leaf] = torch.empty(tensor.shape, dtype=old_buf.dtype)
