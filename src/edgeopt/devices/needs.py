"""What the planned jobs need on a device, and checking it there with the interpreter each job uses.

A board passes `check-device` only when every job the config plans on it can start: the runtime
of every planned format (TensorRT with the CUDA binding its runner imports), torch or
onnxruntime-training for the planned retraining frameworks (with `retrain.device_python` when
set), the power source and nvpmodel when configured. Each missing piece is one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edgeopt import plan
from edgeopt.devices.transport import Device, DeviceError

#: runtime -> (what is imported, any one of these modules)
RUNTIME_MODULES: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime",),
    "tflite": ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"),
    "tensorrt": ("tensorrt",),
}
#: the CUDA binding edgeopt.harness.tensorrt's runner uses (TensorRT's Python package brings none)
CUDA_BINDING = ("cuda.bindings.runtime", "cuda.cudart", "pycuda.driver")
#: retraining framework -> modules its device-side script imports
TRAINING_MODULES: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch",),
    "onnxruntime": ("onnxruntime.training.api",),
}
#: how a missing module is installed (shown in the line that reports it)
HINTS = {
    "numpy": "pip install numpy",
    "onnxruntime": "pip install onnxruntime (or NVIDIA's onnxruntime-gpu wheel on a Jetson)",
    "ai_edge_litert.interpreter": "pip install ai-edge-litert",
    "tensorrt": "JetPack's python3-libnvinfer; make the venv with --system-site-packages",
    "cuda.bindings.runtime": "pip install cuda-python (matching the board's CUDA)",
    "torch": "pip install torch (NVIDIA's JetPack wheel on a Jetson)",
    "onnxruntime.training.api": "a venv with onnxruntime-training: edgeopt device setup makes one",
}


@dataclass(frozen=True)
class Need:
    """One thing a planned job imports on the device: any of `modules`, with interpreter `python`."""

    what: str  # what needs it, e.g. "bench ort-fp32, ort-int8" or "retrain pytorch"
    modules: tuple[str, ...]
    python: str  # the interpreter the job runs with on the device

    @property
    def hint(self) -> str:
        return HINTS.get(self.modules[0], f"install {self.modules[0]}")


def training_python(config: dict[str, Any], device: Device, framework: str) -> str:
    """The interpreter a retraining job of `framework` uses on `device` (as edgeopt.retrain.run picks it)."""
    from edgeopt.devices.config import home_relative
    from edgeopt.retrain import ort_env
    from edgeopt.retrain.runner import job_python

    section = config.get("retrain") or {}
    ort = section.get("ort_python") or str(ort_env.venv_python())
    python = job_python(section, device.name, framework, ort)
    if python is None:
        return device.python
    return python if device.config.is_local else home_relative(str(python))


def planned_needs(config: dict[str, Any], device: Device) -> list[Need]:
    """Everything the benchmark and retraining jobs planned on `device` import there."""
    needs: list[Need] = []
    name = device.name
    if name in plan.bench_devices(config):
        by_runtime: dict[str, list[str]] = {}
        for fmt in plan.bench_formats(config, name):
            by_runtime.setdefault(plan.format_runtime(fmt), []).append(fmt)
        if by_runtime:
            needs.append(Need("the benchmark harness", ("numpy",), device.python))
        for runtime, fmts in by_runtime.items():
            what = f"bench {', '.join(fmts)}"
            needs.append(Need(what, RUNTIME_MODULES[runtime], device.python))
            if runtime == "tensorrt":
                needs.append(Need(what + " (running engines)", CUDA_BINDING, device.python))
    for framework in sorted(retrain_frameworks(config, name)):
        needs.append(Need(f"retrain {framework}", TRAINING_MODULES[framework], training_python(config, device, framework)))
    return needs


#: found by walking the import path, never importing: a package's __init__ may need more than the job
#: (onnxruntime/training/__init__.py imports torch; the retraining script bypasses it) or take seconds (torch)
_PROBE = """
import importlib.machinery, json, sys
def found(name):
    path = None
    for part in name.split("."):
        if path is None and part != name.split(".")[0]:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, path)
        if spec is None:
            return False
        path = spec.submodule_search_locations
    return True
out = {}
for name in json.loads(sys.argv[1]):
    try:
        out[name] = found(name)
    except Exception:
        out[name] = False
print(json.dumps(out))
"""


def probe(device: Device, python: str, modules: list[str]) -> dict[str, bool] | str:
    """Which of `modules` `python` finds on the device (on its import path, nothing imported);
    a string saying why when that interpreter does not run."""
    try:
        proc = device.run([python, "-c", _PROBE, json.dumps(modules)], timeout=device.config.timeout or 120, check=False)
    except DeviceError as exc:
        return str(exc)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{python} does not run (exit {proc.returncode}: {last})"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def retrain_frameworks(config: dict[str, Any], name: str) -> set[str]:
    """The retraining frameworks the config plans on device `name`."""
    return {job[2] for job in plan.retrain_jobs(config) if job[0] == name}


def missing_runtimes(config: dict[str, Any], device: Device, info: dict[str, Any]) -> list[str]:
    """The device's declared `runtimes` that do not import (`info`: `Device.check()` with its `python`).
    `pytorch` counts where the PyTorch jobs run: with retraining planned `missing` reports it once, for the
    interpreter that job uses; else `retrain.device_python`'s torch interpreter, if set, is looked at."""
    missing = list(info["missing_runtimes"])
    if "pytorch" in missing:
        python = training_python(config, device, "pytorch")
        if "pytorch" in retrain_frameworks(config, device.name) or (
            python != device.python and probe(device, python, ["torch"]) == {"torch": True}
        ):
            missing.remove("pytorch")
    return missing


def power_problem(device: Device) -> str | None:
    """Why the configured power source (or nvpmodel) does not work on the device; None when it does."""
    cfg = device.config
    problems = []
    if cfg.power not in ("auto", "none"):
        res = device.run_module("edgeopt.harness.power", ["--check", cfg.power], check=False, timeout=120)
        if res.returncode != 0:
            why = (res.stdout.strip() or res.stderr.strip() or "no output").splitlines()[-1]
            problems.append(f"power source {cfg.power} does not work here ({why})")
    if cfg.nvpmodel is not None:
        proc = device.run(["sh", "-c", "command -v nvpmodel"], check=False, timeout=60)
        if proc.returncode != 0:
            problems.append(f"nvpmodel: {cfg.nvpmodel} is set but the board has no nvpmodel (not a Jetson?)")
    return "; ".join(problems) or None


def missing(config: dict[str, Any], device: Device) -> list[str]:
    """One line per missing piece the planned jobs need on `device` (empty: all there)."""
    lines: list[str] = []
    by_python: dict[str, list[Need]] = {}
    for need in planned_needs(config, device):
        by_python.setdefault(need.python, []).append(need)
    for python, needs in by_python.items():
        found = probe(device, python, sorted({m for n in needs for m in n.modules}))
        if isinstance(found, str):
            lines.append(f"{', '.join(n.what for n in needs)}: {found}")
            continue
        for n in needs:
            if not any(found.get(m) for m in n.modules):
                lines.append(
                    f"missing {' or '.join(n.modules)} for {n.what} in {python} ({n.hint})"
                )
    problem = power_problem(device)
    if problem:
        lines.append(problem)
    return lines
