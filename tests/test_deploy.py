"""The container files: what the image is built from, the health probe it runs, and the
settings the deployment examples set. (`make lint` runs hadolint and
kubernetes-validate on them; no image is built here: no registry is reachable.)"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from tests.processes import BIN, free_port

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {f"CHATSTORE_{name.upper()}" for name in Settings.model_fields}
CLIENT_VARIABLES = {"CHATSTORE_TARGET", "CHATSTORE_TENANT", "CHATSTORE_API_KEY"}


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\bCHATSTORE_[A-Z_]+\b", text))


@pytest.mark.parametrize(
    "path", ["Dockerfile", "deploy/compose.yaml", "deploy/kubernetes.yaml"], ids=str
)
def test_every_setting_the_container_files_name_exists(path: str) -> None:
    named = _variables((ROOT / path).read_text())

    assert named, "no settings named: the test would prove nothing"
    assert named <= SETTINGS | CLIENT_VARIABLES, f"unknown: {sorted(named - SETTINGS)}"


def test_compose_builds_the_repository_image_and_waits_for_postgres() -> None:
    [compose] = _documents(ROOT / "deploy" / "compose.yaml")
    chatstore = compose["services"]["chatstore"]

    assert (ROOT / "deploy" / chatstore["build"]["context"] / "Dockerfile").is_file()
    assert chatstore["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = chatstore["environment"]["CHATSTORE_DATABASE_URL"]
    assert url.startswith("postgresql://")
    assert "@postgres:5432/" in url
    # Unauthenticated is allowed only because the ports are the host's loopback alone.
    assert all(port.startswith("127.0.0.1:") for port in chatstore["ports"])


def test_the_kubernetes_example_exposes_every_workers_metrics_and_its_secrets() -> None:
    documents = _documents(ROOT / "deploy" / "kubernetes.yaml")
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    pod = kinds[("Deployment", "chatstore")]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    workers = int(args[args.index("--workers") + 1])
    metrics = int(args[args.index("--metrics-port") + 1])

    ports = {p["containerPort"] for p in container["ports"]}
    assert {metrics + i for i in range(workers)} <= ports
    secrets = {
        ref["secretKeyRef"]["name"] for e in container["env"] if (ref := e.get("valueFrom"))
    } | {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets
    assert all(("Secret", name) in kinds for name in secrets)
    assert kinds[("Service", "chatstore-headless")]["spec"]["clusterIP"] == "None"


def _dockerignored_copy(destination: Path) -> None:
    """The build context Docker sends, as `.dockerignore` (`*` then `!` lines) allows."""
    allowed = [
        line[1:]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for name in allowed:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(source, destination / name)
    copied = [
        re.match(r"COPY (\S+)", line) for line in (ROOT / "Dockerfile").read_text().split("\n")
    ]
    for found in filter(None, copied):
        if not found.group(1).startswith("--"):
            assert (destination / found.group(1)).exists(), found.group(1)
    assert not any(fnmatch.fnmatch(p.name, "*.db") for p in destination.rglob("*"))


def test_the_image_build_context_holds_a_complete_server(tmp_path: Path) -> None:
    # The image's build stage runs `pip install ".[server]"` on this context.
    context = tmp_path / "context"
    context.mkdir()
    _dockerignored_copy(context)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=context, capture_output=True, text=True,
    )  # fmt: skip

    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("chatstore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "chatstore_server/store/alembic.ini" in names
    assert any(n.startswith("chatstore_server/store/migrations/versions/") for n in names)
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "chatstore-server" in scripts
    assert "chatstore-health-probe" in scripts


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """A command's exit code, stdout and stderr (not blocking the server's loop)."""
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_health_probe(database_url: str) -> None:
    server = await ChatStoreServer.start(Settings(listen="127.0.0.1:0", database_url=database_url))
    env = os.environ | {"CHATSTORE_LISTEN": f"0.0.0.0:{server.port}"}  # as in the image
    probe = str(BIN / "chatstore-health-probe")
    try:
        serving = await _run(probe, env=env)
        service = await _run(probe, "--service", "chatstore.v1.SessionService", env=env)
        unknown = await _run(probe, "--service", "no.such.Service", env=env)
    finally:
        await server.stop(None)
    closed = await _run(probe, "--target", f"127.0.0.1:{free_port()}", "--timeout", "1")

    assert serving == (0, f"127.0.0.1:{server.port}: SERVING\n", "")
    assert service[0] == 0
    assert unknown[0] == 1
    assert "NOT_FOUND" in unknown[2]
    assert closed[0] == 1
    assert "UNAVAILABLE" in closed[2]
