"""The sync client, generated from `chatstore._async` (see scripts/generate.py)."""
