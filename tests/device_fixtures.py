"""pytest plugin: a real `sshd` on 127.0.0.1 and a runtime-only venv standing in for an embedded board.

Fixtures (session-scoped, shared with other stages' tests through `pytest_plugins`):
- `sshd_server`: an `SshServer` (host, port, user, identity_file, known_hosts, wrong_known_hosts, root);
  its own host and user keys, own `sshd_config`, key login only.
- `device_python`: the python of the runtime-only venv (numpy + onnxruntime + ai-edge-litert), made once
  per machine by `scripts/make-device-venv.sh` in `~/.cache/edgeopt-device-venv`.
- `ssh_device_settings`: a `devices:` entry (dict) for the sshd stand-in board using that venv.
- `tiny_onnx`: the tiny trained ResNet-20 as ONNX (what benchmarks send to boards).
Skips, with the reason, when `sshd`/`ssh` are not installed (`.ci/run` installs them).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


@dataclass
class SshServer:
    host: str
    port: int
    user: str
    identity_file: Path
    known_hosts: Path
    wrong_known_hosts: Path
    root: Path
    process: subprocess.Popen

    def device_settings(self, **overrides: object) -> dict:
        """A `devices:` entry reaching this server (workdir inside the server's temp folder)."""
        settings = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
            "workdir": str(self.root / "device-workdir"),
            "connect_timeout": 5,
            "retries": 0,
            "timeout": 300,
        }
        settings.update(overrides)
        return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeopt-test", "-f", str(path)], check=True
    )


def start_sshd(root: Path, port: int | None = None) -> SshServer:
    """A real sshd on 127.0.0.1 with its own keys and config under `root` (reused when restarted there)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    host_key, user_key, other_key = root / "host_key", root / "user_key", root / "other_host_key"
    for k in (host_key, user_key, other_key):
        if not k.exists():
            _keygen(k)
    (root / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    os.chmod(root / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir sshd insists on
    port = port or free_port()
    config = root / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    log = open(root / "sshd.log", "ab")  # noqa: SIM115 - closed by stop_sshd
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    wrong = root / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {other_key.with_suffix('.pub').read_text()}")
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {(root / 'sshd.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.terminate()
                pytest.fail("sshd did not start listening within 15 s")
            time.sleep(0.1)
    return SshServer("127.0.0.1", port, getpass.getuser(), user_key, known, wrong, root, proc)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def drop_sshd(server: SshServer) -> None:
    """The board drops off the network: its sshd and every session it serves die at once (SIGKILL)."""
    victims = [server.process.pid, *_descendants(server.process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def stop_sshd(server: SshServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory):
    if SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip(
            "openssh-server/openssh-client not installed (apt-get install openssh-server openssh-client)"
        )
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    stop_sshd(server)


@pytest.fixture(scope="session")
def device_python() -> Path:
    """Python of the runtime-only venv (made once per machine; ~30 s the first time)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "make-device-venv.sh")], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(f"make-device-venv.sh failed: {proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def ssh_device_settings(sshd_server: SshServer, device_python: Path) -> dict:
    """`devices:` settings for the stand-in board: reached over real SSH, runs the runtime-only venv."""
    return sshd_server.device_settings(python=str(device_python), runtimes=["onnxruntime", "tflite"])


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The tiny trained ResNet-20 exported to ONNX, with a sidecar as conversion writes it."""
    from edgeopt.convert.onnx_export import export_onnx
    from edgeopt.models import load_model

    model, meta = load_model(tiny_model)
    out = tmp_path_factory.mktemp("deploy") / "ort-fp32.onnx"
    export_onnx(model, out, image_size=meta["image_size"], in_channels=meta.get("in_channels", 3))
    return out


def setup_snippet(output: str, name: str) -> dict:
    """The device-file lines `edgeopt device setup NAME` printed (up to its check's first `NAME: ` line)."""
    text = output.split(f"{name}: add to your device file:\n", 1)[1]
    lines = []
    for line in text.splitlines():
        if line.startswith(f"{name}: "):
            break
        lines.append(line)
    import yaml

    return yaml.safe_load("\n".join(lines))
