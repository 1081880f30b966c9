"""Run commands and Python modules on a device: locally, or over the system OpenSSH client.

Why the system client: users' keys, agents, `~/.ssh/config` aliases, ProxyJump and
known_hosts all just work. Host keys are always verified (`StrictHostKeyChecking=yes`, or
`accept-new` when a device asks for it), every command is an argv list locally and a
`shlex.quote`d string remotely, and files go to a content-addressed store on the device so an
unchanged model or dataset is never sent twice.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.devices.config import DeviceConfig
from edgeopt.errors import EdgeoptError
from edgeopt.private import private_dir

SRC_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `edgeopt` package
DEFAULT_PACKAGES = ("edgeopt.harness",)


#: the board side of `SshDevice._missing`: $1 the workdir, $2 how many folders follow to create, then
#: paths whose absence is printed. Exit 4 with one line on stderr when the workdir is not private.
_PRIVATE_DIRS_SCRIPT = (
    'umask 077; w=$1; shift; mkdir -p "$w" || exit 3; '
    'if [ -L "$w" ] || [ ! -d "$w" ]; then echo "workdir $w is a symlink or not a folder" >&2; exit 4; fi; '
    'o=$(stat -c %u "$w" 2>/dev/null || stat -f %u "$w"); '
    'if [ "$o" != "$(id -u)" ]; then echo "workdir $w is owned by uid $o, not by this user" >&2; exit 4; fi; '
    'chmod 700 "$w" || exit 4; '
    'n=$1; shift; while [ "$n" -gt 0 ]; do mkdir -p "$1" || exit 3; shift; n=$((n-1)); done; '
    'for f do [ -e "$f" ] || printf "%s\\n" "$f"; done'
)


class DeviceError(EdgeoptError):
    """Anything that went wrong on or on the way to a device (one line, names the device)."""


class HostKeyError(DeviceError):
    """The device's host key is unknown or changed: never retried, never bypassed."""


class UnreachableError(DeviceError):
    """No SSH connection could be made (refused, timed out, unknown host): retried."""


