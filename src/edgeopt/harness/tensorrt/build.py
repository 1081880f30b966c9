"""Building engines on the target: trtexec when present, else the TensorRT Python API (which also
calibrates int8 over the calibration images and writes a cache later builds reuse)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.harness.runtimes import preprocess
from edgeopt.harness.tensorrt.cuda import CudaBuffers
from edgeopt.harness.tensorrt.errors import ABSENT, TensorRTBuildError, TensorRTUnavailable
from edgeopt.harness.tensorrt.files import write_bytes, write_text
from edgeopt.harness.tensorrt.log import failure_message, parse_trtexec_log
from edgeopt.harness.tensorrt.options import BuildOptions, parse_version, trtexec_command

#: where JetPack / the TensorRT tarballs put trtexec when it is not on PATH
TRTEXEC_LOCATIONS = (
    "/usr/src/tensorrt/bin/trtexec",
    "/usr/local/tensorrt/bin/trtexec",
    "/opt/tensorrt/bin/trtexec",
)


def find_trtexec(explicit: str | None = None) -> str | None:
    """Path of trtexec: `explicit`, then PATH, then JetPack's /usr/src/tensorrt/bin."""
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    found = shutil.which("trtexec")
    if found:
        return found
    return next((p for p in TRTEXEC_LOCATIONS if os.access(p, os.X_OK)), None)


def tensorrt_python_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def trtexec_version(trtexec: str) -> tuple[int, int, int] | None:
    """The installed TensorRT version from trtexec's banner (`trtexec --help` prints it first)."""
    try:
        out = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(out.stdout + out.stderr)


def build_engine(
    onnx: str | Path,
    engine: str | Path,
    opts: BuildOptions,
    log: str | Path | None = None,
    trtexec: str | None = None,
    calibration_data: np.ndarray | None = None,
    prefer: str = "trtexec",
) -> dict[str, Any]:
    """Build `engine` from `onnx` on this machine; returns the parsed build (and timing) record.

    Uses trtexec when present (and `prefer` is "trtexec"), else the TensorRT Python API. int8
    without a calibration cache or a QDQ model needs `calibration_data` (float32 NCHW, preprocessed)
    and the Python API, which calibrates and writes `opts.calibration_cache` for later builds.
    Raises TensorRTUnavailable when TensorRT is absent, TensorRTBuildError (one line) on failure.
    """
    onnx, engine = Path(onnx), Path(engine)
    if not onnx.exists():
        raise TensorRTBuildError(f"{onnx}: ONNX model missing")
    if opts.precision == "int8" and calibration_data is None and not is_qdq(onnx):
        if not (opts.calibration_cache and Path(opts.calibration_cache).exists()):
            raise TensorRTBuildError(
                f"{onnx}: int8 needs calibration images, an existing calibration cache or a Q/DQ model "
                "(without them TensorRT would use placeholder scales)"
            )
    exe = find_trtexec(trtexec)
    has_python = tensorrt_python_available()
    needs_calibration = calibration_data is not None and not (
        opts.calibration_cache and Path(opts.calibration_cache).exists()
    )
    if exe and not (needs_calibration and has_python) and (prefer == "trtexec" or not has_python):
        return _build_with_trtexec(exe, onnx, engine, opts, log)
    if has_python:
        return build_engine_python(onnx, engine, opts, log, calibration_data)
    raise TensorRTUnavailable(ABSENT)


def is_qdq(onnx: str | Path) -> bool:
    """Whether an ONNX file holds QuantizeLinear/DequantizeLinear nodes (explicit int8), without onnx:
    op types are stored as plain strings in the protobuf."""
    return b"DequantizeLinear" in Path(onnx).read_bytes()


def _build_with_trtexec(
    exe: str, onnx: Path, engine: Path, opts: BuildOptions, log: str | Path | None
) -> dict[str, Any]:
    version = trtexec_version(exe)
    engine.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine.with_name(f".{engine.name}.tmp")
    cmd = trtexec_command(onnx, tmp, opts, trtexec=exe, version=version)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    text = proc.stdout
    if log:
        write_text(Path(log), text)
    parsed = parse_trtexec_log(text)
    if proc.returncode != 0 or parsed.get("status") == "FAILED" or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise TensorRTBuildError(failure_message(text, str(onnx)))
    os.replace(tmp, engine)
    return {
        **parsed,
        "builder": "trtexec",
        "trtexec": exe,
        "command": cmd,
        "wall_seconds": round(wall, 3),
        "engine": str(engine),
        "engine_bytes": engine.stat().st_size,
        "requested_precision": opts.precision,
        "options": asdict(opts),
    }


