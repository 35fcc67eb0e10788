"""A real single-node Slurm for the tests: munged, slurmctld and slurmd on this machine, as root.

Needs Debian's slurm-wlm and munge (.ci/run installs them). Everything the daemons write lives in
one temporary folder, and `stop` ends the daemons this module started, and only those.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")


def available() -> str | None:
    """Why a cluster cannot start here, or None."""
    missing = [d for d in DAEMONS if not Path(d).exists()]
    if missing:
        return f"{missing[0]} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test cluster's daemons run as root"
    return None


class Cluster:
    def __init__(self, folder: Path, cpus: int = 2):
        self.folder, self.cpus = folder, cpus
        self.host = socket.gethostname().split(".")[0]
        self.conf = folder / "slurm.conf"
        self.pids: list[int] = []

    def start(self) -> dict[str, str]:
        """Start the daemons; the environment that points Slurm's commands at them."""
        for name in ("state", "spool", "munge"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.config())
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        socket_file = self.folder / "munge" / "munge.socket"
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["/usr/sbin/mungekey", "--create"], check=True)
        self._daemon(["/usr/sbin/munged", "--force", f"--socket={socket_file}",
                      f"--pid-file={self.folder / 'munge' / 'munged.pid'}",
                      f"--log-file={self.folder / 'munge' / 'munged.log'}",
                      f"--seed-file={self.folder / 'munge' / 'munged.seed'}"], self.folder / "munge" / "munged.pid")
        # Slurm's auth/munge plugin finds munged through this file's AuthInfo socket.
        self._daemon(["/usr/sbin/slurmctld"], self.folder / "slurmctld.pid", env)
        self._daemon(["/usr/sbin/slurmd"], self.folder / "slurmd.pid", env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = subprocess.run(["sinfo", "--noheader", "--format=%T"], env=env, capture_output=True, text=True)
            if info.returncode == 0 and info.stdout.strip() == "idle":
                return env
            time.sleep(0.5)
        raise RuntimeError(f"slurm did not come up: {info.stdout} {info.stderr}")

    def _daemon(self, command: list[str], pid_file: Path, env: dict | None = None) -> None:
        subprocess.run(command, env=env, check=True)
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                self.pids.append(int(pid_file.read_text()))
                return
            time.sleep(0.1)
        raise RuntimeError(f"{command[0]} wrote no pid file")

    def config(self) -> str:
        folder, socket_file = self.folder, self.folder / "munge" / "munge.socket"
        return "\n".join([
            "ClusterName=naseval-test", f"SlurmctldHost={self.host}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={socket_file}", "CredType=cred/munge",
            f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
            f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
            f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd.log",
            "SlurmctldPort=6917", "SlurmdPort=6918",  # not the defaults: a real Slurm may be running
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "MinJobAge=2",  # finished jobs leave squeue quickly, as on a busy cluster
            f"NodeName={self.host} CPUs={self.cpus} RealMemory=8000 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])

    def stop(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        shutil.rmtree(self.folder / "state", ignore_errors=True)


if __name__ == "__main__":  # python tests/slurm_cluster.py FOLDER: a cluster to try naseval launch on
    import sys

    cluster = Cluster(Path(sys.argv[1]).resolve())
    cluster.start()
    print(f"export SLURM_CONF={cluster.conf}\n# to stop it: kill {' '.join(map(str, cluster.pids))}")
