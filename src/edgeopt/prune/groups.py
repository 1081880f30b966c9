"""Prunable channel groups of a model (torch-pruning DepGraph) and structured pruning by per-group ratios.

A group is every layer whose channels must be removed together (residual adds, concats,
depthwise convs). Groups are named by their first member layer in module order, so names are
stable across runs and readable in sensitivity tables and recipes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from edgeopt.errors import EdgeoptError

#: importance criteria a structured recipe may name (`importance:` key)
IMPORTANCES: dict[str, Callable[[], tp.importance.Importance]] = {
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "random": lambda: tp.importance.RandomImportance(),
}


def importance(name: str) -> tp.importance.Importance:
    if name not in IMPORTANCES:
        raise EdgeoptError(f"importance: unknown criterion {name!r} (known: {', '.join(IMPORTANCES)})")
    return IMPORTANCES[name]()


@dataclass
class GroupInfo:
    """A prunable group: its name, channel count and member layers (out-channel pruned)."""

    name: str
    channels: int
    members: list[str]


def classifier_layers(model: nn.Module, num_classes: int | None = None) -> list[nn.Module]:
    """Layers whose outputs are the class logits: never pruned."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if num_classes is None:
        return linears[-1:]
    return [m for m in linears if m.out_features == num_classes] or linears[-1:]


def build_graph(model: nn.Module, image_size: int, in_channels: int) -> tp.DependencyGraph:
    example = torch.zeros(1, in_channels, image_size, image_size, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as exc:  # noqa: BLE001 - tracing failures of arbitrary user models
        line = (str(exc).strip().splitlines() or [""])[0][:160]
        raise EdgeoptError(f"prune: torch-pruning's DepGraph cannot trace this model ({type(exc).__name__}: "
                           f"{line}); it has no structurally prunable groups") from None
    finally:
        model.train(was_training)
    return dg


def unsafe_reason(group: tp.Group) -> str | None:
    """Why DepGraph's pruning of `group` is not trusted, or None.

    The group's dependency chain is read, not the model's class names: a concat or split (its channel
    offsets shift as channels go; channel shuffle splits and re-interleaves), a channel-wise multiply (the
    gate of a squeeze-excitation block rescales channels by a second path) or a grouped, non-depthwise
    convolution (channels must go in whole groups). Residual adds and depthwise convolutions couple
    channels one to one, which DepGraph handles exactly, so those groups stay prunable.
    """
    for dep, _ in group:
        mod = dep.target.module
        kind = type(mod).__name__
        if kind == "_ConcatOp":
            return "concat"
        if kind in ("_SplitOp", "_UnbindOp"):
            return "split (channel shuffle / chunk)"
        if kind == "_ElementWiseOp" and "Mul" in str(getattr(mod, "_grad_fn", "")):
            return "channel-wise multiply (squeeze-excitation gate)"
        if isinstance(mod, nn.Conv2d) and 1 < mod.groups != mod.in_channels:
            return "grouped convolution"
    return None


def _iter_groups(
    model: nn.Module, dg: tp.DependencyGraph, ignored: list[nn.Module], unsafe: bool = False
) -> Iterator[tuple[str, nn.Module, list[str], tp.Group]]:
    """Prunable groups (name, root, members, group); with `unsafe`, only the ones `unsafe_reason` rejects."""
    order = {m: i for i, (_, m) in enumerate(model.named_modules())}
    names = {m: n for n, m in model.named_modules()}
    for group in dg.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        members = [
            dep.target.module
            for dep, _ in group
            if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, (nn.Conv2d, nn.Linear))
        ]
        members = sorted(set(members), key=lambda m: order.get(m, 1 << 30))
        if not members or (unsafe_reason(group) is not None) != unsafe:
            continue
        root = group[0].dep.target.module
        yield names[members[0]], root, [names[m] for m in members], group


