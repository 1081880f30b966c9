"""edgeopt.devices over a real sshd on 127.0.0.1: quoting, content-hashed store, errors, local device."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from device_fixtures import free_port

from edgeopt.devices import (
    DeviceTimeout,
    File,
    HostKeyError,
    LocalDevice,
    Output,
    RemoteCommandError,
    SshDevice,
    UnreachableError,
    device_from_json,
    get_device,
    load_devices,
)
from edgeopt.devices.config import device_from_settings
from edgeopt.errors import EdgeoptError

NASTY = ["a b", "it's", '"dq"', "$(touch /tmp/edgeopt-pwned)", "`id`", "x;rm -rf ~", "*", "~", "\\n"]


def test_config_defaults_and_errors(tmp_path: Path) -> None:
    devices = load_devices({"devices": {"pi": {"host": "pi5", "runtimes": ["onnxruntime"]}}})
    assert isinstance(devices["local"], LocalDevice) and isinstance(devices["pi"], SshDevice)
    assert devices["pi"].config.workdir == ".cache/edgeopt-device"
    assert (
        device_from_settings("j", {"host": "j", "workdir": "~/bench", "python": "~/v/bin/python"}).python
        == "v/bin/python"
    )
    with pytest.raises(EdgeoptError, match=r"devices\.pi\.hots: unknown key"):
        load_devices({"devices": {"pi": {"hots": "x"}}})
    with pytest.raises(EdgeoptError, match=r"devices\.pi\.runtimes: 'openvino'"):
        load_devices({"devices": {"pi": {"host": "x", "runtimes": ["openvino"]}}})
    with pytest.raises(EdgeoptError, match=r"devices\.pi\.identity_file: .* not found"):
        load_devices({"devices": {"pi": {"host": "x", "identity_file": str(tmp_path / "nope")}}})
    with pytest.raises(EdgeoptError, match=r"devices\.pi\.host: '-oProxyCommand=x' is not a host"):
        load_devices({"devices": {"pi": {"host": "-oProxyCommand=x"}}})
    with pytest.raises(EdgeoptError, match=r"devices\.nope: no such"):
        get_device({}, "nope")
    assert "disabled" not in load_devices({"devices": {"disabled": {"host": "x", "enabled": False}}})


def test_ssh_argv_verifies_host_keys_and_quotes_remote_words(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("k")
    dev = device_from_json(
        "j", json.dumps({"host": "jetson", "port": 2222, "user": "nv", "identity_file": str(key)})
    )
    argv = dev.ssh_argv(["python3", "-c", "print('hi there')"])
    assert argv[0] == "ssh" and "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv
    assert not any("StrictHostKeyChecking=no" in a for a in argv)
    assert argv[-2:] == ["jetson", "python3 -c 'print('\"'\"'hi there'\"'\"')'"]
    assert ["-i", str(key)] == argv[argv.index("-i") : argv.index("-i") + 2]


def test_remote_argv_arrives_verbatim(sshd_server, device_python) -> None:
    dev = device_from_json("board", sshd_server.device_settings(python=str(device_python)))
    Path("/tmp/edgeopt-pwned").unlink(missing_ok=True)
    proc = dev.run([dev.python, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *NASTY])
    assert json.loads(proc.stdout) == NASTY
    assert not Path("/tmp/edgeopt-pwned").exists()


def test_store_sends_each_content_once_and_runs_module(sshd_server, device_python, tmp_path: Path) -> None:
    dev = device_from_json(
        "board", sshd_server.device_settings(python=str(device_python), workdir=str(tmp_path / "wd"))
    )
    a = tmp_path / "model.onnx"
    a.write_bytes(b"x" * 5000)
    first = dev.put([a])
    assert dev.last_sent == [str(a)]
    remote = first[str(a)]
    assert remote.startswith(str(tmp_path / "wd" / "store")) and remote.endswith(".onnx")
    assert Path(remote).read_bytes() == a.read_bytes()  # same machine: the 'device' filesystem is visible
    dev.put([a])
    assert dev.last_sent == []  # unchanged: not re-sent
    a.write_bytes(b"y" * 5000)
    assert dev.put([a])[str(a)] != remote and dev.last_sent == [str(a)]

    res = dev.run_module(
        "edgeopt.harness.sysinfo", ["--out", Output("info.json")], fetch_to=tmp_path / "back"
    )
    info = json.loads(res.outputs["info.json"].read_text())
    assert info["system"]["python"] and "torch" not in info["modules"] and "numpy" in info["modules"]
    assert not any((tmp_path / "wd" / "runs").iterdir())  # run folder cleaned up
    code_dirs = list((tmp_path / "wd" / "code").iterdir())
    assert len(code_dirs) == 1 and (code_dirs[0] / "edgeopt" / "harness" / "sysinfo.py").exists()
    assert not (code_dirs[0] / "edgeopt" / "devices").exists()  # only the shipped package reaches the device

    with pytest.raises(
        RemoteCommandError,
        match=r"device board .*python -m edgeopt\.harness\.nosuch failed \(exit 1\): .*No module named",
    ):
        dev.run_module("edgeopt.harness.nosuch", [File(a)])


def test_scp_transfer_and_ssh_config_alias(sshd_server, device_python, tmp_path: Path) -> None:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host edgeopt-board\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User {sshd_server.user}\n"
        f"  IdentityFile {sshd_server.identity_file}\n  UserKnownHostsFile {sshd_server.known_hosts}\n"
    )
    dev = device_from_json(
        "alias",
        {
            "host": "edgeopt-board",
            "ssh_config": str(cfg),
            "python": str(device_python),
            "workdir": str(tmp_path / "wd"),
            "transfer": "scp",
        },
    )
    f = tmp_path / "arr.npz"
    f.write_bytes(b"z" * 100)
    remote = dev.put([f])[str(f)]
    assert Path(remote).read_bytes() == b"z" * 100 and dev.last_sent == [str(f)]
    dev.put([f])
    assert dev.last_sent == []
    res = dev.run_module("edgeopt.harness.sysinfo", ["--out", Output("i.json")], fetch_to=tmp_path / "b")
    assert json.loads(res.outputs["i.json"].read_text())["system"]["python"]


def test_wrong_host_key_is_a_clear_error(sshd_server) -> None:
    dev = device_from_json(
        "board", sshd_server.device_settings(known_hosts=str(sshd_server.wrong_known_hosts))
    )
    with pytest.raises(HostKeyError) as err:
        dev.run(["true"])
    msg = str(err.value)
    assert "\n" not in msg and "device board" in msg and "host key verification failed" in msg
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in msg


def test_unknown_host_key_is_refused_not_added(sshd_server, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    dev = device_from_json("board", sshd_server.device_settings(known_hosts=str(empty)))
    with pytest.raises(HostKeyError, match="host key verification failed"):
        dev.run(["true"])
    assert empty.read_text() == ""


def test_device_down_is_one_line_and_retried(sshd_server) -> None:
    dev = device_from_json("down", sshd_server.device_settings(port=free_port(), retries=1))
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as err:
        dev.run(["true"])
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("device down (") and "Connection refused" in str(err.value)
    assert time.monotonic() - t0 >= 2.0  # one retry after a 2 s pause


def test_local_device_runs_harness_without_torch(tmp_path: Path) -> None:
    dev = get_device({}, "local")
    res = dev.run_module("edgeopt.harness.sysinfo", ["--out", Output("i.json")], fetch_to=tmp_path)
    assert "torch" not in json.loads(res.outputs["i.json"].read_text())["modules"]
    info = dev.check()
    assert info["runtimes"]["onnxruntime"] and info["missing_runtimes"] == []


def test_cli_check_device_reports_missing_runtime(sshd_server, device_python, tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "c.yaml"
    board = sshd_server.device_settings(python=str(device_python), runtimes=["onnxruntime", "tensorrt"])
    cfg.write_text(yaml.safe_dump({"devices": {"board": board}}))
    proc = subprocess.run(
        [sys.executable, "-m", "edgeopt", "check-device", "--configfile", str(cfg), "board"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "board: python" in proc.stdout and "missing runtimes: tensorrt" in proc.stdout


def test_accept_new_trusts_a_first_key_but_never_a_changed_one(sshd_server, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    dev = device_from_json(
        "board", sshd_server.device_settings(known_hosts=str(known), strict_host_key_checking="accept-new")
    )
    dev.run(["true"])
    host_key = sshd_server.known_hosts.read_text().split()[2]
    assert host_key in known.read_text()  # first key recorded (host name hashed: Debian's HashKnownHosts)
    changed = device_from_json(
        "board",
        sshd_server.device_settings(
            known_hosts=str(sshd_server.wrong_known_hosts), strict_host_key_checking="accept-new"
        ),
    )
    with pytest.raises(HostKeyError, match="host key verification failed"):
        changed.run(["true"])


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("where", ["ssh", "local"])
def test_timeout_ends_the_command_and_its_children_on_the_board(sshd_server, tmp_path: Path, where: str) -> None:
    """A job that times out must not keep running on the board: the remote process group is killed."""
    pids = tmp_path / "pids"
    script = f'sleep 300 & echo $! > {pids}; wait'
    settings = sshd_server.device_settings(timeout=3) if where == "ssh" else {"timeout": 3}
    dev = device_from_json("board" if where == "ssh" else "local", settings)
    with pytest.raises(DeviceTimeout, match=r"timed out after 3 s"):
        dev.run(["sh", "-c", script])
    child = int(pids.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child), f"sleep {child} still runs on the board after the timeout"


def test_stderr_of_remote_commands_is_the_commands_own(sshd_server) -> None:
    dev = device_from_json("board", sshd_server.device_settings())
    proc = dev.run(["sh", "-c", "echo out; echo err >&2"])
    assert (proc.stdout, proc.stderr) == ("out\n", "err\n")
    with pytest.raises(RemoteCommandError, match=r"sh failed \(exit 3\): no output"):
        dev.run(["sh", "-c", "exit 3"])


def test_board_that_drops_mid_command_is_one_line(sshd_server, device_python, tmp_path: Path) -> None:
    """The board's sshd and its sessions die while a module runs: one line naming the device, no retry."""
    import threading

    from device_fixtures import drop_sshd, start_sshd, stop_sshd

    from edgeopt.devices import ConnectionLost

    board = start_sshd(tmp_path / "sshd")
    try:
        dev = device_from_json(
            "flaky", board.device_settings(python=str(device_python), workdir=str(tmp_path / "wd"), retries=2)
        )
        dev.run(["true"])  # connected (and multiplexed) before it drops
        timer = threading.Timer(3.0, drop_sshd, [board])
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(ConnectionLost) as err:
            dev.run([str(device_python), "-c", "import time; time.sleep(60)"])
        timer.join()
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("device flaky (") and "connection lost" in msg
        assert time.monotonic() - t0 < 30  # not retried, not waiting for the command
    finally:
        if board.process.poll() is None:
            stop_sshd(board)


