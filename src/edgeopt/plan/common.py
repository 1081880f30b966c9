"""Planning helpers every stage shares: config sections as rule params, the data cache, model files."""

from __future__ import annotations

import json
from typing import Any

from edgeopt import layout

RESULTS = layout.RESULTS


def compact_json(obj: Any) -> str:
    """Sorted, compact JSON: a rule param whose text changes exactly when its content does."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def section_json(config: dict[str, Any], *keys: str) -> str:
    """A config section as compact JSON: rules pass it as `params`, so editing it reruns the rule."""
    node: Any = config
    for k in keys:
        node = node[k]
    return compact_json(node)


def subset(section: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Only `keys` of a config section: those that make a rule's outputs stale."""
    return {k: section[k] for k in keys if k in section}


def subset_json(section: dict[str, Any], keys: tuple[str, ...]) -> str:
    """`subset` as compact JSON (a rule param)."""
    return compact_json(subset(section, keys))


def data_files(config: dict[str, Any]) -> dict[str, str]:
    """The prepared dataset cache of this config: split name (and `meta`) -> file."""
    return layout.data_files(config["dataset"]["name"])


def data_dir(config: dict[str, Any]) -> str:
    """Folder of the prepared dataset cache."""
    return layout.fill(layout.DATA_META, dataset=config["dataset"]["name"]).rsplit("/", 1)[0]


def data_targets(config: dict[str, Any]) -> list[str]:
    return list(data_files(config).values())


def model_file(model: str, variant: str) -> str:
    return layout.path(layout.MODEL_FILE, model=model, variant=variant)


def model_metrics(model: str, variant: str) -> str:
    return layout.path(layout.MODEL_METRICS, model=model, variant=variant)

