"""Private state (edgeopt.private): planted folders, code and lock symlinks are refused or replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeopt.bench.run import device_lock
from edgeopt.devices import Output, get_device
from edgeopt.devices.transport import package_files, tree_hash
from edgeopt.jobguard import output_lock
from edgeopt.private import ENV_ROOT, UnsafeStateError, private_dir, state_root


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv(ENV_ROOT, str(root))
    return root


def test_root_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ROOT, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert state_root() == tmp_path / "xdg" / "edgeopt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert state_root() == Path.home() / ".cache" / "edgeopt"


def test_private_dirs_are_made_0700(state: Path) -> None:
    d = private_dir("code")
    assert d == state / "code"
    for p in (state, d):
        assert p.stat().st_mode & 0o777 == 0o700


def test_group_writable_folder_is_refused(state: Path) -> None:
    (state / "locks").mkdir(parents=True, mode=0o700)
    os.chmod(state / "locks", 0o777)
    with pytest.raises(UnsafeStateError, match=r"locks: writable by group or others \(mode 777\)"):
        private_dir("locks")


def test_readable_only_folder_of_mine_is_tightened(state: Path) -> None:
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    private_dir()
    assert state.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner to another uid needs root")
def test_folder_of_another_user_is_refused(state: Path) -> None:
    (state / "code").mkdir(parents=True, mode=0o700)
    os.chown(state / "code", 12345, 12345)
    with pytest.raises(UnsafeStateError, match=r"code: owned by uid 12345, not by you"):
        private_dir("code")


def test_symlinked_state_folder_is_refused(state: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir(mode=0o700)
    state.mkdir(mode=0o700)
    (state / "code").symlink_to(elsewhere)
    with pytest.raises(UnsafeStateError, match="code: is a symlink"):
        private_dir("code")


def test_local_device_refuses_a_planted_code_store(state: Path, tmp_path: Path) -> None:
    """The old layout: anyone could make the code folder first; now the store must be private."""
    state.mkdir(mode=0o700)
    (state / "code").mkdir()
    os.chmod(state / "code", 0o1777)
    dev = get_device({}, "local")
    with pytest.raises(UnsafeStateError, match="code: writable by group or others"):
        dev.run_module("edgeopt.harness.sysinfo", ["--out", Output("i.json")], fetch_to=tmp_path)


def test_planted_code_in_the_store_is_replaced_not_run(state: Path, tmp_path: Path) -> None:
    files = package_files()
    dest = private_dir("code") / tree_hash(files)
    pwned = tmp_path / "pwned"
    sysinfo = dest / "edgeopt" / "harness" / "sysinfo.py"
    sysinfo.parent.mkdir(parents=True)
    for rel, src in files.items():  # a full copy with one module changed
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(src.read_bytes())
    sysinfo.write_text(f"open({str(pwned)!r}, 'w').write('ran')\n")
    dev = get_device({}, "local")
    res = dev.run_module("edgeopt.harness.sysinfo", ["--out", Output("i.json")], fetch_to=tmp_path)
    assert not pwned.exists()
    assert "modules" in json.loads(res.outputs["i.json"].read_text())
    assert sysinfo.read_bytes() == files["edgeopt/harness/sysinfo.py"].read_bytes()


def test_an_extra_file_in_the_code_store_is_not_kept(state: Path, tmp_path: Path) -> None:
    dev = get_device({}, "local")
    code = Path(dev.ship_code())
    planted = code / "edgeopt" / "harness" / "__pycache__" / "sysinfo.cpython-311.pyc"
    planted.parent.mkdir()
    planted.write_bytes(b"not python")
    assert Path(dev.ship_code()) == code
    assert not planted.exists()


def test_device_lock_does_not_follow_a_planted_symlink(state: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (private_dir("locks") / "local.lock").symlink_to(victim)
    with pytest.raises(UnsafeStateError, match="local.lock: the lock file is a symlink"):
        with device_lock("local"):
            pass
    assert victim.read_text() == "keep me"


def test_output_lock_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "models" / "m" / "baseline"
    out.mkdir(parents=True)
    (out / ".job.lock").symlink_to(victim)
    with pytest.raises(UnsafeStateError, match="the lock file is a symlink"):
        with output_lock(out):
            pass
    assert victim.read_text() == "keep me"
