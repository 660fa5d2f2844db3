"""A real Ray cluster on this machine for the tests: a head node and worker nodes, each
started by ``ray start`` as its own processes, listening on 127.0.0.1 only, in a temp
folder of its own, and stopped by process id (never ``ray stop``, which stops every Ray
cluster of the user on the machine).

Also a sampler that kills its worker process once (fault-injection for the tests); it is
imported by the workers from this module, so the nodes get this checkout on PYTHONPATH.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negsample import MiningStats, Negatives, TopKSampler
from negsample.samplers.base import SamplerBatch

ROOT = Path(__file__).resolve().parents[1]

# ``ray start`` swaps a loopback --node-ip-address for the machine's outward address, and
# its servers then listen on every interface. Run Ray's own ``start`` command with that
# swap disabled for 127.0.0.1: the nodes advertise and listen on loopback only.
_RAY_START = (
    "import sys, ray._private.services as s\n"
    "swap = s.resolve_ip_for_localhost\n"
    "s.resolve_ip_for_localhost = lambda h: h if h == '127.0.0.1' else swap(h)\n"
    "from ray.scripts.scripts import cli\n"
    "sys.exit(cli.main(args=['start', *sys.argv[1:]], prog_name='ray'))\n"
)

#: Ray's token authentication with a token of this test run's own, for the clusters and
#: their drivers alike: Ray 2.5x turns token authentication on whenever ~/.ray/auth_token
#: exists, and that file is shared by every Ray process of the user (another test run's
#: cluster, an earlier `ray start`), so a cluster and its driver could disagree on it.
_AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}

#: Environment of processes that connect to the cluster (drivers): Ray keeps 127.0.0.1.
DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", **_AUTH}


class LocalCluster:
    """``nodes`` Ray nodes (the first is the head) of ``cpus`` logical CPUs (and ``gpus``
    GPUs) each."""

    def __init__(
        self, nodes: int = 2, cpus: int = 1, gpus: int = 0, timeout: float = 120.0
    ) -> None:
        self.nodes, self.cpus, self.gpus, self.timeout = nodes, cpus, gpus, timeout
        self.temp_dir = tempfile.mkdtemp(prefix="nsray-", dir="/tmp")
        self.groups: list[int] = []
        self.address = ""
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",  # worker nodes refuse to start otherwise
            **_AUTH,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        }

    def _ray_start(self, *args: str) -> None:
        cmd = [
            sys.executable,
            "-c",
            _RAY_START,
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            f"--num-gpus={self.gpus}",
            f"--temp-dir={self.temp_dir}",
            "--object-store-memory=200000000",
            "--disable-usage-stats",
            *args,
        ]
        p = subprocess.Popen(
            cmd,
            env=self.env,
            start_new_session=True,  # the node's daemons share this process group
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.groups.append(p.pid)
        try:
            out, _ = p.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise RuntimeError(f"ray start did not finish within {self.timeout}s") from None
        if p.returncode != 0:
            raise RuntimeError(f"ray start failed ({p.returncode}):\n{out[-3000:]}")

    def start(self) -> LocalCluster:
        try:
            self._ray_start("--head", "--port=0", "--include-dashboard=false")
            current = Path(self.temp_dir) / "ray_current_cluster"
            self.address = current.read_text().strip()
            if not self.address.startswith("127.0.0.1:"):
                raise RuntimeError(f"the head listens on {self.address}, not on loopback")
            for _ in range(self.nodes - 1):
                self._ray_start(f"--address={self.address}")
        except BaseException:
            self.stop()
            raise
        return self

    def processes(self) -> list[Any]:
        """Every process of the cluster: the nodes' process groups and their descendants
        (Ray's worker processes run in process groups of their own)."""
        import psutil

        found: dict[int, Any] = {}
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) in self.groups:
                    found[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        found[child.pid] = child
            except (ProcessLookupError, psutil.Error):
                continue
        return list(found.values())

    def stop(self, grace: float = 5.0) -> None:
        import psutil

        procs = self.processes()
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _gone, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=grace)
        self.groups = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)  # its logs and sockets


@dataclass(frozen=True, kw_only=True)
class KillOnceTopK(TopKSampler):
    """TopKSampler whose worker process kills itself (SIGKILL) the first time it samples,
    as recorded by the ``marker`` file; afterwards it samples like TopKSampler."""

    marker: str = ""

    def sample_batch(self, batch: SamplerBatch, n: int, stats: MiningStats) -> Negatives:
        if self.marker and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # pragma: no cover - the signal ends the process first
        return super().sample_batch(batch, n, stats)


@dataclass(frozen=True, kw_only=True)
class SlowTopK(TopKSampler):
    """TopKSampler that waits ``pause`` seconds before each batch (a long-running chunk)."""

    pause: float = 0.0

    def sample_batch(self, batch: SamplerBatch, n: int, stats: MiningStats) -> Negatives:
        time.sleep(self.pause)
        return super().sample_batch(batch, n, stats)
