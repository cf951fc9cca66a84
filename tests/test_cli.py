"""The `chatstore` command against a real server process."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chatstore.cli.app import app
from tests.processes import BlockingServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlockingServer]:
    database = tmp_path_factory.mktemp("cli") / "cli.db"
    running = BlockingServer(
        "--listen", "127.0.0.1:0", "--database-url", f"sqlite+aiosqlite:///{database}"
    )
    yield running
    assert running.stop() == 0


@pytest.fixture
def chatstore(server: BlockingServer) -> Any:
    """Run `chatstore ARGS` for a tenant of this test's own; its stdout."""
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    runner = CliRunner()

    def run(*args: str, expect: int = 0, stdin: str | None = None) -> str:
        result = runner.invoke(
            app, ["--target", server.target, "--tenant", tenant, *args], input=stdin
        )
        assert result.exit_code == expect, result.output
        return result.stdout

    return run


def test_session_commands(chatstore: Any) -> None:
    created = json.loads(chatstore("--json", "sessions", "create", "--title", "from the CLI"))
    session_id = created["id"]

    listed = [json.loads(line) for line in chatstore("--json", "sessions", "list").splitlines()]
    shown = json.loads(chatstore("--json", "sessions", "show", session_id))
    chatstore("sessions", "update", session_id, "--title", "renamed", "--model", "m1")
    renamed = json.loads(chatstore("--json", "sessions", "show", session_id))
    chatstore("sessions", "delete", session_id)
    deleted = [
        json.loads(line)
        for line in chatstore("--json", "sessions", "list", "--deleted").splitlines()
    ]
    chatstore("sessions", "undelete", session_id)
    human = chatstore("sessions", "list")

    assert [s["id"] for s in listed] == [session_id]
    assert shown["title"] == "from the CLI"
    assert (renamed["title"], renamed["model"]) == ("renamed", "m1")
    assert [s["id"] for s in deleted] == [session_id]
    assert "renamed" in human
    chatstore("sessions", "show", str(uuid.uuid4()), expect=1)


def test_message_commands_and_tail(chatstore: Any) -> None:
    session_id = json.loads(chatstore("--json", "sessions", "create"))["id"]

    chatstore("messages", "append", session_id, "hello there")
    chatstore("messages", "append", session_id, "--role", "assistant", stdin="hi, from stdin")
    listed = [
        json.loads(line)
        for line in chatstore("--json", "messages", "list", session_id).splitlines()
    ]
    tailed = [
        json.loads(line)
        for line in chatstore("--json", "tail", session_id, "--count", "2").splitlines()
    ]
    newest = chatstore("messages", "list", session_id, "--newest-first", "--limit", "1")

    assert [(int(m["seq"]), m["content"]) for m in listed] == [
        (1, "hello there"),
        (2, "hi, from stdin"),
    ]
    assert [int(m["seq"]) for m in tailed] == [1, 2]  # proto3 JSON: int64 as strings
    assert "hi, from stdin" in newest
    chatstore("messages", "append", session_id, "x", "--role", "robot", expect=2)


def openai_conversation(count: int) -> list[dict[str, Any]]:
    """A varied OpenAI-format conversation: text, tool calls and results, names, extras."""
    rng = random.Random(7)
    entries: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful."}]
    while len(entries) < count:
        turn = len(entries)
        entries.append(
            {
                "role": "user",
                "content": f"question {turn} " + "é" * rng.randint(0, 40),
                "name": "ann",
            }
        )
        if rng.random() < 0.3:
            call_id = f"call_{turn}"
            entries.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "search", "arguments": json.dumps({"q": turn})},
                        }
                    ],
                }
            )
            entries.append({"role": "tool", "tool_call_id": call_id, "content": f"result {turn}"})
        entries.append({"role": "assistant", "content": f"answer {turn}", "refusal": None})
    return entries[:count]


def test_import_then_export_round_trips_10000_messages(chatstore: Any, tmp_path: Path) -> None:
    conversation = openai_conversation(10_000)
    source = tmp_path / "conversation.jsonl"
    source.write_text("".join(json.dumps(entry) + "\n" for entry in conversation))

    session_id = chatstore("import", str(source), "--title", "imported").strip()
    exported = tmp_path / "exported.jsonl"
    chatstore("export", session_id, "--output", str(exported))
    shown = json.loads(chatstore("--json", "sessions", "show", session_id))

    assert [json.loads(line) for line in exported.read_text().splitlines()] == conversation
    assert int(shown["message_count"]) == 10_000
    assert shown["title"] == "imported"


def test_import_of_a_bad_file_is_refused(chatstore: Any, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"role": "user", "content": "ok"}\n{"role": "narrator", "content": "?"}\n')

    chatstore("import", str(source), expect=2)


def test_the_server_command_names_the_extra_it_needs_when_it_is_missing() -> None:
    # A base `pip install chatstore` has the command but not SQLAlchemy and the rest.
    script = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "from chatstore_server.entry import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert done.returncode == 2
    assert "pip install 'chatstore[server]'" in done.stderr
    assert "Traceback" not in done.stderr
