"""The README's client example runs, as written, against a real server."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_the_client_example_and_a_quickstart_per_framework() -> None:
    assert len(python_examples()) == 1 + len(QUICKSTARTS)


async def test_readme_example_runs_against_a_real_server(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(python_examples()[0], str(README), "exec"), namespace)
    main = cast(Callable[[str], Awaitable[None]], namespace["main"])

    await main(target)

    assert capsys.readouterr().out.splitlines() == [
        "1 ROLE_USER Find me a train to Rome.",
        "2 ROLE_ASSISTANT Leaving when?",
        "SESSION_NOT_FOUND",
    ]


# What each framework quickstart prints, in README order, the first time it runs.
QUICKSTARTS = [
    "[{'role': 'user', 'content': 'Hi'}]",
    "{'city': 'Rome'}",
    "['Hi', 'Hi']",
    "['Hi', 'Hello!']",
]


@pytest.mark.parametrize("index", range(len(QUICKSTARTS)))
async def test_each_framework_quickstart_runs_against_a_real_server(
    target: str, capsys: pytest.CaptureFixture[str], index: int
) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_quickstart"}
    exec(compile(python_examples()[1 + index], str(README), "exec"), namespace)
    main = cast(Callable[[str], Awaitable[None]], namespace["main"])

    await main(target)

    assert capsys.readouterr().out.splitlines() == [QUICKSTARTS[index]]


def test_readme_lists_every_setting() -> None:
    import subprocess
    import sys

    script = README.parent / "scripts" / "settings_table.py"
    table = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout

    assert table in README.read_text(), "README's settings table is stale: regenerate it"
