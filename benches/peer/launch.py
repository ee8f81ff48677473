"""Starting an exchange server subprocess from the outside, as a user would: the Python peer
(``benches/peer/server.py``) or ``rtbcore serve``, bound to 127.0.0.1 on a port of the OS's
choice (``--port 0``), found through the one stderr line both print once listening, ready when
``/readyz`` answers 200. Shared by the conformance tests and the exchange benchmarks."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from exchange_config import write_exchange

PEER = Path(__file__).resolve().parent / "server.py"
LISTENING = re.compile(r"rtbcore (?:serve|peer): listening on http://([0-9.]+):(\d+)")


@cache
def serve_available() -> bool:
    """Whether this build has ``rtbcore serve`` (the gateway): ``rtbcore serve --help`` works."""
    try:
        # from a neutral directory: run from a source checkout, the tree would shadow the
        # installed package (which has the compiled parts) and the probe would fail
        r = subprocess.run([sys.executable, "-m", "rtbcore.cli", "serve", "--help"],
                           capture_output=True, timeout=60, cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@dataclass
class Server:
    """A server subprocess and the keys of its buyers."""

    kind: str  # "peer" or "serve"
    proc: subprocess.Popen
    host: str
    port: int
    keys: dict[str, str]
    stderr: list[str] = field(default_factory=list)
    _next: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/bidding"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fresh(self, prefix: str) -> tuple[str, str]:
        """A buyer (and its key) named ``prefix<n>`` that no caller has had yet: per-buyer
        state (seq, bids, subscription) starts clean."""
        i = self._next.get(prefix, 0)
        name = f"{prefix}{i}"
        if name not in self.keys:
            raise RuntimeError(f"no more {prefix!r} buyers in the keys file")
        self._next[prefix] = i + 1
        return name, self.keys[name]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signals the server and waits for its exit code (SIGKILL after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def start_server(kind: str, directory: Path, buyers: dict[str, list[str]],
                 settings: dict, *, extra_toml: str = "", peer: Path = PEER) -> Server:
    """Writes ``exchange.toml`` + ``keys.toml`` into ``directory`` (see
    :func:`exchange_config.write_exchange`; ``extra_toml`` is appended to ``exchange.toml``)
    and starts ``kind`` ("peer", the script ``peer``, or "serve") on them."""
    setup = write_exchange(directory, buyers, **settings)
    if extra_toml:
        with open(setup["config"], "a") as f:
            f.write("\n" + extra_toml)
    cmd = [sys.executable, str(peer)] if kind == "peer" else [
        sys.executable, "-m", "rtbcore.cli", "serve"]
    cmd += ["--config", str(setup["config"]), "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=directory)
    lines: list[str] = []
    found: deque = deque()
    ready = threading.Event()

    def drain() -> None:  # keeps reading stderr so that the server never blocks on it
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            m = LISTENING.search(line)
            if m and not ready.is_set():
                found.append((m.group(1), int(m.group(2))))
                ready.set()
        proc.stderr.close()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(30) or not found:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{kind} did not print its listening line: {lines[-20:]}")
    host, port = found[0]
    srv = Server(kind, proc, host, port, setup["keys"], lines)
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"{srv.http}/readyz", timeout=2) as r:
                if r.status == 200:
                    return srv
        except OSError:
            pass
        if time.monotonic() > deadline:
            srv.stop(signal.SIGKILL)
            raise RuntimeError(f"{kind}: /readyz never answered 200")
        time.sleep(0.05)
