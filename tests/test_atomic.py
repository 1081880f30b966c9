"""The atomic writer: all or nothing, and artifacts others can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgeopt.atomic import atomic_path, write_json


def test_written_file_gets_umask_mode_not_mkstemp_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "m.json").stat().st_mode)
    assert mode & 0o044 == 0o044, oct(mode)


def test_failed_block_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
