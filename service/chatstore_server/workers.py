"""`--workers N`: N server processes sharing one listen port (SO_REUSEPORT), over one
PostgreSQL database. The kernel spreads incoming connections across them.

The supervisor migrates once, starts the workers (spawned, so none inherits gRPC state),
forwards SIGTERM and SIGINT to them, and exits when they have; if one dies, it stops the
others and exits non-zero, for the orchestrator to restart the whole set.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from typing import Any

from chatstore_server import logs
from chatstore_server.config import Settings
from chatstore_server.server import StartupError, migrate_only, probe_port, serve

logger = logging.getLogger("chatstore_server")


def check(settings: Settings) -> str | None:
    """Why these settings cannot run several workers, or None if they can."""
    if not settings.database_url.startswith("postgresql"):
        return (
            "several workers need PostgreSQL: with SQLite, a watcher would miss what "
            "other workers write"
        )
    if settings.listen.rsplit(":", 1)[-1] == "0":
        return "several workers need a fixed port to share, not port 0"
    return None


def _worker(fields: dict[str, Any], index: int) -> None:
    settings = Settings(**fields)
    logs.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings, migrate=False, worker_index=index))
    except StartupError as error:
        print(
            f"chatstore-server: worker {index}: bad setting {error.setting}: {error}",
            file=sys.stderr,
        )
        sys.exit(2)


def run(settings: Settings) -> int:
    """Supervise `settings.workers` worker processes until they stop; the exit code.

    The listen port is probed first: the workers share it (`SO_REUSEPORT`), and only
    they may, so anything already bound there (another chatstore server, even one
    whose own workers share it) stops the start-up.

    Raises:
        StartupError: The port is taken, or the database cannot be used (nothing was
            started or changed).
    """
    probe_port(settings.listen)
    asyncio.run(migrate_only(settings))
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = [
        context.Process(target=_worker, args=(settings.model_dump(), i), name=f"worker-{i}")
        for i in range(settings.workers)
    ]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.start()
    logger.info("started %d workers on %s", len(workers), settings.listen)
    while all(w.is_alive() for w in workers) and not stopping:
        time.sleep(0.2)
    if not stopping:
        logger.error("a worker exited; stopping the others")
        stop(signal.SIGTERM, None)
    for worker in workers:
        worker.join()
    # A worker still starting when told to stop dies of the SIGTERM itself: also clean.
    clean = {0, -signal.SIGTERM}
    return 0 if stopping and all(w.exitcode in clean for w in workers) else 1
