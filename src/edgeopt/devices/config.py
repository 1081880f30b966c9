"""Device settings from the `devices:` config section, with defaults and one-line errors.

The JSON schema checks types; this module fills per-device defaults (the schema cannot, as
devices are a free-form mapping) and resolves paths such as `~/...` and the identity file.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.names import check_name

RUNTIME_NAMES = ("onnxruntime", "tflite", "tensorrt", "pytorch")
POWER_SOURCES = ("auto", "none", "tegrastats", "hwmon", "rapl")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
PROVIDER_RE = re.compile(r"^[A-Za-z0-9]+ExecutionProvider$")
#: what a device's python may hold: it is run through `env` and a remote shell, so no spaces or shell syntax
PYTHON_RE = re.compile(r"^[A-Za-z0-9_./~+@%:=-]+$")


def check_python(value: object, key: str) -> None:
    """Refuse an interpreter path with spaces or shell characters (it would be split or run as shell)."""
    if value is not None and not PYTHON_RE.match(str(value)):
        raise EdgeoptError(
            f"config: {key}: {value!r} must be a path of letters, digits and / . _ - + ~ @ % : = (no spaces or "
            "shell characters; link the interpreter from a path without them)"
        )


@dataclass(frozen=True)
class DeviceConfig:
    """One device: `host` None means the local machine (no SSH)."""

    name: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    strict_host_key_checking: str = "yes"
    python: str | None = None
    workdir: str = ".cache/edgeopt-device"
    runtimes: tuple[str, ...] = ("onnxruntime", "tflite")
    providers: tuple[str, ...] = ()  # ONNX Runtime execution providers, in order (empty: CPU)
    threads: int | None = None
    power: str = "auto"
    nvpmodel: int | None = None
    timeout: float | None = None
    connect_timeout: int = 10
    retries: int = 1
    transfer: str = "rsync"
    enabled: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.host is None

    @property
    def label(self) -> str:
        """How error messages name the device: `jetson (ubuntu@10.0.0.5:22)`."""
        if self.is_local:
            return f"{self.name} (local)"
        where = f"{self.user}@{self.host}" if self.user else self.host
        return f"{self.name} ({where}{':' + str(self.port) if self.port else ''})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runtimes"] = list(self.runtimes)
        d["providers"] = list(self.providers)
        return d


_KEYS = {f for f in DeviceConfig.__dataclass_fields__ if f != "name"}


def home_relative(value: str) -> str:
    """`~/x` -> `x`: remote commands and rsync paths start in the remote home, and a quoted `~` never expands."""
    if value == "~":
        return "."
    return value[2:] if value.startswith("~/") else value


def device_from_settings(name: str, settings: dict[str, Any] | None) -> DeviceConfig:
    """Validate one device's settings (raises `EdgeoptError` naming `devices.<name>.<key>`)."""
    check_name(name, f"devices.{name}")
    check_python((settings or {}).get("python"), f"devices.{name}.python")
    s = dict(settings or {})
    unknown = sorted(set(s) - _KEYS)
    if unknown:
        raise EdgeoptError(
            f"config: devices.{name}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(_KEYS))})"
        )
    s = {k: v for k, v in s.items() if v is not None or k in ("host",)}
    if name == "local" and s.get("host"):
        raise EdgeoptError(
            "config: devices.local.host: the local device runs without SSH; name it differently"
        )
    runtimes = tuple(s.get("runtimes", DeviceConfig.runtimes))
    bad = [r for r in runtimes if r not in RUNTIME_NAMES]
    if bad:
        raise EdgeoptError(
            f"config: devices.{name}.runtimes: {bad[0]!r} is not a runtime ({', '.join(RUNTIME_NAMES)})"
        )
    s["runtimes"] = runtimes
    providers = tuple(s.get("providers") or ())
    bad = [p for p in providers if not PROVIDER_RE.match(str(p))]
    if bad:
        raise EdgeoptError(
            f"config: devices.{name}.providers: {bad[0]!r} is not an ONNX Runtime execution provider name "
            "(e.g. TensorrtExecutionProvider, CUDAExecutionProvider, XnnpackExecutionProvider, CPUExecutionProvider)"
        )
    s["providers"] = providers
    if s.get("power", "auto") not in POWER_SOURCES:
        raise EdgeoptError(f"config: devices.{name}.power: must be one of {', '.join(POWER_SOURCES)}")
    if s.get("transfer", "rsync") not in ("rsync", "scp"):
        raise EdgeoptError(f"config: devices.{name}.transfer: must be rsync or scp")
    if s.get("strict_host_key_checking", "yes") not in ("yes", "accept-new"):
        raise EdgeoptError(
            f"config: devices.{name}.strict_host_key_checking: must be 'yes' or 'accept-new' "
            "(host keys are always verified)"
        )
    for key in ("identity_file", "known_hosts", "ssh_config"):
        if s.get(key):
            path = Path(os.path.expanduser(str(s[key])))
            if not path.exists():
                raise EdgeoptError(f"config: devices.{name}.{key}: {path} not found")
            s[key] = str(path.resolve())
    if "workdir" in s:
        s["workdir"] = home_relative(str(s["workdir"]))
    if s.get("python") and s.get("host"):
        s["python"] = home_relative(str(s["python"]))
    if "extra_env" in s:
        s["extra_env"] = {str(k): str(v) for k, v in dict(s["extra_env"]).items()}
    try:
        return DeviceConfig(name=name, **s)
    except TypeError as exc:
        raise EdgeoptError(f"config: devices.{name}: {exc}") from None


def device_configs(config: dict[str, Any]) -> dict[str, DeviceConfig]:
    """All devices of a (full) config, `local` always included; disabled ones left out."""
    section = dict(config.get("devices") or {})
    section.setdefault("local", {})
    out = {name: device_from_settings(name, settings) for name, settings in section.items()}
    return {name: d for name, d in out.items() if d.enabled}


# ---------------------------------------------------------------- the `devices:` section of a config
def device_settings(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Enabled devices -> their settings (`local` always present)."""
    devices = {k: dict(v or {}) for k, v in (config.get("devices") or {}).items()}
    devices.setdefault("local", {})
    return {k: v for k, v in devices.items() if v.get("enabled", True)}


def device_runtimes(config: dict[str, Any], device: str) -> list[str]:
    return list(device_settings(config)[device].get("runtimes") or ["onnxruntime", "tflite"])
