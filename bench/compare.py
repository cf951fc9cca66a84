"""Two chatstore servers side by side: this checkout's and another commit's, on equal
SQLite databases, loaded in alternating rounds, for telling whether a change made calls
faster in the server (where, on this machine, a saving measured in one process counts
two to three times, or not at all). With `--backend postgresql`, each server has a
PostgreSQL database of its own (`CHATSTORE_BENCH_POSTGRES_URL`'s server), dropped after.

    python -m bench.compare get_session append --against HEAD~1
    python -m bench.compare list_messages --against main --rounds 8 --duration 2
    python -m bench.compare get_session --source ../other-checkout
    python -m bench.compare get_session --against HEAD~1 --backend postgresql

Each round runs the scenario on both servers, one after the other (which goes first
alternates), with the same load generator as `make bench` (16 callers, or
`--concurrency`). Printed per
scenario: each server's median calls/s and server CPU per call, and the median of the
rounds' rate ratios (other / this): a ratio is taken within a round, so the machine's
drift over minutes cancels out. Each database is seeded by its own checkout's code (its
migrations and seeding), so the two may differ in schema.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.run import POSTGRES_URL, ROOT, Server, load

SCENARIOS = ("get_session", "append", "list_messages", "context_window", "list_sessions")
_SEED = (
    "import asyncio, json, sys\n"
    "from bench.seed import seed\n"
    "s = asyncio.run(seed(sys.argv[1], deep_messages=2_000, large_sessions=1_000))\n"
    "print(json.dumps({'hot': s.hot_session, 'small': s.small_tenant}))\n"
)


def source_environment(source: Path) -> dict[str, str]:
    """This interpreter's environment with `source`'s server and client code first."""
    paths = f"{source / 'service'}:{source / 'clients' / 'python'}"
    return os.environ | {"PYTHONPATH": paths}


@contextmanager
def _checkout(ref: str) -> Iterator[Path]:
    """A detached worktree of `ref`, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkout"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), ref],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False
            )


@contextmanager
def _database(backend: str, workdir: Path, name: str) -> Iterator[str]:
    """The URL of an empty database for one side: a SQLite file, or a PostgreSQL
    database made for the comparison and dropped after it."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'{name}.db'}"
        return
    database = f"chatstore_compare_{name}_{os.getpid()}"

    def admin(statement: str) -> None:
        subprocess.run(
            [sys.executable, "-c", _ADMIN, POSTGRES_URL, statement], check=True, cwd=ROOT
        )

    admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{database}"')
    try:
        base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{database}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


_ADMIN = (
    "import asyncio, sys, asyncpg\n"
    "async def main():\n"
    "    c = await asyncpg.connect(sys.argv[1])\n"
    "    await c.execute(sys.argv[2])\n"
    "    await c.close()\n"
    "asyncio.run(main())\n"
)


@contextmanager
def _server(
    source: Path, workdir: Path, name: str, backend: str = "sqlite"
) -> Iterator[tuple[Server, dict[str, str]]]:
    """A chatstore server of `source` on a database of `backend` seeded by `source`'s
    code, and the seeded ids (`hot`: the session of the unary scenarios; `small`: a
    tenant of 1,000 sessions)."""
    with (
        _database(backend, workdir, name) as url,
        _seeded_server(source, workdir, name, url) as served,
    ):
        yield served


@contextmanager
def _seeded_server(
    source: Path, workdir: Path, name: str, url: str
) -> Iterator[tuple[Server, dict[str, str]]]:
    seeded = subprocess.run(
        [sys.executable, "-c", _SEED, url],
        cwd=source, env=source_environment(source), check=True, capture_output=True, text=True,
    )  # fmt: skip
    ids: dict[str, str] = json.loads(seeded.stdout.strip().splitlines()[-1])
    server = Server(
        [sys.executable, "-m", "chatstore_server", "--listen", "127.0.0.1:0",
         "--database-url", url, "--sweep-interval-seconds", "3600"],
        workdir / f"{name}.log",
        env=source_environment(source),
    )  # fmt: skip
    try:
        yield server, ids
    finally:
        server.stop()


def _spec(
    scenario: str, server: Server, ids: dict[str, str], duration: float, concurrency: int = 16
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "targets": [server.target],
        "concurrency": concurrency,
        "duration": duration,
        "payload_bytes": 100,
        "tenant": ids["small"] if scenario == "list_sessions" else "bench",
        "session_id": ids["hot"],
    }


def compare(
    scenarios: list[str],
    this: Path,
    other: Path,
    rounds: int,
    duration: float,
    concurrency: int = 16,
    backend: str = "sqlite",
) -> dict[str, Any]:
    """Every scenario on both servers, `rounds` times; the figures by scenario."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        servers = {
            "this": stack.enter_context(_server(this, workdir, "this", backend)),
            "other": stack.enter_context(_server(other, workdir, "other", backend)),
        }
        for scenario in scenarios:
            for server, ids in servers.values():  # warm: pools filled, statements prepared
                load(_spec(scenario, server, ids, 1.0, concurrency))
            runs: dict[str, list[dict[str, Any]]] = {"this": [], "other": []}
            for index in range(rounds):
                order = ("this", "other") if index % 2 == 0 else ("other", "this")
                for name in order:
                    server, ids = servers[name]
                    spec = _spec(scenario, server, ids, duration, concurrency)
                    runs[name].append(load(spec, server.process.pid))
            ratios = [
                o["calls_per_second"] / t["calls_per_second"]
                for t, o in zip(runs["this"], runs["other"], strict=True)
            ]
            results[scenario] = {
                name: {
                    "calls_per_second": statistics.median(r["calls_per_second"] for r in found),
                    "server_cpu_us": statistics.median(r["server_cpu_us"] for r in found),
                }
                for name, found in runs.items()
            } | {"ratios": ratios, "median_ratio": statistics.median(ratios)}
            _print(scenario, results[scenario])
    return results


def _print(scenario: str, found: dict[str, Any]) -> None:
    this, other = found["this"], found["other"]
    ratios = " ".join(f"{r:.2f}" for r in found["ratios"])
    print(
        f"{scenario:15} this {this['calls_per_second']:6.0f}/s {this['server_cpu_us']:5.0f} us"
        f"  other {other['calls_per_second']:6.0f}/s {other['server_cpu_us']:5.0f} us"
        f"  other/this {found['median_ratio']:.3f} (rounds: {ratios})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="+", choices=SCENARIOS)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--against", metavar="REF", help="a git commit, branch or tag")
    where.add_argument("--source", type=Path, help="another checkout's directory")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per scenario")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent calls")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with ExitStack() as stack:
        other = args.source or stack.enter_context(_checkout(args.against))
        compare(
            args.scenarios,
            ROOT,
            other.resolve(),
            args.rounds,
            args.duration,
            args.concurrency,
            args.backend,
        )


if __name__ == "__main__":
    main()