def test_board_workdir_is_private_and_checked(sshd_server, device_python, tmp_path: Path) -> None:
    """The board's workdir (code, models, run folders) is made 0700; a workdir that is a symlink or
    belongs to another user is refused with one line before anything is sent or run there."""
    import os

    a = tmp_path / "model.onnx"
    a.write_bytes(b"x" * 100)
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o755)
    os.chmod(wd, 0o755)
    dev = device_from_json("board", sshd_server.device_settings(python=str(device_python), workdir=str(wd)))
    dev.put([a])
    assert (wd.stat().st_mode & 0o777) == 0o700 and ((wd / "store").stat().st_mode & 0o077) == 0

    elsewhere = tmp_path / "planted"
    elsewhere.mkdir()
    link = tmp_path / "linked-wd"
    link.symlink_to(elsewhere)
    dev = device_from_json("board", sshd_server.device_settings(python=str(device_python), workdir=str(link)))
    with pytest.raises(EdgeoptError, match="symlink or not a folder") as err:
        dev.put([a])
    assert "\n" not in str(err.value) and not any(elsewhere.iterdir())

    if os.geteuid() != 0:
        pytest.skip("a folder owned by another user needs root to make (chown)")
    foreign = tmp_path / "foreign-wd"
    foreign.mkdir()
    os.chown(foreign, 4242, 4242)  # the tests run as root: the board user (root) does not own it
    dev = device_from_json("board", sshd_server.device_settings(python=str(device_python), workdir=str(foreign)))
    with pytest.raises(EdgeoptError, match="owned by uid 4242") as err:
        dev.put([a])
    assert "\n" not in str(err.value) and not any(foreign.iterdir())
