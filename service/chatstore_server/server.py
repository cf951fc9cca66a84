"""The server process: database, migrations, gRPC server, health, reflection, background
tasks (sweeper, health monitor, cross-process change listener) and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2
from prometheus_client import start_http_server

from chatstore.v1 import session_service_pb2
from chatstore_server.api.auth import Authenticator, JwtPolicy, KeyGrant
from chatstore_server.api.interceptors import CallInterceptor
from chatstore_server.api.observability import Metrics
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


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Bind the listen address, with TLS (and mTLS) when configured; the port bound."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return server.add_insecure_port(settings.listen)
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    credentials = grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
    return server.add_secure_port(settings.listen, credentials)


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

        Raises:
            UnavailableError: The database cannot be reached.
            RuntimeError: The listen address cannot be bound.
        """
        database = database_from(settings)
        try:
            if migrate:
                await upgrade(database)
            policy = settings.policy()
            feed = ChangeFeed(settings.watch_buffer_changes)
            metrics = Metrics()
            metrics.watch_pool(database.pool_stats)
            server = grpc.aio.server(options=settings.grpc_options())
            interceptor = CallInterceptor(
                authenticator_from(settings), metrics, log_requests=settings.log_requests
            )
            servicer = SessionServicer(database, policy, settings.limits(), feed)
            # Generic handlers only: see `registration` for what registered methods cost.
            add_service(server, SERVICE_DESCRIPTOR, interceptor.wrap(servicer, SERVICE_DESCRIPTOR))
            health_servicer = health.aio.HealthServicer()
            add_service(server, _HEALTH, health_servicer)
            add_service(
                server,
                _REFLECTION,
                reflection.aio.ReflectionServicer(
                    [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME]
                ),
            )
            port = _bind(server, settings)
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
                settings.database_url,
                feed,
                connect_timeout_seconds=settings.db_connect_timeout_seconds,
            )
            running._spawn(listener.run())
        logger.info(
            "serving on %s (port %d), database %s",
            settings.listen,
            port,
            database.url.render_as_string(hide_password=True),
        )
        return running

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work))

    async def stop(self, grace_seconds: float | None) -> None:
        """Stop: health goes NOT_SERVING, watchers are told to reconnect elsewhere, new
        calls are refused, in-flight calls get `grace_seconds` to finish, then the
        background tasks stop and the database pool closes."""
        await self._health.enter_graceful_shutdown()
        self._feed.close()
        await self._server.stop(grace_seconds)
        if self._metrics_http is not None:
            await asyncio.to_thread(self._metrics_http.shutdown)
            self._metrics_http.server_close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._database.dispose()

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
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await ChatStoreServer.start(settings, migrate=migrate, worker_index=worker_index)
    # What start-up allocated (modules, schema, compiled statements) lives as long as the
    # process: keep the cyclic garbage collector from scanning it again and again.
    gc.freeze()
    await stop.wait()
    logger.info("shutting down (grace %.1fs)", settings.shutdown_grace_seconds)
    await server.stop(settings.shutdown_grace_seconds)


async def migrate_only(settings: Settings) -> None:
    """Apply the migrations and return (for a supervisor starting several workers)."""
    database = database_from(settings)
    try:
        await upgrade(database)
    finally:
        with contextlib.suppress(Exception):
            await database.dispose()
