"""The `chatstore-server` command, as installed: a base `pip install chatstore` is the
client alone, so the command says which extra it needs instead of failing on an import.
"""

from __future__ import annotations

import sys


def main() -> int:
    """Run `chatstore_server.__main__.main`, or exit 2 naming the missing extra."""
    try:
        from chatstore_server.__main__ import main as serve
    except ModuleNotFoundError as error:
        print(
            "chatstore-server: the server needs the server extra:"
            f" pip install 'chatstore[server]' (missing module {error.name!r})",
            file=sys.stderr,
        )
        return 2
    return serve()
