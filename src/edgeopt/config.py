"""Config loading and validation against the package's `config.schema.yaml`.

The Snakefile calls `check_config` before Snakemake's own `validate()` so a bad key or
value stops the run with one line naming the key, instead of a schema dump.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from edgeopt.errors import EdgeoptError

#: the checkout (the folder holding Snakefile, config/ and workflow/); relative config paths fall back to it
CHECKOUT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = Path(__file__).resolve().parent / "config.schema.yaml"  # package data: works installed


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _with_defaults(validator_class: type) -> type:
    """A validator that fills `default`s while validating (as Snakemake's `validate(set_default=True)`)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            parts.append(extra[0])
            return ".".join(parts) + ": unknown key (allowed: " + ", ".join(sorted(allowed)) + ")"
    if error.validator == "propertyNames":
        return ".".join(parts) + f": {error.instance!r} is not a known name"
    return ".".join(parts) or "<top level>"


def check_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate `config` (filling defaults in place); raise `EdgeoptError` naming the first bad key."""
    schema = schema or load_schema()
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(
        cls(schema).iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        err = errors[0]
        where = _key_path(err)
        if ": " in where:
            raise EdgeoptError(f"config: {where}")
        raise EdgeoptError(f"config: {where}: {err.message}")
    _check_across_keys(config)
    return config


def _check_across_keys(config: dict[str, Any]) -> None:
    """Rules a JSON schema states poorly: caught here so a bad config fails before any training."""
    from edgeopt.model_entries import model_specs

    model_specs(config)  # each `models:` entry parses (names, one way in, safe folder names)
    prune = config.get("prune") or {}
    if (prune.get("schedule") or {}).get("steps", 1) > 1 and (prune.get("regularize") or {}).get("epochs", 0) > 0:
        raise EdgeoptError("config: prune.regularize: cannot be combined with prune.schedule.steps > 1 (choose one)")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """One YAML config file as a mapping, unvalidated (one-line errors for a missing or broken file)."""
    path = Path(path)
    if not path.exists():
        raise EdgeoptError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EdgeoptError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise EdgeoptError(f"{path}: top level must be a mapping")
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it (defaults filled)."""
    return check_config(read_config_file(path))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("configfile", nargs="+", help="config files, later ones override earlier ones")


def run(args: argparse.Namespace) -> int:
    merged: dict[str, Any] = {}
    for f in args.configfile:
        merged = deep_merge(merged, read_config_file(f))
    check_config(merged)
    from edgeopt import plan

    for note in plan.model_notes(merged):  # builds and checks every model from outside the registry
        print(note)
    print("config OK")
    return 0


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge like Snakemake merges `--configfile`s: nested mappings are updated, not replaced."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
