"""The contract from another language: the Node.js client (clients/node, which loads
the protos with @grpc/proto-loader and knows nothing of the Python code) against a real
server: create, append, page, watch, and read an error's details."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

NODE_CLIENT = Path(__file__).resolve().parent.parent / "clients" / "node"


async def test_the_node_client_speaks_the_contract(target: str) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_CLIENT / "node_modules").is_dir():
        message = "node or clients/node/node_modules is missing (make test installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    process = await asyncio.create_subprocess_exec(
        node,
        "--test",
        "test/",
        cwd=NODE_CLIENT,
        env={**os.environ, "CHATSTORE_TARGET": target},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)

    assert process.returncode == 0, output.decode()
    assert "# pass 2" in output.decode()
