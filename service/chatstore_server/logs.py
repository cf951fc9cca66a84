"""Logging set-up: one JSON object per line (or plain text for people).

Fields passed in `extra` (request_id, method, code, duration_ms, tenant_id, ...) become
keys of the JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_ENCODER = json.JSONEncoder(default=str)
# `_ENCODER.encode` builds a C encoder for every object it encodes, which cost more than
# the encoding of a log line: the access line's is built once (no check for circular
# references: its fields are flat), as `encode` builds it, when the C encoder exists.
_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # None without _json
_ACCESS_CHUNKS = (
    None
    if _C_MAKE_ENCODER is None
    else _C_MAKE_ENCODER(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring_ascii,
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        False,
        False,
        True,
    )
)
_ENCODE = _ENCODER.encode


_ESCAPE = json.encoder.encode_basestring_ascii  # as `_ENCODER` writes a string
# Keys of a line's template (`JsonFormatter.line`): fields named so take the long way,
# which lets them replace the template's values as `format` lets extras do.
_HEAD_KEYS = frozenset({"time", "level", "logger", "message", "process"})
_HEADS_HELD = 1_024


def _encode_line(entry: dict[str, Any]) -> str:
    """`entry` as `_ENCODE` gives it, for a flat dict of the access line's fields."""
    if _ACCESS_CHUNKS is None:
        return _ENCODE(entry)
    return "".join(_ACCESS_CHUNKS(entry, 0))


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON object: time, level, logger, message, extras, traceback.

    `time` is ISO 8601 in UTC with milliseconds (`2026-11-22T08:07:26.630+00:00`). The
    access log formats a line per call, so the date and time of day are formatted once
    per second and reused.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""
        # (logger, message, process name) -> the line's constant part after the time.
        self._heads: dict[tuple[str, str, str], str] = {}

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def line(self, logger: str, message: str, fields: dict[str, Any]) -> str:
        """The line `format` would make of an INFO record of `logger` with `message`
        and `fields` as its extras, made without the record.

        Written from a template per logger and message (its constant keys encoded
        once) and the fields encoded as they are: the access log writes one per call,
        and building a new object of both for the encoder cost more than the line.
        """
        process = _process_name()
        if not _HEAD_KEYS.isdisjoint(fields):
            return self._line_as_object(logger, message, process, fields)
        head = self._heads.get((logger, message, process)) or self._head(logger, message, process)
        if not fields:
            return f'{{"time": "{self._time(time.time())}{head}}}'
        # The fields as one object, whose opening brace gives way to the template.
        return f'{{"time": "{self._time(time.time())}{head}, {_encode_line(fields)[1:]}'

    def _head(self, logger: str, message: str, process: str) -> str:
        """The template's part from the end of the time to the fields, kept."""
        if len(self._heads) >= _HEADS_HELD:
            self._heads.clear()
        text = f'", "level": "INFO", "logger": {_ESCAPE(logger)}, "message": {_ESCAPE(message)}'
        if process != "MainProcess":
            text += f', "process": {_ESCAPE(process)}'
        self._heads[(logger, message, process)] = text
        return text

    def _line_as_object(
        self, logger: str, message: str, process: str, fields: dict[str, Any]
    ) -> str:
        entry: dict[str, Any] = {
            "time": self._time(time.time()),
            "level": "INFO",
            "logger": logger,
            "message": message,
        }
        if process != "MainProcess":
            entry["process"] = process
        entry |= fields
        return _encode_line(entry)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.processName != "MainProcess":
            entry["process"] = record.processName
        entry |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return _ENCODE(entry)


def _process_name() -> str:
    """The name a LogRecord would give the current process (looked up once per process:
    the access log asks on every call)."""
    if not _PROCESS_NAME:
        multiprocessing = sys.modules.get("multiprocessing")
        _PROCESS_NAME.append(
            "MainProcess" if multiprocessing is None else multiprocessing.current_process().name
        )
    return _PROCESS_NAME[0]


_PROCESS_NAME: list[str] = []  # empty: not looked up yet in this process
os.register_at_fork(after_in_child=_PROCESS_NAME.clear)


def info_line(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """Log `message` at INFO with `fields` as extras: the same line as
    `logger.info(message, extra=fields)`, made in a fifth of the time when `configure`
    set up JSON logging and nothing else listens (then the line goes straight to that
    handler's stream, under the handler's lock). Otherwise, and for every other set-up
    (tests capturing logs, an application's own handlers), it is that logging call.

    For the access log: one line per call, where the logging machinery (record,
    extras, handler chain) cost about 50 us against 9 us for the line itself.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _direct_handler(logger)
    if handler is None:
        logger.info(message, extra=fields)
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    text = formatter.line(logger.name, message, fields) + handler.terminator
    handler.acquire()
    try:
        stream = handler.stream
        stream.write(text)
        # A line-buffered stream (stderr, since Python 3.9) has written the line already.
        if not getattr(stream, "line_buffering", False):
            handler.flush()
    finally:
        handler.release()


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The JSON handler `configure` installed, if it is the only place `logger`'s INFO
    records can go and nothing filters them."""
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    while parent is not None and parent is not logging.root:
        if parent.handlers or parent.filters or not parent.propagate:
            return None
        parent = parent.parent
    handlers = logging.root.handlers
    if len(handlers) != 1 or logging.root.filters:
        return None
    handler = handlers[0]
    if (
        type(handler) is not logging.StreamHandler
        or type(handler.formatter) is not JsonFormatter
        or handler.filters
        or handler.level > logging.INFO
    ):
        return None
    return handler


class TextFormatter(logging.Formatter):
    """A line for people: `time level process logger: message key=value ...`.

    The extras the JSON format gives as keys (request_id, method, code, duration_ms,
    ...) follow the message as `key=value`, values with spaces quoted, in the order
    they were passed; then the traceback, if any.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [
            f"{key}={_text_value(value)}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD
        ]
        if not extras:
            return text
        head, newline, rest = text.partition("\n")  # the traceback stays below
        return f"{head} {' '.join(extras)}{newline}{rest}"


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c == '"' for c in text) else text


def configure(level: str, fmt: str) -> None:
    """Send the root logger's records to stderr in `fmt` ("json" or "text")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Neither format shows the calling file and line or the thread: don't collect them
    # (the logging documentation's "Optimization" advice; the access log is per call).
    logging._srcfile = None
    logging.logThreads = False
