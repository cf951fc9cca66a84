"""`chatstore-health-probe`: exit 0 when the local server reports SERVING.

For container health checks where `grpc_health_probe` is not installed (the image's
HEALTHCHECK uses it). It calls `grpc.health.v1.Health/Check` and prints the status:

    chatstore-health-probe                      # 127.0.0.1 at CHATSTORE_LISTEN's port
    chatstore-health-probe --target host:50051 --service chatstore.v1.SessionService
    chatstore-health-probe --ca-file ca.pem --cert-file probe.pem --key-file probe.key

Exit codes: 0 SERVING; 1 anything else (NOT_SERVING, unreachable, deadline exceeded);
2 bad arguments. With TLS on, give `--ca-file` (and, under mTLS, a client certificate);
`--server-name` overrides the name checked against the server's certificate.
The service "" (the default) is the process; `chatstore.v1.SessionService` turns
NOT_SERVING while the database is unreachable (see the README's "Outages").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _default_target() -> str:
    """127.0.0.1 at the port of `CHATSTORE_LISTEN` (50051 when unset)."""
    port = os.environ.get("CHATSTORE_LISTEN", "127.0.0.1:50051").rsplit(":", 1)[-1]
    return f"127.0.0.1:{port}"


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if not (args.ca_file or args.cert_file):
        return grpc.insecure_channel(args.target)
    read = [f.read_bytes() if f else None for f in (args.ca_file, args.cert_file, args.key_file)]
    credentials = grpc.ssl_channel_credentials(*read)
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.target, credentials, options=options)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chatstore-health-probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", default=_default_target(), help="host:port")
    parser.add_argument("--service", default="", help='the health service name ("": the process)')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--ca-file", type=Path, help="PEM CA bundle: connect with TLS")
    parser.add_argument("--cert-file", type=Path, help="PEM client certificate (mTLS)")
    parser.add_argument("--key-file", type=Path, help="PEM key of --cert-file")
    parser.add_argument("--server-name", help="the name to check the server's certificate for")
    args = parser.parse_args(argv)
    if (args.cert_file is None) != (args.key_file is None):
        parser.error("--cert-file and --key-file go together")
    try:
        with _channel(args) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except OSError as error:
        parser.error(str(error))
    except grpc.RpcError as error:
        code: grpc.StatusCode | None = getattr(error, "code", lambda: None)()
        print(f"{args.target}: {code.name if code else 'error'}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{args.target}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
