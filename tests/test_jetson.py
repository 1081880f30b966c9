"""Jetson state parsing against the tools' real output formats (tests/data/jetson): nvpmodel, jetson_clocks,
tegrastats, thermal zones, L4T release; and the throttling verdict built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.harness import jetson, power, sysinfo

DATA = Path(__file__).parent / "data" / "jetson"


def text(name: str) -> str:
    """A sample as the tool printed it (the `# Source:` line naming where a real one came from left out)."""
    return "".join(ln for ln in (DATA / name).read_text().splitlines(True) if not ln.startswith("# Source:"))


def test_real_samples_name_their_source() -> None:
    real = sorted(DATA.glob("*-real.txt"))
    assert len(real) >= 6
    for path in real:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# Source: github.com/") and ("JetPack" in first or "Jetson" in first), path.name


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("nvpmodel-q-orin-nano.txt", {"name": "15W", "mode": 0}),
        ("nvpmodel-q-agx-orin.txt", {"name": "MODE_30W", "mode": 2}),
        ("nvpmodel-q-nano.txt", {"name": "5W", "mode": 1}),
    ],
)
def test_nvpmodel_query(name: str, mode: dict) -> None:
    assert sysinfo.parse_nvpmodel_query(text(name)) == mode


def test_jetson_clocks_default_and_locked() -> None:
    default = jetson.parse_jetson_clocks(text("jetson_clocks-show-orin-nano-default.txt"))
    assert default["machine"] == "NVIDIA Orin Nano Developer Kit" and default["power_mode"] == "15W"
    assert len(default["cpus"]) == 6 and default["cpus"][1] == {
        "cpu": 1, "online": True, "governor": "schedutil", "min": 729600, "max": 1510400, "current": 1510400,
    }  # fmt: skip
    assert default["gpu"] == {"min": 306000000, "max": 624750000, "current": 306000000}
    assert default["emc"]["max"] == 2133000000 and default["locked"] is False
    locked = jetson.parse_jetson_clocks(text("jetson_clocks-show-orin-nano-locked.txt"))
    assert locked["locked"] is True and locked["gpu"]["current"] == 624750000


def test_tegrastats_temperatures_and_rails_both_generations() -> None:
    orin = text("tegrastats-orin-nano.txt").splitlines()[0]
    assert power.parse_tegrastats_temps(orin) == {
        "cpu": 51.125, "soc2": 48.656, "soc0": 49.25, "gpu": 50.281, "tj": 51.125, "soc1": 48.343,
    }  # fmt: skip
    assert power.parse_tegrastats_line(orin) == {"VDD_IN": 6912.0, "VDD_CPU_GPU_CV": 1921.0, "VDD_SOC": 1723.0}
    nano = text("tegrastats-nano.txt")
    assert power.parse_tegrastats_temps(nano)["CPU"] == 38.5 and power.parse_tegrastats_temps(nano)["PMIC"] == 100
    assert power.total_power_mw(power.parse_tegrastats_line(nano)) == 4557.0


@pytest.mark.parametrize(
    ("name", "rails", "total", "temps"),
    [
        # Nano, JetPack 4.6.1: POM_5V_IN is the board input; the PMIC's constant reading is a temperature here
        ("tegrastats-nano-jetpack4.6.1-real.txt", {"POM_5V_IN": 1750, "POM_5V_GPU": 0, "POM_5V_CPU": 366}, 1750,
         {"PLL": 37, "CPU": 40, "PMIC": 50, "GPU": 40, "AO": 45, "thermal": 40}),
        # Xavier NX, JetPack 4: no unit on the rails
        ("tegrastats-xavier-nx-jetpack4-real.txt", {"VDD_IN": 6140, "VDD_CPU_GPU_CV": 2706, "VDD_SOC": 1074}, 6140,
         {"AO": 29, "GPU": 31.5, "PMIC": 100, "AUX": 30, "CPU": 33.5, "thermal": 31.35}),
        # Xavier NX, JetPack 5.1.2: mW units, timestamp, GR3D_FREQ 0%@[114]
        ("tegrastats-xavier-nx-jetpack5.1.2-real.txt", {"VDD_IN": 2763, "VDD_CPU_GPU_CV": 650, "VDD_SOC": 650}, 2763,
         {"AUX": 45, "CPU": 46.5, "thermal": 45.6, "AO": 45, "GPU": 45.5, "PMIC": 50}),
        # AGX Orin: no board-input rail; the DRAM rail is part of VIN_SYS_5V0 and is not added again
        ("tegrastats-agx-orin-real.txt",
         {"VDD_GPU_SOC": 2389, "VDD_CPU_CV": 1991, "VIN_SYS_5V0": 3634, "VDDQ_VDD2_1V8AO": 807}, 2389 + 1991 + 3634,
         {"cpu": 42.906, "tboard": 32.25, "soc2": 39.406, "tdiode": 33, "soc0": 39.531, "gpu": 38.593, "tj": 42.906,
          "soc1": 38.406}),
        # AGX Orin at rest: a rail reading below zero is still a reading
        ("tegrastats-agx-orin-negative-rail-real.txt",
         {"VDD_GPU_SOC": 1592, "VDD_CPU_CV": -398, "VIN_SYS_5V0": 2624, "VDDQ_VDD2_1V8AO": 403}, 1592 - 398 + 2624,
         {"cpu": 37.5, "tboard": 27, "soc2": 34.562, "tdiode": 27.5, "soc0": 34.531, "tj": 37.5, "soc1": 33.656}),
    ],
)  # fmt: skip
def test_real_tegrastats_lines_of_each_jetpack(name: str, rails: dict, total: float, temps: dict) -> None:
    """tegrastats as real boards printed it (JetPack 4.6 Nano, Xavier NX on 4.x and 5.1.2, AGX Orin)."""
    line = text(name).splitlines()[0]
    assert power.parse_tegrastats_line(line) == rails
    assert power.total_power_mw(power.parse_tegrastats_line(line)) == total
    assert power.parse_tegrastats_temps(line) == temps


def test_tegrastats_absent_sensor_and_unconnected_channel() -> None:
    """Part of an AGX Orin line in JetPack 5.0's layout (as a public devkit page quotes it, 2023-10-16):
    `CV0@-256C` marks a missing sensor and `NC 0mW/0mW` an unconnected channel; neither is a reading."""
    line = (
        "CV0@-256C CPU@43.5C Tdiode@32.5C GPU@38.156C VDD_GPU_SOC 4788mW/4788mW VDD_CPU_CV 798mW/798mW "
        "VIN_SYS_5V0 3842mW/3842mW NC 0mW/0mW VDDQ_VDD2_1V8AO 707mW/707mW NC 0mW/0mW"
    )
    assert power.parse_tegrastats_temps(line) == {"CPU": 43.5, "Tdiode": 32.5, "GPU": 38.156}
    assert power.total_power_mw(power.parse_tegrastats_line(line)) == 4788 + 798 + 3842


def test_tegrastats_monitor_averages_real_agx_orin_lines() -> None:
    """The sampler's summary over real lines: the board total per line, averaged."""
    lines = text("tegrastats-agx-orin-real.txt").splitlines()
    totals = [power.total_power_mw(power.parse_tegrastats_line(ln)) for ln in lines]
    assert totals == [8014, 8412, 8412]