def unprunable_groups(
    model: nn.Module, image_size: int, in_channels: int, num_classes: int | None = None,
    ignore: list[str] | None = None,
) -> dict[str, str]:
    """Groups left unpruned because DepGraph cannot prune them safely: name -> reason (see `unsafe_reason`)."""
    ignored = classifier_layers(model, num_classes) + _modules_named(model, ignore or [])
    dg = build_graph(model, image_size, in_channels)
    return {name: str(unsafe_reason(group)) for name, _, _, group in _iter_groups(model, dg, ignored, unsafe=True)}


def list_groups(
    model: nn.Module, image_size: int, in_channels: int, num_classes: int | None = None,
    ignore: list[str] | None = None,
) -> list[GroupInfo]:
    """Every prunable group of `model` (classifier and `ignore`d layers excluded)."""
    ignored = classifier_layers(model, num_classes) + _modules_named(model, ignore or [])
    dg = build_graph(model, image_size, in_channels)
    out = []
    for name, root, members, _ in _iter_groups(model, dg, ignored):
        out.append(GroupInfo(name, int(dg.get_out_channels(root)), members))
    return out


def channel_importance(
    model: nn.Module, image_size: int, in_channels: int, num_classes: int | None = None, criterion: str = "l2",
    ignore: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Each group's per-channel importance, divided by the group's mean (torch-pruning's `normalizer`), so channels
    of different groups compare on one scale: DepGraph's global ranking."""
    imp = importance(criterion)
    ignored = classifier_layers(model, num_classes) + _modules_named(model, ignore or [])
    dg = build_graph(model, image_size, in_channels)
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, root, _, _ in _iter_groups(model, dg, ignored):
            pruner = dg.get_pruner_of_module(root)
            channels = int(pruner.get_out_channels(root))
            out[name] = imp(dg.get_pruning_group(root, pruner.prune_out_channels, list(range(channels)))).float().cpu()
    return out


def _modules_named(model: nn.Module, names: list[str]) -> list[nn.Module]:
    mods = dict(model.named_modules())
    unknown = [n for n in names if n not in mods]
    if unknown:
        raise EdgeoptError(f"prune.ignore: unknown layer {unknown[0]!r}")
    return [mods[n] for n in names]


def kept_channels(channels: int, ratio: float, round_to: int | None) -> int:
    """Channels left after pruning `ratio` of `channels`, rounded to the nearest multiple of `round_to`."""
    keep = channels * (1.0 - ratio)
    if round_to and round_to > 1:
        keep = round(keep / round_to) * round_to
        return int(min(channels, max(round_to, keep)))
    return int(min(channels, max(1, round(keep))))


def resolve_ratios(ratios: dict[str, float], members: dict[str, list[str]]) -> dict[str, float]:
    """Recipe names (a group's name or any of its member layers) -> group names; unknown names are errors."""
    alias = {m: gname for gname, ms in members.items() for m in ms}
    resolved: dict[str, float] = {}
    for name, r in ratios.items():
        if name not in alias:
            raise EdgeoptError(f"recipe: unknown or unprunable layer {name!r} (prunable groups: {', '.join(members)})")
        g = alias[name]
        if g in resolved and name != g:
            raise EdgeoptError(f"recipe: layer {name!r} is in group {g!r}, which is already given a ratio")
        resolved[g] = float(r)
    return resolved


def step_keeps(channels: int, final: int, steps: int) -> list[int]:
    """Channels kept after each of `steps` pruning steps, an equal share removed per step (the last is `final`).

    Iterative pruning (prune a little, fine-tune, repeat) keeps the network trainable where one-shot
    pruning to the same width collapses it; intermediate counts are not rounded (never deployed).
    """
    return [channels - round((channels - final) * i / steps) for i in range(1, steps + 1)]


@dataclass
class Cut:
    """One group's planned cut: the channels it has, keeps, and which (lowest importance) it removes."""

    root: nn.Module
    channels: int
    keep: int
    remove: list[int]


def plan_cuts(
    model: nn.Module,
    ratios: dict[str, float],
    image_size: int,
    in_channels: int,
    num_classes: int | None = None,
    round_to: int | None = 8,
    criterion: str = "l2",
    ignore: list[str] | None = None,
    chosen: dict[str, list[int]] | None = None,
) -> tuple[tp.DependencyGraph, dict[str, Cut]]:
    """Which channels of each named group `ratios` removes (lowest importance first, or a group's `chosen`
    channels, e.g. those a regularization phase drove to zero), without pruning.

    Names may be a group's name or any of its member layers; an unknown name is an error.
    """
    for name, r in ratios.items():
        if not 0.0 <= float(r) < 1.0:
            raise EdgeoptError(f"recipe: ratio for {name!r} must be in [0, 1), got {r}")
    imp = importance(criterion)
    ignored = classifier_layers(model, num_classes) + _modules_named(model, ignore or [])
    dg = build_graph(model, image_size, in_channels)
    infos = list(_iter_groups(model, dg, ignored))
    resolved = resolve_ratios(ratios, {gname: members for gname, _, members, _ in infos})
    roots = {gname: root for gname, root, _, _ in infos}
    cuts: dict[str, Cut] = {}
    with torch.no_grad():
        for gname, ratio in resolved.items():
            root = roots[gname]
            pruner = dg.get_pruner_of_module(root)
            channels = int(pruner.get_out_channels(root))
            keep = kept_channels(channels, ratio, round_to)
            remove: list[int] = []
            if chosen is not None and gname in chosen:
                remove = sorted(chosen[gname])
                if len(remove) != channels - keep:
                    raise EdgeoptError(f"recipe: group {gname!r}: {len(remove)} chosen channels, the ratio removes "
                                       f"{channels - keep}")
            elif keep < channels:
                scores = imp(dg.get_pruning_group(root, pruner.prune_out_channels, list(range(channels))))
                remove = sorted(torch.argsort(scores)[: channels - keep].tolist())
            cuts[gname] = Cut(root, channels, keep, remove)
    return dg, cuts


def cut_slices(dg: tp.DependencyGraph, cuts: dict[str, Cut]) -> list[tuple[nn.Module, list[int]]]:
    """(layer, output channels) that each planned cut removes, over every member of its group: the conv/linear
    rows and batch-norm channels whose parameters make those channels' outputs (what regularization shrinks)."""
    out: list[tuple[nn.Module, list[int]]] = []
    for cut in cuts.values():
        if not cut.remove:
            continue
        pruner = dg.get_pruner_of_module(cut.root)
        for dep, idxs in dg.get_pruning_group(cut.root, pruner.prune_out_channels, cut.remove):
            mod = dep.target.module
            out_fn = dg.is_out_channel_pruning_fn(dep.handler)
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) or (out_fn and isinstance(mod, (nn.Conv2d, nn.Linear))):
                out.append((mod, sorted(int(i) for i in idxs)))
    return out


def prune_structured(
    model: nn.Module,
    ratios: dict[str, float],
    image_size: int,
    in_channels: int,
    num_classes: int | None = None,
    round_to: int | None = 8,
    criterion: str = "l2",
    ignore: list[str] | None = None,
    chosen: dict[str, list[int]] | None = None,
) -> dict[str, dict[str, int]]:
    """Prune `model` in place: each group loses the channels `plan_cuts` picks (same arguments).

    Returns, per group, the channels before and after.
    """
    dg, cuts = plan_cuts(model, ratios, image_size, in_channels, num_classes, round_to, criterion, ignore, chosen)
    report: dict[str, dict[str, int]] = {}
    with torch.no_grad():
        for gname, cut in cuts.items():
            report[gname] = {"before": cut.channels, "after": cut.keep}
            if cut.remove:
                pruner = dg.get_pruner_of_module(cut.root)
                dg.get_pruning_group(cut.root, pruner.prune_out_channels, cut.remove).prune()
    return report
