"""Jetson state parsing against the tools' real output formats (tests/data/jetson): nvpmodel, jetson_clocks,
tegrastats, thermal zones, L4T release; and the throttling verdict built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.harness import jetson, power, sysinfo

DATA = Path(__file__).parent / "data" / "jetson"


def text(name: str) -> str:
    return (DATA / name).read_text()


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
