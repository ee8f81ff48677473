"""Real redis-server processes for the tests of rtbcore.distributed: one server, or a local
3-master Redis Cluster, on free ports of 127.0.0.1, with every file in a temporary directory.
Each is stopped (and waited for) by ``stop()``; the fixtures in conftest.py call it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

SERVER = shutil.which("redis-server")
CLI = shutil.which("redis-cli")


def free_port(bus: bool = False) -> int:
    """A port free on 127.0.0.1 now (and, for a cluster node, port + 10000 too: its bus)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


class RedisServer:
    """One redis-server on 127.0.0.1. ``appendonly``: an AOF fsynced on every write, so a
    stop and restart keeps the data (as production must); the files stay in ``dir``."""

    def __init__(self, dir: Path, port: int | None = None, appendonly: bool = False,
                 cluster: bool = False) -> None:
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port(bus=cluster)
        self.appendonly = appendonly
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert SERVER, "redis-server is not installed (make system-deps)"
        args = [SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                "--logfile", str(self.dir / "redis.log")]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     str(self.dir / "nodes.conf"), "--cluster-node-timeout", "2000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=1.0)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server flushes its AOF and exits), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5.0)


class RedisCluster:
    """Three masters (no replicas) joined by ``redis-cli --cluster create``."""

    def __init__(self, dir: Path) -> None:
        self.nodes: list[RedisServer] = []
        try:
            for i in range(3):
                self.nodes.append(RedisServer(Path(dir) / f"node{i}", cluster=True))
            assert CLI, "redis-cli is not installed (make system-deps)"
            subprocess.run(
                [CLI, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
            )
            self._wait_ok()
        except BaseException:
            self.stop()
            raise

    def _wait_ok(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for n in self.nodes:
                c = n.client()
                try:
                    info = c.cluster("info")
                    states.append(info.get("cluster_state") == "ok"
                                  if isinstance(info, dict) else b"cluster_state:ok" in info)
                finally:
                    c.close()
            if all(states):
                return
            time.sleep(0.1)
        raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
