"""A real single-node SLURM cluster on localhost for tests (Debian's slurm-wlm + munge).

munged, slurmctld and slurmd run in the foreground as this test's own child processes with their
own key, socket, spool, state and ports under a tmp dir; `SLURM_CONF` points every SLURM command
(and the jobs, which inherit the environment) at that cluster, so the machine's /etc is untouched.
The node offers partitions `cpu` (default) and `gpu` and one GRES `gpu` (a count with no device
file: jobs that ask for `--gpus=1` are scheduled there and run on the CPU).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")


def missing_binaries() -> list[str]:
    found = {
        b: shutil.which(b) or (Path("/usr/sbin") / b if (Path("/usr/sbin") / b).exists() else None)
        for b in BINARIES
    }
    return [b for b, p in found.items() if p is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 512
    return 2048


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


SLURM_CONF = """\
ClusterName=edgeopt-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket.2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
GresTypes=gpu
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def single_node_slurm(root: Path, timeout: float = 60) -> Iterator[dict[str, str]]:
    """Start munged + slurmctld + slurmd under `root`; yield the environment that reaches the cluster."""
    root = Path(root)
    for d in ("munge", "state", "spool", "run", "log", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    conf = root / "etc" / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            root=root, ctld_port=_free_port(), d_port=_free_port(), cpus=os.cpu_count() or 1, mem=_mem_mb()
        )
    )
    (root / "etc" / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []
    log = open(root / "log" / "daemons.out", "w")  # noqa: SIM115 - closed below
    try:
        procs.append(
            subprocess.Popen(
                [
                    _sbin("munged"),
                    "-F",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={root}/munge/munge.socket.2",
                    f"--pid-file={root}/run/munged.pid",
                    f"--log-file={root}/log/munged.log",
                    f"--seed-file={root}/munge/munge.seed",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        )
        _wait(lambda: (root / "munge" / "munge.socket.2").exists(), timeout, "munged socket", root)
        procs.append(
            subprocess.Popen([_sbin("slurmctld"), "-D", "-i"], stdout=log, stderr=subprocess.STDOUT, env=env)
        )
        procs.append(
            subprocess.Popen(
                [_sbin("slurmd"), "-D", "-N", "localhost"], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        )

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env)
            return out.returncode == 0 and "idle" in out.stdout

        _wait(idle, timeout, "an idle slurm node", root)
        yield env
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def _wait(cond, timeout: float, what: str, root: Path) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.5)
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((root / "log").glob("*")) if p.is_file()
    )
    raise RuntimeError(f"timed out waiting for {what}\n{logs}")


def run_in_cluster(
    root: Path, command: list[str], timeout: float = 900, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run `command` against a fresh cluster under `root`, inside a private mount namespace where
    `root/etc` is bind-mounted on /etc/slurm (jobs' own srun calls find the config there; SLURM
    strips SLURM_CONF from job environments). `scontrol show job` of every job lands in root/jobs.txt."""
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, __file__, str(root), "--", *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def _main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve()
    command = argv[argv.index("--") + 1 :]
    (root / "etc").mkdir(parents=True, exist_ok=True)
    Path("/etc/slurm").mkdir(exist_ok=True)
    subprocess.run(["mount", "--bind", str(root / "etc"), "/etc/slurm"], check=True)
    with single_node_slurm(root) as env:
        rc = subprocess.run(command, env=env).returncode
        jobs = subprocess.run(["scontrol", "show", "job"], capture_output=True, text=True, env=env).stdout
        (root / "jobs.txt").write_text(jobs)
    return rc


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
