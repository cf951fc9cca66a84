"""The `chatstore` command: sessions and messages from a terminal, over the typed client.

Tables for people; `--json` prints JSON (one object per line for lists) for scripts.
Connection settings come from options or CHATSTORE_TARGET, CHATSTORE_TENANT and
CHATSTORE_API_KEY.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from chatstore import _base as base
from chatstore._errors import ChatStoreError
from chatstore._sync.client import ChatStoreClient
from chatstore.cli import openai
from chatstore.v1 import (
    Inclusion,
    Message,
    PeerKind,
    Role,
    Session,
    SessionKey,
    SessionStatus,
)

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
    tls = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def client(cls) -> ChatStoreClient:
        if not cls.tenant:
            _error("give --tenant, or set CHATSTORE_TENANT")
            raise typer.Exit(2)
        if (cls.cert_file is None) != (cls.key_file is None):
            _error("--cert-file and --key-file go together")
            raise typer.Exit(2)
        try:
            pem = [
                f.read_bytes() if f else None for f in (cls.ca_file, cls.cert_file, cls.key_file)
            ]
        except OSError as error:
            _error(str(error))
            raise typer.Exit(2) from error
        return ChatStoreClient(
            cls.target,
            tenant_id=cls.tenant,
            api_key=cls.api_key,
            tls=cls.tls,
            root_certificates=pem[0],
            client_certificate=pem[1],
            client_private_key=pem[2],
        )


# `--json` is taken before the command and after it alike.
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def _json_if(as_json: bool) -> None:
    if as_json:
        State.as_json = True


@app.callback()
def connect(
    target: Annotated[
        str, typer.Option(envvar="CHATSTORE_TARGET", help="host:port")
    ] = base.DEFAULT_TARGET,
    tenant: Annotated[
        str | None, typer.Option(envvar="CHATSTORE_TENANT", help="the tenant to act for")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="CHATSTORE_API_KEY", help="credential")
    ] = None,
    as_json: JsonFlag = False,
    tls: Annotated[
        bool, typer.Option(envvar="CHATSTORE_TLS", help="connect with TLS (system roots)")
    ] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option(envvar="CHATSTORE_TLS_CA_FILE", help="PEM CA bundle to verify the server"),
    ] = None,
    cert_file: Annotated[
        Path | None,
        typer.Option(envvar="CHATSTORE_TLS_CERT_FILE", help="PEM client certificate (mTLS)"),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(envvar="CHATSTORE_TLS_KEY_FILE", help="PEM key of --cert-file"),
    ] = None,
) -> None:
    """Connection options, before the command. Any TLS option turns TLS on."""
    State.target, State.tenant, State.api_key, State.as_json = target, tenant, api_key, as_json
    State.tls, State.ca_file, State.cert_file, State.key_file = tls, ca_file, cert_file, key_file


def _json(message: ProtoMessage) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return result


def _print_sessions(sessions: list[Session]) -> None:
    if State.as_json:
        for session in sessions:
            print(json.dumps(_json(session)))
        return
    rows = [
        (
            s.id,
            _clip(s.title, 30),
            _clip(s.agent_id, 16),
            SessionStatus.Name(s.status).removeprefix("SESSION_STATUS_").lower(),
            str(s.message_count),
            s.update_time.ToDatetime().strftime("%Y-%m-%d %H:%M"),
            " ".join(s.last_message_preview.split()),
        )
        for s in sessions
    ]
    _print_columns(
        ("id", "title", "agent", "status", "msgs", "updated (UTC)", "last message"), rows
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _print_columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Plain columns, two spaces apart. Every column is whole (ids are copied into the
    next command) but the last, which is cut to the terminal's width."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    room = max(out.width - sum(widths[:-1]) - 2 * (len(widths) - 1), 12)
    for number, row in enumerate([header, *rows]):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        line = "  ".join([*cells, _clip(row[-1], room)]).rstrip()
        out.print(
            line,
            style="bold" if number == 0 else None,
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


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


def _print_line(message: Message) -> None:
    """One message as one line (`tail`): JSON with --json, else seq, role and text."""
    if State.as_json:
        print(json.dumps(_json(message)), flush=True)
        return
    role = Role.Name(message.role).removeprefix("ROLE_").lower()
    out.print(f"{message.seq} {role}: {message.content}", markup=False, highlight=False)


def _error(text: str) -> None:
    """`error: TEXT` on stderr, on one line (a script greps it), taken literally."""
    err.print("[red]error:[/red]", escape(text), soft_wrap=True)


def _fail(error: ChatStoreError) -> typer.Exit:
    _error(str(error))
    return typer.Exit(1)


@sessions_app.command("list")
def list_sessions(
    agent: Annotated[str, typer.Option(help="only this agent's sessions")] = "",
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    deleted: Annotated[bool, typer.Option(help="list soft-deleted sessions instead")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List sessions, newest first."""
    _json_if(as_json)
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
def show_session(session_id: str, as_json: JsonFlag = False) -> None:
    """Show one session, as JSON (indented unless --json)."""
    _json_if(as_json)
    try:
        with State.client() as client:
            session = client.get_session(session_id)
    except ChatStoreError as error:
        raise _fail(error) from error
    if State.as_json:
        print(json.dumps(_json(session)))
    else:
        print(json.dumps(_json(session), indent=2, ensure_ascii=False))


