"""The `chatstore` command: sessions and messages from a terminal, over the typed client.

Tables for people; `--json` prints JSON (one object per line for lists) for scripts.
Connection settings come from options or CHATSTORE_TARGET, CHATSTORE_TENANT and
CHATSTORE_API_KEY.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from chatstore import _base as base
from chatstore._errors import ChatStoreError
from chatstore._sync.client import ChatStoreClient
from chatstore.cli import openai
from chatstore.v1 import Inclusion, Message, Role, Session, SessionStatus

app = typer.Typer(help="Work with a chatstore server.", no_args_is_help=True)
sessions_app = typer.Typer(
    help="List, show, create, update, delete sessions.", no_args_is_help=True
)
messages_app = typer.Typer(help="Append and list messages.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
app.add_typer(messages_app, name="messages")
out = Console()
err = Console(stderr=True)

IMPORT_BATCH = 500


class State:
    """The connection settings of this invocation."""

    target = base.DEFAULT_TARGET
    tenant: str | None = None
    api_key: str | None = None
    as_json = False

    @classmethod
    def client(cls) -> ChatStoreClient:
        return ChatStoreClient(cls.target, tenant_id=cls.tenant, api_key=cls.api_key)


@app.callback()
def connect(
    target: Annotated[
        str, typer.Option(envvar="CHATSTORE_TARGET", help="host:port")
    ] = base.DEFAULT_TARGET,
    tenant: Annotated[
        str, typer.Option(envvar="CHATSTORE_TENANT", help="the tenant to act for")
    ] = "default",
    api_key: Annotated[
        str | None, typer.Option(envvar="CHATSTORE_API_KEY", help="credential")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Connection options, before the command."""
    State.target, State.tenant, State.api_key, State.as_json = target, tenant, api_key, as_json


def _json(message: ProtoMessage) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return result


def _print_sessions(sessions: list[Session]) -> None:
    if State.as_json:
        for session in sessions:
            print(json.dumps(_json(session)))
        return
    table = Table("id", "title", "agent", "status", "messages", "updated", "last message")
    for s in sessions:
        table.add_row(
            s.id,
            s.title,
            s.agent_id,
            SessionStatus.Name(s.status).removeprefix("SESSION_STATUS_"),
            str(s.message_count),
            s.update_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            s.last_message_preview[:60],
        )
    out.print(table)