def build_engine_python(
    onnx: str | Path,
    engine: str | Path,
    opts: BuildOptions,
    log: str | Path | None = None,
    calibration_data: np.ndarray | None = None,
) -> dict[str, Any]:
    """Build with the TensorRT Python API (8.5+ / 10.x): ONNX parser, builder config, one profile."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(ABSENT) from exc
    onnx, engine = Path(onnx), Path(engine)
    logger = collecting_logger(trt, verbose=opts.verbose)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        text = "\n".join(logger.lines) + "\n" + errors
        if log:
            write_text(Path(log), text)
        raise TensorRTBuildError(failure_message(text, str(onnx)))
    config = builder.create_builder_config()
    if opts.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_mib) << 20)
    if opts.precision in ("fp16", "best"):
        config.set_flag(trt.BuilderFlag.FP16)
    if opts.precision in ("int8", "best"):
        config.set_flag(trt.BuilderFlag.INT8)
        if opts.calibration_cache or calibration_data is not None:
            config.int8_calibrator = _make_calibrator(
                trt, calibration_data, opts.calibration_cache, opts.opt_batch
            )
    if opts.builder_optimization_level is not None and hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = int(opts.builder_optimization_level)  # TensorRT >= 8.6
    inp = network.get_input(0)
    if opts.dynamic_batch and inp.shape[0] == -1:
        profile = builder.create_optimization_profile()
        profile.set_shape(
            inp.name,
            (opts.min_batch, *opts.input_shape),
            (opts.opt_batch, *opts.input_shape),
            (opts.max_batch, *opts.input_shape),
        )
        config.add_optimization_profile(profile)
        if opts.precision in ("int8", "best") and calibration_data is not None:
            config.set_calibration_profile(profile)
    cache = None
    if opts.timing_cache:
        data = Path(opts.timing_cache).read_bytes() if Path(opts.timing_cache).exists() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    text = "\n".join(logger.lines)
    if log:
        write_text(Path(log), text)
    if plan is None:
        raise TensorRTBuildError(failure_message(text, str(onnx)))
    write_bytes(engine, bytes(plan))
    if cache is not None and opts.timing_cache:
        write_bytes(Path(opts.timing_cache), bytes(config.get_timing_cache().serialize()))
    return {
        "builder": "python",
        "status": "PASSED",
        "tensorrt_version": trt.__version__,
        "precision": opts.precision,
        "requested_precision": opts.precision,
        "build_seconds": round(seconds, 3),
        "engine": str(engine),
        "engine_bytes": engine.stat().st_size,
        "options": asdict(opts),
        "warnings": sum(1 for line in logger.lines if line.startswith("[W]")),
        "errors": [line[4:] for line in logger.lines if line.startswith("[E]")],
    }


def collecting_logger(trt: Any, verbose: bool = False) -> Any:
    """A trt.ILogger that keeps messages in trtexec's `[I]`/`[W]`/`[E]` form (so failure_message works)."""
    sev = {
        trt.Logger.INTERNAL_ERROR: "F",
        trt.Logger.ERROR: "E",
        trt.Logger.WARNING: "W",
        trt.Logger.INFO: "I",
        trt.Logger.VERBOSE: "V",
    }

    class Collecting(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity == trt.Logger.VERBOSE and not verbose:
                return
            self.lines.append(f"[{sev.get(severity, 'I')}] [TRT] {msg}")

    return Collecting()


def _make_calibrator(trt: Any, data: np.ndarray | None, cache: str | None, batch: int) -> Any:
    """An entropy calibrator over `data` (float32 NCHW) that reads/writes `cache`.

    With an existing cache and no data, TensorRT reads the scales from the cache and never asks
    for a batch.
    """

    class NumpyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.pos = 0
            self.buffers: CudaBuffers | None = None  # created on the first batch (a cache needs no CUDA)

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if data is None or self.pos + batch > len(data):
                return None
            chunk = np.ascontiguousarray(data[self.pos : self.pos + batch], dtype=np.float32)
            self.pos += batch
            self.buffers = self.buffers or CudaBuffers()
            return [self.buffers.upload("calib", chunk)]

        def read_calibration_cache(self) -> bytes | None:
            if cache and Path(cache).exists():
                return Path(cache).read_bytes()
            return None

        def write_calibration_cache(self, blob: Any) -> None:
            if cache:
                write_bytes(Path(cache), bytes(blob))

    return NumpyCalibrator()


def load_calibration(
    path: str | Path,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """Calibration images as float32 NCHW: a `.npy` already preprocessed, or the dataset cache's
    `calib.npz` (uint8 NHWC `x`) normalised with the model's `mean`/`std` exactly as training did."""
    path = Path(path)
    if path.suffix == ".npz":
        if mean is None or std is None:
            raise ValueError(f"{path}: uint8 calibration images need the model's mean and std")
        with np.load(path) as z:
            x = z["x"][:limit]
        return preprocess(x, mean, std)
    return np.ascontiguousarray(np.load(path)[:limit], dtype=np.float32)
