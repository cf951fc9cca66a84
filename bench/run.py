"""Run the benchmark: chatstore beside a bare grpc.aio echo server, in one run.

    python -m bench.run                # full: SQLite, PostgreSQL and Citus, ~15 minutes
    python -m bench.run --quick        # SQLite, short runs: under a minute
    python -m bench.run --write-doc    # also rewrite docs/performance.md
    python -m bench.run --write-doc --from-results bench-results/latest.json
                                       # rewrite it from an earlier run (new analysis)

Every figure is measured here, now, side by side with the echo ceiling, because this
machine is shared and noisy: compare ratios, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from bench import machine, page
from bench.seed import Seeded, seed

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get(
    "CHATSTORE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TARGETS = {  # ratio to the echo ceiling, 16 concurrent calls (issue #8)
    "GetSession": 0.70,
    "AppendMessages (1 message)": 0.50,
    "ListMessages (page of 50)": 0.40,
    "GetContextWindow (50 messages)": 0.40,
}


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident (VmRSS) and peak resident (VmHWM) memory, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


def _cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process so far, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@contextmanager
def cpu_use(pids: dict[str, list[int]]) -> Iterator[dict[str, float]]:
    """CPU used during the block, in cores (1.0 = one core busy throughout): each group
    of `pids`, every PostgreSQL process, the rest (the load generator, mostly), and the
    whole machine; filled in when the block ends. Tells which resource was the limit."""
    groups = pids | {"postgresql": _postgres_pids()}
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    started_ticks = {pid: _cpu_ticks(pid) for group in groups.values() for pid in group}

    def machine_busy() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    busy_before, total_before = machine_busy()
    started = time.perf_counter()
    use: dict[str, float] = {}
    yield use
    seconds = time.perf_counter() - started
    busy_after, total_after = machine_busy()
    # PostgreSQL forks a backend per new connection: count the ones born meanwhile too.
    groups["postgresql"] = sorted(set(groups["postgresql"]) | set(_postgres_pids()))
    for name, group in groups.items():
        used = sum(max(_cpu_ticks(p) - started_ticks.get(p, 0), 0) for p in group)
        use[name] = round(used / ticks_per_second / seconds, 2)
    cores = os.cpu_count() or 1
    use["machine"] = round((busy_after - busy_before) / (total_after - total_before) * cores, 2)
    use["other"] = round(use["machine"] - sum(use[name] for name in groups), 2)


class Server:
    """A server subprocess (chatstore or the echo ceiling)."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        port_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        self.process = subprocess.Popen(
            args, stderr=log.open("w"), stdout=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + 60
        self.port = 0
        while not self.port:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
            if port_file is not None:
                if port_file.exists() and port_file.read_text():
                    self.port = int(port_file.read_text())
            elif found := re.search(r"\(port (\d+)\)", log.read_text()):
                self.port = int(found.group(1))

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@contextmanager
def chatstore(database_url: str, workdir: Path, name: str, *extra_args: str) -> Iterator[Server]:
    """A chatstore server with the default settings (JSON access log on), as deployed;
    only the sweeper is kept out of the way."""
    server = Server(
        [str(BIN / "chatstore-server"), "--listen", "127.0.0.1:0", "--database-url", database_url,
         "--sweep-interval-seconds", "3600", *extra_args],
        workdir / f"{name}.log",
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def echo(workdir: Path) -> Iterator[Server]:
    port_file = workdir / "echo.port"
    port_file.unlink(missing_ok=True)  # a stale port from an earlier backend
    server = Server(
        [sys.executable, "-m", "bench.echo_server", str(port_file)], workdir / "echo.log", port_file
    )
    try:
        yield server
    finally:
        server.stop()


def load(spec: dict[str, Any], server_pid: int | None = None) -> dict[str, Any]:
    """Run one scenario in a fresh load-generator process; its JSON result. With
    `server_pid`, also the CPU time per call of the server and of the load generator
    (`server_cpu_us`, `client_cpu_us`): which side a rate is bound by."""
    ticks = _cpu_ticks(server_pid) if server_pid else 0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=spec.get("duration", 10) + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed on {spec['scenario']}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("bad_answers"):
        raise RuntimeError(f"{spec['scenario']}: {result['bad_answers']} answers did not hold")
    calls = result.get("calls")
    if server_pid and calls:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
        server = (_cpu_ticks(server_pid) - ticks) / os.sysconf("SC_CLK_TCK")
        result["server_cpu_us"] = server / calls * 1e6
        result["client_cpu_us"] = client / calls * 1e6
    return result


def run_backend(backend: str, url: str, quick: bool, workdir: Path) -> dict[str, Any]:
    """Every scenario on one backend; the results by name.

    Each chatstore scenario runs right after an echo run of the same shape (callers,
    duration), and its ratio is to that run: the machine's speed drifts within a run
    (the two reference echo runs, at the start and the end, differ by up to a third).
    """
    with echo(workdir) as ceiling:
        return _run_backend(backend, url, quick, workdir, ceiling)


def _run_backend(
    backend: str, url: str, quick: bool, workdir: Path, ceiling: Server
) -> dict[str, Any]:
    # A full run measures each scenario in rounds, each paired with an echo run just
    # before it, and reports the round of median ratio: one pair of 4-second runs
    # moved by +-0.1 from one run to the next (docs/performance.md).
    duration = 1.5 if quick else 2.0
    rounds = 1 if quick else 3
    deep = 20_000 if quick else 1_000_000
    large = 20_000 if quick else 100_000
    started = time.perf_counter()
    seeded: Seeded = asyncio.run(seed(url, deep_messages=deep, large_sessions=large))
    results: dict[str, Any] = {"seed_seconds": round(time.perf_counter() - started, 1)}
    unary: dict[str, Any] = {}

    def run(
        name: str,
        server: Server | list[Server],
        scenario: str,
        cpu_of: dict[str, list[int]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """One scenario, each of its rounds after a paired echo run; the round whose
        ratio to its echo is the median, with every round's ratio (`ratio_rounds`). With
        `cpu_of`, one round of twice the length, and the CPU use of those process groups
        while the scenario (not the echo run) ran, as `result["cpu"]`."""
        servers = server if isinstance(server, list) else [server]
        spec = {
            "scenario": scenario,
            "targets": [s.target for s in servers],
            "concurrency": 16,
            "duration": duration if cpu_of is None else duration * 2,
            "tenant": "bench",
            "session_id": seeded.hot_session,
            "payload_bytes": 100,
        } | extra
        measured_rounds = []
        for _ in range(rounds if scenario != "echo" and cpu_of is None else 1):
            paired = None
            if scenario != "echo":
                paired = load(
                    {"scenario": "echo", "targets": [ceiling.target], "payload_bytes": 100}
                    | {key: spec[key] for key in ("concurrency", "duration")}
                )
            measured: AbstractContextManager[dict[str, float]] = (
                cpu_use(cpu_of) if cpu_of is not None else nullcontext({})
            )
            with measured as use:
                result = load(spec, servers[0].process.pid if len(servers) == 1 else None)
            if cpu_of is not None:
                result["cpu"] = use
            if paired is not None:
                result["paired_echo_calls_per_second"] = paired["calls_per_second"]
                result["ratio_to_echo"] = result["calls_per_second"] / paired["calls_per_second"]
            measured_rounds.append(result)
        if len(measured_rounds) > 1:
            ranked = sorted(measured_rounds, key=lambda r: r["ratio_to_echo"])
            result = ranked[len(ranked) // 2]
            result["ratio_rounds"] = [r["ratio_to_echo"] for r in measured_rounds]
        unary[name] = result
        failed = f"  failed calls: {result['errors']}" if result.get("errors") else ""
        print(f"  {backend:10} {name:44} {result['calls_per_second']:8.0f}/s{failed}", flush=True)
        return result

    def warm(server: Server | list[Server], scenario: str, **extra: Any) -> None:
        """A second of unmeasured calls on freshly started servers: their pools fill,
        their first statements are prepared (a cold server would lose to a warm one)."""
        servers = server if isinstance(server, list) else [server]
        load(
            {"scenario": scenario, "targets": [s.target for s in servers], "concurrency": 16,
             "duration": 1.0, "tenant": "bench", "session_id": seeded.hot_session,
             "payload_bytes": 100} | extra
        )  # fmt: skip

    with chatstore(url, workdir, backend) as server:
        warm(server, "get_session")
        run("echo (ceiling)", ceiling, "echo")
        run("GetSession", server, "get_session")
        run("AppendMessages (1 message)", server, "append")
        run("ListMessages (page of 50)", server, "list_messages")
        run("ListSessions (page of 50)", server, "list_sessions", tenant=seeded.small_tenant)
        run("GetContextWindow (50 messages)", server, "context_window")
        run(
            "ListMessages page at seq 1,000",
            server,
            "list_messages",
            session_id=seeded.deep_session,
            after_seq=1_000,
        )
        run(
            f"ListMessages page at seq {deep:,}",
            server,
            "list_messages",
            session_id=seeded.deep_session,
            after_seq=deep - 50,
        )
        run(
            "ListSessions, 1,000 in the tenant",
            server,
            "list_sessions",
            tenant=seeded.small_tenant,
        )
        run(
            f"ListSessions, {large:,} in the tenant",
            server,
            "list_sessions",
            tenant=seeded.large_tenant,
        )
        run("echo (ceiling, again)", ceiling, "echo")
        results["watch"] = load(
            {
                "scenario": "watch",
                "targets": [server.target],
                "tenant": "bench",
                "session_id": seeded.hot_session,
                "watchers": 100,
                "rate": 200,
                "duration": duration if quick else 4.0,
            }
        )
        print(f"  {backend:10} watch fan-out: {results['watch']}", flush=True)
        run("GetSession, 64 callers", server, "get_session", concurrency=64)
        results["server_memory_kib_after_64_callers"] = memory_kib(server.process.pid)
        before = memory_kib(server.process.pid)["VmRSS"]
        idle = subprocess.Popen(
            [sys.executable, "-m", "bench.load", json.dumps({
                "scenario": "idle_watches", "targets": [server.target], "tenant": "bench",
                "session_id": seeded.hot_session, "watchers": 1_000,
            })],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, cwd=ROOT,
        )  # fmt: skip
        assert idle.stdout is not None
        assert idle.stdin is not None
        idle.stdout.readline()
        during = memory_kib(server.process.pid)["VmRSS"]
        idle.stdin.close()
        idle.wait(60)
        results["idle_watch_streams"] = {"streams": 1_000, "added_rss_kib": during - before}
        # What the default JSON access log line costs: the same call, the log off.
        with chatstore(url, workdir, f"{backend}-quiet", "--no-log-requests") as quiet:
            warm(quiet, "get_session")
            run("GetSession, access log off", quiet, "get_session")
    if backend in ("postgresql", "citus"):
        # Appends spread over 64 sessions, so that no one session's row lock is the limit.
        spread = {"concurrency": 32, "spread_sessions": 64}
        with chatstore(url, workdir, "second") as second, chatstore(url, workdir, "first") as first:
            warm([first, second], "append", **spread)
            two = run("AppendMessages, 2 server processes", [first, second], "append",
                      cpu_of={"chatstore": [first.process.pid, second.process.pid]},
                      **spread)  # fmt: skip
            one = run("AppendMessages, 1 server process", first, "append",
                      cpu_of={"chatstore": [first.process.pid]}, **spread)  # fmt: skip
        results["append_cpu"] = {"2 server processes": two["cpu"], "1 server process": one["cpu"]}
    results["unary"] = unary
    ceiling_rate = (
        unary["echo (ceiling)"]["calls_per_second"]
        + unary["echo (ceiling, again)"]["calls_per_second"]
    ) / 2
    for result in unary.values():
        result.setdefault("ratio_to_echo", result["calls_per_second"] / ceiling_rate)
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        "| backend | scenario | calls/s | p50 ms | p99 ms | server CPU us/call"
        " | load generator CPU us/call | echo calls/s, run just before"
        " | ratio to echo (rounds' range) | target |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cpu(value: float | None) -> str:
        return "" if value is None else f"{value:.0f}"

    for backend, found in results["backends"].items():
        for name, r in found["unary"].items():
            target = TARGETS.get(name)
            wanted = f">= {target:.2f}" if target else ""
            failed = sum(r.get("errors", {}).values())
            label = f"{name} ({failed} calls failed)" if failed else name
            spread = r.get("ratio_rounds")
            ratio = f"{r['ratio_to_echo']:.2f}" + (
                f" ({min(spread):.2f}-{max(spread):.2f})" if spread else ""
            )
            lines.append(
                f"| {backend} | {label} | {r['calls_per_second']:.0f} | {r['p50_ms']:.2f} |"
                f" {r['p99_ms']:.2f} | {cpu(r.get('server_cpu_us'))} |"
                f" {cpu(r.get('client_cpu_us'))} | {cpu(r.get('paired_echo_calls_per_second'))} |"
                f" {ratio} | {wanted} |"
            )
    lines += [
        "",
        "| backend | watch fan-out (100 watchers, 200 appends/s) | deliveries/s"
        " | p50 ms | p99 ms | all in order |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for backend, found in results["backends"].items():
        w = found["watch"]
        lines.append(
            f"| {backend} | {w['writes']} writes | {w['deliveries_per_second']:.0f} |"
            f" {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | {w['all_in_order']} |"
        )
    lines += [
        "",
        "| backend | server peak RSS after 64 callers | RSS added by 1,000 idle watch streams"
        " | seeding |",
        "| --- | ---: | ---: | ---: |",
    ]
    for backend, found in results["backends"].items():
        peak = found["server_memory_kib_after_64_callers"]["VmHWM"] / 1024
        added = found["idle_watch_streams"]["added_rss_kib"] / 1024
        lines.append(
            f"| {backend} | {peak:.0f} MiB | {added:.0f} MiB | {found['seed_seconds']} s |"
        )
    cpu_rows = [
        f"| {backend} | {setup} | {use['chatstore']:.2f} | {use['postgresql']:.2f} |"
        f" {use['other']:.2f} | {use['machine']:.2f} of {os.cpu_count()} |"
        for backend, found in results["backends"].items()
        for setup, use in found.get("append_cpu", {}).items()
    ]
    if cpu_rows:
        lines += [
            "",
            "| backend | AppendMessages over 64 sessions, 32 callers | chatstore cores"
            " | PostgreSQL cores | load generator and rest | machine busy |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
            *cpu_rows,
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, SQLite only")
    parser.add_argument("--backends", default=None, help="comma-separated: sqlite,postgresql,citus")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "latest.json")
    parser.add_argument("--write-doc", action="store_true", help="rewrite docs/performance.md")
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="JSON",
        help="run nothing: print (and with --write-doc, write) an earlier run's results",
    )
    args = parser.parse_args()
    if args.from_results is not None:
        results = json.loads(args.from_results.read_text())
    else:
        results = _run(args.quick, args.backends)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2))
    tables = table(results)
    probed = ""
    if "machine_at_start" in results:  # runs from before the probe have none
        probed = machine.describe(results["machine_at_start"], results["machine_at_end"])
    print("\n" + tables + ("\n\n" + probed if probed else ""))
    print(f"\n{results['seconds']} s; results in {args.from_results or args.output}")
    if args.write_doc:
        (ROOT / "docs" / "performance.md").write_text(page.render(results, tables, probed))
    return 0


def _run(quick: bool, backends_wanted: str | None) -> dict[str, Any]:
    """Every scenario on the backends wanted (default: SQLite, and PostgreSQL and Citus
    unless `quick`); the results, as written to the JSON file."""
    backends = (backends_wanted or ("sqlite" if quick else "sqlite,postgresql,citus")).split(",")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "make bench-quick" if quick else "make bench",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine_cpus": os.cpu_count(),
        "machine_at_start": machine.probe(),
        "backends": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for backend in backends:
            print(f"{backend}:", flush=True)
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
                results["backends"][backend] = run_backend(backend, url, quick, workdir)
            elif backend == "citus":
                results["backends"][backend] = asyncio.run(_citus(quick, workdir))
            else:
                results["backends"][backend] = asyncio.run(_postgres(quick, workdir))
    results["machine_at_end"] = machine.probe()
    results["seconds"] = round(time.perf_counter() - started)
    return results


async def _postgres(quick: bool, workdir: Path) -> dict[str, Any]:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_URL)
    name = f"chatstore_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        return await asyncio.to_thread(run_backend, "postgresql", f"{base}/{name}", quick, workdir)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _citus(quick: bool, workdir: Path) -> dict[str, Any]:
    """The scenarios on a 3-node Citus cluster on this machine (a coordinator and two
    workers, 32 shards per table), started for the run and stopped after it."""
    from tests.citus import CitusCluster

    cluster = await CitusCluster.start()
    try:
        return await asyncio.to_thread(
            run_backend, "citus", cluster.sqlalchemy_url(), quick, workdir
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
