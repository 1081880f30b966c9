"""TensorRT on the target: build engines (trtexec or the Python API), parse trtexec's output, run engines.

Engines are specific to the GPU, TensorRT version and JetPack they were built with, so the
benchmark stage builds them on the device itself from `model.onnx` (fp32/fp16, int8 by
calibration) or from a QDQ model (int8), with this module. Device-side: Python 3 + numpy, and
`trtexec` or the `tensorrt` Python package; no torch, no edgeopt import outside `edgeopt.harness`.

    python -m edgeopt.harness.tensorrt build --onnx model.onnx --engine trt-fp16.engine \\
        --precision fp16 --input-shape 3x32x32 --max-batch 64 --log build.log --json build.json
    python -m edgeopt.harness.tensorrt parse build.log      # trtexec output -> JSON

The output format parsed here is trtexec's own (TensorRT samples/common/sampleReporting.cpp and
trtexec.cpp, TensorRT 8.x and 10.x); tests/data/trtexec-*.log hold logs in that format.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.harness.op_errors import unsupported_op_message
from edgeopt.harness.runtimes import RuntimeUnavailable

PRECISIONS = ("fp32", "fp16", "int8", "best")

#: where JetPack / the TensorRT tarballs put trtexec when it is not on PATH
TRTEXEC_LOCATIONS = (
    "/usr/src/tensorrt/bin/trtexec",
    "/usr/local/tensorrt/bin/trtexec",
    "/opt/tensorrt/bin/trtexec",
)

ABSENT = (
    "TensorRT is not installed here: no trtexec on PATH or in /usr/src/tensorrt/bin, and no `tensorrt` "
    "Python package (TensorRT ships with JetPack on Jetsons; it needs an NVIDIA GPU)"
)


class TensorRTUnavailable(RuntimeUnavailable):
    """Neither trtexec nor the tensorrt Python package is present on this machine."""


class TensorRTBuildError(RuntimeError):
    """An engine build failed; the message is one line (naming the op when the parser rejected one)."""


# ---------------------------------------------------------------- build options and trtexec command


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
    **overrides: Any,
) -> BuildOptions:
    """BuildOptions from the `convert.tensorrt` config section (what the benchmark stage passes)."""
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


# ---------------------------------------------------------------- parsing trtexec output

#: a log line: optional bracketed prefixes (timestamp, wrapper tags) then the severity tag
_LINE = re.compile(r"^(?:\[[^\]]*\]\s*)*?\[(?P<sev>[VIWEF])\]\s?(?P<msg>.*)$")
_STAT = re.compile(
    r"(min|max|mean|median|percentile\((?P<pct>[\d.]+)%\))\s*=\s*(?P<val>[-+\d.eE]+|inf|nan)\s*ms"
)
#: performance-summary lines with min/max/mean/median/percentiles -> result key
_TIMING_LINES = {
    "Latency": "latency_ms",
    "End-to-End Host Latency": "end_to_end_host_latency_ms",
    "Enqueue Time": "enqueue_time_ms",
    "H2D Latency": "h2d_latency_ms",
    "GPU Compute Time": "gpu_compute_time_ms",
    "D2H Latency": "d2h_latency_ms",
}


def _stats(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in _STAT.finditer(text):
        key = m.group(1)
        if m.group("pct"):
            pct = m.group("pct")
            key = "p" + (pct[:-2] if pct.endswith(".0") else pct).replace(".", "_")
        out[key] = float(m.group("val"))
    return out


def parse_trtexec_log(text: str) -> dict[str, Any]:
    """trtexec's output -> a dict: versions, device, precision, build time, throughput, latency stats.

    Timing stats are in ms with keys min/max/mean/median and p<N> for each `percentile(N%)`.
    `images_per_second` = queries/s x the inference batch (the input binding's first dimension).
    """
    res: dict[str, Any] = {"status": None, "errors": [], "warnings": 0}
    for raw in text.splitlines():
        line = raw.rstrip()
        if "&&&& " in line:  # trtexec's banner; wrappers may prefix it
            m = re.search(r"&&&& (\w+) TensorRT\.trtexec \[TensorRT (v\d+)\](?: \[b\d+\])?(?: # (.*))?", line)
            if m:
                res["status"] = m[1]
                res.setdefault("tensorrt_banner", m[2])
                if m[3]:
                    res.setdefault("command", m[3])
            continue
        m = _LINE.match(line)
        if not m:
            continue
        sev, msg = m["sev"], m["msg"].strip()
        if sev == "E":
            res["errors"].append(msg)
            continue
        if sev == "W":
            res["warnings"] += 1
            continue
        if msg.startswith("[TRT]"):
            continue
        key, _, value = msg.partition(": ")
        if key in _TIMING_LINES and "=" in value:
            res[_TIMING_LINES[key]] = _stats(value)
        elif key == "Throughput":
            res["throughput_qps"] = float(value.split()[0])
        elif key == "TensorRT version":
            res["tensorrt_version"] = value.strip()
        elif key == "Precision" and "precision" not in res:
            res["precision"] = value.strip()
        elif key == "Selected Device":
            res["device"] = value.strip()
        elif key == "Compute Capability":
            res["compute_capability"] = value.strip()
        elif key == "Total Host Walltime":
            res["total_host_walltime_s"] = float(value.split()[0])
        elif key == "Total GPU Compute Time":
            res["total_gpu_compute_time_s"] = float(value.split()[0])
        elif key in ("Workspace", "Memory Pools") and "workspace" not in res:
            res["workspace"] = value.strip()
        elif msg.startswith("Engine built in "):
            res["build_seconds"] = float(msg.split()[3])
        elif msg.startswith("Created engine with size: "):
            res["engine_size_mib"] = float(msg.split()[4])
        elif msg.startswith("Timing trace has "):
            t = re.match(r"Timing trace has (\d+) queries over ([\d.eE+-]+) s", msg)
            if t:
                res["queries"] = int(t[1])
        else:
            b = re.match(r"(?:Created input binding for |Input binding for )(\S+) with dimensions (\S+)", msg)
            if b and "input_dims" not in res:
                res["input_name"] = b[1]
                res["input_dims"] = [int(d) for d in b[2].rstrip(".").split("x")]
    if "tensorrt_version" not in res and "tensorrt_banner" in res:
        v = parse_version(f"[TensorRT {res['tensorrt_banner']}]")
        if v:
            res["tensorrt_version"] = ".".join(map(str, v))
    if "throughput_qps" in res:
        batch = res.get("input_dims", [1])[0] or 1
        res["batch"] = batch
        res["images_per_second"] = res["throughput_qps"] * batch
    return res


def failure_message(text: str, where: str) -> str:
    """One line explaining why trtexec / the builder failed: the unsupported op if there is one."""
    named = unsupported_op_message("tensorrt", text, where=where)
    if named:
        return named
    errors = [
        m["msg"].strip()
        for m in (_LINE.match(line.rstrip()) for line in text.splitlines())
        if m and m["sev"] in ("E", "F")
    ]
    detail = errors[0] if errors else (text.strip().splitlines() or ["no output"])[-1]
    return f"{where}: TensorRT engine build failed ({detail})"


# ---------------------------------------------------------------- building


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
        _write_text(Path(log), text)
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
    logger = _collecting_logger(trt, verbose=opts.verbose)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        text = "\n".join(logger.lines) + "\n" + errors
        if log:
            _write_text(Path(log), text)
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
    if opts.builder_optimization_level is not None:
        config.builder_optimization_level = int(opts.builder_optimization_level)
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
        _write_text(Path(log), text)
    if plan is None:
        raise TensorRTBuildError(failure_message(text, str(onnx)))
    _write_bytes(engine, bytes(plan))
    if cache is not None and opts.timing_cache:
        _write_bytes(Path(opts.timing_cache), bytes(config.get_timing_cache().serialize()))
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


def _collecting_logger(trt: Any, verbose: bool = False) -> Any:
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
            self.buffers: _CudaBuffers | None = None  # created on the first batch (a cache needs no CUDA)

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if data is None or self.pos + batch > len(data):
                return None
            chunk = np.ascontiguousarray(data[self.pos : self.pos + batch], dtype=np.float32)
            self.pos += batch
            self.buffers = self.buffers or _CudaBuffers()
            return [self.buffers.upload("calib", chunk)]

        def read_calibration_cache(self) -> bytes | None:
            if cache and Path(cache).exists():
                return Path(cache).read_bytes()
            return None

        def write_calibration_cache(self, blob: Any) -> None:
            if cache:
                _write_bytes(Path(cache), bytes(blob))

    return NumpyCalibrator()


# ---------------------------------------------------------------- running engines


class _CudaBuffers:
    """Device memory through cuda-python (`cuda.bindings.runtime` / `cuda.cudart`) or pycuda,
    whichever the device has: TensorRT's Python package brings neither."""

    def __init__(self) -> None:
        self.ptrs: dict[str, tuple[int, int]] = {}
        self.cudart: Any = None
        self.pycuda: Any = None
        try:
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                from cuda import cudart  # type: ignore[no-redef]
            self.cudart = cudart
        except ImportError:
            try:
                import pycuda.autoinit  # noqa: F401
                import pycuda.driver as driver
            except ImportError as exc:
                raise TensorRTUnavailable(
                    "running TensorRT engines from Python needs cuda-python or pycuda (pip install cuda-python)"
                ) from exc
            self.pycuda = driver
        self.stream = self._call("cudaStreamCreate") if self.cudart else self.pycuda.Stream()

    def _call(self, name: str, *args: Any) -> Any:
        res = getattr(self.cudart, name)(*args)
        err, rest = res[0], res[1:]
        if int(err) != 0:
            raise RuntimeError(f"CUDA {name} failed: {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    @property
    def stream_handle(self) -> int:
        return int(self.stream) if self.cudart else int(self.stream.handle)

    def alloc(self, key: str, nbytes: int) -> int:
        have = self.ptrs.get(key)
        if have and have[1] >= nbytes:
            return have[0]
        if have:
            self._free(have[0])
        ptr = int(self._call("cudaMalloc", nbytes)) if self.cudart else self.pycuda.mem_alloc(nbytes)
        self.ptrs[key] = (int(ptr), nbytes)
        if self.pycuda:
            self._keep = getattr(self, "_keep", {})
            self._keep[key] = ptr  # pycuda frees on garbage collection
        return int(ptr)

    def upload(self, key: str, arr: np.ndarray) -> int:
        ptr = self.alloc(key, arr.nbytes)
        if self.cudart:
            kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._call("cudaMemcpy", ptr, arr.ctypes.data, arr.nbytes, kind)
        else:
            self.pycuda.memcpy_htod(ptr, arr)
        return ptr

    def download(self, ptr: int, out: np.ndarray) -> np.ndarray:
        if self.cudart:
            kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._call("cudaMemcpy", out.ctypes.data, ptr, out.nbytes, kind)
        else:
            self.pycuda.memcpy_dtoh(out, ptr)
        return out

    def synchronize(self) -> None:
        if self.cudart:
            self._call("cudaStreamSynchronize", self.stream)
        else:
            self.stream.synchronize()

    def _free(self, ptr: int) -> None:
        if self.cudart:
            self.cudart.cudaFree(ptr)

    def __del__(self) -> None:
        if getattr(self, "cudart", None):
            for ptr, _ in self.ptrs.values():
                self._free(ptr)


class TensorRTRunner:
    """A serialized engine run with the TensorRT Python API: float32 NCHW in, logits out.

    Same interface as OrtRunner/TFLiteRunner (`name`, `version`, `predict`). Batches larger than
    the engine's profile maximum are split into chunks. Needs TensorRT 8.5+ (named-tensor API).
    """

    name = "tensorrt"

    def __init__(self, path: str, threads: int = 0, **_: Any) -> None:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise TensorRTUnavailable(ABSENT) from exc
        self.trt = trt
        self.version = trt.__version__
        self.package = "tensorrt"
        self.logger = _collecting_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{path}: not a TensorRT engine for this GPU/TensorRT version")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self.input, self.output = inputs[0], outputs[0]
        shape = tuple(self.engine.get_tensor_shape(self.input))
        self.max_batch = (
            int(self.engine.get_tensor_profile_shape(self.input, 0)[2][0])
            if shape[0] == -1
            else int(shape[0])
        )
        self.dynamic = shape[0] == -1
        self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input)))
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output)))
        self.buffers = _CudaBuffers()

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if not self.dynamic and n != self.max_batch:  # fixed-batch engine: pad the last chunk
            x = np.concatenate([x, np.zeros((self.max_batch - n, *x.shape[1:]), x.dtype)])
        x = np.ascontiguousarray(x, dtype=self.in_dtype)
        if self.dynamic:
            self.context.set_input_shape(self.input, tuple(x.shape))
        out = np.empty(tuple(self.context.get_tensor_shape(self.output)), self.out_dtype)
        self.context.set_tensor_address(self.input, self.buffers.upload("in", x))
        out_ptr = self.buffers.alloc("out", out.nbytes)
        self.context.set_tensor_address(self.output, out_ptr)
        if not self.context.execute_async_v3(self.buffers.stream_handle):
            raise RuntimeError("TensorRT execution failed")
        self.buffers.synchronize()
        return self.buffers.download(out_ptr, out)[:n].astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = [self._run(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


# ---------------------------------------------------------------- small helpers and the device CLI


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode())


def _shape_arg(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CxHxW, e.g. 3x32x32") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m edgeopt.harness.tensorrt", description=__doc__.splitlines()[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser(
        "build", help="build an engine (trtexec, else the Python API) and print/record the result"
    )
    b.add_argument("--onnx", required=True)
    b.add_argument("--engine", required=True)
    b.add_argument("--precision", choices=PRECISIONS, default="fp16")
    b.add_argument("--input-name", default="input")
    b.add_argument("--input-shape", type=_shape_arg, default=(3, 32, 32), help="per image, CxHxW")
    b.add_argument("--static", action="store_true", help="the ONNX batch is fixed (no min/opt/max profile)")
    b.add_argument("--min-batch", type=int, default=1)
    b.add_argument("--opt-batch", type=int, default=1)
    b.add_argument("--max-batch", type=int, default=64)
    b.add_argument("--workspace-mib", type=int, default=1024)
    b.add_argument("--calib", help="int8 calibration cache (read if present, written after calibrating)")
    b.add_argument("--calib-data", help=".npy of preprocessed float32 NCHW images to calibrate int8 on")
    b.add_argument("--timing-cache")
    b.add_argument("--builder-optimization-level", type=int)
    b.add_argument("--no-benchmark", action="store_true", help="build only (--skipInference)")
    b.add_argument("--trtexec", help="path of trtexec (default: PATH, then /usr/src/tensorrt/bin)")
    b.add_argument("--prefer", choices=("trtexec", "python"), default="trtexec")
    b.add_argument("--log", help="write the build log here")
    b.add_argument("--json", help="write the parsed result here")
    b.add_argument("--extra", action="append", default=[], help="extra trtexec flag (repeatable)")
    q = sub.add_parser("parse", help="parse a trtexec log into JSON")
    q.add_argument("log")
    args = p.parse_args(argv)
    if args.cmd == "parse":
        print(json.dumps(parse_trtexec_log(Path(args.log).read_text(errors="replace")), indent=2))
        return 0
    opts = BuildOptions(
        precision=args.precision,
        input_name=args.input_name,
        input_shape=args.input_shape,
        dynamic_batch=not args.static,
        min_batch=args.min_batch,
        opt_batch=args.opt_batch,
        max_batch=args.max_batch,
        workspace_mib=args.workspace_mib,
        calibration_cache=args.calib,
        timing_cache=args.timing_cache,
        builder_optimization_level=args.builder_optimization_level,
        benchmark=not args.no_benchmark,
        extra_flags=args.extra,
    )
    calib = np.load(args.calib_data) if args.calib_data else None
    try:
        res = build_engine(args.onnx, args.engine, opts, args.log, args.trtexec, calib, args.prefer)
    except (TensorRTUnavailable, TensorRTBuildError) as exc:
        print(f"tensorrt: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(res, indent=2, default=str)
    if args.json:
        _write_text(Path(args.json), text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
