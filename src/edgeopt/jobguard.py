"""Long jobs that end with the workflow that started them, and never run twice on one output folder.

Snakemake runs each job as `bash -c "...; python -m edgeopt <command> ..."`. Killed with SIGKILL,
Snakemake leaves that shell and its Python behind, and given SIGINT or SIGTERM it waits for the
running jobs to finish. So:

- the workflow's shell prefix exports `EDGEOPT_JOB_PARENT=$PPID` (the Snakemake process); a job
  watches that process (and its own parent, with `PR_SET_PDEATHSIG` on Linux) and stops itself
  with SIGTERM when it is gone;
- the workflow's `onstart` hook wraps Snakemake's SIGINT/SIGTERM handling: the running jobs get
  SIGTERM first (`forward_stop_signals`);
- a job turns SIGTERM (like SIGINT) into an exception, so atomic writes are rolled back, the last
  complete checkpoint is kept, child processes are killed, and the CLI exits non-zero with one line;
- training-like jobs hold an exclusive lock on their output folder (`output_lock`), so a second one
  on the same folder fails at once, naming the folder and the holder's pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.private import open_lock_file

ENV_PARENT = "EDGEOPT_JOB_PARENT"
SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "busybox"})
POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1


class JobStopped(KeyboardInterrupt):
    """The job was asked to stop (SIGTERM, or the workflow that started it is gone)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ------------------------------------------------------------------ /proc
def _stat(pid: int) -> tuple[str, int, int] | None:
    """(command name, parent pid, start time) of a process, or None if it is gone or a zombie (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent: gone all the same
        return None
    return head.partition("(")[2], int(fields[1]), int(fields[19])


def _alive(pid: int, start: int | None) -> bool:
    """Whether `pid` still runs and is the same process (same start time, where /proc tells it)."""
    if start is not None:
        st = _stat(pid)
        return st is not None and st[2] == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1 and (st := _stat(pid)) is not None:
        pid = st[1]
        out.append(pid)
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None and st[1] == pid:
            kids.append(int(name))
    return kids


# ------------------------------------------------------------------ in the job
def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # one clean stop; later signals would break it
        signal.signal(s, signal.SIG_IGN)
    raise JobStopped(signum)


def _watch(pid: int, start: int | None, ppid: int) -> None:
    """Stop this process (SIGTERM to itself, handled in the main thread) once `pid` or the parent is gone."""
    stop = threading.Event()
    while not stop.wait(POLL_SECONDS):
        if not _alive(pid, start) or os.getppid() != ppid:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def guard_job() -> None:
    """Run this process as a job that stops cleanly on SIGTERM/SIGHUP and ends with the workflow.

    Called by the CLI before every command. The parent watch applies only under the workflow
    (`EDGEOPT_JOB_PARENT` names an ancestor): a command started by hand, e.g. under nohup, keeps
    running when its terminal goes.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGHUP, _raise_stopped)
    watched = os.environ.get(ENV_PARENT, "")
    if not watched.isdigit():
        return
    pid, ppid = int(watched), os.getppid()
    linux = os.path.isdir("/proc/self")
    if linux and pid not in _ancestors(os.getpid()):
        return  # a stale variable inherited from elsewhere
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    st = _stat(pid) if linux else None
    threading.Thread(
        target=_watch, args=(pid, st[2] if st else None, ppid), name="edgeopt-parent-watch", daemon=True
    ).start()


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], name: str = "job") -> Iterator[Path]:
    """Hold `<folder>/.<name>.lock` exclusively for the block; a second holder fails at once, naming the first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.lock"
    fd = open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise EdgeoptError(
                f"{folder}: another edgeopt job (pid {holder}) is writing here; wait for it or stop it"
            ) from None
        with contextlib.suppress(OSError):  # the pid is for the message only (a full disk must not stop the job)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the lock (as does the process ending, however it ends)


def lock_holder(folder: str | os.PathLike[str], name: str = "job") -> int | None:
    """The pid holding `output_lock(folder, name)` now, or None when nobody holds it."""
    path = Path(folder) / f".{name}.lock"
    if not path.exists():
        return None
    fd = open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# ------------------------------------------------------------------ in Snakemake
def job_programs(root: int) -> list[int]:
    """The programs a process runs as jobs: its children, looking through shells to what they run."""
    out, todo = [], _children(root)
    while todo:
        pid = todo.pop()
        st = _stat(pid)
        if st is None:
            continue
        if st[0] in SHELLS:
            todo += _children(pid)
        else:
            out.append(pid)
    return out


def forward_stop_signals() -> None:
    """Make SIGINT/SIGTERM to this (Snakemake) process stop its running jobs first, then act as before.

    Snakemake alone waits for running jobs to finish; each job's program gets SIGTERM instead,
    saves what it can and exits non-zero, so Snakemake records the job as failed and exits.
    """
    if not os.path.isdir("/proc/self"):
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            for pid in job_programs(os.getpid()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)
