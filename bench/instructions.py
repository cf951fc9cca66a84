"""Instructions per call of a server, counted by valgrind's callgrind: the same figure
for the same code whatever else the machine does (timings on this shared machine drift
by a third within a run), for telling whether a change made a call cheaper.

    python -m bench.instructions get_session append        # chatstore on SQLite
    python -m bench.instructions echo                       # the bare grpc.aio ceiling
    python -m bench.instructions list_messages --calls 500 --source ../other-checkout

The server runs under callgrind (about 50 times slower), is warmed with 200 calls, its
counters are zeroed, the load generator makes `--calls` calls (16 at a time), and the
counters are dumped: instructions per call for the event-loop thread and for the whole
process. Counts are not times: the instructions a change removes may be cheap or dear
ones (docs/performance.md compares both), but a count that does not move means the
change did nothing. Needs valgrind (`callgrind_control`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.compare import source_environment
from bench.run import load
from bench.seed import seed

_ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("echo", "get_session", "append", "list_messages", "context_window", "list_sessions")


def _counts(directory: Path) -> dict[int, int]:
    """Instructions by thread number in the dump taken after the counters were zeroed."""
    found: dict[int, int] = {}
    for path in directory.glob("callgrind.out*"):
        head = path.read_text(errors="replace")[:20_000]
        part = re.search(r"^part: (\d+)", head, re.MULTILINE)
        total = re.search(r"^summary: (\d+)", head, re.MULTILINE)
        thread = re.search(r"^thread: (\d+)", head, re.MULTILINE)
        if part and total and part.group(1) == "1":
            found[int(thread.group(1)) if thread else 1] = int(total.group(1))
    return found


def measure(scenario: str, calls: int, source: Path, database: Path, session: str) -> str:
    """One scenario's line of output: instructions per call (thousands)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port_file = work / "port"
        if scenario == "echo":
            command = [sys.executable, "-m", "bench.echo_server", str(port_file)]
        else:
            copy = work / "bench.db"
            shutil.copy(database, copy)
            command = [
                sys.executable, "-m", "chatstore_server", "--listen", "127.0.0.1:0",
                "--database-url", f"sqlite+aiosqlite:///{copy}", "--sweep-interval-seconds", "3600",
            ]  # fmt: skip
        env = source_environment(source)
        log = work / "server.log"
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={work}/callgrind.out.%p", *command],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env, cwd=_ROOT,
        )  # fmt: skip
        try:
            port = _wait_for_port(server, log, port_file)
            spec = {
                "scenario": scenario, "targets": [f"127.0.0.1:{port}"], "concurrency": 16,
                "duration": 10_000, "payload_bytes": 100, "session_id": session,
                "tenant": "small" if scenario == "list_sessions" else "bench",
            }  # fmt: skip
            load(spec | {"max_requests": 200})
            _control("-z", server.pid)  # zero the counters
            result = load(spec | {"max_requests": calls})
            _control("-d", server.pid)  # dump them
        finally:
            server.terminate()
            server.wait(300)
        counts = _counts(work)
    done = result["calls"]
    loop = counts.get(1, 0) / done / 1000
    every = sum(counts.values()) / done / 1000
    return (
        f"{scenario:16} {done:6} calls  event loop {loop:8.0f}k"
        f"  whole process {every:8.0f}k instructions/call"
    )


def _control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def _wait_for_port(server: subprocess.Popen[bytes], log: Path, port_file: Path) -> int:
    deadline = time.monotonic() + 600  # start-up under callgrind takes a minute or more
    while time.monotonic() < deadline and server.poll() is None:
        if port_file.exists() and port_file.read_text():
            return int(port_file.read_text())
        if found := re.search(r"\(port (\d+)\)", log.read_text()):
            return int(found.group(1))
        time.sleep(0.5)
    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="+", choices=SCENARIOS)
    parser.add_argument("--calls", type=int, default=1_000, help="measured calls per scenario")
    parser.add_argument(
        "--source",
        type=Path,
        default=_ROOT,
        help="the checkout whose server to measure (default: this one)",
    )
    args = parser.parse_args()
    if shutil.which("callgrind_control") is None:
        raise SystemExit("bench.instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "seed.db"
        seeded = asyncio.run(
            seed(f"sqlite+aiosqlite:///{database}", deep_messages=2_000, large_sessions=10)
        )
        for scenario in args.scenarios:
            print(measure(scenario, args.calls, args.source, database, seeded.hot_session))


if __name__ == "__main__":
    main()
