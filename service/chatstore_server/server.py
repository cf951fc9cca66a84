"""The server process: database, migrations, gRPC server, health, reflection, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatstore.v1 import session_service_pb2, session_service_pb2_grpc
from chatstore_server.api.interceptors import ErrorInterceptor
from chatstore_server.api.servicer import SessionServicer
from chatstore_server.config import Settings
from chatstore_server.store import ChangeFeed, Database, SessionPolicy, StoreError, sweep, upgrade

logger = logging.getLogger("chatstore_server")

SERVICE_NAME = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name


class ChatStoreServer:
    """A running chatstore server. Create with `await ChatStoreServer.start(settings)`."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health: health.aio.HealthServicer,
        database: Database,
        port: int,
        sweeper: asyncio.Task[None],
        feed: ChangeFeed,
    ) -> None:
        self._server = server
        self._feed = feed
        self._health = health
        self._database = database
        self._sweeper = sweeper
        self.port = port
        """The port actually bound (useful when `listen` asked for port 0)."""

    @classmethod
    async def start(cls, settings: Settings) -> ChatStoreServer:
        """Migrate the database, bind, and start serving.

        Raises:
            UnavailableError: The database cannot be reached.
            RuntimeError: The listen address cannot be bound.
        """
        database = Database.from_url(
            settings.database_url,
            pool_size=settings.db_pool_size,
            pool_timeout_seconds=settings.db_pool_timeout_seconds,
        )
        try:
            await upgrade(database)
            server = grpc.aio.server(
                interceptors=[ErrorInterceptor()],
                # A second server must fail to bind a port in use, not share it silently.
                options=[("grpc.so_reuseport", 0)],
            )
            policy = settings.policy()
            feed = ChangeFeed(settings.watch_buffer_changes)
            session_service_pb2_grpc.add_SessionServiceServicer_to_server(
                SessionServicer(database, policy, settings.limits(), feed), server
            )
            health_servicer = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
            reflection.enable_server_reflection(
                [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
            )
            port = server.add_insecure_port(settings.listen)
            await server.start()
        except BaseException:
            await database.dispose()
            raise
        for service in ("", SERVICE_NAME):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "serving on %s (port %d), database %s", settings.listen, port, database.engine.url
        )
        sweeper = asyncio.create_task(
            _sweep_forever(database, policy, settings.sweep_interval_seconds, feed), name="sweeper"
        )
        return cls(server, health_servicer, database, port, sweeper, feed)

    async def stop(self, grace_seconds: float | None) -> None:
        """Stop: health goes NOT_SERVING, new calls are refused, in-flight calls get
        `grace_seconds` to finish, then the database pool closes."""
        await self._health.enter_graceful_shutdown()
        self._feed.close()  # watchers end with UNAVAILABLE and reconnect elsewhere
        self._sweeper.cancel()
        await self._server.stop(grace_seconds)
        await asyncio.gather(self._sweeper, return_exceptions=True)
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


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = await ChatStoreServer.start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down (grace %.1fs)", settings.shutdown_grace_seconds)
    await server.stop(settings.shutdown_grace_seconds)
