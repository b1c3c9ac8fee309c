"""A single-node SLURM cluster for the tests, from Debian's packages, started as root in a folder of its own: munged
(its own key and socket), MariaDB and slurmdbd (accounting: submitit reads a job's state with sacct, so a job that
ends without results, cancelled, is seen to have ended), slurmctld and slurmd (this host, its real cores and memory,
no cgroups, no GPUs: GresTypes=gpu, so a job asking for one is refused, as on a CPU-only cluster). Every daemon runs
in the foreground as a child of the tests on free ports; nothing under /etc or /run is touched."""

import os
import secrets
import signal
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

PARTITION = "tests"


class Cluster:
    def __init__(self, folder: Path):
        self.env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}

    def run(self, *command: str) -> str:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=True).stdout

    def jobs(self) -> dict[str, str]:
        """{job id (array tasks as 12_0): state} of the jobs SLURM still holds."""
        return dict(line.split() for line in self.run("squeue", "-h", "-o", "%i %T").splitlines())

    def accounted(self, job_id: str) -> list[dict[str, str]]:
        """Every record sacct keeps of a job (a requeued job has one per start), oldest first."""
        fields = "JobID,State,ReqTRES"
        out = self.run("sacct", "-n", "-X", "-D", "-P", "-o", fields, "-j", job_id)
        return [dict(zip(fields.split(","), line.split("|"))) for line in out.splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"SLURM test cluster: {what} did not happen within {timeout:.0f}s")
        time.sleep(0.25)


@contextmanager
def slurm_cluster(folder: Path) -> Iterator[Cluster]:
    """The cluster, up and its node idle; on exit every job is cancelled and every daemon stopped."""
    for sub in ("munge", "db", "state", "spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "munge").chmod(0o711)
    key = folder / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    munge_socket = folder / "munge" / "munge.socket"
    host = socket.gethostname().split(".")[0]  # hostname -s: slurmd finds its node by it
    # this machine's cores and memory, as slurmd itself measures them (NodeName=... CPUs=... RealMemory=...)
    hardware = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.split()[1:]
    ctld_port, slurmd_port, dbd_port, db_port = (_free_port() for _ in range(4))
    (folder / "slurm.conf").write_text(f"""\
ClusterName=tests
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={dbd_port}
AccountingStoragePass={munge_socket}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=10
KillWait=5
SchedulerParameters=sched_interval=1
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 {" ".join(f for f in hardware if not f.startswith("UpTime"))} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    dbd_conf = folder / "slurmdbd.conf"  # slurmdbd reads it beside slurm.conf
    dbd_conf.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=root
StorageLoc=slurm_accounting
PidFile={folder}/slurmdbd.pid
LogFile={folder}/log/slurmdbd.log
""")
    dbd_conf.chmod(0o600)
    cluster = Cluster(folder)
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={folder}/db", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True)
    daemons = [
        ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={munge_socket}",
         f"--pid-file={folder}/munge/munged.pid", f"--seed-file={folder}/munge/munged.seed",
         f"--log-file={folder}/log/munged.log"],
        # no grant tables: slurmdbd logs in as root over TCP without a password, on 127.0.0.1 only
        ["mariadbd", "--no-defaults", f"--datadir={folder}/db", f"--socket={folder}/db/mysqld.sock",
         f"--port={db_port}", "--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables", "--skip-log-bin",
         f"--pid-file={folder}/db/mysqld.pid", f"--log-error={folder}/log/mariadbd.log",
         "--innodb-buffer-pool-size=32M", "--innodb-lock-wait-timeout=900"],
        ["slurmdbd", "-D"],
        ["slurmctld", "-D", "-i"],
        ["slurmd", "-D"],
    ]
    ready = [lambda: munge_socket.exists(), lambda: "ready for connections" in _read(folder / "log/mariadbd.log"),
             lambda: "started" in _read(folder / "log/slurmdbd.log"), lambda: _sinfo(cluster) is not None,
             lambda: _sinfo(cluster) == "idle"]
    with ExitStack() as stack:
        for command, up in zip(daemons, ready):
            with open(folder / "log" / f"{command[0]}.out", "w") as out:
                process = subprocess.Popen(command, env=cluster.env, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            stack.callback(_stop, process)
            wait_until(lambda: up() or process.poll() is not None, f"{command[0]} starting")
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n"
                                   f"{_read(folder / 'log' / f'{command[0]}.out')[-2000:]}")
        stack.callback(_cancel_all, cluster)
        yield cluster


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _sinfo(cluster: Cluster) -> str | None:
    """The node's state, None while slurmctld does not answer."""
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], env=cluster.env, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _cancel_all(cluster: Cluster) -> None:
    subprocess.run(["scancel", f"--partition={PARTITION}"], env=cluster.env, capture_output=True)
    try:
        wait_until(lambda: not cluster.jobs(), "cancelling every job", timeout=30)
    except (TimeoutError, subprocess.CalledProcessError):
        pass


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL to the daemon's whole process group after 10s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
