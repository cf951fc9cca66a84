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
    """`args` run in the package's directory: the exit code and the output."""
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


async def test_the_packed_package_installs_and_imports(tmp_path: Path) -> None:
    npm = _npm()
    code, output = await _run(npm, "pack", "--silent", "--pack-destination", str(tmp_path))
    assert code == 0, output
    [tarball] = tmp_path.glob("chatstore-client-*.tgz")
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "user", "private": true, "type": "module"}')
    installed = await asyncio.create_subprocess_exec(
        npm, "install", "--no-audit", "--no-fund", "--loglevel=error", str(tarball),
        cwd=project, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    log, _ = await asyncio.wait_for(installed.communicate(), 300)
    assert installed.returncode == 0, log.decode()
    script = (
        'import { ChatStoreClient, NotFound, Role } from "@chatstore/client";'
        'const c = new ChatStoreClient({ target: "127.0.0.1:1", tenantId: "t" });'
        "console.log(typeof c.rpc.getSession, Role.USER, NotFound.name);"
    )
    node = shutil.which("node")
    assert node is not None
    imported = await asyncio.create_subprocess_exec(
        node, "--input-type=module", "-e", script, cwd=project,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(imported.communicate(), 60)
    assert out.decode().split() == ["function", "1", "NotFound"], out.decode()
