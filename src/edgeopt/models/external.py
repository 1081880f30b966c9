"""Models from outside the built-in registry: torchvision and timm constructors, the user's own factories,
and weights trained elsewhere.

Nothing here downloads (no pretrained weights: the build machines may be offline) and nothing unpickles
code: starting weights load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeopt.errors import EdgeoptError
from edgeopt.model_entries import FACTORIES_ENV

#: config name -> (factory reference, options) of the user's own models
_FACTORIES: dict[str, tuple[str, dict[str, Any]]] = {}


def register_factory(name: str, ref: str, options: dict[str, Any] | None = None) -> None:
    """Make `create_model(name, ...)` call the function `ref` names ("pkg.mod:fn" or "/abs/file.py:fn")."""
    _FACTORIES[name] = (ref, dict(options or {}))


def factory_names() -> list[str]:
    register_env_factories()
    return sorted(_FACTORIES)


def register_env_factories() -> None:
    """Register the factories a rule's environment names (`EDGEOPT_MODEL_FACTORIES`, set by the workflow)."""
    text = os.environ.get(FACTORIES_ENV)
    if not text:
        return
    for name, entry in json.loads(text).items():
        if name not in _FACTORIES:
            register_factory(name, entry["factory"], entry.get("options"))
            import_factory(name)  # so pickled modules of this model's classes find their module


