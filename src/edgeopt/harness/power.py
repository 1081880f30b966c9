"""Energy during a timed loop: tegrastats (Jetson), hwmon power sensors (INA2xx/INA3221), RAPL (x86).

Device-side (Python 3 stdlib only). Every source has a pure parser tested on real output formats
and a monitor with `start()` / `stop() -> dict`. `open_monitor("auto")` picks the first that works
here: tegrastats, then hwmon sensors, then RAPL; it returns None (with the reason) when the board
exposes none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HWMON_ROOT = "/sys/class/hwmon"
RAPL_ROOT = "/sys/class/powercap"

#: rails that already measure the whole board's input (preferred over a sum of sub-rails)
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
#: rails left out of a sum: a subset of another rail (AGX Orin's DRAM rail VDDQ_VDD2_1V8AO is fed from
#: VIN_SYS_5V0) or an unconnected monitor channel (`NC`)
NOT_SUMMED = ("VDDQ_VDD2_1V8AO", "NC")

#: `NAME now/avg` with or without mW; a rail can read slightly negative near zero load (AGX Orin's VDD_CPU_CV)
_TEGRA_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(-?\d+)(?:mW)?/(-?\d+)(?:mW)?(?=\s|$)")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "LFB"}


def parse_tegrastats_line(line: str) -> dict[str, float]:
    """Instantaneous power per rail in mW from one tegrastats line.

    Handles JetPack 4 (`POM_5V_IN 1750/1628` on a Nano, `VDD_IN 6140/5510` on a Xavier NX) and
    JetPack 5/6 (`VDD_IN 2763mW/2846mW`; AGX Orin: `VDD_GPU_SOC 2389mW/2389mW ... VIN_SYS_5V0 ...`);
    the second number of each pair is tegrastats' running average. Real lines: tests/data/jetson.
    """
    return {m.group(1): float(m.group(2)) for m in _TEGRA_RAIL.finditer(line) if m.group(1) not in _NOT_RAILS}


_TEGRA_TEMP = re.compile(r"\b([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
#: what tegrastats prints for a sensor that is not there (AGX Orin's `CV0@-256C`)
NO_SENSOR_C = -256.0


def parse_tegrastats_temps(line: str) -> dict[str, float]:
    """Temperatures (C) from one tegrastats line: `CPU@33.5C GPU@32C` (JetPack 4), `cpu@46.593C tj@46.593C`
    (5/6); absent sensors (-256 C) are left out."""
    return {name: float(v) for name, v in _TEGRA_TEMP.findall(line) if float(v) > NO_SENSOR_C}


def total_power_mw(rails: dict[str, float]) -> float | None:
    """Board power: a total-input rail when there is one, else the sum of the rails that do not overlap
    (AGX Orin: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0)."""
    for name in TOTAL_RAILS:
        if name in rails:
            return rails[name]
    summed = [v for k, v in rails.items() if k not in NOT_SUMMED]
    return sum(summed) if summed else None


class _Sampler:
    """Samples `read() -> {rail: mW}` every `interval` seconds in a thread; integrates energy."""

    source = "sampler"

    def __init__(self, read: Callable[[], dict[str, float]], interval: float) -> None:
        self._read, self.interval = read, interval
        self._samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._samples.append((time.perf_counter(), self._read()))
            except OSError:
                pass
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._samples.clear()
        self._stop.clear()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        return summarize(self.source, self._samples, time.perf_counter() - self._t0)


def summarize(source: str, samples: list[tuple[float, dict[str, float]]], duration: float) -> dict[str, Any]:
    """Mean power per rail and board energy (mean board power x duration) from timed samples."""
    totals = [t for t in (total_power_mw(r) for _, r in samples) if t is not None]
    rails: dict[str, list[float]] = {}
    for _, r in samples:
        for k, v in r.items():
            rails.setdefault(k, []).append(v)
    mean_mw = sum(totals) / len(totals) if totals else None
    return {
        "source": source,
        "samples": len(samples),
        "duration_s": duration,
        "mean_power_w": mean_mw / 1000 if mean_mw is not None else None,
        "energy_j": mean_mw / 1000 * duration if mean_mw is not None else None,
        "rails_mean_w": {k: sum(v) / len(v) / 1000 for k, v in rails.items()},
    }


# ---------------------------------------------------------------- tegrastats (Jetson)
class TegrastatsMonitor:
    """Runs `tegrastats --interval N` for the duration of the measurement and parses its lines."""

    source = "tegrastats"

    def __init__(self, interval: float = 0.1, exe: str = "tegrastats") -> None:
        self.interval, self.exe = interval, exe
        self._proc: subprocess.Popen[str] | None = None
        self._samples: list[tuple[float, dict[str, float]]] = []

    def _reader(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            rails = parse_tegrastats_line(line)
            if rails:
                self._samples.append((time.perf_counter(), rails))
            for name, temp in parse_tegrastats_temps(line).items():
                self.max_temp_c[name] = max(temp, self.max_temp_c.get(name, temp))

    def start(self) -> None:
        self._samples = []
        self.max_temp_c: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._proc = subprocess.Popen(
            [self.exe, "--interval", str(max(10, int(self.interval * 1000)))],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        duration = time.perf_counter() - self._t0
        if self._proc:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._thread.join(timeout=5)
        return {**summarize(self.source, self._samples, duration), "max_temp_c": dict(self.max_temp_c)}


# ---------------------------------------------------------------- hwmon (INA2xx, INA3221, any power*_input)
def hwmon_power_sensors(root: str | Path = HWMON_ROOT) -> list[dict[str, Any]]:
    """Power sensors under a hwmon tree: `power*_input`/`power*_average` (µW), or `in*_input` (mV) x
    `curr*_input` (mA) channel pairs on INA chips (INA3221 exposes no power file)."""
    sensors: list[dict[str, Any]] = []
    base = Path(root)
    if not base.is_dir():
        return sensors
    for hw in sorted(base.iterdir()):
        chip = (_read(hw / "name") or hw.name).strip()
        for f in sorted(hw.glob("power*_input")) + sorted(hw.glob("power*_average")):
            idx = re.match(r"power(\d+)_", f.name)
            if idx is None:
                continue
            label = _read(hw / f"power{idx.group(1)}_label") or f"{chip}/{f.name}"
            if not any(s["label"] == label.strip() for s in sensors):
                sensors.append({"label": label.strip(), "kind": "power_uw", "files": [str(f)]})
        if chip.lower().startswith("ina") and not list(hw.glob("power*_input")):
            for cur in sorted(hw.glob("curr*_input")):
                n = re.match(r"curr(\d+)_input", cur.name)
                volt = hw / f"in{n.group(1)}_input" if n else None
                if volt is None or not volt.exists():
                    continue
                label = _read(hw / f"in{n.group(1)}_label") or f"{chip}/ch{n.group(1)}"
                if _read(hw / f"in{n.group(1)}_enable") == "0":
                    continue
                sensors.append({"label": label.strip(), "kind": "mv_ma", "files": [str(volt), str(cur)]})
    return sensors


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def read_hwmon_mw(sensors: list[dict[str, Any]]) -> dict[str, float]:
    """One reading of every sensor, in mW."""
    out: dict[str, float] = {}
    for s in sensors:
        if s["kind"] == "power_uw":
            out[s["label"]] = int(Path(s["files"][0]).read_text()) / 1000.0
        else:
            mv, ma = (int(Path(f).read_text()) for f in s["files"])
            out[s["label"]] = mv * ma / 1000.0
    return out


class HwmonMonitor(_Sampler):
    source = "hwmon"

    def __init__(self, interval: float = 0.1, root: str | Path = HWMON_ROOT) -> None:
        self.sensors = hwmon_power_sensors(root)
        super().__init__(lambda: read_hwmon_mw(self.sensors), interval)


# ---------------------------------------------------------------- RAPL (Intel, and AMD Zen via intel-rapl)
def rapl_domains(root: str | Path = RAPL_ROOT) -> list[dict[str, Any]]:
    """Top-level RAPL domains (`intel-rapl:N`, one per package; subdomains are inside them) that are readable."""
    out = []
    base = Path(root)
    if not base.is_dir():
        return out
    for d in sorted(base.glob("intel-rapl:*")):
        if d.name.count(":") != 1:
            continue
        energy = d / "energy_uj"
        if _read(energy) is None:  # not readable (non-root since 2020 kernels)
            continue
        out.append(
            {
                "name": _read(d / "name") or d.name,
                "energy_file": str(energy),
                "max_range_uj": int(_read(d / "max_energy_range_uj") or 0),
            }
        )
    return out


def rapl_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Energy between two counter readings, across one wrap-around."""
    return after - before if after >= before else after + max_range_uj - before


