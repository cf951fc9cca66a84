"""The server process: database, migrations, gRPC server, health, reflection, background
tasks (sweeper, health monitor, cross-process change listener) and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
from collections.abc import Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2
from prometheus_client import start_http_server
from sqlalchemy.exc import SQLAlchemyError

from chatstore.v1 import session_service_pb2
from chatstore_server import tracing
from chatstore_server.api.auth import Authenticator, JwtPolicy, KeyGrant
from chatstore_server.api.decoding import decoder
from chatstore_server.api.interceptors import CallInterceptor
from chatstore_server.api.observability import Metrics
from chatstore_server.api.reflection import servicer as reflection_servicer
from chatstore_server.api.registration import add_service
from chatstore_server.api.servicer import SessionServicer
from chatstore_server.config import Settings
from chatstore_server.store import (
    ChangeFeed,
    ChangeListener,
    Database,
    SessionPolicy,
    StoreError,
    sweep,
    upgrade,
)

logger = logging.getLogger("chatstore_server")

SERVICE_DESCRIPTOR = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"]
SERVICE_NAME = SERVICE_DESCRIPTOR.full_name
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
_REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def authenticator_from(settings: Settings) -> Authenticator:
    """The credential checks the settings configure (none: every call is let through)."""
    keys = [
        KeyGrant(k.name, k.sha256, k.tenants, k.mode == "read_only")
        for k in settings.all_api_keys()
    ]
    jwt_key = settings.jwt_verification_key()
    policy = (
        JwtPolicy(
            key=jwt_key,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            tenants_claim=settings.jwt_tenants_claim,
            mode_claim=settings.jwt_mode_claim,
        )
        if jwt_key
        else None
    )
    return Authenticator(keys, policy)


STOP_TASKS_SECONDS = 2.0
"""How long stopping waits for the background tasks (sweeper, health monitor, change
listener) to end once cancelled: with `Database.dispose`'s bound, a shutdown takes at
most the grace period plus a few seconds, whatever the database does."""


TRACE_FLUSH_SECONDS = 5.0
"""How long a stopping server waits for its buffered spans to be exported."""


def _tracing() -> tracing.Tracing | None:
    """This process's tracing, when the OTEL_* variables ask for it (`tracing`).

    Raises:
        StartupError: They do, and the tracing extra is not installed.
    """
    if not tracing.wanted():
        return None
    try:
        return tracing.Tracing.start()
    except ModuleNotFoundError as error:
        raise StartupError(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            f"tracing is asked for but {error.name!r} is missing: {tracing.EXTRA_HINT}",
        ) from None


async def _flush_traces(traced: tracing.Tracing) -> None:
    try:
        await asyncio.wait_for(asyncio.to_thread(traced.shutdown), TRACE_FLUSH_SECONDS)
    except TimeoutError:
        logger.warning("spans not exported within %ss were dropped", TRACE_FLUSH_SECONDS)


class StartupError(RuntimeError):
    """The server cannot start with these settings, and changed nothing: `setting`
    names the setting at fault, the message says why in one line."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def probe_port(listen: str) -> None:
    """Fail unless `listen`'s port is free: bound by no process at all, not even one
    that would let others share it (`SO_REUSEPORT`), so that only the workers of one
    server ever share a port. Port 0 is always free.

    Raises:
        StartupError: The port is taken, or the address is not one of this machine's.
    """
    host, _, port_text = listen.rpartition(":")
    if port_text == "0":
        return
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]") or None,
            int(port_text),
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
    except (OSError, ValueError) as error:
        raise StartupError("listen", f"cannot listen on {listen}: {error}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC binds (SO_REUSEADDR: connections of an earlier server still in
            # TIME_WAIT do not count), but without SO_REUSEPORT: a listener that
            # allows sharing still makes this bind fail.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                reason = (
                    "the port is in use by another process (only the workers of one"
                    " chatstore server may share a port)"
                    if error.errno == errno.EADDRINUSE
                    else error.strerror
                )
                raise StartupError("listen", f"cannot listen on {listen}: {reason}") from None


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Bind the listen address, with TLS (and mTLS) when configured; the port bound.

    Raises:
        StartupError: It cannot be bound, or a TLS file cannot be read.
    """
    if settings.workers == 1:  # a supervisor of workers probed it before starting them
        probe_port(settings.listen)
    try:
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            return server.add_insecure_port(settings.listen)
        client_ca = (
            settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
        )
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        return server.add_secure_port(settings.listen, credentials)
    except OSError as error:
        raise StartupError("tls_cert_file", f"cannot read a TLS file: {error}") from None
    except RuntimeError:  # gRPC says no more than that it failed (and logs why)
        raise StartupError(
            "listen", f"cannot listen on {settings.listen}: the address could not be bound"
        ) from None


def _first_line_of_cause(error: BaseException) -> str:
    """The innermost cause of `error` (the driver's own words), in one line."""
    while True:
        inner = getattr(error, "orig", None) or error.__cause__
        if not isinstance(inner, BaseException) or inner is error:
            break
        error = inner
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


async def _migrate(database: Database) -> None:
    """Apply the migrations, or say in one line why the database cannot be used.

    Raises:
        StartupError: The database cannot be reached or opened (nothing was changed:
            the migrations run in one transaction).
    """
    try:
        await upgrade(database)
    except (StoreError, SQLAlchemyError, OSError) as error:
        url = database.url.render_as_string(hide_password=True)
        raise StartupError(
            "database_url", f"cannot use {url}: {_first_line_of_cause(error)}"
        ) from error


def database_from(settings: Settings) -> Database:
    """The database the settings name, with their pool and timeout settings."""
    return Database.from_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
        connect_timeout_seconds=settings.db_connect_timeout_seconds,
        command_timeout_seconds=settings.db_command_timeout_seconds,
    )


