"""A Go client, generated from the protos with Debian's protoc-gen-go and
protoc-gen-go-grpc (clients/go/buf.gen.yaml) and built offline against Debian's grpc-go
(`make go` installs them), makes real calls: clients/go/example/main.go."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TENANT
from tests.processes import BIN

ROOT = Path(__file__).resolve().parent.parent
GOPATH_SYSTEM = Path("/usr/share/gocode")


@pytest.fixture(scope="module")
def go_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, built: its generated package and main in a GOPATH of their own."""
    go = shutil.which("go")
    if go is None or not (GOPATH_SYSTEM / "src" / "google.golang.org" / "grpc").is_dir():
        message = "Go or Debian's Go packages are missing (`make go` installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    gopath = tmp_path_factory.mktemp("gopath")
    source = gopath / "src"
    subprocess.run(
        [str(BIN / "buf"), "generate", "--template", "clients/go/buf.gen.yaml",
         "-o", str(source), "--path", "protos/chatstore"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    package = source / "chatstore.dev" / "example"
    package.mkdir(parents=True)
    shutil.copy(ROOT / "clients" / "go" / "example" / "main.go", package)
    binary = gopath / "example"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:{GOPATH_SYSTEM}",
        "GOCACHE": str(gopath / "cache"),
        "GOFLAGS": "",
        "GOPROXY": "off",
    }
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=package, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return binary


async def test_the_go_example_calls_the_server(go_example: Path, target: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(go_example),
        env={**os.environ, "CHATSTORE_TARGET": target, "CHATSTORE_TENANT": TENANT},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "1 ROLE_USER: Hello from Go",
        "2 ROLE_ASSISTANT: Hello, Go",
    ]
