"""docs/performance.md, written from a `bench.run` result: a user's sizing page.

What one core of chatstore serves per backend, latency, how many worker processes for
how many cores, memory, and how the figures were measured and can be reproduced. The
history of what was tried and measured along the way is bench/analysis.md, not here.
"""

from __future__ import annotations

import os
from typing import Any

# The scenarios a sizing question is about, in the order the page shows them.
SIZING_SCENARIOS = (
    "GetSession",
    "AppendMessages (1 message)",
    "ListMessages (page of 50)",
    "GetContextWindow (50 messages)",
    "ListSessions (page of 50)",
)


def _per_core_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for backend, found in results["backends"].items():
        for name in SIZING_SCENARIOS:
            r = found["unary"].get(name)
            if r is None or not r.get("server_cpu_us"):
                continue
            rows.append(
                f"| {backend} | {name} | {1e6 / r['server_cpu_us']:,.0f} |"
                f" {r['calls_per_second']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
            )
    return rows


def _workers_text(results: dict[str, Any]) -> str:
    """What the one multi-process measurement says, with its figures."""
    for backend, found in results["backends"].items():
        unary = found["unary"]
        two = unary.get("AppendMessages, 2 server processes")
        one = unary.get("AppendMessages, 1 server process")
        use = found.get("append_cpu", {})
        if not (two and one and "2 server processes" in use):
            continue
        busy = use["2 server processes"]
        cores = results.get("machine_cpus", os.cpu_count())
        ratio = two["calls_per_second"] / one["calls_per_second"]
        measured = (
            f"Measured here ({backend}, AppendMessages over 64 sessions from 32 callers), 2"
            f" server processes served {two['calls_per_second']:,.0f} calls/s and 1 served"
            f" {one['calls_per_second']:,.0f} ({ratio:.2f}x). With two processes the machine"
            f" was {busy['machine']:.2f} of its {cores} cores busy: chatstore"
            f" {busy['chatstore']:.2f}, PostgreSQL {busy['postgresql']:.2f}, the load generator"
            f" and the rest {busy['other']:.2f}."
        )
        if ratio > 1.05:
            return measured + " The second process added what the cores left idle by the first."
        if ratio < 0.95:
            return measured + (
                " There was no idle core for the second process, so it only added contention."
            )
        return measured + " A second process without a core of its own adds nothing."
    return "No multi-process run in these results (`make bench` on PostgreSQL measures one)."


def render(results: dict[str, Any], full_table: str, machine_text: str) -> str:
    """The page, from `results` and the tables `bench.run` printed."""
    per_core = "\n".join(_per_core_rows(results))
    return f"""# Performance and sizing

Figures from `{results["command"]}` on {results["date"]}, on {results["machine"]}; the
load generator, the databases and chatstore all ran on that one machine, a shared one
whose speed varies by the hour: its probe at the run's start and end is at the bottom
of this page; run `python -m bench.machine` on yours to compare before scaling these
rates. They are a guide for sizing, not a promise: measure on your own hardware and
data with `make bench` (below).

## What one core serves

A chatstore worker process runs its Python on one core. The first column is one core's
capacity, computed from the server process's CPU time per call (1 s / CPU per call);
the others are what the run measured with 16 concurrent callers on one worker process.
PostgreSQL's CPU is its own and not counted here: on PostgreSQL and Citus, plan cores
for the database beside chatstore's.

| backend | call | calls/s per server core | calls/s measured | p50 ms | p99 ms |
| --- | --- | ---: | ---: | ---: | ---: |
{per_core}

Reading it: divide your peak calls/s of each kind by its "per server core" figure and
add up: that is the chatstore cores to provide (then round up to whole workers, with
headroom). Appends cost more than reads: each is a durable commit (on SQLite an fsync,
shared by concurrent appends). p99 at 16 concurrent callers is the latency to expect at
that load; more callers than a worker can serve queue, and p99 grows with the queue
(compare "GetSession, 64 callers" in the full table below).

## How many workers for how many cores

`--workers N` runs N processes on one port (PostgreSQL or Citus only; SQLite has one
writer). Give each worker a core of its own: N = the cores left for chatstore after the
database, the sidecars and anything else on the machine, not the machine's core count.
{_workers_text(results)}

Beyond one machine, add replicas (every replica serves every session) until the
database is the limit; then move a PostgreSQL that is out of CPU or disk to Citus (the
README's "Running at scale"). Size the database connections as the README says:
replicas x workers x (2 x (pool size + overflow) + 1) below `max_connections`.

## Memory

Per worker, resident memory after serving 64 concurrent callers, and what 1,000 idle
watch streams add:

{_memory_table(full_table)}

## How the figures were measured

Every scenario runs in three rounds of 2 seconds, each right after a bare `grpc.aio`
echo server of the same shape (100-byte payload, 16 concurrent calls unless the row says
otherwise), and the round of median ratio to that echo is shown with the rounds' range:
absolute rates drift on a shared machine, even within one run, but the ratio to an echo
measured a moment earlier holds. The load generator is a separate process; the CPU
columns are the server's and the load generator's CPU time per call. A run also probes
the machine at its start and end (`python -m bench.machine`), printed at the end.

{full_table}

{machine_text}

## Reproduce

```sh
make bench                                    # SQLite, PostgreSQL and Citus; ~15 min
.venv/bin/python -m bench.run --backends postgresql      # one backend
.venv/bin/python -m bench.run --write-doc     # and rewrite this page from the run
make bench-quick                              # SQLite only, short rounds (< 1 min)
.venv/bin/python -m bench.frameworks          # the framework integrations beside
                                              # the frameworks' own stores
```

PostgreSQL is `CHATSTORE_TEST_POSTGRES_URL` (default
`postgresql://postgres@127.0.0.1:5432/test`); Citus is a 3-node cluster the run starts
on this machine (`make citus` installs it). Results are written to
`bench-results/latest.json`; `--from-results FILE --write-doc` renders a saved run.
What was tried to reach these figures, with its measurements, is in `bench/analysis.md`.
"""


def _memory_table(full_table: str) -> str:
    """The memory table of `bench.run.table`'s output."""
    tables = full_table.split("\n\n")
    return next((t for t in tables if "peak RSS" in t), "(not measured in this run)")
