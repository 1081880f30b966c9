"""Device-side harness pieces on real formats: tegrastats lines, a fake hwmon/RAPL sysfs tree, nvpmodel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.harness import power, sysinfo
from edgeopt.harness.bench import latency_stats

ROOT = Path(__file__).resolve().parents[1]

# Real tegrastats lines: Nano (JetPack 4), Xavier NX (JetPack 4/5), Orin Nano (JetPack 6), AGX Orin (JetPack 5).
NANO = (
    "RAM 1216/3964MB (lfb 330x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [5%@102,2%@102,0%@102,0%@102] EMC_FREQ 0% GR3D_FREQ 0% PLL@24.5C CPU@26.5C PMIC@100C "
    "GPU@25.5C AO@33C thermal@25.75C POM_5V_IN 1078/1078 POM_5V_GPU 0/0 POM_5V_CPU 123/123"
)
XAVIER_NX = (
    "RAM 2448/7765MB (lfb 84x4MB) SWAP 0/3883MB (cached 0MB) CPU [2%@1190,1%@1190,0%@1190,0%@1190,off,off] "
    "EMC_FREQ 0% GR3D_FREQ 0% AO@31C GPU@31C PMIC@100C AUX@31C CPU@32.5C thermal@31.35C "
    "VDD_IN 3594/3594 VDD_CPU_GPU_CV 530/530 VDD_SOC 1101/1101"
)
ORIN_NANO = (
    "12-01-2026 13:20:01 RAM 2845/7620MB (lfb 5x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [1%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] NVENC off NVDEC off "
    "NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@47.25C soc2@45.968C soc0@46.625C gpu@46.843C tj@47.25C "
    "soc1@45.906C VDD_IN 4929mW/4929mW VDD_CPU_GPU_CV 481mW/481mW VDD_SOC 1442mW/1442mW"
)
AGX_ORIN = (
    "RAM 4722/30536MB (lfb 6200x4MB) SWAP 0/15268MB (cached 0MB) CPU [0%@2201,0%@2201,0%@2201,0%@2201] "
    "EMC_FREQ 0%@3199 GR3D_FREQ 0%@[1300,1300] VIC_FREQ 115 APE 174 CV0@-256C CPU@44.437C GPU@-256C "
    "VDD_GPU_SOC 2400mW/2400mW VDD_CPU_CV 400mW/400mW VIN_SYS_5V0 2910mW/2910mW VDDQ_VDD2_1V8AO 604mW/604mW"
)


def test_tegrastats_parser_on_real_lines() -> None:
    assert power.parse_tegrastats_line(NANO) == {"POM_5V_IN": 1078, "POM_5V_GPU": 0, "POM_5V_CPU": 123}
    assert power.parse_tegrastats_line(XAVIER_NX) == {"VDD_IN": 3594, "VDD_CPU_GPU_CV": 530, "VDD_SOC": 1101}
    orin = power.parse_tegrastats_line(ORIN_NANO)
    assert orin == {"VDD_IN": 4929, "VDD_CPU_GPU_CV": 481, "VDD_SOC": 1442}
    assert power.total_power_mw(orin) == 4929  # the input rail, not the sum
    agx = power.parse_tegrastats_line(AGX_ORIN)
    assert set(agx) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert power.total_power_mw(agx) == 2400 + 400 + 2910  # no input rail: the module rails (DRAM is in VIN_SYS_5V0)
    assert power.parse_tegrastats_line("RAM 1/2MB SWAP 0/1MB") == {}


def test_tegrastats_monitor_reads_a_real_process(tmp_path: Path) -> None:
    """TegrastatsMonitor against an executable printing the real Orin format at the given interval."""
    fake = tmp_path / "tegrastats"
    fake.write_text(
        f"#!{sys.executable}\nimport sys, time\n"
        "ms = int(sys.argv[sys.argv.index('--interval') + 1])\n"
        f"while True:\n    print({ORIN_NANO!r}, flush=True)\n    time.sleep(ms / 1000)\n"
    )
    fake.chmod(0o755)
    mon = power.TegrastatsMonitor(interval=0.02, exe=str(fake))
    mon.start()
    time.sleep(0.5)
    res = mon.stop()
    assert res["source"] == "tegrastats" and res["samples"] >= 3
    assert res["mean_power_w"] == pytest.approx(4.929)
    assert res["energy_j"] == pytest.approx(4.929 * res["duration_s"])
    assert res["rails_mean_w"]["VDD_SOC"] == pytest.approx(1.442)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def fake_hwmon(root: Path) -> Path:
    """A sysfs hwmon tree as the kernel lays it out: an INA3221 (Jetson), an INA226, a CPU thermal chip."""
    ina3221 = root / "hwmon1"
    _write(ina3221 / "name", "ina3221")
    for ch, (label, mv, ma) in enumerate(
        [("VDD_IN", 5080, 980), ("VDD_CPU_GPU_CV", 5072, 110), ("VDD_SOC", 5076, 290)], 1
    ):
        _write(ina3221 / f"in{ch}_label", label)
        _write(ina3221 / f"in{ch}_input", str(mv))
        _write(ina3221 / f"curr{ch}_input", str(ma))
        _write(ina3221 / f"in{ch}_enable", "1")
    _write(ina3221 / "in4_input", "0")  # summation channel without a current: ignored
    ina226 = root / "hwmon2"
    _write(ina226 / "name", "ina226")
    _write(ina226 / "power1_input", "2500000")  # µW
    _write(ina226 / "in1_input", "5000")
    _write(ina226 / "curr1_input", "500")
    thermal = root / "hwmon0"
    _write(thermal / "name", "cpu_thermal")
    _write(thermal / "temp1_input", "45000")
    _write(thermal / "in0_input", "900")
    return root


def test_hwmon_sensors_and_monitor_on_fake_sysfs(tmp_path: Path) -> None:
    root = fake_hwmon(tmp_path / "hwmon")
    sensors = power.hwmon_power_sensors(root)
    assert [s["label"] for s in sensors] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC", "ina226/power1_input"]
    reading = power.read_hwmon_mw(sensors)
    assert reading["VDD_IN"] == pytest.approx(5080 * 980 / 1000)
    assert reading["ina226/power1_input"] == pytest.approx(2500.0)
    assert power.total_power_mw(reading) == pytest.approx(4978.4)  # VDD_IN is the board input
    mon, why = power.open_monitor("auto", 0.02, hwmon_root=root, rapl_root=tmp_path / "none")
    if mon is not None and mon.source == "tegrastats":
        pytest.skip("a real tegrastats is installed here")
    assert mon is not None and mon.source == "hwmon" and "VDD_IN" in why
    mon.start()
    time.sleep(0.15)
    _write(root / "hwmon1" / "curr1_input", "1960")  # load doubles the input current mid-run
    time.sleep(0.15)
    res = mon.stop()
    assert res["samples"] >= 4
    assert 4.978 < res["mean_power_w"] < 9.957  # between the two readings
    assert res["energy_j"] == pytest.approx(res["mean_power_w"] * res["duration_s"])


def fake_rapl(root: Path, energy: int, max_range: int = 262143328850) -> Path:
    d = root / "intel-rapl:0"
    _write(d / "name", "package-0")
    _write(d / "energy_uj", str(energy))
    _write(d / "max_energy_range_uj", str(max_range))
    sub = root / "intel-rapl:0:0"  # subdomain: already inside the package, not counted twice
    _write(sub / "name", "core")
    _write(sub / "energy_uj", "5")
    return root


def test_rapl_on_fake_sysfs_including_wraparound(tmp_path: Path) -> None:
    root = fake_rapl(tmp_path / "powercap", energy=1_000)
    mon = power.RaplMonitor(root)
    assert [d["name"] for d in mon.domains] == ["package-0"]
    mon.start()
    _write(root / "intel-rapl:0" / "energy_uj", str(3_001_000))
    res = mon.stop()
    assert res["energy_j"] == pytest.approx(3.0) and res["domains_j"] == {"package-0": pytest.approx(3.0)}
    assert power.rapl_delta_uj(262143328000, 150, 262143328850) == 1000


def test_rapl_real_counters_where_readable() -> None:
    domains = power.rapl_domains()
    if not domains:
        reason = "no /sys/class/powercap" if not Path(power.RAPL_ROOT).exists() else "RAPL not readable"
        pytest.skip(f"{reason} on this machine (VMs rarely expose RAPL); parsing is tested on a fake tree")
    mon = power.RaplMonitor()
    mon.start()
    sum(i * i for i in range(2_000_000))
    res = mon.stop()
    assert res["energy_j"] > 0 and res["mean_power_w"] > 0


def test_no_power_source_says_why(tmp_path: Path) -> None:
    mon, why = power.open_monitor("hwmon", hwmon_root=tmp_path / "nothing")
    assert mon is None and "no power sensors" in why
    assert power.open_monitor("none")[0] is None


def test_nvpmodel_query_parser() -> None:
    assert sysinfo.parse_nvpmodel_query("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "mode": 0}
    assert sysinfo.parse_nvpmodel_query("NVPM VERB: Current mode: NV Power Mode: 15W\n1\n") == {
        "name": "15W",
        "mode": 1,
    }


def test_nvpmodel_set_runs_the_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Selecting a power mode calls `nvpmodel -m N` (a stand-in executable keeping state in a file)."""
    state = tmp_path / "mode"
    state.write_text("2")
    exe = tmp_path / "nvpmodel"
    exe.write_text(
        f"#!/bin/sh\nif [ \"$1\" = -q ]; then echo 'NV Power Mode: MODE_'$(cat {state}); cat {state}; "
        f'elif [ "$1" = -m ]; then echo "$2" > {state}; fi\n'
    )
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    if os.geteuid() != 0:
        pytest.skip("nvpmodel -m is called through sudo -n when not root")
    assert sysinfo.nvpmodel_query() == {"name": "MODE_2", "mode": 2}
    assert sysinfo.nvpmodel_set(0) == {"name": "MODE_0", "mode": 0}