def _module_name(path: Path) -> str:
    """A stable module name for a factory file (the same in every process, so pickles resolve)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]  # deterministic, unlike hash()
    return f"edgeopt_factory_{path.stem}_{digest}"


def import_factory(name: str) -> Callable[..., Any]:
    """The function a registered factory names, imported once; one-line errors for a bad reference."""
    ref, _ = _FACTORIES[name]
    target, _, fn_name = ref.rpartition(":")
    where = f"model {name}: factory {ref!r}"
    try:
        if target.endswith(".py") or "/" in target:
            path = Path(target)
            if not path.is_file():
                raise EdgeoptError(f"{where}: file {path} not found")
            mod_name = _module_name(path)
            module = sys.modules.get(mod_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise EdgeoptError(f"{where}: {path} is not a Python file")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[mod_name]
                    raise
        else:
            module = importlib.import_module(target)
    except EdgeoptError:
        raise
    except Exception as exc:  # noqa: BLE001 - any import failure of user code is bad input
        raise EdgeoptError(f"{where}: import failed ({type(exc).__name__}: {_first_line(exc)})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise EdgeoptError(f"{where}: {target} has no function {fn_name!r}")
    return fn


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _checked(model: Any, where: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise EdgeoptError(f"{where}: returned {type(model).__name__}, not a torch.nn.Module")
    if not any(True for _ in model.parameters()):
        raise EdgeoptError(f"{where}: the returned module has no parameters")
    return model


def build_factory(name: str, num_classes: int, in_channels: int, options: dict[str, Any]) -> nn.Module:
    """Call a registered factory with num_classes, in_channels and its options (config ones, then `options`)."""
    fn = import_factory(name)
    ref, registered = _FACTORIES[name]
    kwargs = {**registered, **options}
    where = f"model {name}: factory {ref!r}"
    try:
        model = fn(num_classes=num_classes, in_channels=in_channels, **kwargs)
    except TypeError as exc:
        raise EdgeoptError(f"{where}: bad arguments ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - user code
        raise EdgeoptError(f"{where}: failed ({type(exc).__name__}: {_first_line(exc)})") from None
    return _checked(model, where)


def torchvision_names() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))


def build_torchvision(ctor: str, num_classes: int, in_channels: int, options: dict[str, Any]) -> nn.Module:
    """A torchvision classification model with `num_classes` outputs and random weights (no download).

    Grayscale data (`in_channels` 1): the first convolution is rebuilt with one input channel, same
    kernel, stride, padding and width (a weights file then must have been trained for one channel too).
    """
    from torchvision import models

    names = torchvision_names()
    if ctor not in names:
        raise EdgeoptError(f"model torchvision:{ctor}: not a torchvision classification model "
                           f"(e.g. {', '.join(n for n in names if n.startswith(('mobilenet', 'shuffle')))})")
    options = {k: v for k, v in options.items() if k not in ("weights", "num_classes")}
    where = f"model torchvision:{ctor}"
    try:
        model = models.get_model(ctor, weights=None, num_classes=num_classes, **options)
    except (TypeError, ValueError) as exc:
        raise EdgeoptError(f"{where}: bad options {sorted(options)} ({_first_line(exc)})") from None
    return _set_in_channels(_checked(model, where), in_channels, where)


def build_timm(ctor: str, num_classes: int, in_channels: int, options: dict[str, Any]) -> nn.Module:
    """A timm model (`pip install edgeopt[timm]`); timm rebuilds the stem for `in_channels` itself."""
    try:
        import timm
    except ImportError:
        raise EdgeoptError(f"model timm:{ctor}: timm is not installed (pip install 'edgeopt[timm]')") from None
    if not timm.is_model(ctor):
        raise EdgeoptError(f"model timm:{ctor}: not a timm model name (see timm.list_models())")
    where = f"model timm:{ctor}"
    try:
        model = timm.create_model(ctor, pretrained=False, num_classes=num_classes, in_chans=in_channels, **options)
    except (TypeError, ValueError) as exc:
        raise EdgeoptError(f"{where}: bad options {sorted(options)} ({_first_line(exc)})") from None
    return _checked(model, where)


def _set_in_channels(model: nn.Module, in_channels: int, where: str) -> nn.Module:
    """Rebuild the first convolution for `in_channels` inputs when it expects another count."""
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            if mod.in_channels == in_channels:
                return model
            if mod.groups != 1:
                raise EdgeoptError(f"{where}: first convolution {name} is grouped; cannot rebuild it for "
                                   f"{in_channels} channel(s)")
            new = nn.Conv2d(in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                            mod.dilation, 1, mod.bias is not None, mod.padding_mode)
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
            return model
    raise EdgeoptError(f"{where}: has no Conv2d; not an image classifier")


# ---------------------------------------------------------------- weights trained elsewhere
#: checkpoint keys that commonly hold the state dict
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a weights file (a bare state dict or a checkpoint holding one), code never run."""
    path = Path(path)
    if not path.is_file():
        raise EdgeoptError(f"{path}: weights file not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for an unsafe or broken file
        raise EdgeoptError(f"{path}: not a plain tensor state dict (loaded with weights_only=True: "
                           f"{_first_line(exc)})") from None
    if isinstance(blob, dict) and not any(isinstance(v, torch.Tensor) for v in blob.values()):
        blob = next((blob[k] for k in STATE_KEYS if isinstance(blob.get(k), dict)), blob)
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise EdgeoptError(f"{path}: no state dict of tensors found (keys tried: {', '.join(STATE_KEYS)})")
    prefix = "module."  # saved from DataParallel / DistributedDataParallel
    if all(k.startswith(prefix) for k in blob):
        blob = {k[len(prefix):]: v for k, v in blob.items()}
    return blob


def weights_mismatch(model: nn.Module, state: dict[str, torch.Tensor], shapes: bool = True) -> str | None:
    """The first key where `state` does not fit `model` (missing, unexpected, or with another shape)."""
    own = model.state_dict()
    for k in own:
        if k not in state:
            return f"key {k!r} missing from the file"
    for k in state:
        if k not in own:
            return f"unexpected key {k!r}"
    if shapes:
        for k, v in own.items():
            if tuple(state[k].shape) != tuple(v.shape):
                return f"key {k!r} has shape {tuple(state[k].shape)}, the model {tuple(v.shape)}"
    return None


def load_weights(model: nn.Module, path: str | Path, shapes: bool = True) -> nn.Module:
    """Load a weights file into `model`; the first mismatching key is named in a one-line error."""
    state = read_state_dict(path)
    problem = weights_mismatch(model, state, shapes)
    if problem:
        raise EdgeoptError(f"{path}: does not fit the model: {problem}")
    if shapes:
        model.load_state_dict(state)
    return model
