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
from tests.pki import certificate_authority, issue
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

    def run(*args: str, expect: int = 0, stdin: str | None = None, stderr: bool = False) -> str:
        result = runner.invoke(
            app, ["--target", server.target, "--tenant", tenant, *args], input=stdin
        )
        assert result.exit_code == expect, result.output
        return result.stderr if stderr else result.stdout

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


def test_json_after_the_command_whole_ids_and_shown_sessions_as_json(chatstore: Any) -> None:
    created = json.loads(chatstore("sessions", "create", "--title", "t", "--json"))
    listed = [json.loads(line) for line in chatstore("sessions", "list", "--json").splitlines()]
    shown = json.loads(chatstore("sessions", "show", created["id"]))  # indented JSON
    table = chatstore("sessions", "list")

    assert [s["id"] for s in listed] == [created["id"]]
    assert shown == created
    assert created["id"] in table  # not cut to fit the terminal's width


def test_caller_ids_and_get_or_create_by_key(chatstore: Any) -> None:
    mine = json.loads(chatstore("sessions", "create", "--id", "user-123", "--json"))
    key = ["--channel", "web", "--account", "bot", "--peer", "ann"]
    first = json.loads(chatstore("sessions", "get-or-create", *key, "--title", "t", "--json"))
    again = json.loads(chatstore("sessions", "get-or-create", *key, "--json"))
    group = json.loads(chatstore("sessions", "get-or-create", *key, "--group", "--json"))

    assert mine["id"] == "user-123"
    assert (again["id"], again["title"]) == (first["id"], "t")
    assert group["id"] != first["id"]
    chatstore("sessions", "create", "--id", "user-123", expect=1)  # ALREADY_EXISTS


def test_a_tenant_is_required(server: BlockingServer) -> None:
    result = CliRunner().invoke(
        app, ["--target", server.target, "sessions", "list"], env={"CHATSTORE_TENANT": None}
    )

    assert result.exit_code == 2
    assert "--tenant" in result.stderr


def test_tls_options(tmp_path: Path) -> None:
    ca, ca_key = certificate_authority()
    leaf = issue(ca, ca_key, "chatstore", server=True)
    for name, data in (("ca", ca.certificate), ("crt", leaf.certificate), ("key", leaf.key)):
        (tmp_path / name).write_bytes(data)
    database = f"sqlite+aiosqlite:///{tmp_path / 'tls.db'}"
    tls = BlockingServer(
        "--listen", "127.0.0.1:0", "--database-url", database,
        "--tls-cert-file", str(tmp_path / "crt"), "--tls-key-file", str(tmp_path / "key"),
    )  # fmt: skip
    try:
        connect = ["--target", tls.target, "--tenant", "t"]
        secure = CliRunner().invoke(
            app, [*connect, "--ca-file", str(tmp_path / "ca"), "sessions", "create", "--json"]
        )
        half = CliRunner().invoke(
            app, [*connect, "--cert-file", str(tmp_path / "crt"), "sessions", "list"]
        )
    finally:
        assert tls.stop() == 0

    assert secure.exit_code == 0, secure.output
    assert json.loads(secure.stdout)["tenant_id"] == "t"
    assert half.exit_code == 2
    assert "--key-file" in half.stderr


def test_message_commands_and_tail(chatstore: Any) -> None:
    session_id = json.loads(chatstore("--json", "sessions", "create"))["id"]

    chatstore("messages", "append", session_id, "hello there")
    chatstore("messages", "append", session_id, "--role", "assistant", stdin="hi, from stdin\n")
    listed = [
        json.loads(line)
        for line in chatstore("--json", "messages", "list", session_id).splitlines()
    ]
    tailed = [
        json.loads(line)
        for line in chatstore("--json", "tail", session_id, "--count", "2").splitlines()
    ]
    newest = chatstore("messages", "list", session_id, "--newest-first", "--limit", "1")
    lines = chatstore("tail", session_id, "--count", "2").splitlines()

    assert [(int(m["seq"]), m["content"]) for m in listed] == [
        (1, "hello there"),
        (2, "hi, from stdin"),
    ]
    assert [int(m["seq"]) for m in tailed] == [1, 2]  # proto3 JSON: int64 as strings
    assert "hi, from stdin" in newest
    assert lines == ["1 user: hello there", "2 assistant: hi, from stdin"]
    chatstore("messages", "append", session_id, "x", "--role", "robot", expect=2)


def openai_conversation(count: int) -> list[dict[str, Any]]:
    """A varied OpenAI-format conversation: text, tool calls and results, names, extras."""
    rng = random.Random(7)
    entries: list[dict[str, Any]] = [
        {"role": "system", "content": "You are helpful."},
        {"role": "developer", "content": "Answer briefly."},
    ]
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

    complaint = chatstore("import", str(source), expect=2, stderr=True)

    assert "line 2: unknown role 'narrator'" in complaint
    source.write_text('{"role": "user", "content": "ok"}\n\n["not", "an object"]\n')
    assert "line 3: not a JSON object" in chatstore("import", str(source), expect=2, stderr=True)


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
