"""trtexec's output -> a dict, and a one-line failure reason.

The format parsed is trtexec's own (TensorRT samples/common/sampleReporting.cpp and trtexec.cpp,
TensorRT 8.x and 10.x); tests/data/trtexec-*.log hold logs in that format.
"""

from __future__ import annotations

import re
from typing import Any

from edgeopt.harness.op_errors import unsupported_op_message
from edgeopt.harness.tensorrt.options import parse_version

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
    `images_per_second` = queries/s x the inference batch (the input binding's first dimension, or
    an implicit-batch engine's `--batch=N`, as TensorRT 8 trtexec runs on older Jetsons print it).
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
        elif key == "Batch" and value.strip().isdigit():  # an implicit-batch engine (TensorRT < 10)
            res["implicit_batch"] = int(value)
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
    if "implicit_batch" not in res:
        m = re.search(r"--batch=(\d+)", res.get("command", ""))
        if m:
            res["implicit_batch"] = int(m[1])
    if "throughput_qps" in res:
        # a query is one inference of the engine: the input's first dimension, or the implicit batch
        batch = res["input_dims"][0] if res.get("input_dims") else res.get("implicit_batch", 1)
        batch = batch or 1
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
