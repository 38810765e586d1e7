"""A real ClickHouse cluster for the tests of cluster mode (scripts/cluster.sh: ZooKeeper and two
clickhouse-server processes), and the settings that point Strix at one of its layouts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from strix import logstore
from strix.envconfig import clickhouse_cluster_from_env, clickhouse_from_env
from strix.logstore import cluster as cluster_module

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "cluster.sh"
LAYOUTS = ("repl", "sharded")
CLICKHOUSE_VARIABLES = (
    "STRIX_CLICKHOUSE_URL",
    "STRIX_CLICKHOUSE_CLUSTER",
    "STRIX_CLICKHOUSE_ZK_PATH",
    "STRIX_CLICKHOUSE_HTTP_PORTS",
    "STRIX_CLICKHOUSE_DATABASE",
)


class Cluster:
    """The running cluster in ``directory``: its nodes, their processes, and layouts to point Strix at."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.ports = dict(line.split("=", 1) for line in (directory / "cluster.env").read_text().split())
        self.ch1 = logstore.Node("127.0.0.1", int(self.ports["CH1_TCP"]), int(self.ports["CH1_HTTP"]))
        self.ch2 = logstore.Node("127.0.0.1", int(self.ports["CH2_TCP"]), int(self.ports["CH2_HTTP"]))

    @classmethod
    def start(cls, directory: Path) -> Cluster:
        """Start on free ports: a developer's own cluster (default ports) may be running."""
        names = ("ZK_PORT", "CH1_HTTP", "CH2_HTTP", "CH1_TCP", "CH2_TCP", "CH1_INTERSERVER", "CH2_INTERSERVER")
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        env = {**os.environ, **{name: str(port) for name, port in ports.items()}}
        subprocess.run([str(SCRIPT), "start", str(directory)], check=True, timeout=180, env=env)
        return cls(directory)

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop", str(self.directory)], check=False, timeout=120)

    def environment(self, layout: str) -> dict[str, str]:
        out = subprocess.run(
            [str(SCRIPT), "env", layout, str(self.directory)], check=True, capture_output=True, text=True
        ).stdout
        return dict(line.split("=", 1) for line in out.split())

    def pid(self, name: str) -> int:
        return int((self.directory / name / "pid").read_text())

    def signal(self, name: str, signum: int) -> None:
        os.kill(self.pid(name), signum)

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        try:
            os.waitpid(self.pid(name), 0)
        except ChildProcessError:  # not our child: wait until it is gone
            _wait_gone(self.pid(name))

    def restart(self, name: str) -> None:
        subprocess.run([str(SCRIPT), "node", name, str(self.directory)], check=True, timeout=120)

    @contextmanager
    def layout(self, layout: str):
        """Point this process (settings) and worker subprocesses (environment) at ``layout`` of the
        cluster, in a database of their own, created ON CLUSTER and dropped after."""
        variables = {**self.environment(layout), "STRIX_CLICKHOUSE_DATABASE": f"strix_{layout}_{uuid.uuid4().hex[:8]}"}
        saved_env = {name: os.environ.get(name) for name in CLICKHOUSE_VARIABLES}
        saved = {
            name: getattr(settings, name)
            for name in ("STRIX_CLICKHOUSE", "STRIX_CLICKHOUSE_CLUSTER", "STRIX_CLICKHOUSE_DATABASE")
        }
        os.environ.update(variables)
        settings.STRIX_CLICKHOUSE = clickhouse_from_env()
        settings.STRIX_CLICKHOUSE_CLUSTER = clickhouse_cluster_from_env()
        settings.STRIX_CLICKHOUSE_DATABASE = variables["STRIX_CLICKHOUSE_DATABASE"]
        try:
            logstore.ensure_schema()
            yield variables
        finally:
            try:
                _drop_when_writable(logstore.database())
            finally:
                for name, value in saved.items():
                    setattr(settings, name, value)
                for name, value in saved_env.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                cluster_module._topologies.clear()

    def sync(self, node: logstore.Node, table: str = "logs") -> None:
        """Wait until ``node``'s replica of ``table`` has fetched everything the others wrote; a replica
        continued after a stop first renews its expired ZooKeeper session (refusing meanwhile)."""
        _retry(lambda: logstore.execute(f"SYSTEM SYNC REPLICA {logstore.database()}.{table}", node=node))


def _drop_when_writable(database: str) -> None:
    """Drop the layout's database on every server; a replica that lost ZooKeeper a moment ago (a test
    stopped it) is read-only until it reconnects, and refuses the drop until then."""
    _retry(lambda: logstore.drop_database(database))


def _retry(action, seconds: float = 60):
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except logstore.LogStoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_gone(pid: int) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} did not exit")
