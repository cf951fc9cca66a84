"""The TypeScript client (clients/typescript) against real servers: its own test suite
(node's test runner; the servers are `chatstore-server` processes it starts, so it can
restart one under a watch), and the package `npm pack` makes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.processes import BIN

PACKAGE = Path(__file__).resolve().parent.parent / "clients" / "typescript"


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None or not (PACKAGE / "node_modules").is_dir():
        message = "npm or clients/typescript/node_modules is missing (make test installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return npm


async def _run(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=PACKAGE,
        env={**os.environ, "CHATSTORE_SERVER": str(BIN / "chatstore-server")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_typescript_client_suite() -> None:
    code, output = await _run(_npm(), "test")

    assert code == 0, output
    declared = sum(
        len(re.findall(r"^test\(", f.read_text(), re.MULTILINE))
        for f in (PACKAGE / "test").glob("*.test.ts")
    )
    assert declared >= 6
    assert f"# pass {declared}" in output
    assert "# fail 0" in output


async def test_npm_pack_makes_a_package_of_the_built_client() -> None:
    code, output = await _run(_npm(), "pack", "--dry-run", "--json", "--silent")

    assert code == 0, output
    [packed] = json.loads(output[output.index("[") :])
    files = {entry["path"] for entry in packed["files"]}
    assert packed["name"] == "@chatstore/client"
    assert {"dist/src/index.js", "dist/src/index.d.ts", "package.json"} <= files
    assert "dist/gen/chatstore/v1/session_service_pb.js" in files
    assert not any(path.startswith(("dist/test/", "src/", "node_modules/")) for path in files)
