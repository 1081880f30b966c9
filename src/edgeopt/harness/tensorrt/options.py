"""How an engine is built: BuildOptions (the `convert.tensorrt` section + the model input) and the
trtexec command lines, spelled for the installed TensorRT version."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRECISIONS = ("fp32", "fp16", "int8", "best")

@dataclass
class BuildOptions:
    """How to build one engine. Mirrors the `convert.tensorrt` config section plus the model's input."""

    precision: str = "fp16"  # fp32 | fp16 | int8 | best (TensorRT picks per layer among fp32/fp16/int8)
    input_name: str = "input"
    input_shape: tuple[int, ...] = (3, 32, 32)  # per image (C, H, W); the batch dimension is added
    dynamic_batch: bool = True  # the ONNX batch dim is symbolic: build a min/opt/max profile
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 64
    workspace_mib: int | None = 1024
    calibration_cache: str | None = None  # int8: read (trtexec --calib) or written (Python API calibration)
    timing_cache: str | None = None
    builder_optimization_level: int | None = None
    benchmark: bool = True  # trtexec also times the engine after building it (--skipInference if False)
    verbose: bool = False
    extra_flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} unknown (known: {', '.join(PRECISIONS)})")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                f"batch profile must satisfy 1 <= min <= opt <= max (got {self.min_batch}/{self.opt_batch}/{self.max_batch})"
            )
        self.input_shape = tuple(int(d) for d in self.input_shape)

    def shape(self, batch: int) -> str:
        """trtexec shape spec `name:BxCxHxW`."""
        return f"{self.input_name}:" + "x".join(str(d) for d in (batch, *self.input_shape))


def options_from_config(
    settings: dict[str, Any],
    precision: str,
    input_shape: tuple[int, ...],
    input_name: str = "input",
    timing_cache_path: str | None = None,
    **overrides: Any,
) -> BuildOptions:
    """BuildOptions from the `convert.tensorrt` config section (what the benchmark stage passes).

    `timing_cache_path` is the device's cache file, used when `timing_cache` is true.
    """
    level = settings.get("builder_optimization_level")
    opts: dict[str, Any] = {
        "precision": precision,
        "input_name": input_name,
        "input_shape": tuple(input_shape),
        "min_batch": int(settings.get("min_batch", 1)),
        "opt_batch": int(settings.get("opt_batch", 1)),
        "max_batch": int(settings.get("max_batch", 64)),
        "workspace_mib": settings.get("workspace_mib"),
        "calibration_cache": settings.get("int8_calibration") if precision in ("int8", "best") else None,
        "builder_optimization_level": None if level is None else int(level),
        "extra_flags": list(settings.get("extra_flags") or []),
        "timing_cache": timing_cache_path if settings.get("timing_cache", True) else None,
    }
    opts.update(overrides)
    return BuildOptions(**opts)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """TensorRT version from `TensorRT version: 8.2.1`, a banner `[TensorRT v8201]`/`[TensorRT v100900]`,
    or a dotted `8.6.1.6`."""
    m = re.search(r"TensorRT version: (\d+)\.(\d+)\.(\d+)", text)
    if m:
        return int(m[1]), int(m[2]), int(m[3])
    m = re.search(r"\[TensorRT v(\d+)\]", text)
    if m:
        n = int(m[1])
        if n >= 10000:  # 10.x and later: MMmmpp
            return n // 10000, (n // 100) % 100, n % 100
        return n // 1000, (n // 100) % 10, n % 100  # 8.x: Mmpp
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text)
    if m:
        return int(m[1]), int(m[2]), int(m[3] or 0)
    return None


def trtexec_command(
    onnx: str | Path,
    engine: str | Path,
    opts: BuildOptions,
    trtexec: str = "trtexec",
    version: tuple[int, int, int] | None = None,
) -> list[str]:
    """The trtexec command line that builds `engine` from `onnx` with `opts`.

    `version` (when known) picks flags the installed TensorRT understands: `--workspace=N` before
    8.4, `--memPoolSize=workspace:N` (MiB) from 8.4; `--builderOptimizationLevel` from 8.6.
    """
    cmd = [trtexec, f"--onnx={onnx}", f"--saveEngine={engine}"]
    if opts.precision == "fp16":
        cmd.append("--fp16")
    elif opts.precision == "int8":
        cmd.append("--int8")
    elif opts.precision == "best":
        cmd.append("--best")
    if opts.precision in ("int8", "best") and opts.calibration_cache:
        cmd.append(f"--calib={opts.calibration_cache}")
    if opts.dynamic_batch:
        cmd += [
            f"--minShapes={opts.shape(opts.min_batch)}",
            f"--optShapes={opts.shape(opts.opt_batch)}",
            f"--maxShapes={opts.shape(opts.max_batch)}",
        ]
        if opts.benchmark:
            cmd.append(f"--shapes={opts.shape(opts.opt_batch)}")
    if opts.workspace_mib:
        if version is not None and version < (8, 4, 0):
            cmd.append(f"--workspace={int(opts.workspace_mib)}")
        else:
            cmd.append(f"--memPoolSize=workspace:{int(opts.workspace_mib)}")
    if opts.timing_cache:
        cmd.append(f"--timingCacheFile={opts.timing_cache}")
    if opts.builder_optimization_level is not None and (version is None or version >= (8, 6, 0)):
        cmd.append(f"--builderOptimizationLevel={opts.builder_optimization_level}")
    if not opts.benchmark:
        cmd.append("--skipInference" if version is None or version >= (8, 6, 0) else "--buildOnly")
    if opts.verbose:
        cmd.append("--verbose")
    cmd += list(opts.extra_flags)
    return cmd
