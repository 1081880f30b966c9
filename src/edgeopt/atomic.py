"""Write files so a crash never leaves a half-written artifact behind.

Everything edgeopt writes goes to a temporary sibling first and is renamed into place:
Snakemake sees either the old file, or the complete new one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
FULL_BELOW_BYTES = 64 * 1024  # a write that failed with less than this free was a full disk


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the artifact the usual umask-based mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, final)
    except Exception as exc:
        if not isinstance(exc, EdgeoptError) and _out_of_space(exc, final.parent):
            raise EdgeoptError(f"{final}: no space left on the file system; nothing was written") from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _out_of_space(exc: BaseException, folder: Path) -> bool:
    """Whether a failed write was a full disk (libraries such as torch.save hide the errno in a RuntimeError)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW_BYTES


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write pretty JSON (numpy scalars and paths are converted)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read back a metrics JSON (an object); a missing, truncated or foreign file is one line naming it."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeoptError(f"{path}: not a readable metrics JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise EdgeoptError(f"{path}: a metrics JSON must hold an object")
    return obj


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
