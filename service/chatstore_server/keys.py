"""`chatstore-new-api-key`: make an API key and the entry that configures it.

The key is printed once; the server stores only its SHA-256.

    chatstore-new-api-key --name support-bot --tenants acme,globex --mode read_only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from collections.abc import Sequence


def hash_key(key: str) -> str:
    """The SHA-256 (hex) under which a key is configured."""
    return hashlib.sha256(key.encode()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatstore-new-api-key", description=__doc__)
    parser.add_argument("--name", required=True, help="who will hold the key")
    parser.add_argument("--tenants", default="*", help='comma-separated tenant ids, or "*"')
    parser.add_argument("--mode", choices=["read_write", "read_only"], default="read_write")
    args = parser.parse_args(argv)
    key = "cs_" + secrets.token_urlsafe(32)
    entry = {
        "name": args.name,
        "sha256": hash_key(key),
        "tenants": [t.strip() for t in args.tenants.split(",") if t.strip()],
        "mode": args.mode,
    }
    print(f"key (give it to {args.name}; it is not stored anywhere): {key}", file=sys.stderr)
    print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
