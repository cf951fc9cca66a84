"""The `chatstore` command-line tool (needs the `cli` extra: typer and rich)."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the `chatstore` command."""
    try:
        from chatstore.cli.app import app
    except ImportError as error:  # pragma: no cover - depends on the install
        sys.exit(
            f"chatstore: the command needs the cli extra: pip install 'chatstore[cli]' ({error})"
        )
    app()
