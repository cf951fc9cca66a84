"""A Citus cluster (a coordinator and two workers, each a PostgreSQL 15 of its own on
127.0.0.1) for the tests and the benchmark, started and stopped with
`../shared/engines/citus/cluster.sh`."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from chatstore_server.store import Database, upgrade
from chatstore_server.store.schema import DISTRIBUTED_TABLES

CITUS_ENGINE = Path(__file__).resolve().parents[2] / "shared" / "engines" / "citus"


class CitusUnavailable(Exception):
    """Citus cannot be had here; the message says why."""


class CitusCluster:
    """A Citus coordinator and two workers, started for this test session (or given by
    `CHATSTORE_TEST_CITUS_URL`), with chatstore's tables migrated and distributed."""

    def __init__(self, url: str, directory: Path | None, port: int) -> None:
        self.shards_per_table = 32
        self.url = url
        self.directory = directory
        self.port = port
        self.node_ports = (port, port + 1, port + 2)

    @classmethod
    async def start(cls, *, shards_per_table: int = 32) -> CitusCluster:
        """A cluster from `CHATSTORE_TEST_CITUS_URL`, else one started here, its
        database migrated with `shards_per_table` shards per table.

        Raises:
            CitusUnavailable: Citus is not installed, or the cluster did not start.
        """
        given = os.environ.get("CHATSTORE_TEST_CITUS_URL")
        if given:
            port = urlsplit(given).port or 5432
            cluster = cls(given, None, port)
        else:
            if not list(Path("/usr/lib/postgresql").glob("*/lib/citus.so")):
                raise CitusUnavailable(
                    "Citus is not installed: `make citus` (and `make test`) installs it with"
                    f" {CITUS_ENGINE / 'build.sh'} (needs root)"
                )
            directory = Path(tempfile.mkdtemp(prefix="chatstore-citus-"))
            directory.chmod(0o755)  # the servers run as user postgres (cluster.sh)
            port = free_port_run(3)
            started = await asyncio.create_subprocess_exec(
                "bash", str(CITUS_ENGINE / "cluster.sh"), "start", str(directory / "data"),
                str(port), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await started.communicate()
            if started.returncode != 0:
                raise CitusUnavailable(
                    f"the Citus cluster did not start: {err.decode().strip()[-500:]}"
                )
            cluster = cls(out.decode().strip().splitlines()[-1], directory, port)
        cluster.shards_per_table = shards_per_table
        admin = await asyncpg.connect(cluster.url, timeout=10)
        try:
            await admin.execute(
                f"ALTER DATABASE postgres SET citus.shard_count = {shards_per_table}"
            )
        finally:
            await admin.close()
        database = Database.from_url(cluster.sqlalchemy_url())
        try:
            await upgrade(database)
        finally:
            await database.dispose()
        return cluster

    def sqlalchemy_url(self, database: str = "postgres") -> str:
        base = self.url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        return f"{base}/{database}"

    async def emptied(self) -> str:
        """The cluster's database, every chatstore table emptied."""
        admin = await asyncpg.connect(self.url, timeout=10)
        try:
            await admin.execute(f"TRUNCATE {', '.join(DISTRIBUTED_TABLES)}")
        finally:
            await admin.close()
        return self.sqlalchemy_url()

    async def new_database(self) -> str:
        """A new database with Citus set up on every node and no tables."""
        name = f"chatstore_empty_{uuid.uuid4().hex[:12]}"
        host = urlsplit(self.url).hostname or "127.0.0.1"
        for port in self.node_ports:
            node = await asyncpg.connect(host=host, port=port, user="postgres", timeout=10)
            try:
                await node.execute(f'CREATE DATABASE "{name}"')
            finally:
                await node.close()
            node = await asyncpg.connect(
                host=host, port=port, user="postgres", database=name, timeout=10
            )
            try:
                await node.execute("CREATE EXTENSION citus")
                if port == self.port:
                    await node.execute(
                        f'ALTER DATABASE "{name}" SET citus.shard_count = {self.shards_per_table}'
                    )
                    await node.execute(f"SELECT citus_set_coordinator_host('{host}', {port})")
            finally:
                await node.close()
        coordinator = await asyncpg.connect(
            host=host, port=self.port, user="postgres", database=name, timeout=10
        )
        try:
            for port in self.node_ports[1:]:
                await coordinator.execute(f"SELECT citus_add_node('{host}', {port})")
        finally:
            await coordinator.close()
        return self.sqlalchemy_url(name)

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        host = urlsplit(self.url).hostname or "127.0.0.1"
        for port in self.node_ports:
            node = await asyncpg.connect(host=host, port=port, user="postgres", timeout=10)
            try:
                await node.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await node.close()

    def stop(self) -> None:
        if self.directory is None:
            return
        subprocess.run(
            ["bash", str(CITUS_ENGINE / "cluster.sh"), "stop", str(self.directory / "data"),
             str(self.port)],
            capture_output=True, check=False,
        )  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)


def free_port_run(count: int) -> int:
    """A port such that it and the next `count - 1` were free a moment ago."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for offset in range(count):
                with socket.socket() as other:
                    other.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")
