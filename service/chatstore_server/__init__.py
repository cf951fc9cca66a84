"""chatstore's gRPC server: a session store for AI agents over SQLite or PostgreSQL.

Layers, each importing only the ones below it:

- `chatstore_server.server` and `__main__`: process wiring (config, serving, shutdown).
- `chatstore_server.api`: the `grpc.aio` servicer, validation, protobuf conversion and
  error mapping. Protobuf in, protobuf out; no SQL.
- `chatstore_server.store`: async SQLAlchemy repositories returning plain records; no
  gRPC or protobuf.
"""

__version__ = "0.1.0"
