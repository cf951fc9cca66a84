# syntax=docker/dockerfile:1
# chatstore's server image: the server extra in a virtualenv, run as a non-root user.
#
#   docker build -t chatstore .
#   docker run -p 127.0.0.1:50051:50051 -e CHATSTORE_ALLOW_UNAUTHENTICATED=true chatstore
#
# It listens on 0.0.0.0:50051, so it refuses to start until credentials are configured
# (CHATSTORE_API_KEYS_FILE, CHATSTORE_JWT_KEY_FILE, ...) or
# CHATSTORE_ALLOW_UNAUTHENTICATED=true says the network is trusted. The database defaults
# to SQLite in the /var/lib/chatstore volume (one container); set
# CHATSTORE_DATABASE_URL=postgresql://... for more. Settings: the README's Configuration.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clients/python clients/python
COPY service service
RUN python -m venv /opt/chatstore \
    && /opt/chatstore/bin/pip install --no-cache-dir ".[server]"

FROM ${PYTHON_IMAGE}
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/chatstore --create-home chatstore
COPY --from=build /opt/chatstore /opt/chatstore
ENV PATH=/opt/chatstore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CHATSTORE_LISTEN=0.0.0.0:50051 \
    CHATSTORE_DATABASE_URL=sqlite:////var/lib/chatstore/chatstore.db
USER 10001:10001
WORKDIR /var/lib/chatstore
VOLUME ["/var/lib/chatstore"]
# gRPC; Prometheus metrics when CHATSTORE_METRICS_PORT=9464 (worker i: 9464 + i).
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["chatstore-health-probe"]
ENTRYPOINT ["chatstore-server"]