def _switches(settings: Settings, metrics_port: int | None, traced: bool) -> dict[str, str]:
    """What the start-up line says is on: TLS, authentication, metrics, tracing."""
    tls = "off"
    if settings.tls_cert_file is not None:
        tls = "on, client certificates required" if settings.tls_client_ca_file else "on"
    ways = [
        name
        for name, configured in (
            ("api keys", settings.api_keys or settings.api_keys_file),
            ("jwt", settings.jwt_key or settings.jwt_key_file),
        )
        if configured
    ]
    auth = " and ".join(ways) if ways else "off (every caller may act for any tenant)"
    metrics = "off" if metrics_port is None else f"{settings.metrics_address}:{metrics_port}"
    return {
        "tls": tls,
        "auth": auth,
        "metrics": metrics,
        "tracing": "on (OpenTelemetry)" if traced else "off",
    }


class ChatStoreServer:
    """A running chatstore server. Create with `await ChatStoreServer.start(settings)`."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        database: Database,
        feed: ChangeFeed,
        port: int,
        metrics: Metrics,
        metrics_http: Any = None,
    ) -> None:
        self._server = server
        self._health = health_servicer
        self._database = database
        self._feed = feed
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: ChangeListener | None = None
        self._tracing: tracing.Tracing | None = None
        self.metrics = metrics
        """The server's metrics (also served over HTTP when `metrics_port` is set)."""
        self._metrics_http = metrics_http
        self.metrics_port: int | None = metrics_http.server_port if metrics_http else None
        """The port of the metrics endpoint, when it is served."""
        self.port = port
        """The port actually bound (useful when `listen` asked for port 0)."""

    @classmethod
    async def start(
        cls, settings: Settings, *, migrate: bool = True, worker_index: int = 0
    ) -> ChatStoreServer:
        """Migrate the database (unless `migrate` is false), bind, and start serving.

        Args:
            settings: What to serve, and how.
            migrate: Apply the migrations first (a supervisor of workers does it once).
            worker_index: This worker's index: its metrics port is `metrics_port` + it.

        The listen address is bound before the migrations run, so neither a port in use
        nor an unusable database leaves anything changed.

        Raises:
            StartupError: The listen address cannot be bound, or the database cannot
                be reached or opened.
        """
        traced = _tracing()
        database = database_from(settings)
        try:
            interceptors = traced.server_interceptors() if traced else None
            server = grpc.aio.server(options=settings.grpc_options(), interceptors=interceptors)
            port = _bind(server, settings)
            if migrate:
                await _migrate(database)
            if traced is not None:
                traced.instrument(database)
            policy = settings.policy()
            feed = ChangeFeed(settings.watch_buffer_changes)
            metrics = Metrics()
            metrics.watch_pool(database.pool_stats)
            interceptor = CallInterceptor(
                authenticator_from(settings),
                metrics,
                log_requests=settings.log_requests,
                annotate=tracing.annotate if traced else None,
            )
            servicer = SessionServicer(database, policy, settings.limits(), feed)
            # Generic handlers only: see `registration` for what registered methods cost.
            add_service(
                server,
                SERVICE_DESCRIPTOR,
                interceptor.wrap(servicer, SERVICE_DESCRIPTOR),
                decoder=decoder,
                encoded=SessionServicer.ENCODED_ANSWERS,
            )
            health_servicer = health.aio.HealthServicer()
            add_service(server, _HEALTH, health_servicer)
            add_service(
                server,
                _REFLECTION,
                reflection_servicer([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME]),
            )
            await server.start()
            metrics_http = None
            if settings.metrics_port is not None:
                # Port 0 picks a free port; worker i of several takes metrics_port + i.
                port_wanted = settings.metrics_port + worker_index if settings.metrics_port else 0
                metrics_http, _ = start_http_server(
                    port_wanted, settings.metrics_address, registry=metrics.registry
                )
        except BaseException:
            await database.dispose()
            raise
        for service in ("", SERVICE_NAME):
            await health_servicer.set(service, _SERVING)
        running = cls(server, health_servicer, database, feed, port, metrics, metrics_http)
        running._tracing = traced
        running._spawn(_sweep_forever(database, policy, settings.sweep_interval_seconds, feed))
        running._spawn(
            _monitor_health(
                database,
                health_servicer,
                settings.health_check_interval_seconds,
                settings.db_connect_timeout_seconds,
            )
        )
        if database.dialect_name == "postgresql":
            listener = ChangeListener(
                database.url.render_as_string(hide_password=False),
                feed,
                connect_timeout_seconds=settings.db_connect_timeout_seconds,
            )
            running._listener = listener
            running._spawn(listener.run())
        switches = _switches(
            settings, running.metrics_port, traced is not None
        )  # said in words, for people
        logger.info(
            "serving on %s (port %d), database %s, tls %s, auth %s, metrics %s, tracing %s",
            settings.listen,
            port,
            database.url.render_as_string(hide_password=True),
            *switches.values(),
        )
        return running

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work))

    async def stop(self, grace_seconds: float | None) -> None:
        """Stop: health goes NOT_SERVING, watchers are told to reconnect elsewhere, new
        calls are refused, in-flight calls get `grace_seconds` to finish, then the
        background tasks stop and the database pool closes. Returns within the grace
        period plus `STOP_TASKS_SECONDS` and `Database.dispose`'s bound, whatever the
        database does."""
        await self._health.enter_graceful_shutdown()
        self._feed.close()
        await self._server.stop(grace_seconds)
        if self._metrics_http is not None:
            await asyncio.to_thread(self._metrics_http.shutdown)
            self._metrics_http.server_close()
        if self._listener is not None:
            self._listener.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            done, left = await asyncio.wait(self._tasks, timeout=STOP_TASKS_SECONDS)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("a background task failed", exc_info=task.exception())
            if left:
                logger.warning("%d background tasks did not stop in time; left behind", len(left))
        await self._database.dispose()
        if self._tracing is not None:
            await _flush_traces(self._tracing)

    async def wait_for_termination(self) -> None:
        """Return when the server has stopped."""
        await self._server.wait_for_termination()


