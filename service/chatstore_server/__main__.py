"""`chatstore-server`: run the chatstore gRPC server.

Flags override `CHATSTORE_*` environment variables, which override the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from chatstore_server import workers
from chatstore_server.config import Settings
from chatstore_server.server import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatstore-server",
        description="Serve chatstore's SessionService over gRPC.",
        epilog="Every flag can also be set as CHATSTORE_<FLAG> (e.g. CHATSTORE_DATABASE_URL).",
    )
    for name, field in Settings.model_fields.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            metavar=name.upper(),
            help=f"{field.description} (default: {field.default})",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, validate settings, serve until SIGTERM or SIGINT."""
    args = _parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            print(f"chatstore-server: bad setting {field}: {problem['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        refusal = workers.check(settings)
        if refusal:
            print(f"chatstore-server: bad setting workers: {refusal}", file=sys.stderr)
            return 2
        return workers.run(settings)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