def test_cpuinfo_on_arm_and_x86() -> None:
    pi = (
        "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd0b\n\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
    )
    assert sysinfo.cpu_info(pi)["model"] == "Raspberry Pi 5 Model B Rev 1.0"
    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"
    assert sysinfo.cpu_info(x86)["model"] == "AMD EPYC 7B13"


def test_latency_stats() -> None:
    s = latency_stats([0.001] * 98 + [0.002, 0.010], batch=4)
    assert s["p50"] == pytest.approx(1.0) and s["max"] == pytest.approx(10.0) and s["p99"] > s["p90"]
    assert s["throughput_ips"] == pytest.approx(4 / (s["mean"] / 1000))


def test_harness_imports_without_torch_or_edgeopt_stack() -> None:
    """The device-side modules import in a bare interpreter with numpy only on the path."""
    code = (
        "import sys, edgeopt.harness.bench, edgeopt.harness.power, edgeopt.harness.sysinfo;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'snakemake', 'onnx', 'yaml', 'jsonschema')"
        " or m.startswith('edgeopt.') and not m.startswith('edgeopt.harness')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            f"import sys; sys.path[:0] = {[str(ROOT / 'src'), _numpy_site()]!r}; " + code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _numpy_site() -> str:
    import numpy

    return str(Path(numpy.__file__).parents[1])


def test_sysinfo_cli_prints_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeopt.harness.sysinfo"], capture_output=True, text=True, timeout=60
    )
    info = json.loads(proc.stdout)
    assert info["system"]["cpu"]["logical_cores"] >= 1 and info["system"]["os"]["system"] == "Linux"
