"""A Jetson's state around a measurement: power mode, jetson_clocks, temperatures, throttling, versions.

Device-side (Python 3 stdlib only). A Jetson's latency depends on its power mode (nvpmodel), on
whether jetson_clocks pinned the clocks at their maximum, and on heat: a board that reaches a
passive trip point lowers its clocks mid-run. Every result on a Jetson records all of it, read
from the sources JetPack itself uses; the parsers are tested on those tools' real output formats
(tests/data/jetson/).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgeopt.harness import sysinfo

THERMAL_ROOT = "/sys/class/thermal"
#: zones whose reading is not a temperature that throttles (the Nano's PMIC reads a constant 100 C)
IGNORED_ZONES = ("PMIC-Die", "pmic-die")

_FREQS = re.compile(r"(MinFreq|MaxFreq|CurrentFreq)=(\d+)")


def parse_jetson_clocks(text: str) -> dict[str, Any]:
    """`jetson_clocks --show` -> CPUs, GPU and EMC frequencies and whether the clocks are pinned.

    jetson_clocks pins every online CPU's and the GPU's minimum frequency to the maximum, so
    `locked` means MinFreq == MaxFreq for all of them.
    """
    out: dict[str, Any] = {"cpus": [], "gpu": None, "emc": None}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"cpu(\d+): Online=(\d)(?: Governor=(\S+))?", line)
        freqs = {k: int(v) for k, v in _FREQS.findall(line)}
        if m:
            out["cpus"].append(
                {"cpu": int(m[1]), "online": m[2] == "1", "governor": m[3], **_freq_keys(freqs)}
            )
        elif line.startswith("GPU ") and freqs:
            out["gpu"] = _freq_keys(freqs)
        elif line.startswith("EMC ") and freqs:
            out["emc"] = _freq_keys(freqs)
        elif line.startswith("NV Power Mode:"):
            out["power_mode"] = line.split(":", 1)[1].strip()
        elif line.startswith("SOC family:"):
            m2 = re.search(r"Machine:(.+)$", line)
            out["machine"] = m2[1].strip() if m2 else None
    pinned = [c for c in out["cpus"] if c["online"] and "min" in c] + ([out["gpu"]] if out["gpu"] else [])
    out["locked"] = bool(pinned) and all(p["min"] == p["max"] for p in pinned)
    return out


def _freq_keys(freqs: dict[str, int]) -> dict[str, int]:
    names = {"MinFreq": "min", "MaxFreq": "max", "CurrentFreq": "current"}
    return {names[k]: v for k, v in freqs.items()}


def thermal_zones(root: str | Path = THERMAL_ROOT) -> list[dict[str, Any]]:
    """Every thermal zone: type, temperature and its lowest passive trip point (C), from sysfs."""
    zones = []
    base = Path(root)
    if not base.is_dir():
        return zones
    for zone in sorted(base.glob("thermal_zone*"), key=lambda p: int(p.name[12:] or 0)):
        kind = _read(zone / "type")
        temp = _int(_read(zone / "temp"))
        if kind is None or temp is None:
            continue
        passive = [
            t
            for trip in zone.glob("trip_point_*_type")
            if _read(trip) == "passive"
            and (t := _int(_read(zone / trip.name.replace("_type", "_temp")))) is not None
        ]
        zones.append(
            {
                "zone": zone.name,
                "type": kind,
                "temp_c": temp / 1000.0,
                "passive_trip_c": min(passive) / 1000.0 if passive else None,
            }
        )
    return zones


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_l4t_release(text: str) -> str | None:
    """/etc/nv_tegra_release (`# R35 (release), REVISION: 4.1, ...`) -> the L4T version `35.4.1`."""
    m = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m[1]}.{m[2]}" if m else None


def _run(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def jetpack_version() -> str | None:
    """The installed JetPack (`dpkg-query` of the nvidia-jetpack meta package), None when not installed."""
    out = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"]) if shutil.which("dpkg-query") else None
    return out.strip() or None if out else None


def clocks_show() -> dict[str, Any] | None:
    """`jetson_clocks --show` parsed (it needs root: `sudo -n` otherwise), None where it cannot run."""
    exe = shutil.which("jetson_clocks")
    if not exe:
        return None
    argv = [exe, "--show"] if os.geteuid() == 0 else ["sudo", "-n", exe, "--show"]
    out = _run(argv)
    return parse_jetson_clocks(out) if out else {"error": f"{' '.join(argv)} failed (allow it with sudoers)"}


def versions() -> dict[str, Any]:
    """TensorRT-relevant versions of the board: L4T (from /etc/nv_tegra_release) and JetPack."""
    release = _read(Path("/etc/nv_tegra_release")) or ""
    return {"l4t": parse_l4t_release(release), "jetpack": jetpack_version()}


def state(root: str | Path = THERMAL_ROOT) -> dict[str, Any]:
    """Power mode, clocks and temperatures now."""
    return {"nvpmodel": sysinfo.nvpmodel_query(), "jetson_clocks": clocks_show(), "thermal": thermal_zones(root)}


def throttling(
    before: dict[str, Any], after: dict[str, Any], tegrastats_max_c: dict[str, float] | None = None
) -> dict[str, Any]:
    """Whether the board throttled during the measurement, and why.

    Evidence: a thermal zone at or above its passive trip point (where the kernel starts lowering
    clocks) after the run, or clocks below their maximum while jetson_clocks pinned them.
    """
    reasons = []
    for z in after.get("thermal") or []:
        trip = z.get("passive_trip_c")
        if z["type"] not in IGNORED_ZONES and trip is not None and z["temp_c"] >= trip:
            reasons.append(f"{z['type']} at {z['temp_c']:.1f} C >= passive trip {trip:.1f} C")
    clocks = after.get("jetson_clocks") or {}
    if (before.get("jetson_clocks") or {}).get("locked"):
        for c in clocks.get("cpus") or []:
            if c.get("online") and c.get("current") is not None and c["current"] < c.get("max", 0):
                reasons.append(f"cpu{c['cpu']} at {c['current'] // 1000} MHz < {c['max'] // 1000} MHz")
        gpu = clocks.get("gpu") or {}
        if gpu.get("current") is not None and gpu["current"] < gpu.get("max", 0):
            reasons.append(f"GPU at {gpu['current'] // 1_000_000} MHz < {gpu['max'] // 1_000_000} MHz")
    temps = [z["temp_c"] for z in after.get("thermal") or [] if z["type"] not in IGNORED_ZONES]
    temps += [v for k, v in (tegrastats_max_c or {}).items() if k.upper() != "PMIC"]
    return {"throttled": bool(reasons), "reasons": reasons, "max_temp_c": max(temps) if temps else None}


def summary(before: dict[str, Any], after: dict[str, Any], tegrastats_max_c: dict[str, float] | None) -> dict[str, Any]:
    """What every result on a Jetson records at its top level (plus the full states under `jetson`)."""
    mode = before.get("nvpmodel") or {}
    clocks = before.get("jetson_clocks") or {}
    return {
        "power_mode": mode.get("name"),
        "power_mode_id": mode.get("mode"),
        "jetson_clocks": clocks.get("locked") if "locked" in clocks else None,
        **throttling(before, after, tegrastats_max_c),
    }
