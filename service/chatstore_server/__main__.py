"""`chatstore-server`: run the chatstore gRPC server.

Flags override `CHATSTORE_*` environment variables, which override the TOML file named
by `--config` (or `CHATSTORE_CONFIG`), which overrides the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from chatstore_server import logs, workers
from chatstore_server.config import Settings, load
from chatstore_server.server import StartupError, serve


def _is_bool(annotation: object) -> bool:
    return annotation is bool


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatstore-server",
        description="Serve chatstore's SessionService over gRPC.",
        epilog="Every flag can also be set as CHATSTORE_<FLAG> (e.g. CHATSTORE_DATABASE_URL),"
        " or as a key of the --config file. List settings take JSON.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("CHATSTORE_CONFIG"),
        metavar="FILE",
        help="a TOML file of settings (keys as the flags, with underscores)",
    )
    for name, field in Settings.model_fields.items():
        flag = f"--{name.replace('_', '-')}"
        if _is_bool(field.annotation):
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,  # --x / --no-x
                default=None,
                help=f"{field.description} (default: {'on' if field.default else 'off'})",
            )
            continue
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        parser.add_argument(
            flag,
            dest=name,
            default=None,
            metavar=name.upper(),
            help=f"{field.description} (default: {default})",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, validate settings, serve until SIGTERM or SIGINT."""
    args = vars(_parser().parse_args(argv))
    config_file = args.pop("config")
    overrides = {k: v for k, v in args.items() if v is not None}
    for name in overrides:
        annotation = Settings.model_fields[name].annotation
        if typing.get_origin(annotation) is list:  # list settings come as JSON on the command line
            overrides[name] = _json(overrides[name])
    try:
        settings = load(overrides, config_file)
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"]) or "settings"
            reason = problem["msg"].removeprefix("Value error, ")
            print(f"chatstore-server: bad setting {field}: {reason}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print(f"chatstore-server: bad config file {config_file}: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        if settings.workers > 1:
            refusal = workers.check(settings)
            if refusal:
                raise StartupError("workers", refusal)
            return workers.run(settings)
        asyncio.run(serve(settings))
    except StartupError as error:
        print(f"chatstore-server: bad setting {error.setting}: {error}", file=sys.stderr)
        return 2
    return 0


def _json(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value  # let validation say what is wrong


if __name__ == "__main__":
    sys.exit(main())
