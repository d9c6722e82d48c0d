"""A real ``redis-server`` for the tests: its own process on a free loopback
port, no persistence, killable and restartable on the same port."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A ``redis-server`` process the test owns: no persistence, loopback only."""

    def __init__(
        self, directory: Path, extra: tuple[str, ...] = (), port: Optional[int] = None
    ) -> None:
        self.dir = directory
        self.port = port or free_port()
        self.extra = extra
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None, "already running"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.log)]
        args += ["--protected-mode", "no", *self.extra]
        self.proc = subprocess.Popen(
            [REDIS_SERVER, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text(errors='replace')}")
            if self.command(b"PING") is not None:  # +PONG, or -NOAUTH with a password
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        """Kill if running, then start again on the same port (empty)."""
        self.kill()
        self.start()

    def command(self, *parts: bytes) -> Optional[bytes]:
        """Send one command over a raw socket; the reply's first line, or None."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                msg = b"*%d\r\n" % len(parts) + b"".join(
                    b"$%d\r\n%s\r\n" % (len(p), p) for p in parts
                )
                s.sendall(msg)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data.split(b"\r\n", 1)[0]
        except OSError:
            return None

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` parsed into a dict."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section.encode()))
            data = b""
            header = b""
            while True:
                data += s.recv(65536)
                if b"\r\n" in data and not header:
                    header, _, _ = data.partition(b"\r\n")
                length = int(header[1:]) if header else -1
                if header and len(data) >= len(header) + 2 + length + 2:
                    break
        body = data.split(b"\r\n", 1)[1].decode()
        out: dict[str, str] = {}
        for line in body.splitlines():
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k] = v
        return out


REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisCluster:
    """Three ``redis-server`` masters joined into a Redis Cluster on free
    loopback ports (no replicas, no persistence)."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.nodes = [
            RedisServer(
                self._node_dir(directory, i),
                extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                port=self._bus_safe_port(),
            )
            for i in range(nodes)
        ]

    @staticmethod
    def _bus_safe_port() -> int:
        """A free port whose cluster bus port (+10,000) is free and valid."""
        for _ in range(200):
            port = random.randint(20_000, 55_000)
            if all(_is_free(p) for p in (port, port + 10_000)):
                return port
        raise RuntimeError("no free port pair for a cluster node")

    @staticmethod
    def _node_dir(directory: Path, i: int) -> Path:
        node = directory / f"node{i}"
        node.mkdir(parents=True, exist_ok=True)
        return node

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(self._cluster_ok(node) for node in self.nodes):
                return
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok within 15 s")

    @staticmethod
    def _cluster_ok(node: RedisServer) -> bool:
        out = subprocess.run(
            [REDIS_CLI, "-p", str(node.port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return "cluster_state:ok" in out

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
