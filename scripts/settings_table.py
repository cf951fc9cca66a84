"""The README's settings reference table, generated from the Settings model.

    python scripts/settings_table.py           # print it
    python scripts/settings_table.py --write   # replace the table in README.md

tests/test_readme.py checks that README.md holds exactly this table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from chatstore_server.config import Settings


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return ""
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "`" + ",".join(map(str, value)) + "`" if value else "none"
    return f"`{value}`"


def table() -> str:
    """The Markdown table: flag, environment variable, default, meaning."""
    rows = [
        _HEADER,
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:  # on/off switches also take --no-<flag>
            flag = "--[no-]" + name.replace("_", "-")
        rows.append(
            f"| `{flag}` | `CHATSTORE_{name.upper()}` | {_default(name)} | {field.description} |"
        )
    return "\n".join(rows) + "\n"


README = Path(__file__).resolve().parent.parent / "README.md"
_HEADER = "| flag | environment variable | default | meaning |"
_FOOTER = "(This table is generated"


def write() -> None:
    """Replace the table in README.md (from its header row to the note after it)."""
    text = README.read_text()
    start, end = text.index(_HEADER), text.index(_FOOTER)
    README.write_text(text[:start] + table() + "\n" + text[end:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(table(), end="")