@sessions_app.command("create")
def create_session(
    title: Annotated[str, typer.Option()] = "",
    agent: Annotated[str, typer.Option()] = "",
    session_id: Annotated[
        str | None, typer.Option("--id", help="the session id (1-128 printable characters)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a session and print it (the server picks a UUID unless --id)."""
    _json_if(as_json)
    try:
        with State.client() as client:
            session = client.create_session(title=title, agent_id=agent, session_id=session_id)
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions([session])


@sessions_app.command("get-or-create")
def get_or_create_session(
    channel: Annotated[str, typer.Option(help='the channel type, e.g. "web", "slack"')],
    account: Annotated[str, typer.Option(help="the bot's account on that channel")],
    peer: Annotated[str, typer.Option(help="the remote user or group")],
    group: Annotated[bool, typer.Option(help="the peer is a group, not one person")] = False,
    agent: Annotated[str, typer.Option()] = "",
    title: Annotated[str, typer.Option(help="title, if the session is created")] = "",
    as_json: JsonFlag = False,
) -> None:
    """The live session for a conversation key, created if there is none; prints it."""
    _json_if(as_json)
    key = SessionKey(
        channel=channel,
        account_id=account,
        peer_kind=PeerKind.PEER_KIND_GROUP if group else PeerKind.PEER_KIND_DM,
        peer_id=peer,
    )
    try:
        with State.client() as client:
            session = client.get_or_create_session(
                key, agent_id=agent, defaults=Session(title=title)
            ).session
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions([session])


@sessions_app.command("update")
def update_session(
    session_id: str,
    title: Annotated[str | None, typer.Option()] = None,
    agent: Annotated[str | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a session's title, agent or model."""
    _json_if(as_json)
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
    as_json: JsonFlag = False,
) -> None:
    """Delete a session (soft, unless --purge)."""
    _json_if(as_json)
    try:
        with State.client() as client:
            session = client.delete_session(session_id, purge=purge)
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_sessions([session])


@sessions_app.command("undelete")
def undelete_session(session_id: str, as_json: JsonFlag = False) -> None:
    """Restore a soft-deleted session."""
    _json_if(as_json)
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
    as_json: JsonFlag = False,
) -> None:
    """Append one message (from stdin, without its final line break, if not given)."""
    _json_if(as_json)
    text = sys.stdin.read().removesuffix("\n").removesuffix("\r") if content is None else content
    try:
        message = openai.to_message({"role": role, "content": text})
        with State.client() as client:
            stored = client.append_messages(session_id, [message]).messages
    except ValueError as error:
        _error(str(error))
        raise typer.Exit(2) from error
    except ChatStoreError as error:
        raise _fail(error) from error
    _print_messages(list(stored))


@messages_app.command("list")
def list_messages(
    session_id: str,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    newest_first: Annotated[bool, typer.Option()] = False,
    as_json: JsonFlag = False,
) -> None:
    """List a session's messages."""
    _json_if(as_json)
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
    as_json: JsonFlag = False,
) -> None:
    """Follow a session: replay, then print messages as they arrive, a line each."""
    _json_if(as_json)
    seen = 0
    try:
        with State.client() as client:
            for item in client.watch(session_id, from_seq=from_seq):
                if not item.HasField("message"):
                    continue
                _print_line(item.message)
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
    """Each non-blank line's number and JSON object.

    Raises:
        ValueError: A line is not a JSON object (the message names the line).
    """
    with source.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as error:
                raise ValueError(f"line {number}: not JSON ({error})") from error
            if not isinstance(entry, dict):
                raise ValueError(f"line {number}: not a JSON object")
            yield number, entry


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
    batch = []
    try:
        for number, entry in _read(source):
            try:
                batch.append(openai.to_message(entry))
            except (ValueError, KeyError) as error:
                raise ValueError(f"line {number}: {error}") from error
    except ValueError as error:
        _error(f"{source}, {error}")
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