class RaplMonitor:
    """Reads the package energy counters before and after: exact energy, no sampling."""

    source = "rapl"

    def __init__(self, root: str | Path = RAPL_ROOT) -> None:
        self.domains = rapl_domains(root)

    def _now(self) -> list[int]:
        return [int(Path(d["energy_file"]).read_text()) for d in self.domains]

    def start(self) -> None:
        self._t0, self._e0 = time.perf_counter(), self._now()

    def stop(self) -> dict[str, Any]:
        e1, duration = self._now(), time.perf_counter() - self._t0
        per = {
            d["name"]: rapl_delta_uj(self._e0[i], e1[i], d["max_range_uj"]) / 1e6
            for i, d in enumerate(self.domains)
        }
        total = sum(per.values())
        return {
            "source": self.source,
            "samples": 2,
            "duration_s": duration,
            "mean_power_w": total / duration if duration > 0 else None,
            "energy_j": total,
            "domains_j": per,
            "note": "CPU package energy only (RAPL), not the whole board",
        }


def open_monitor(
    source: str = "auto",
    interval: float = 0.1,
    hwmon_root: str | Path = HWMON_ROOT,
    rapl_root: str | Path = RAPL_ROOT,
) -> tuple[Any | None, str]:
    """A monitor for `source` ('auto', 'tegrastats', 'hwmon', 'rapl', 'none') and why (or why none)."""
    if source == "none":
        return None, "power measurement disabled (power: none)"
    tried = []
    if source in ("auto", "tegrastats"):
        exe = shutil.which("tegrastats")
        if exe:
            return TegrastatsMonitor(interval, exe), f"tegrastats ({exe})"
        tried.append("no tegrastats")
    if source in ("auto", "hwmon"):
        mon = HwmonMonitor(interval, hwmon_root)
        if mon.sensors:
            return mon, "hwmon: " + ", ".join(s["label"] for s in mon.sensors)
        tried.append(f"no power sensors under {hwmon_root}")
    if source in ("auto", "rapl"):
        rmon = RaplMonitor(rapl_root)
        if rmon.domains:
            return rmon, "rapl: " + ", ".join(d["name"] for d in rmon.domains)
        tried.append(
            f"no readable RAPL domain under {rapl_root}" + ("" if os.geteuid() == 0 else " (needs root)")
        )
    return None, "; ".join(tried) or f"unknown power source {source!r}"


def main(argv: list[str] | None = None) -> int:
    """`python -m edgeopt.harness.power --check SOURCE`: exit 0 when SOURCE works on this machine."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--check", required=True, choices=["auto", "tegrastats", "hwmon", "rapl"])
    args = p.parse_args(argv)
    monitor, why = open_monitor(args.check)
    print(why)
    return 0 if monitor is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