class RemoteCommandError(DeviceError):
    """The command ran on the device and failed."""

    def __init__(self, message: str, returncode: int, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


class DeviceTimeout(DeviceError):
    """The command did not finish within the device's timeout (its process group is ended there too)."""


class ConnectionLost(DeviceError):
    """The SSH connection broke while a command ran: the board rebooted, lost power or left the network."""


@dataclass(frozen=True)
class File:
    """A local file argument: replaced by its path in the device's content-hashed store."""

    path: str | os.PathLike[str]


@dataclass(frozen=True)
class Output:
    """An output file argument: replaced by a path in a fresh run folder, fetched back afterwards."""

    name: str


@dataclass
class RunResult:
    """What `Device.run_module` returns."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, Path] = field(default_factory=dict)  # Output name -> fetched local file
    sent: list[str] = field(default_factory=list)  # local files actually transferred this time
    seconds: float = 0.0


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Content hash of a file (cached per path/size/mtime within the process)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = _sha256(path)
    return _HASH_CACHE[key]


def _sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_files(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, Path]:
    """Relative path -> local file for the code shipped to a device: the packages + `edgeopt/__init__.py`.

    Only these files reach the device, so a harness module importing anything else of edgeopt
    (and so torch) fails there and in the tests, not silently on the host.
    """
    files = {"edgeopt/__init__.py": SRC_ROOT / "edgeopt" / "__init__.py"}
    for pkg in packages:
        parts = pkg.split(".")
        base = SRC_ROOT.joinpath(*parts)
        if base.is_dir():
            for f in sorted(base.rglob("*.py")):
                if "__pycache__" not in f.parts:
                    files[f.relative_to(SRC_ROOT).as_posix()] = f
        elif base.with_suffix(".py").is_file():
            files[base.with_suffix(".py").relative_to(SRC_ROOT).as_posix()] = base.with_suffix(".py")
        else:
            raise DeviceError(f"cannot ship {pkg!r}: no such package under {SRC_ROOT}")
        for i in range(1, len(parts)):  # parent packages' __init__ files
            init = SRC_ROOT.joinpath(*parts[:i], "__init__.py")
            if i > 1 and init.exists():
                files.setdefault(init.relative_to(SRC_ROOT).as_posix(), init)
    return files


def tree_matches(folder: Path, files: dict[str, Path]) -> bool:
    """Whether `folder` holds exactly `files` (same relative paths, same bytes) and nothing else."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            if os.path.islink(os.path.join(dirpath, name)):
                return False
        found.update(Path(dirpath, f).relative_to(folder).as_posix() for f in filenames)
    if found != set(files):
        return False
    return all(_sha256(folder / rel) == file_sha256(src) for rel, src in files.items())  # never cached


def tree_hash(files: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + file_sha256(files[rel]).encode() + b"\n")
    return h.hexdigest()[:32]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class Device:
    """A place to run code: `LocalDevice` or `SshDevice` (see `edgeopt.devices`)."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.name = config.name

    # -- to implement
    def run(
        self, argv: Sequence[str], timeout: float | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def put(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
        raise NotImplementedError

    def ship_code(self, packages: Iterable[str] = DEFAULT_PACKAGES) -> str:
        raise NotImplementedError

    def _prepare_run_dir(self) -> str:
        raise NotImplementedError

    def _fetch_outputs(self, run_dir: str, names: list[str], dest: Path) -> dict[str, Path]:
        raise NotImplementedError

    def _remove_run_dir(self, run_dir: str) -> None:
        raise NotImplementedError

    @property
    def python(self) -> str:
        raise NotImplementedError

    def _stage(
        self, files: list[str | os.PathLike[str]], packages: Iterable[str]
    ) -> tuple[dict[str, str], str, str]:
        """Send files and code, make a run folder: (device paths of files, PYTHONPATH entry, run folder)."""
        remote_files = self.put(files) if files else {}
        if not files:
            self.last_sent = []
        return remote_files, self.ship_code(packages), self._prepare_run_dir()

    # -- shared
    def run_module(
        self,
        module: str,
        args: Sequence[str | File | Output] = (),
        packages: Iterable[str] = DEFAULT_PACKAGES,
        fetch_to: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> RunResult:
        """`python -m module args...` on the device with only `packages` of edgeopt importable.

        `File(path)` arguments are sent (content-hashed, only when missing) and replaced by their
        device path; `Output(name)` arguments become paths in a fresh run folder and are fetched
        into `fetch_to/<name>` afterwards (also when the command failed, if they were written).
        """
        t0 = time.perf_counter()
        files = [a.path for a in args if isinstance(a, File)]
        remote_files, code, run_dir = self._stage(files, packages)
        sent = list(getattr(self, "last_sent", []))
        argv: list[str] = []
        outputs: list[str] = []
        for a in args:
            if isinstance(a, File):
                argv.append(remote_files[os.fspath(a.path)])
            elif isinstance(a, Output):
                if "/" in a.name or a.name.startswith("."):
                    raise DeviceError(f"output name {a.name!r} must be a plain file name")
                outputs.append(a.name)
                argv.append(f"{run_dir}/{a.name}")
            else:
                argv.append(str(a))
        env_items = {
            "PYTHONPATH": code,
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.config.extra_env,
            **(env or {}),
        }
        full = ["env", *[f"{k}={v}" for k, v in env_items.items()], self.python, "-m", module, *argv]
        try:
            proc = self.run(full, timeout=timeout, check=False)
            fetched: dict[str, Path] = {}
            if outputs and fetch_to is not None:
                fetched = self._fetch_outputs(run_dir, outputs, Path(fetch_to))
        finally:
            self._remove_run_dir(run_dir)
        result = RunResult(proc.returncode, proc.stdout, proc.stderr, fetched, sent, time.perf_counter() - t0)
        if check and proc.returncode != 0:
            msg = _last_line(proc.stderr) or _last_line(proc.stdout) or "no output"
            raise RemoteCommandError(
                f"device {self.config.label}: python -m {module} failed (exit {proc.returncode}): {msg}",
                proc.returncode,
                proc.stdout,
                proc.stderr,
            )
        return result

    def check(self) -> dict[str, object]:
        """Connect, and report the device's Python and which runtimes import there."""
        probe = (
            "import json, platform, sys\n"
            "from importlib import metadata\n"
            "out = {'python': sys.version.split()[0], 'machine': platform.machine(),"
            " 'platform': platform.platform(), 'runtimes': {}}\n"
            "for name, mod, dist in [('numpy', 'numpy', 'numpy'), ('onnxruntime', 'onnxruntime', 'onnxruntime'),"
            " ('tflite', 'ai_edge_litert.interpreter', 'ai-edge-litert'),"
            " ('tflite-runtime', 'tflite_runtime.interpreter', 'tflite-runtime'),"
            " ('tensorrt', 'tensorrt', 'tensorrt'), ('pytorch', 'torch', 'torch')]:\n"
            "    try:\n"
            "        if name == 'pytorch':  # importing torch takes seconds: finding it is enough\n"
            "            import importlib.util\n"
            "            m = importlib.util.find_spec(mod) or __import__('no such module torch')\n"
            "        else:\n"
            "            m = __import__(mod, fromlist=['_'])\n"
            "    except Exception:\n"
            "        out['runtimes'][name] = None\n"
            "        continue\n"
            "    try:\n"
            "        out['runtimes'][name] = metadata.version(dist)\n"
            "    except Exception:\n"
            "        out['runtimes'][name] = getattr(m, '__version__', 'unknown version')\n"
            "print(json.dumps(out))\n"
        )
        import json

        proc = self.run([self.python, "-c", probe], timeout=self.config.timeout or 120, check=False)
        if proc.returncode != 0:
            raise RemoteCommandError(
                f"device {self.config.label}: {self.python} failed (exit {proc.returncode}): "
                f"{_last_line(proc.stderr) or 'no output'}",
                proc.returncode,
                proc.stdout,
                proc.stderr,
            )
        info = json.loads(_last_line(proc.stdout))
        info["configured_runtimes"] = list(self.config.runtimes)
        real = {"tflite": info["runtimes"].get("tflite") or info["runtimes"].get("tflite-runtime")}
        info["missing_runtimes"] = [
            r for r in self.config.runtimes if not real.get(r, info["runtimes"].get(r))
        ]
        return info


class LocalDevice(Device):
    """This machine: commands run as subprocesses, files are used where they are."""

    last_sent: list[str]

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        self.last_sent = []

    @property
    def python(self) -> str:
        return self.config.python or sys.executable

    def run(
        self, argv: Sequence[str], timeout: float | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        timeout = timeout if timeout is not None else self.config.timeout
        try:  # its own process group, so a timeout ends the command's children too
            child = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
        except OSError as exc:
            raise DeviceError(f"device {self.config.label}: cannot run {argv[0]!r}: {exc.strerror}") from None
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise DeviceTimeout(f"device {self.config.label}: timed out after {timeout:g} s") from None
        proc = subprocess.CompletedProcess(list(argv), child.returncode, out, err)
        if check:
            _raise_if_failed(self.config.label, argv, proc)
        return proc

    def put(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
        out = {}
        for p in paths:
            if not Path(p).is_file():
                raise DeviceError(f"{p}: missing (cannot send it to device {self.name})")
            out[os.fspath(p)] = str(Path(p).resolve())
        self.last_sent = []
        return out

    def ship_code(self, packages: Iterable[str] = DEFAULT_PACKAGES) -> str:
        """Locally the code runs from a private copy too, so the import rules are the device's.

        The copy lives in the private state folder (`edgeopt.private`) and is checked against its
        content hash before every run: a tree that differs in any file is replaced, never run.
        """
        files = package_files(packages)
        base = private_dir("code")
        dest = base / tree_hash(files)
        if dest.exists() and not tree_matches(dest, files):
            gone = base / f".old-{uuid.uuid4().hex}"
            os.rename(dest, gone)
            shutil.rmtree(gone, ignore_errors=True)
        if not dest.exists():
            stage = base / f".tmp-{uuid.uuid4().hex}"
            for rel, src in files.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, stage / rel)
            try:
                stage.rename(dest)
            except OSError:  # another job got there first
                shutil.rmtree(stage, ignore_errors=True)
            if not tree_matches(dest, files):
                raise DeviceError(f"{dest}: the code copy does not match its content hash after shipping it")
        return str(dest)

    def _prepare_run_dir(self) -> str:
        return tempfile.mkdtemp(prefix=f"run-{self.name}-", dir=private_dir("runs"))

    def fetch(self, remote: str, local: str | os.PathLike[str]) -> Path:
        """Copy a file of this machine to `local` (atomically), as `SshDevice.fetch` does over SSH."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(remote, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DeviceError(f"device {self.config.label}: fetching {remote} failed: {exc.strerror}") from None
        os.replace(tmp, local)
        return local

    def close(self) -> None:
        """Nothing to close locally (same interface as `SshDevice.close`)."""

    def _fetch_outputs(self, run_dir: str, names: list[str], dest: Path) -> dict[str, Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = {}
        for n in names:
            src = Path(run_dir) / n
            if src.exists():
                shutil.move(str(src), dest / n)
                out[n] = dest / n
        return out

    def _remove_run_dir(self, run_dir: str) -> None:
        shutil.rmtree(run_dir, ignore_errors=True)


_UNREACHABLE = re.compile(
    r"Connection refused|Connection timed out|timed out during banner|No route to host|Network is unreachable"
    r"|Could not resolve hostname|Name or service not known|Connection reset|Connection closed by"
    r"|kex_exchange_identification"
)
_HOSTKEY = re.compile(
    r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known"
    r"|host key for .* has changed"
)
_LOST = re.compile(
    r"Connection to \S+ closed by remote host|Shared connection to \S+ closed|Broken pipe"
    r"|client_loop: send disconnect|mux_client_read_packet|Timeout, server \S+ not responding"
)
#: the first stderr line of every remote command: the process group to end when it times out
_PGID_MARK = "edgeopt-pgid:"
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:%\[\]@-]+$")


class SshDevice(Device):
    """A board reached with `ssh`; files go with `rsync` (or `scp`) into `<workdir>/store/<sha256><ext>`."""

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        if not config.host or config.host.startswith("-") or not _HOST_RE.match(config.host):
            raise DeviceError(
                f"config: devices.{config.name}.host: {config.host!r} is not a host name or alias"
            )
        if config.user and (config.user.startswith("-") or not re.match(r"^[A-Za-z0-9_.-]+$", config.user)):
            raise DeviceError(f"config: devices.{config.name}.user: {config.user!r} is not a user name")
        self.last_sent: list[str] = []
        self._code_dirs: dict[str, str] = {}
        # One multiplexed connection per Device object (its own socket folder, so a fresh Device always
        # verifies the host key again); closed by close(), at exit, or after ControlPersist idle seconds.
        self._control_dir = tempfile.mkdtemp(
            prefix="edgeopt-ssh-", dir="/tmp" if os.path.isdir("/tmp") else None
        )
        atexit.register(self.close)

    def close(self) -> None:
        """End the multiplexed connection (if one is up) and remove its socket folder."""
        sock = Path(self._control_dir)
        if sock.exists():
            if any(sock.iterdir()):
                subprocess.run(
                    ["ssh", *self.ssh_options(), "-O", "exit", "--", self.config.host or ""],
                    capture_output=True,
                    timeout=15,
                    stdin=subprocess.DEVNULL,
                )
            shutil.rmtree(sock, ignore_errors=True)

    @property
    def python(self) -> str:
        return self.config.python or "python3"

    @property
    def workdir(self) -> str:
        return self.config.workdir.rstrip("/") or "."

    # ---- ssh command lines
    def ssh_options(self) -> list[str]:
        """Options shared by ssh, scp and rsync's `-e` (no option differs between them)."""
        c = self.config
        opts = [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={int(c.connect_timeout)}",
            "-o", f"StrictHostKeyChecking={c.strict_host_key_checking}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self._control_dir}/%C",
            "-o", "ControlPersist=60",
        ]  # fmt: skip
        if c.ssh_config:
            opts = ["-F", c.ssh_config, *opts]
        if c.known_hosts:
            opts += ["-o", f'UserKnownHostsFile="{c.known_hosts}"']
        if c.identity_file:
            opts += ["-i", c.identity_file, "-o", "IdentitiesOnly=yes"]
        if c.port:
            opts += ["-o", f"Port={int(c.port)}"]
        if c.user:
            opts += ["-o", f"User={c.user}"]
        return opts

    def ssh_argv(self, remote_argv: Sequence[str]) -> list[str]:
        """The local argv that runs `remote_argv` on the device (each word quoted for the remote shell)."""
        return ["ssh", *self.ssh_options(), "--", self.config.host or "", shlex.join(remote_argv)]

    def _classify(self, proc: subprocess.CompletedProcess[str], what: str) -> DeviceError | None:
        """Map ssh's own failures (exit 255) to one-line errors; None when the remote command ran."""
        if proc.returncode != 255:
            return None
        err = proc.stderr
        line = next((ln.strip() for ln in err.splitlines() if _HOSTKEY.search(ln)), None)
        if line or _HOSTKEY.search(err):
            kh = self.config.known_hosts or "~/.ssh/known_hosts"
            return HostKeyError(
                f"device {self.config.label}: host key verification failed ({line or 'unknown key'}); "
                f"check the key and add it to {kh} (ssh-keyscan, then compare fingerprints)"
            )
        m = _UNREACHABLE.search(err)
        if m:
            return UnreachableError(
                f"device {self.config.label}: unreachable: {_last_line(err[: m.end() + 200]) or m.group(0)}"
            )
        lost = _LOST.search(err)
        mark = err.find(_PGID_MARK)  # present: the command had started on the board
        silent = mark >= 0 and not err[mark:].partition("\n")[2].strip()  # a multiplexed session ends wordless
        if what == "ssh" and (lost or silent):
            return ConnectionLost(
                f"device {self.config.label}: connection lost while the command ran "
                f"({lost.group(0) if lost else 'ssh exit 255'}); the board rebooted, lost power or left the network"
            )
        if "Permission denied" in err:
            return DeviceError(
                f"device {self.config.label}: SSH login refused ({_last_line(err)}); check user and identity_file"
            )
        return DeviceError(f"device {self.config.label}: {what} failed: {_last_line(err) or 'ssh exit 255'}")

    def _exec(self, argv: list[str], what: str, timeout: float | None) -> subprocess.CompletedProcess[str]:
        """Run a local ssh/rsync/scp argv with the device's retries on connection failures."""
        timeout = timeout if timeout is not None else self.config.timeout
        attempts = max(1, int(self.config.retries) + 1)
        for attempt in range(attempts):
            try:
                proc = subprocess.run(
                    argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
                )
            except subprocess.TimeoutExpired as exc:
                self._end_remote_group(exc.stderr)
                raise DeviceTimeout(
                    f"device {self.config.label}: {what} timed out after {timeout:g} s"
                ) from None
            except FileNotFoundError:
                raise DeviceError(
                    f"{argv[0]} is not installed here (needed for device {self.name})"
                ) from None
            err = self._classify(proc, what)
            if (
                err is None
                and argv[0] == "rsync"
                and proc.returncode in (12, 255)
                and _UNREACHABLE.search(proc.stderr)
            ):
                err = UnreachableError(f"device {self.config.label}: unreachable: {_last_line(proc.stderr)}")
            if isinstance(err, UnreachableError) and attempt + 1 < attempts:
                time.sleep(min(2.0 * (attempt + 1), 10.0))
                continue
            if err is not None:
                raise err
            return proc
        raise AssertionError("unreachable")

    def run(
        self, argv: Sequence[str], timeout: float | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on the device. Its shell first reports its process group (sshd starts every
        session as a group leader), so a timeout ends the command and its children on the board too."""
        remote = f'echo "{_PGID_MARK}$$" >&2; exec {shlex.join(argv)}'
        proc = self._exec(["ssh", *self.ssh_options(), "--", self.config.host or "", remote], "ssh", timeout)
        first, _, rest = proc.stderr.partition("\n")
        if first.startswith(_PGID_MARK):
            proc.stderr = rest
        if check:
            _raise_if_failed(self.config.label, argv, proc)
        return proc

    def _end_remote_group(self, stderr: bytes | str | None) -> None:
        """After a local timeout: TERM, then KILL, the remote command's process group (ending the ssh
        client alone leaves a command without a terminal running on the board)."""
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
        m = re.search(rf"^{_PGID_MARK}(\d+)$", text, re.M)
        if not m:
            return
        script = 'kill -TERM -"$1" 2>/dev/null || exit 0; sleep 2; kill -KILL -"$1" 2>/dev/null; exit 0'
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                self.ssh_argv(["sh", "-c", script, "sh", m[1]]),
                capture_output=True,
                timeout=self.config.connect_timeout * 2 + 15,
                stdin=subprocess.DEVNULL,
            )

    def _missing(self, dirs: list[str], paths: list[str]) -> list[str]:
        """One round trip: make the workdir private, make `dirs`, and list which of `paths` do not exist yet.

        The workdir holds the code and models the board runs, so it must be a real folder of this user
        that nobody else can write into (or plant code in): it is made with umask 077, refused when it is
        a symlink or owned by someone else, and set to 0700 (everything below it is then private too)."""
        proc = self.run(
            ["sh", "-c", _PRIVATE_DIRS_SCRIPT, "sh", self.workdir, str(len(dirs)), *dirs, *paths],
            timeout=self.config.connect_timeout * 3 + 60,
        )
        return [ln for ln in proc.stdout.splitlines() if ln]

    def _send(self, local: list[Path], remote_dir: str, recursive: bool = False) -> None:
        """Copy local files (or one folder's contents) into `remote_dir` on the device."""
        host = self.config.host
        if self.config.transfer == "rsync":
            argv = ["rsync", "-s", "-L", "--chmod=u+rw,go-w", "-e", shlex.join(["ssh", *self.ssh_options()])]
            argv += ["-r"] if recursive else ["--ignore-existing"]
            srcs = [f"{local[0]}/"] if recursive else [str(p) for p in local]
            argv += [*srcs, f"{host}:{remote_dir}/"]
        else:
            argv = ["scp", "-q", *self.ssh_options()] + (["-r"] if recursive else [])
            srcs = [str(local[0])] if recursive else [str(p) for p in local]
            argv += [*srcs, f"{host}:{remote_dir}" + ("" if recursive else "/")]
        proc = self._exec(argv, self.config.transfer, None)
        if proc.returncode != 0:
            hint = (
                " (is rsync installed on the device? or set transfer: scp)"
                if "rsync" in proc.stderr and "not found" in proc.stderr
                else ""
            )
            raise DeviceError(
                f"device {self.config.label}: {argv[0]} failed (exit {proc.returncode}): "
                f"{_last_line(proc.stderr) or 'no output'}{hint}"
            )

    def _store_paths(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
        """Local path -> `<workdir>/store/<sha256><ext>` (checks the files exist)."""
        mapping: dict[str, str] = {}
        for p in paths:
            if not Path(p).is_file():
                raise DeviceError(f"{p}: missing (cannot send it to device {self.name})")
            suffix = "".join(Path(p).suffixes[-1:])
            mapping[os.fspath(p)] = f"{self.workdir}/store/{file_sha256(p)}{suffix}"
        return mapping

    def _send_to_store(self, mapping: dict[str, str], missing: set[str]) -> None:
        store = f"{self.workdir}/store"
        todo = {remote: local for local, remote in mapping.items() if remote in missing}
        self.last_sent = sorted(todo.values())
        if not todo:
            return
        with tempfile.TemporaryDirectory(prefix="edgeopt-send-") as tmp:
            staged = []
            for remote, local in todo.items():
                link = Path(tmp) / remote.rsplit("/", 1)[1]
                link.symlink_to(Path(local).resolve())
                staged.append(link)
            if self.config.transfer == "rsync":  # rsync writes each file atomically
                self._send(staged, store)
                return
            # scp does not: land in a temp folder, then rename into the store
            incoming = f"{self.workdir}/tmp/{uuid.uuid4().hex}"
            self._missing([incoming], [])
            real = []
            for link in staged:
                real_path = Path(tmp) / ("r-" + link.name)
                shutil.copyfile(link, real_path)
                real.append(real_path)
            self._send(real, incoming)
            moves = "; ".join(
                f"mv {shlex.quote(incoming + '/r-' + link.name)} {shlex.quote(store + '/' + link.name)}"
                for link in staged
            )
            self.run(["sh", "-c", f"{moves}; rmdir {shlex.quote(incoming)}"])

    def put(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
        """Send files into the store (only those not there yet); return local path -> device path."""
        mapping = self._store_paths(paths)
        missing = set(self._missing([f"{self.workdir}/store"], sorted(set(mapping.values()))))
        self._send_to_store(mapping, missing)
        return mapping

    def _stage(
        self, files: list[str | os.PathLike[str]], packages: Iterable[str]
    ) -> tuple[dict[str, str], str, str]:
        """One round trip checks the store, the code folder and makes the run folder; then send what is missing."""
        mapping = self._store_paths(files)
        code_files = package_files(packages)
        code = f"{self.workdir}/code/{tree_hash(code_files)}"
        run_dir = f"{self.workdir}/runs/{uuid.uuid4().hex}"
        dirs = [f"{self.workdir}/store", f"{self.workdir}/code", run_dir]
        missing = set(self._missing(dirs, [*sorted(set(mapping.values())), code]))
        self._send_to_store(mapping, missing)
        if code in missing:
            self._send_code(code_files, code)
        self._code_dirs[code] = code
        return mapping, code, run_dir

    def ship_code(self, packages: Iterable[str] = DEFAULT_PACKAGES) -> str:
        """Send the device-side packages once per content hash; return the device PYTHONPATH entry."""
        files = package_files(packages)
        dest = f"{self.workdir}/code/{tree_hash(files)}"
        if dest in self._code_dirs:
            return dest
        if self._missing([f"{self.workdir}/code"], [dest]):
            self._send_code(files, dest)
        self._code_dirs[dest] = dest
        return dest

    def _send_code(self, files: dict[str, Path], dest: str) -> None:
        """Upload a code tree to a temp folder, then rename it into place (a racing job's copy wins)."""
        tmp_remote = f"{self.workdir}/code/.tmp-{uuid.uuid4().hex}"
        with tempfile.TemporaryDirectory(prefix="edgeopt-code-") as tmp:
            stage = Path(tmp) / "tree"
            for rel, src in files.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, stage / rel)
            self._send([stage], tmp_remote, recursive=True)
        self.run(["sh", "-c", 'if [ -e "$1" ]; then rm -rf "$0"; else mv "$0" "$1"; fi', tmp_remote, dest])

    def _prepare_run_dir(self) -> str:
        run_dir = f"{self.workdir}/runs/{uuid.uuid4().hex}"
        self._missing([run_dir], [])
        return run_dir

    def fetch(self, remote: str, local: str | os.PathLike[str]) -> Path:
        """Copy one file from the device to `local` (atomically: temp file, then rename)."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.part")
        if self.config.transfer == "rsync":
            argv = [
                "rsync",
                "-s",
                "-e",
                shlex.join(["ssh", *self.ssh_options()]),
                f"{self.config.host}:{remote}",
                str(tmp),
            ]
        else:
            argv = ["scp", "-q", *self.ssh_options(), f"{self.config.host}:{remote}", str(tmp)]
        proc = self._exec(argv, f"fetching {remote}", None)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise DeviceError(
                f"device {self.config.label}: fetching {remote} failed: {_last_line(proc.stderr) or 'no output'}"
            )
        os.replace(tmp, local)
        return local

    def _fetch_outputs(self, run_dir: str, names: list[str], dest: Path) -> dict[str, Path]:
        """Fetch the outputs that exist in one transfer (into a temp folder, then renamed into `dest`)."""
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".edgeopt-fetch-", dir=dest) as tmp:
            host = self.config.host
            if self.config.transfer == "rsync":
                argv = ["rsync", "-s", "-e", shlex.join(["ssh", *self.ssh_options()])]
                argv += [f"{host}:{run_dir}/{n}" for n in names] + [f"{tmp}/"]
            else:
                argv = [
                    "scp",
                    "-q",
                    *self.ssh_options(),
                    *[f"{host}:{run_dir}/{n}" for n in names],
                    f"{tmp}/",
                ]
            self._exec(argv, "fetching results", None)  # a missing output is not an error here
            out = {}
            for n in names:
                if (Path(tmp) / n).exists():
                    os.replace(Path(tmp) / n, dest / n)
                    out[n] = dest / n
            return out

    def _remove_run_dir(self, run_dir: str) -> None:
        try:
            self.run(["rm", "-rf", run_dir], timeout=self.config.connect_timeout * 3 + 30, check=False)
        except DeviceError:
            pass  # the device went away mid-run: the error that matters is already raised


def _raise_if_failed(label: str, argv: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
    """A non-zero exit on the device becomes one line naming the device, the program and its last words."""
    if proc.returncode != 0:
        raise RemoteCommandError(
            f"device {label}: {argv[0]} failed (exit {proc.returncode}): {_last_line(proc.stderr) or 'no output'}",
            proc.returncode,
            proc.stdout,
            proc.stderr,
        )
