"""What the machine costs right now: a system call, a wake-up of another process, a step
of Python, measured in this process in under a second.

    python -m bench.machine

A full `make bench` takes these at its start and at its end and prints them beside its
table. On this shared machine the ratios to the echo ceiling move with the machine's
phase: the same code gave AppendMessages 0.44 and 0.36 of the echo an hour apart, the
echo's CPU per call falling 2.3 times and chatstore's 1.4 to 2.0 times (see "How steady
these figures are" in docs/performance.md). These figures record which phase a run ran
in; which of them tracks the ratios is not known yet (so far they were taken in one
phase only).
"""

from __future__ import annotations

import os
import subprocess
import sys
import timeit
from typing import Any

# The child answers each byte with the byte: each round trip is two wake-ups.
_ECHO_CHILD = (
    "import os\n"
    "while True:\n"
    "    b = os.read(0, 1)\n"
    "    if not b:\n"
    "        break\n"
    "    os.write(1, b)\n"
)


def _best(statement: Any, number: int) -> float:
    """The fastest of five timings of `statement`, in seconds per call."""
    return min(timeit.repeat(statement, number=number, repeat=5)) / number


def _python_steps() -> int:
    total = 0
    for step in range(1_000):
        total += step
    return total


def _wake_up_round_trip() -> float:
    """Seconds for a byte to go to another process on another core over a pipe and
    back, median of 2,000. Both ends are pinned to their cores for it (on one core the
    wake-up is a plain switch, many times cheaper, and the scheduler picks either)."""
    cores = sorted(os.sched_getaffinity(0))
    child = subprocess.Popen(
        [sys.executable, "-c", _ECHO_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None
    assert child.stdout is not None
    send, receive = child.stdin.fileno(), child.stdout.fileno()
    try:
        if len(cores) > 1:
            os.sched_setaffinity(0, {cores[0]})
            os.sched_setaffinity(child.pid, {cores[1]})
        timings = []
        for _ in range(2_000):
            started = timeit.default_timer()
            os.write(send, b"x")
            os.read(receive, 1)
            timings.append(timeit.default_timer() - started)
        timings.sort()
        return timings[len(timings) // 2]
    finally:
        os.sched_setaffinity(0, cores)
        child.stdin.close()
        child.wait(10)
        child.stdout.close()


def probe() -> dict[str, float]:
    """`system_call_ns`: one `getppid` (no work in the kernel: the cost of entering it).
    `wake_up_round_trip_us`: a byte to another process on another core and back over
    pipes (two cross-core wake-ups, which every call's threads and loopback sockets pay).
    `python_us`: 1,000 steps of a Python loop (an addition and a loop step each)."""
    return {
        "system_call_ns": round(_best(os.getppid, 100_000) * 1e9, 1),
        "wake_up_round_trip_us": round(_wake_up_round_trip() * 1e6, 1),
        "python_us": round(_best(_python_steps, 2_000) * 1e6, 1),
    }


def describe(start: dict[str, float], end: dict[str, float]) -> str:
    """One sentence on the probes taken at a run's start and at its end."""

    def both(key: str, unit: str) -> str:
        return f"{start[key]:g} and {end[key]:g} {unit}"

    return (
        "The machine at the run's start and at its end (`python -m bench.machine`): a"
        " system call took"
        f" {both('system_call_ns', 'ns')}, a wake-up round trip between two cores"
        f" {both('wake_up_round_trip_us', 'us')}, 1,000 steps of a Python loop"
        f" {both('python_us', 'us')}."
    )


if __name__ == "__main__":
    for key, value in probe().items():
        print(f"{key}: {value:g}")
