"""`chatstore-new-api-key`: make an API key and the entry that configures it.

The key is printed once, on stderr; the server stores only its SHA-256. The entry is
printed on stdout as one JSON object, which `--api-keys-file` accepts as it is; with
`--keys-file FILE` it is added to that file instead (a JSON list, created if absent).

    chatstore-new-api-key --name support-bot --tenants acme,globex --mode read_only
    chatstore-new-api-key --name ops --tenants '*' --keys-file keys.json

`--tenants` is required: a key for every tenant is asked for by name, as `'*'`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def hash_key(key: str) -> str:
    """The SHA-256 (hex) under which a key is configured."""
    return hashlib.sha256(key.encode()).hexdigest()


def _add_to(path: Path, entry: dict[str, Any]) -> None:
    """Add `entry` to the keys file at `path` (a list, or one object made a list).

    Raises:
        ValueError: The file holds something else, or a key of the same name.
    """
    entries: list[Any] = []
    text = path.read_text() if path.exists() else ""
    if text.strip():
        held = json.loads(text)
        entries = [held] if isinstance(held, dict) else held
        if not isinstance(entries, list):
            raise ValueError(f"{path} holds neither a JSON list of keys nor one key object")
        if any(isinstance(e, dict) and e.get("name") == entry["name"] for e in entries):
            raise ValueError(f"{path} already has a key named {entry['name']!r}")
    path.write_text(json.dumps([*entries, entry], indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chatstore-new-api-key",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="who will hold the key")
    parser.add_argument(
        "--tenants", required=True, help="comma-separated tenant ids, or '*' for every tenant"
    )
    parser.add_argument("--mode", choices=["read_write", "read_only"], default="read_write")
    parser.add_argument(
        "--keys-file", type=Path, help="add the entry to this keys file instead of printing it"
    )
    args = parser.parse_args(argv)
    tenants = [t.strip() for t in args.tenants.split(",") if t.strip()]
    if not tenants:
        parser.error("--tenants names no tenant (give ids, or '*')")
    key = "cs_" + secrets.token_urlsafe(32)
    entry = {"name": args.name, "sha256": hash_key(key), "tenants": tenants, "mode": args.mode}
    if args.keys_file is not None:
        try:
            _add_to(args.keys_file, entry)
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            parser.error(str(error))
    print(f"key (give it to {args.name}; it is not stored anywhere): {key}", file=sys.stderr)
    if args.keys_file is None:
        print(json.dumps(entry))
    else:
        print(f"added {args.name!r} to {args.keys_file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
