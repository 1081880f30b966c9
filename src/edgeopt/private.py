"""Private per-user folders for state another user must never touch: code stores, run folders, locks.

A folder at a predictable path (`/tmp/edgeopt-...`) can be made first by someone else, who then
controls what a later job runs or where its lock writes. Everything edgeopt keeps between jobs
therefore lives under one root, `$EDGEOPT_STATE_DIR`, else `$XDG_CACHE_HOME/edgeopt`, else
`~/.cache/edgeopt`; every level of it is made with mode 0700 and checked before it is used: a
real folder (not a symlink), owned by this user, writable by nobody else. A folder of this user
that others may only read (an old 0755 one) is tightened to 0700; anything else is refused with
one line. Lock files are opened with O_NOFOLLOW, so a planted symlink cannot redirect them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edgeopt.errors import EdgeoptError

ENV_ROOT = "EDGEOPT_STATE_DIR"
MODE = 0o700


class UnsafeStateError(EdgeoptError):
    """A state folder or lock exists but someone else could have changed it."""


def state_root() -> Path:
    """The root of edgeopt's private state (not created here)."""
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "edgeopt"


def check_private(path: str | os.PathLike[str]) -> Path:
    """Make sure `path` is a folder only this user controls (tightening 0755 -> 0700); return it."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise UnsafeStateError(f"{p}: missing") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeStateError(f"{p}: is a symlink, not edgeopt's private folder; remove it")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeStateError(f"{p}: not a folder; remove it")
    if st.st_uid != os.geteuid():
        raise UnsafeStateError(
            f"{p}: owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); refusing to use it, remove it"
        )
    if st.st_mode & 0o022:
        raise UnsafeStateError(
            f"{p}: writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); its contents cannot be "
            "trusted, remove it"
        )
    if stat.S_IMODE(st.st_mode) != MODE:
        os.chmod(p, MODE)
    return p


def private_dir(*parts: str) -> Path:
    """`<state root>/<parts...>`, each level made with mode 0700 or checked (`check_private`)."""
    root = state_root()
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
    path = root
    for part in ("", *parts):
        path = path / part if part else path
        try:
            os.mkdir(path, MODE)
        except FileExistsError:
            pass
        check_private(path)
    return path


def open_lock_file(path: str | os.PathLike[str]) -> int:
    """Open (creating, mode 0600) a lock file without following a symlink at its place; return the fd."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeStateError(f"{path}: the lock file is a symlink; refusing to follow it, remove it") from None
        raise EdgeoptError(f"{path}: cannot open the lock file: {exc.strerror}") from None