async def _sweep_forever(
    database: Database, policy: SessionPolicy, interval: float, feed: ChangeFeed
) -> None:
    """Sweep every `interval` seconds until cancelled; a failed sweep is retried next time."""
    while True:
        await asyncio.sleep(interval)
        try:
            result = await sweep(database, policy, feed=feed)
        except StoreError:
            logger.warning("sweep failed; retrying in %.0fs", interval, exc_info=True)
            continue
        if result.purged or result.idled:
            logger.info("sweep purged %d sessions, marked %d idle", result.purged, result.idled)


async def _monitor_health(
    database: Database, health_servicer: health.aio.HealthServicer, interval: float, timeout: float
) -> None:
    """Keep the health status in step with the database: NOT_SERVING while it is down."""
    serving = True
    while True:
        await asyncio.sleep(interval)
        reachable = await database.ping(timeout)
        if reachable != serving:
            serving = reachable
            logger.warning("database %s", "reachable again" if serving else "unreachable")
            for service in ("", SERVICE_NAME):
                await health_servicer.set(service, _SERVING if serving else _NOT_SERVING)


async def serve(settings: Settings, *, migrate: bool = True, worker_index: int = 0) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    # Handlers first: a signal that arrives while the server is starting still stops it
    # gracefully, right after start-up.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():  # a second signal: the operator will not wait
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    server = await ChatStoreServer.start(settings, migrate=migrate, worker_index=worker_index)
    # What start-up allocated (modules, schema, compiled statements) lives as long as the
    # process: keep the cyclic garbage collector from scanning it again and again.
    gc.freeze()
    await stop.wait()
    logger.info("shutting down (grace %.1fs)", settings.shutdown_grace_seconds)
    await server.stop(settings.shutdown_grace_seconds)


async def migrate_only(settings: Settings) -> None:
    """Apply the migrations and return (for a supervisor starting several workers).

    Raises:
        StartupError: The database cannot be reached or opened.
    """
    database = database_from(settings)
    try:
        await _migrate(database)
    finally:
        with contextlib.suppress(Exception):
            await database.dispose()
