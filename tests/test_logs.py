"""The access log's shortcut writes the very line the logging call would, and steps
aside whenever anything else listens to the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from chatstore_server import logs

_FIELDS = {"request_id": "r1", "method": "/s/GetSession", "code": "OK", "duration_ms": 0.25}


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """chatstore's JSON logging, into a string; the logging set-up restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("INFO", "json")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved


def test_the_shortcut_line_is_the_logging_line(json_logs: io.StringIO) -> None:
    logger = logging.getLogger("chatstore_server.access")
    root = logging.getLogger()
    ours = next(h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter))
    others = root.handlers[:]
    root.handlers[:] = [ours]  # as in the server: pytest's capture handlers set aside
    try:
        assert logs._direct_handler(logger) is ours  # the shortcut is taken
        logs.info_line(logger, "GetSession OK", dict(_FIELDS))
        logger.info("GetSession OK", extra=dict(_FIELDS))
    finally:
        root.handlers[:] = others

    direct, through_logging = (json.loads(line) for line in json_logs.getvalue().splitlines())

    assert direct.keys() == through_logging.keys()
    assert {k: v for k, v in direct.items() if k != "time"} == {
        k: v for k, v in through_logging.items() if k != "time"
    }
    assert direct["time"][:16] == through_logging["time"][:16]  # same minute


def test_another_listener_gets_the_record(json_logs: io.StringIO) -> None:
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    root = logging.getLogger()
    root.addHandler(Capture())
    assert logs._direct_handler(logging.getLogger("chatstore_server.access")) is None
    logs.info_line(logging.getLogger("chatstore_server.access"), "GetSession OK", dict(_FIELDS))

    assert [r.getMessage() for r in captured] == ["GetSession OK"]
    assert captured[0].request_id == "r1"  # type: ignore[attr-defined]
    assert json.loads(json_logs.getvalue())["request_id"] == "r1"  # the JSON line too


def test_a_disabled_level_writes_nothing(json_logs: io.StringIO) -> None:
    logger = logging.getLogger("chatstore_server.access")
    logger.setLevel(logging.WARNING)
    try:
        logs.info_line(logger, "GetSession OK", dict(_FIELDS))
    finally:
        logger.setLevel(logging.NOTSET)
    assert json_logs.getvalue() == ""


@pytest.mark.parametrize("line_buffering", [True, False], ids=["like stderr", "block-buffered"])
def test_the_stream_has_the_whole_line_at_once(
    json_logs: io.StringIO, line_buffering: bool
) -> None:
    # A line-buffered stream writes the line by itself; any other is flushed.
    logger = logging.getLogger("chatstore_server.access")
    root = logging.getLogger()
    ours = next(h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter))
    assert isinstance(ours, logging.StreamHandler)
    raw = io.BytesIO()
    ours.setStream(io.TextIOWrapper(raw, line_buffering=line_buffering))
    others = root.handlers[:]
    root.handlers[:] = [ours]  # as in the server: pytest's capture handlers set aside
    try:
        logs.info_line(logger, "GetSession OK", dict(_FIELDS))
    finally:
        root.handlers[:] = others

    assert json.loads(raw.getvalue())["request_id"] == "r1"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"request_id": 'quote " and \\ and \u00e9', "code": "OK", "n": 3, "ratio": 0.5},
        {"duration_ms": float("nan"), "when": None, "flag": True, "items": [1, "a"]},
        {"message": "an extra named as a fixed key replaces it"},
    ],
    ids=["no fields", "strings and numbers", "other values", "a fixed key"],
)
def test_the_template_line_is_the_encoded_object(fields: dict[str, object]) -> None:
    formatter = logs.JsonFormatter()
    for _ in range(2):  # the template is made by the first line, used by the second
        line = formatter.line("chatstore_server.access", "GetSession OK", dict(fields))
        expected = {
            "level": "INFO",
            "logger": "chatstore_server.access",
            "message": "GetSession OK",
        } | fields
        parsed = json.loads(line)
        assert parsed.pop("time")
        assert json.dumps(parsed) == json.dumps(expected)  # same keys, order and values
