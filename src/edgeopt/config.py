"""Config loading and validation against the package's `config.schema.yaml`.

The Snakefile calls `check_config` before Snakemake's own `validate()` so a bad key or
value stops the run with one line naming the key, instead of a schema dump.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from edgeopt.data.download_policy import check_download
from edgeopt.devices.config import check_python, device_runtimes, device_settings
from edgeopt.errors import EdgeoptError
from edgeopt.names import NAME_PATTERN, NAME_RULE, check_path_component

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


def _bad_name(error: jsonschema.ValidationError) -> str | None:
    """`key: 'x' is not a usable name (...)` when `error` is a folder-name pattern miss, else None."""
    for err in [error, *(error.context or [])]:
        if err.validator == "pattern" and err.validator_value == NAME_PATTERN:
            parts = [str(p) for p in error.absolute_path]
            if error.validator == "propertyNames":
                parts.append(str(err.instance))
            return ".".join(parts) + f": {err.instance!r} is not a usable name ({NAME_RULE})"
    return None


def check_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate `config` (filling defaults in place); raise `EdgeoptError` naming the first bad key."""
    schema = schema or load_schema()
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(
        cls(schema).iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        err = errors[0]
        bad_name = _bad_name(err)
        if bad_name:
            raise EdgeoptError(f"config: {bad_name}")
        where = _key_path(err)
        if ": " in where:
            raise EdgeoptError(f"config: {where}")
        raise EdgeoptError(f"config: {where}: {err.message}")
    _check_across_keys(config)
    return config


def fill_section(name: str, section: dict[str, Any] | None) -> dict[str, Any]:
    """One config section validated and completed with the schema's defaults (a copy): a stage command
    called with part of a section (a rule passes only the keys that make its outputs stale, tests pass
    a few) reads every key by name, and the defaults stay written once, in the schema."""
    schema = load_schema()["properties"][name]
    filled = copy.deepcopy(section or {})
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    error = next(iter(sorted(cls(schema).iter_errors(filled), key=lambda e: len(e.absolute_path))), None)
    if error is not None:
        where = ".".join([name, *map(str, error.absolute_path)])
        raise EdgeoptError(f"config: {where}: {error.message}")
    return filled


def _check_across_keys(config: dict[str, Any]) -> None:
    """Rules a JSON schema states poorly: caught here so a bad config fails before any training."""
    from edgeopt.model_entries import model_specs

    model_specs(config)  # each `models:` entry parses (names, one way in, safe folder names)
    prune = config.get("prune") or {}
    if (prune.get("schedule") or {}).get("steps", 1) > 1 and (prune.get("regularize") or {}).get("epochs", 0) > 0:
        raise EdgeoptError("config: prune.regularize: cannot be combined with prune.schedule.steps > 1 (choose one)")
    dataset = config.get("dataset") or {}
    if dataset.get("url"):
        check_download(dataset["url"], dataset.get("checksum"))
    for i, model in enumerate(config.get("models") or []):
        if isinstance(model, str) and ":" not in model:  # entries with a source are named by model_specs above
            check_path_component(model, f"models.{i}")
    _check_qat_variants(config)
    _check_latency_target(config)
    for name, settings in (config.get("devices") or {}).items():
        check_python((settings or {}).get("python"), f"devices.{name}.python")
    retrain = config.get("retrain") or {}
    check_python(retrain.get("ort_python"), "retrain.ort_python")
    for name, pythons in (retrain.get("device_python") or {}).items():
        for framework, python in (pythons or {}).items():
            check_python(python, f"retrain.device_python.{name}.{framework}")
    if (config.get("train") or {}).get("epochs") == 0:
        print(f"edgeopt: warning: {UNTRAINED_WARNING}", file=sys.stderr)


#: train.epochs 0 is allowed (evaluating given weights) but never silent
UNTRAINED_WARNING = "train.epochs: 0: every baseline model is evaluated and saved untrained (its initial weights)"


def _check_qat_variants(config: dict[str, Any]) -> None:
    """Every `quantize.qat.variants` entry is a variant this config builds (a typo would drop it silently)."""
    qat = (config.get("quantize") or {}).get("qat") or {}
    if not qat.get("enabled", True):
        return
    built = ["baseline", *((config.get("prune") or {}).get("variants") or [])]
    for v in qat.get("variants") or []:
        if (v in built and v != "width") or ("width" in built and re.fullmatch(r"width[0-9.]+", v)):
            continue
        shown = ", ".join("width<mult>" if b == "width" else b for b in built)
        raise EdgeoptError(f"config: quantize.qat.variants: {v!r} is not a variant this config builds ({shown})")


def _check_latency_target(config: dict[str, Any]) -> None:
    """A latency or speed-up target is measured on a device: it must be an enabled device, and the format one that
    device runs (and, planned from a latency table, one the host can build files of to time)."""
    from edgeopt.formats import FORMATS, runtime
    from edgeopt.prune.latency_table import TABLE_FORMATS, plans_from_latency_table

    target = (config.get("prune") or {}).get("target") or {}
    if target.get("kind") not in ("latency", "speedup") or "pruned" not in ((config.get("prune") or {}).get("variants") or []):
        return
    if target.get("kind") == "speedup" and float(target.get("value", 2.5)) <= 1:
        raise EdgeoptError(f"config: prune.target.value: a speedup must be > 1, got {target.get('value')}")
    devices = device_settings(config)
    device = target.get("device", "local")
    if device not in devices:
        raise EdgeoptError(f"config: prune.target.device: {device!r} is not an enabled device "
                           f"(devices: {', '.join(devices)})")
    runtimes = device_runtimes(config, device)
    formats = [f for f in FORMATS if runtime(f) in runtimes]
    if plans_from_latency_table(target):
        formats = [f for f in formats if f in TABLE_FORMATS]
    if target.get("format", "ort-fp32") not in formats:
        raise EdgeoptError(f"config: prune.target.format: {target.get('format')!r} is not a format "
                           f"{'timed for a latency table' if plans_from_latency_table(target) else 'benchmarked'} on "
                           f"{device} (its runtimes allow: {', '.join(formats)})")


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
    from edgeopt.model_capabilities import model_notes

    for note in model_notes(merged):  # builds and checks every model from outside the registry
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