def test_real_jetson_clocks_show_of_a_nano() -> None:
    """JetPack 4's `jetson_clocks --show` has `CPU Cluster Switching`, `Fan: speed=` and the power mode lines."""
    clocks = jetson.parse_jetson_clocks(text("jetson_clocks-show-nano-jetpack4-real.txt"))
    assert clocks["machine"] == "jetson-nano" and clocks["power_mode"] == "MAXN"
    assert [c["max"] for c in clocks["cpus"]] == [1428000] * 4 and clocks["cpus"][0]["min"] == 102000
    assert clocks["gpu"] == {"min": 76800000, "max": 921600000, "current": 153600000}
    assert clocks["emc"]["current"] == 1600000000 and clocks["locked"] is False


def test_thermal_zones_from_sysfs() -> None:
    zones = jetson.thermal_zones(DATA / "thermal-orin-nano")
    assert [z["type"] for z in zones][:2] == ["cpu-thermal", "gpu-thermal"] and len(zones) == 9
    assert zones[0] == {"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 51.125, "passive_trip_c": 99.0}
    assert zones[-1]["passive_trip_c"] is None  # tj-thermal has only active (fan) trips
    assert jetson.thermal_zones(DATA / "no-such-folder") == []


@pytest.mark.parametrize(
    ("name", "l4t"), [("nv_tegra_release-jetpack5.txt", "35.4.1"), ("nv_tegra_release-jetpack4.txt", "32.7.1")]
)
def test_l4t_release(name: str, l4t: str) -> None:
    assert jetson.parse_l4t_release(text(name)) == l4t


def test_throttling_verdict() -> None:
    cool = {
        "nvpmodel": sysinfo.parse_nvpmodel_query(text("nvpmodel-q-orin-nano.txt")),
        "jetson_clocks": jetson.parse_jetson_clocks(text("jetson_clocks-show-orin-nano-locked.txt")),
        "thermal": jetson.thermal_zones(DATA / "thermal-orin-nano"),
    }
    verdict = jetson.summary(cool, cool, {"cpu": 51.3, "gpu": 50.75})
    assert verdict == {
        "power_mode": "15W", "power_mode_id": 0, "jetson_clocks": True,
        "throttled": False, "reasons": [], "max_temp_c": 51.3,
    }  # fmt: skip
    hot = {
        "nvpmodel": {"name": "MAXN", "mode": 0},
        "jetson_clocks": jetson.parse_jetson_clocks(text("jetson_clocks-show-nano-locked-throttled.txt")),
        "thermal": jetson.thermal_zones(DATA / "thermal-nano-hot"),
    }
    before = dict(hot, jetson_clocks={"locked": True})
    got = jetson.throttling(before, hot, power.parse_tegrastats_temps(text("tegrastats-nano.txt")))
    assert got["throttled"] is True
    assert got["reasons"] == [
        "CPU-therm at 97.5 C >= passive trip 97.0 C",
        "cpu2 at 921 MHz < 1479 MHz",
        "GPU at 640 MHz < 921 MHz",
    ]
    assert got["max_temp_c"] == 97.5  # the PMIC's constant 100 C is not a temperature
    unlocked = jetson.throttling({"jetson_clocks": {"locked": False}}, dict(hot, thermal=[]))
    assert unlocked == {"throttled": False, "reasons": [], "max_temp_c": None}
