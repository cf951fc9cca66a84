"""Print the README's settings reference table, generated from the Settings model.

    python scripts/settings_table.py > /tmp/table.md

tests/test_readme.py checks that README.md holds exactly this table.
"""

from __future__ import annotations

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
        "| flag | environment variable | default | meaning |",
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


if __name__ == "__main__":
    print(table(), end="")
