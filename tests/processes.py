"""Real `chatstore-server` processes for tests that need more than one server."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port that was free a moment ago (for servers that need a fixed port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """A `chatstore-server` subprocess; its stderr is collected in `log`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self.port = 0
        self._ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace")
            self.log.append(line)
            if found := re.search(r"\(port (\d+)\)", line):
                self.port = int(found.group(1))
                self._ready.set()
        self._ready.set()

    @classmethod
    async def start(
        cls, *args: str, timeout: float = 30, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """Start `chatstore-server ARGS` (with `env` added to this process's environment)
        and wait until it serves.

        Raises:
            RuntimeError: It exited before serving (its log is in the message).
        """
        process = await asyncio.create_subprocess_exec(
            str(BIN / "chatstore-server"),
            *args,
            stderr=asyncio.subprocess.PIPE,
            env=None if env is None else os.environ | env,
        )
        server = cls(process)
        await asyncio.wait_for(server._ready.wait(), timeout)
        if not server.port:
            await server.process.wait()
            raise RuntimeError("server exited before serving:\n" + "".join(server.log))
        return server

    async def wait_for_log(self, text: str, count: int, timeout: float = 30) -> None:
        """Wait until `text` has appeared on `count` lines of the log."""
        async with asyncio.timeout(timeout):
            while sum(text in line for line in self.log) < count:
                await asyncio.sleep(0.05)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reader
        return code


class BlockingServer:
    """A `chatstore-server` subprocess for blocking tests (the CLI, the sync client)."""

    def __init__(self, *args: str, timeout: float = 30) -> None:
        import subprocess
        import threading
        import time

        self.process = subprocess.Popen(
            [str(BIN / "chatstore-server"), *args], stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        self.port = 0
        ready = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line)
                if not self.port and (found := re.search(r"\(port (\d+)\)", line)):
                    self.port = int(found.group(1))
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if time.monotonic() > deadline:
                self.process.kill()
                raise TimeoutError("server did not start:\n" + "".join(self.log))
        if not self.port:
            raise RuntimeError("server exited before serving:\n" + "".join(self.log))

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


async def run_python(script: str, *args: str, timeout: float = 60) -> str:
    """Run `script` in a new Python process (this interpreter) with `args`; its stdout.

    Raises:
        RuntimeError: It failed (its stderr is in the message).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    if process.returncode != 0:
        raise RuntimeError(f"exit {process.returncode}:\n{err.decode(errors='replace')}")
    return out.decode()
