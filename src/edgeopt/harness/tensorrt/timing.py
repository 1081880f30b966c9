"""trtexec's own timing of a built engine: GPU compute time without Python in the loop.

The harness measures TensorRT twice per batch size: this (what the GPU spends per inference,
optionally replayed as a CUDA graph and without host<->device copies) and its end-to-end host loop
through TensorRTRunner (copies and Python included). Both land in the result, side by side.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from edgeopt.harness.tensorrt.build import find_trtexec
from edgeopt.harness.tensorrt.log import failure_message, parse_trtexec_log
from edgeopt.harness.tensorrt.options import BuildOptions

#: trtexec's timing keys kept in each batch entry (ms statistics)
KEPT = ("gpu_compute_time_ms", "latency_ms", "h2d_latency_ms", "d2h_latency_ms", "enqueue_time_ms")


def timing_command(
    engine: str | Path,
    batch: int,
    opts: BuildOptions,
    trtexec: str = "trtexec",
    use_cuda_graph: bool = False,
    no_data_transfers: bool = False,
    iterations: int = 100,
    warmup_ms: int = 200,
    duration_s: float = 3.0,
) -> list[str]:
    """The trtexec command that times `engine` at `batch` (the shape is given only for dynamic engines)."""
    cmd = [trtexec, f"--loadEngine={engine}"]
    if opts.dynamic_batch:
        cmd.append(f"--shapes={opts.shape(batch)}")
    cmd += [f"--iterations={int(iterations)}", f"--warmUp={int(warmup_ms)}", f"--duration={duration_s:g}"]
    if use_cuda_graph:
        cmd.append("--useCudaGraph")
    if no_data_transfers:
        cmd.append("--noDataTransfers")
    return cmd


def time_engine(
    engine: str | Path, batch: int, opts: BuildOptions, settings: dict[str, Any], iterations: int = 100
) -> dict[str, Any]:
    """trtexec's statistics for `engine` at `batch`, or `{"error": ...}` (one line) when it cannot run."""
    exe = find_trtexec(settings.get("trtexec"))
    if exe is None:
        return {"error": "no trtexec on this device (JetPack's /usr/src/tensorrt/bin/trtexec)"}
    cmd = timing_command(
        engine,
        batch,
        opts,
        exe,
        use_cuda_graph=bool(settings.get("use_cuda_graph", False)),
        no_data_transfers=bool(settings.get("no_data_transfers", False)),
        iterations=iterations,
        duration_s=float(settings.get("timing_duration_s", 3.0)),
    )
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"trtexec did not run: {exc}", "command": cmd}
    parsed = parse_trtexec_log(proc.stdout)
    if proc.returncode != 0 or parsed.get("status") == "FAILED":
        return {"error": failure_message(proc.stdout, str(engine)), "command": cmd}
    return {
        "command": cmd,
        "tensorrt_version": parsed.get("tensorrt_version"),
        "use_cuda_graph": "--useCudaGraph" in cmd,
        "no_data_transfers": "--noDataTransfers" in cmd,
        "queries": parsed.get("queries"),
        "throughput_qps": parsed.get("throughput_qps"),
        "images_per_second": (parsed["throughput_qps"] * batch) if parsed.get("throughput_qps") else None,
        **{k: parsed[k] for k in KEPT if k in parsed},
    }