def _print_messages(messages: list[Message]) -> None:
    if State.as_json:
        for message in messages:
            print(json.dumps(_json(message)))
        return
    table = Table("seq", "role", "content", "created")
    for m in messages:
        table.add_row(
            str(m.seq),
            Role.Name(m.role).removeprefix("ROLE_").lower(),
            m.content if len(m.content) <= 200 else m.content[:199] + "…",
            m.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


def _fail(error: ChatStoreError) -> typer.Exit:
    err.print(f"[red]error:[/red] {error}")
    return typer.Exit(1)


@sessions_app.command("list")
def list_sessions(
    agent: Annotated[str, typer.Option(help="only this agent's sessions")] = "",
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    deleted: Annotated[bool, typer.Option(help="list soft-deleted sessions instead")] = False,
) -> None:
    """List sessions, newest first."""
    try:
        with State.client() as client:
            sessions = []
            for session in client.list_sessions(
                agent_id=agent,
                page_size=min(limit, 1000),
                deleted=Inclusion.INCLUSION_ONLY if deleted else Inclusion.INCLUSION_EXCLUDE,
            ):
                sessions.append(session)
                if len(sessions) >= limit:
                    break
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions(sessions)


@sessions_app.command("show")
def show_session(session_id: str) -> None:
    """Show one session."""
    try:
        with State.client() as client:
            session = client.get_session(session_id)
    except ChatStoreError as error:
        raise _fail(error) from error
    if State.as_json:
        print(json.dumps(_json(session)))
    else:
        out.print(_json(session))


@sessions_app.command("create")
def create_session(
    title: Annotated[str, typer.Option()] = "",
    agent: Annotated[str, typer.Option()] = "",
) -> None:
    """Create a session and print it."""
    try:
        with State.client() as client:
            session = client.create_session(title=title, agent_id=agent)
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions([session])


@sessions_app.command("update")
def update_session(
    session_id: str,
    title: Annotated[str | None, typer.Option()] = None,
    agent: Annotated[str | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change a session's title, agent or model."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {"title": title, "agent_id": agent, "model": model}.items()
        if v is not None
    }
    try:
        with State.client() as client:
            session = client.update_session(session_id, **changes)
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions([session])


@sessions_app.command("delete")
def delete_session(
    session_id: str,
    purge: Annotated[bool, typer.Option(help="remove it and its history for good")] = False,
) -> None:
    """Delete a session (soft, unless --purge)."""
    try:
        with State.client() as client:
            session = client.delete_session(session_id, purge=purge)
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions([session])


@sessions_app.command("undelete")
def undelete_session(session_id: str) -> None:
    """Restore a soft-deleted session."""
    try:
        with State.client() as client:
            session = client.undelete_session(session_id)
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions([session])


@messages_app.command("append")
def append_message(
    session_id: str,
    content: Annotated[
        str | None, typer.Argument(help="the text; read from stdin if absent")
    ] = None,
    role: Annotated[str, typer.Option(help="user, assistant, system or tool")] = "user",
) -> None:
    """Append one message."""
    text = sys.stdin.read() if content is None else content
    try:
        message = openai.to_message({"role": role, "content": text})
        with State.client() as client:
            stored = client.append_messages(session_id, [message]).messages
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_messages(list(stored))


@messages_app.command("list")
def list_messages(
    session_id: str,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    newest_first: Annotated[bool, typer.Option()] = False,
) -> None:
    """List a session's messages."""
    try:
        with State.client() as client:
            messages = []
            for message in client.list_messages(
                session_id, newest_first=newest_first, page_size=min(limit, 1000)
            ):
                messages.append(message)
                if len(messages) >= limit:
                    break
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_messages(messages)


@app.command("tail")
def tail(
    session_id: str,
    from_seq: Annotated[int, typer.Option(help="replay messages after this seq")] = 0,
    count: Annotated[int, typer.Option(help="stop after this many messages (0: never)")] = 0,
) -> None:
    """Follow a session: replay, then print messages as they arrive."""
    seen = 0
    try:
        with State.client() as client:
            for item in client.watch(session_id, from_seq=from_seq):
                if not item.HasField("message"):
                    continue
                _print_messages([item.message])
                seen += 1
                if count and seen >= count:
                    return
    except ChatStoreError as error:
        raise _fail(error) from error


@app.command("export")
def export(
    session_id: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file; default stdout")
    ] = None,
) -> None:
    """Write a session's messages as OpenAI-format JSONL."""
    try:
        with State.client() as client:
            lines = (
                json.dumps(openai.from_message(m), ensure_ascii=False)
                for m in client.list_messages(session_id, page_size=1000)
            )
            if output is None:
                for line in lines:
                    print(line)
            else:
                with output.open("w") as sink:
                    sink.writelines(line + "\n" for line in lines)
    except ChatStoreError as error:
        raise _fail(error) from error


def _read(source: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with source.open() as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield number, json.loads(line)


@app.command("import")
def import_(
    source: Path,
    session_id: Annotated[
        str | None, typer.Option("--session", help="append to this session")
    ] = None,
    title: Annotated[str, typer.Option(help="title of the session created")] = "",
) -> None:
    """Import OpenAI-format JSONL into a new session (or --session), in batches.

    Prints the session id.
    """
    try:
        batch = [openai.to_message(entry) for _, entry in _read(source)]
    except (ValueError, KeyError) as error:
        err.print(f"[red]error:[/red] {source}: {error}")
        raise typer.Exit(2) from error
    try:
        with State.client() as client:
            if session_id is None:
                session_id = client.create_session(title=title or source.stem).id
            with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
                task = progress.add_task("importing", total=len(batch))
                for start in range(0, len(batch), IMPORT_BATCH):
                    chunk = batch[start : start + IMPORT_BATCH]
                    client.append_messages(session_id, chunk)
                    progress.advance(task, len(chunk))
    except ChatStoreError as error:
        raise _fail(error) from error
    print(session_id)
